"""Calling a deployed LMI endpoint: plain and streamed chat requests, and parsing the replies.

The reply formats are the container's, not boto3's: a streamed reply arrives as PayloadPart
byte chunks that carry Server-Sent Events lines (`data: {...}`) split at arbitrary places,
read by bench.sse like every other stream; a failure the service reports mid-stream (boto3's
EventStreamError) becomes a DeployError. `endpoint_stream_fn` is the seam the benchmark
client uses to measure an endpoint with the same metrics as a local server.

Sessions (sticky routing): `open_session` and `close_session` are the session protocol of
bench.sagemaker_sessions (one implementation, shared with `bench --sessions`) made through
this module's AwsClients. The runtime API has no CloseSession operation (botocore 1.44's
sagemaker-runtime has InvokeEndpoint, InvokeEndpointAsync and InvokeEndpointWithResponseStream
only): the container opens and closes sessions. A streamed request can only use an open
session, so `invoke(..., stream=True, session_id=NEW_SESSION)` opens one first.
"""

from __future__ import annotations

import html
import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from botocore.exceptions import EventStreamError

from ..bench import sagemaker_sessions as sessions
from ..bench.sagemaker_sessions import DEFAULT_CLOSE_BODY, DEFAULT_OPEN_BODY, NEW_SESSION  # noqa: F401 - re-exported
from ..bench.sse import iter_sse
from ..errors import DeployError
from .aws import as_clients


def chat_body(prompt: str, max_tokens: int, stream: bool, **extra: Any) -> dict[str, Any]:
    """An OpenAI chat-completions body, the schema LMI's vLLM handler accepts on /invocations."""
    body: dict[str, Any] = {"messages": [{"role": "user", "content": prompt}],
                            "max_tokens": max_tokens, "stream": stream}
    body.update(extra)
    return body


def text_of(payload: Any) -> str:
    """The generated text in one reply or one streamed chunk, whichever schema it uses."""
    if isinstance(payload, str):
        return payload
    if not isinstance(payload, dict):
        return ""
    choices = payload.get("choices") or []
    if choices:
        c = choices[0]
        part = c.get("delta") or c.get("message") or {}
        return part.get("content") or c.get("text") or ""
    if isinstance(payload.get("token"), dict):  # LMI's own streaming schema
        return payload["token"].get("text") or ""
    return payload.get("generated_text") or ""


def iter_stream_events(events: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """JSON events of an InvokeEndpointWithResponseStream body (its EventStream of PayloadParts),
    read by the one SSE reader (bench.sse). A failure the service sends mid-stream, or a line
    that is not JSON, is a DeployError."""
    try:
        yield from iter_sse(_payload_parts(events))
    except json.JSONDecodeError as err:
        raise DeployError(f"the endpoint streamed a line that is not JSON: {err.doc[:200]!r}") from err


def _payload_parts(events: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    """The bytes of each PayloadPart. The service sends ModelStreamError and InternalStreamFailure
    as exception messages, which botocore raises as EventStreamError while the stream is read
    (not as events): its Code is the exception type, its Message the payload's Message
    (botocore 1.44 keeps no ErrorCode)."""
    try:
        for event in events:
            if "PayloadPart" in event:
                yield event["PayloadPart"].get("Bytes", b"")
    except EventStreamError as err:
        error = err.response.get("Error", {})
        raise DeployError(f"the endpoint's stream failed ({error.get('Code') or 'unknown error'}): "
                          f"{error.get('Message') or err}") from err


def iter_stream_text(events: Iterable[dict[str, Any]]) -> Iterator[str]:
    """Only the generated text of a stream, chunk by chunk (empty chunks skipped)."""
    for event in iter_stream_events(events):
        text = text_of(event)
        if text:
            yield text


@dataclass
class InvocationResult:
    """One non-streamed reply: the text, the server's token usage if it sent one, the raw body,
    and the session it ran in (None without one)."""

    endpoint_name: str
    text: str
    latency_s: float
    usage: dict[str, Any] | None
    raw: Any
    session_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __str__(self) -> str:
        return self.text + (f"\n(session {self.session_id})" if self.session_id else "")

    def _repr_html_(self) -> str:
        meta = f"{self.latency_s:.2f} s" + (f", usage {self.usage}" if self.usage else "")
        meta += f", session {self.session_id}" if self.session_id else ""
        return f"<pre>{html.escape(self.text)}</pre><small>{html.escape(self.endpoint_name)}: {html.escape(meta)}</small>"


def invoke(endpoint_name: str, prompt: str, max_tokens: int = 256, stream: bool = False,
           session: Any = None, region: str | None = None, endpoint_url: str | None = None,
           inference_component: str | None = None, session_id: str | None = None,
           **body: Any) -> "InvocationResult | Iterator[str]":
    """Send one chat prompt. Without stream: InvokeEndpoint, returns an InvocationResult.
    With stream: InvokeEndpointWithResponseStream, returns an iterator of text chunks.
    `session_id`: NEW_SESSION opens a session first (`open_session`; the result's session_id
    is the one the container made: pass it to the next turns), an id continues that session."""
    if session_id == NEW_SESSION:
        session_id = open_session(endpoint_name, session, region, endpoint_url, inference_component)
    if stream:
        send = endpoint_stream_fn(endpoint_name, session, region, endpoint_url, inference_component, session_id)
        return (text for text in (text_of(e) for e in send(chat_body(prompt, max_tokens, True, **body))) if text)
    clients = as_clients(session, region, endpoint_url)
    start = time.perf_counter()
    resp = clients.call("sagemaker-runtime", "InvokeEndpoint", EndpointName=endpoint_name,
                        Body=json.dumps(chat_body(prompt, max_tokens, False, **body)),
                        ContentType="application/json", Accept="application/json",
                        **_component(inference_component), **_session(session_id))
    raw_bytes = resp["Body"].read()
    latency = time.perf_counter() - start
    try:
        raw: Any = json.loads(raw_bytes)
    except ValueError:
        raw = raw_bytes.decode("utf-8", errors="replace")
    usage = raw.get("usage") if isinstance(raw, dict) else None
    return InvocationResult(endpoint_name, text_of(raw), latency, usage, raw, session_id)


def _runtime_call(session: Any, region: str | None, endpoint_url: str | None) -> Callable[..., dict]:
    """The session protocol's `call`, through AwsClients (permission errors named)."""
    clients = as_clients(session, region, endpoint_url)
    return lambda operation, **params: clients.call("sagemaker-runtime", operation, **params)


def open_session(endpoint_name: str, session: Any = None, region: str | None = None,
                 endpoint_url: str | None = None, inference_component: str | None = None,
                 open_body: dict[str, Any] | None = None) -> str:
    """Open a sticky session (bench.sagemaker_sessions.open_session): InvokeEndpoint with
    SessionId=NEW_SESSION and the container's open request (`open_body`, default
    DEFAULT_OPEN_BODY). Returns the id from NewSessionId; a reply without one is a SessionError
    (a DeployError)."""
    return sessions.open_session(_runtime_call(session, region, endpoint_url), endpoint_name, inference_component,
                                 open_body)


def close_session(endpoint_name: str, session_id: str, session: Any = None, region: str | None = None,
                  endpoint_url: str | None = None, inference_component: str | None = None,
                  close_body: dict[str, Any] | None = None) -> str:
    """Close a session: an InvokeEndpoint carrying its id and the container's close request
    (`close_body`, default DEFAULT_CLOSE_BODY). Returns the closed id from ClosedSessionId; a
    reply without it is a SessionError (a DeployError)."""
    return sessions.close_session(_runtime_call(session, region, endpoint_url), endpoint_name, session_id,
                                  inference_component, close_body)


def endpoint_stream_fn(endpoint_name: str, session: Any = None, region: str | None = None,
                       endpoint_url: str | None = None, inference_component: str | None = None,
                       session_id: str | None = None) -> Callable[[dict[str, Any]], Iterator[dict[str, Any]]]:
    """A function for benchmark clients: `send(body)` posts an OpenAI-style chat body with
    InvokeEndpointWithResponseStream and yields each streamed JSON chunk (its `choices` delta,
    and `usage` when the server sends it) as soon as it arrives.

    `send` makes the request at once (so errors surface there) and returns a blocking
    iterator: boto3 is synchronous, so an async benchmark runs each `send` and its iteration
    on a worker thread and timestamps chunks as it receives them. One client is shared by all
    threads (boto3 allows it); its pool holds 64 connections (aws.DEFAULT_POOL), so more concurrent
    requests than that wait for a connection: pass AwsClients(max_pool_connections=N) beyond it.
    """
    clients = as_clients(session, region, endpoint_url)
    clients.get("sagemaker-runtime")  # create it now, not concurrently in worker threads

    def send(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        resp = clients.call("sagemaker-runtime", "InvokeEndpointWithResponseStream",
                            EndpointName=endpoint_name, Body=json.dumps({**body, "stream": True}),
                            ContentType="application/json", **_component(inference_component),
                            **_session(session_id))
        return iter_stream_events(resp["Body"])

    return send


def _component(name: str | None) -> dict[str, str]:
    return {"InferenceComponentName": name} if name else {}


def _session(session_id: str | None) -> dict[str, str]:
    return {"SessionId": session_id} if session_id else {}
