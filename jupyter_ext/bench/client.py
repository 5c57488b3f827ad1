"""Async streaming client for any OpenAI-compatible endpoint (local vLLM or a given URL).

It is built not to be the bottleneck: one aiohttp session with no connection-pool cap
(aiohttp's default caps at 100), a large read buffer, uvloop where installed, request bodies
encoded before a level starts, and each chunk of a reply stamped on the monotonic clock the
moment it is read, its events decoded once the reply ended (`sse.read_stamped`): hundreds of
open streams then cost one clock read per chunk. The clock of a request starts when its
last byte is written to the socket (aiohttp's request-chunk trace): with many streams
started at once, one event loop opens connections and writes requests one after another,
and that client-side wait is reported as queue time, not counted in TTFT. Requests ask for
`include_usage` so token counts come from the server, not from a local tokenizer.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from . import failures
from .metrics import RequestSample
from .sse import StampedStream, decode_turn, read_stamped
from .workload import Prompt

READ_BUFSIZE = 1 << 22  # 4 MiB: a small buffer makes aiohttp split and re-read long streams


@dataclass
class Endpoint:
    """Where to send requests. `api` is 'chat' (/v1/chat/completions) or 'completions'.

    `ignore_eos` is a vLLM extension that makes every request produce exactly max_tokens,
    as benchmark harnesses do; turn it off for servers that reject unknown fields.
    `extra_body` is merged into every request body (e.g. a `logit_bias` that bans the end
    token on a server without `ignore_eos`)."""

    base_url: str
    model: str
    api: str = "chat"
    headers: dict[str, str] = field(default_factory=dict)
    ignore_eos: bool = True
    temperature: float = 0.0
    request_timeout_s: float = 600.0
    transport: Any = None  # e.g. SageMakerTransport: signs requests, decodes its stream
    sessions: Any = None  # e.g. sagemaker_sessions.EndpointSessions: a sticky session per conversation
    extra_body: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        path = "/v1/chat/completions" if self.api == "chat" else "/v1/completions"
        return self.base_url.rstrip("/") + path

    def body(self, prompt: Prompt, max_tokens: int) -> dict[str, Any]:
        b: dict[str, Any] = {"model": prompt.model or self.model, "max_tokens": max_tokens, "temperature": self.temperature,
                             "stream": True, "stream_options": {"include_usage": True}}
        if self.api == "chat":
            b["messages"] = prompt.messages()
        else:
            b["prompt"] = prompt.text()
        if self.ignore_eos:
            b["ignore_eos"] = True
        b.update(self.extra_body)
        return b

    def payload(self, prompt: Prompt, max_tokens: int) -> bytes:
        """The encoded request body (built ahead of a level's sending, or at the request)."""
        return json.dumps(self.body(prompt, max_tokens)).encode()

    def to_dict(self) -> dict:
        # Header values may hold credentials: keep their names only.
        d = {"base_url": self.base_url, "model": self.model, "api": self.api,
             "headers": sorted(self.headers), "ignore_eos": self.ignore_eos, "temperature": self.temperature}
        if self.extra_body:
            d["extra_body"] = self.extra_body
        if self.transport is not None:
            d.update(self.transport.describe())
        if self.sessions is not None:
            d["sessions"] = True
        return d

    def prepare(self, payload: bytes, session_id: str | None = None) -> tuple[str, dict[str, str]]:
        """URL and headers for one request (a transport may sign them, and carry a session's id)."""
        if self.transport is not None:
            return self.transport.prepare(payload, session_id)
        return self.url, {"Content-Type": "application/json"}

    def chunks(self, resp):
        """The response's SSE bytes, as they arrive: the HTTP body of an OpenAI server, or what
        a transport takes out of its own framing (SageMaker's event stream)."""
        return self.transport.chunks(resp) if self.transport is not None else resp.content.iter_any()


def new_session(endpoint: Endpoint):
    """An aiohttp session with no pool cap, a large read buffer, and a trace that stamps the
    moment each request's body is written (`trace_request_ctx` of the request)."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=endpoint.request_timeout_s)
    trace = aiohttp.TraceConfig()
    trace.on_request_chunk_sent.append(_stamp_written)
    return aiohttp.ClientSession(connector=connector, timeout=timeout, read_bufsize=READ_BUFSIZE,
                                 headers=endpoint.headers, trace_configs=[trace])


async def _stamp_written(_session, ctx, _params) -> None:
    stamps = ctx.trace_request_ctx
    if isinstance(stamps, dict):
        stamps["written"] = time.perf_counter()  # the last body chunk wins


def _content_of(event: dict) -> str:
    choices = event.get("choices") or []
    if not choices:
        return ""
    c = choices[0]
    if "delta" in c:
        return c["delta"].get("content") or c["delta"].get("reasoning_content") or ""
    return c.get("text") or ""


class Reply:
    """A request whose stream was read: `sample` is final when the request failed before its
    events needed decoding; otherwise `finish()` decodes them (one `decode_turn`) and fills
    in the sample's times, text and token counts. Split so a closed-loop user sends its next
    request before its last reply is decoded, as a real client would (no client work sits
    between one reply's end and the next request)."""

    def __init__(self, sample: RequestSample, stream: StampedStream | None = None, sent: float = 0.0) -> None:
        self.sample, self.stream, self.sent = sample, stream, sent

    @property
    def final(self) -> bool:
        return self.stream is None

    async def finish(self) -> RequestSample:
        if self.stream is None:
            return self.sample
        sample, stream, sent = self.sample, self.stream, self.sent
        self.stream = None
        try:
            async with decode_turn():
                stream.parse(final=True)
                chunks, text = _take_events(sample, stream.events, sent)
        except json.JSONDecodeError as exc:  # a line that is no JSON event: not an SSE stream at all
            sample.error_kind = failures.NOT_STREAM
            sample.error = f"its reply is not a stream of JSON events (a line reads {exc.doc[:120]!r})"
            sample.chunk_times_s = _partial_times(sample, stream, sent)
            return _ended(sample)
        except Exception as exc:  # noqa: BLE001 - an error event from the server ended the reply
            sample.error_kind, sample.error = failures.describe_exception(exc)
            sample.chunk_times_s = _partial_times(sample, stream, sent)
            return _ended(sample)
        if not chunks:
            sample.error_kind, sample.error = failures.EMPTY, "the stream ended without any content"
            return _ended(sample)
        sample.ok = True
        sample.chunk_times_s = chunks
        sample.ttft_s = chunks[0]
        sample.e2el_s = chunks[-1]
        sample.text = "".join(text)
        if sample.output_tokens is None:  # fallback, flagged by usage_from_server=False
            sample.output_tokens = len(chunks)
        return _ended(sample)


async def stream_request(session, endpoint: Endpoint, prompt: Prompt, max_tokens: int,
                         due_at: float | None = None, session_id: str | None = None,
                         payload: bytes | None = None) -> RequestSample:
    """Send one streaming request (in the sticky session `session_id`, if given) and time
    every content event. Never raises for a failed request: the failure is recorded in the
    sample so a sweep can count it. `payload` is the request body built beforehand
    (`Endpoint.payload`), so sending it encodes nothing."""
    reply = await stream_reply(session, endpoint, prompt, max_tokens, due_at, session_id, payload)
    return await reply.finish()


async def stream_reply(session, endpoint: Endpoint, prompt: Prompt, max_tokens: int,
                       due_at: float | None = None, session_id: str | None = None,
                       payload: bytes | None = None) -> Reply:
    """`stream_request` up to the end of the stream: its chunks read and stamped, nothing
    decoded yet (`Reply.finish` does that). The sample's `finished_at` is the stream's end."""
    # Encode (and sign) before the clock starts: that work is the client's, not the server's.
    if payload is None:
        payload = endpoint.payload(prompt, max_tokens)
    url, headers = endpoint.prepare(payload, session_id)
    sent = time.perf_counter()
    sample = RequestSample(prompt_index=prompt.index, ok=False, sent_at=sent,
                           queue_s=max(0.0, sent - due_at) if due_at is not None else 0.0, model=prompt.model)
    stream = StampedStream()
    stamps: dict[str, float] = {}
    try:
        async with session.post(url, data=payload, headers=headers, trace_request_ctx=stamps) as resp:
            # From here on, times count from the last byte written (see the module docstring).
            written = stamps.get("written", sent)
            if written > sent:
                sample.send_s = written - sent
                sample.queue_s += sample.send_s
                sample.sent_at = sent = written
            if resp.status != 200:
                sample.error_kind, sample.error = failures.http_error(resp.status, await resp.text())
                return Reply(_ended(sample))
            if endpoint.transport is None and resp.content_type == "application/json":
                # One JSON body: the server ignored `stream: true` (or is not an OpenAI server).
                sample.error_kind = failures.NOT_STREAM
                sample.error = f"it answered {resp.content_type}, not text/event-stream: {(await resp.text())[:200]}"
                return Reply(_ended(sample))
            # stamp every chunk as it comes; its events are decoded in Reply.finish
            await read_stamped(endpoint.chunks(resp), stream, decode=False)
    except Exception as exc:  # noqa: BLE001 - recorded, counted as failed, shown in the result
        sample.error_kind, sample.error = failures.describe_exception(exc)
        sample.chunk_times_s = _partial_times(sample, stream, sent)
        return Reply(_ended(sample))
    sample.finished_at = time.perf_counter()
    return Reply(sample, stream, sent)


def _take_events(sample: RequestSample, events: list[tuple[float, dict]], sent: float,
                 ) -> tuple[list[float], list[str]]:
    """Content times (relative to `sent`) and texts of the decoded events; the server's token
    counts go into `sample`. An error event raises, as the server ended the reply with it."""
    chunks: list[float] = []
    text: list[str] = []
    for now, event in events:
        if event.get("error"):
            raise RuntimeError(str(event["error"])[:300])
        piece = _content_of(event)
        if piece:
            chunks.append(now - sent)
            text.append(piece)
        usage = event.get("usage")
        if usage:
            sample.input_tokens = usage.get("prompt_tokens")
            sample.output_tokens = usage.get("completion_tokens")
            sample.usage_from_server = True
    return chunks, text


def _partial_times(sample: RequestSample, stream: StampedStream, sent: float) -> list[float]:
    """Content times of a failed request's events that arrived whole before it failed."""
    try:
        events = stream.parse()
    except ValueError:
        events = stream.events
    times = []
    for now, event in events:
        if event.get("error"):
            break
        if _content_of(event):
            times.append(now - sent)
    return times


def _ended(sample: RequestSample) -> RequestSample:
    """The sample, its `finished_at` stamped unless the stream's end already was."""
    sample.finished_at = sample.finished_at or time.perf_counter()
    return sample
