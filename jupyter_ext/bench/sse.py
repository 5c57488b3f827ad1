"""The one reader of streamed replies: Server-Sent Events (`text/event-stream`) to JSON events.

Every streamed reply of the toolkit is read here, whether its bytes come from an HTTP body
(a local vLLM server) or from the PayloadParts of a SageMaker event stream. Bytes arrive cut
at arbitrary places, inside a line or inside a UTF-8 character, so they are kept until a
newline arrives and a whole line is decoded. A line is `data: {...}` or, as LMI's own
jsonlines schema sends, a bare JSON line; `data: [DONE]` ends the stream; blank lines, SSE
comments (`: ...`) and the other SSE fields (`event:`, `id:`, `retry:`) carry no data.

Each `data:` line is one JSON event: the OpenAI and LMI servers never split an event over
several `data:` lines, so lines are not joined as the SSE specification would. A line that is
not JSON raises `json.JSONDecodeError` (its `.doc` is the line): the caller names the error.

`read_stamped` is the benchmark client's reader: it only stamps each chunk with the clock as
it arrives and keeps it, stops at the `data: [DONE]` line (found in the bytes, without
decoding), and decodes events after the stream ended, each event timed by the chunk that
completed its line. The work per chunk while
hundreds of streams are open is then one clock read and two appends, so a chunk that arrives
while the client handles another waits microseconds, not a JSON decode per earlier chunk.
The decodes themselves take turns (`decode_turn`): one reply per pass of the event loop, with
the loop polling its sockets in between. Without that, when many streams end in the same
instant (closed-loop levels run in lock-step waves) their decodes, ~160 us each, ran back to
back and held up every other stream's next chunk: 256 at once stalled reads by ~40 ms, the
ITL p99 the fidelity benchmark measured.
"""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from typing import Any, AsyncIterable, AsyncIterator, Iterable, Iterator

DONE = "[DONE]"
_NO_DATA_FIELDS = ("event:", "id:", "retry:")


def data_of(line: str) -> str | None:
    """The data a line carries, or None for a blank line, a comment or another SSE field."""
    line = line.strip()
    if line.startswith("data:"):
        line = line[5:].strip()
    elif line.startswith(":") or line.startswith(_NO_DATA_FIELDS):
        return None
    return line or None


class SSEDecoder:
    """Feed byte chunks in order; get the JSON events of the lines they complete.

    After `[DONE]`, `done` is True and anything later is ignored. A JSON value that is not an
    object comes back as `{"value": v}`, so every event is a dict.
    """

    def __init__(self) -> None:
        self._buf = b""
        self.done = False

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        """The events of the whole lines now buffered; the trailing partial line is kept."""
        if self.done:
            return []
        *lines, self._buf = (self._buf + chunk).split(b"\n")
        return self._events(lines)

    def close(self) -> list[dict[str, Any]]:
        """The event of a last line that had no newline (a stream may end without one)."""
        rest, self._buf = self._buf, b""
        return [] if self.done else self._events([rest])

    def _events(self, lines: list[bytes]) -> list[dict[str, Any]]:
        events = []
        for raw in lines:
            data = data_of(raw.decode("utf-8"))
            if data is None:
                continue
            if data == DONE:
                self.done = True
                break
            event = json.loads(data)
            events.append(event if isinstance(event, dict) else {"value": event})
        return events


def iter_sse(chunks: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """JSON events of a byte stream, each yielded as soon as its line is complete.

    The stream is read to its end even after `[DONE]`: a blocking HTTP body (urllib3's,
    under boto3) goes back to the connection pool only once it has been read through."""
    decoder = SSEDecoder()
    for chunk in chunks:
        yield from decoder.feed(chunk)
    yield from decoder.close()


async def aiter_sse(chunks: AsyncIterable[bytes]) -> AsyncIterator[dict[str, Any]]:
    """`iter_sse` for an async byte stream (an aiohttp body, a decoded event stream). It stops
    at `[DONE]`: leaving aiohttp's `async with` releases the connection, and a server that
    keeps the stream open after it would otherwise hold a request until its read timeout."""
    decoder = SSEDecoder()
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
        if decoder.done:
            return
    for event in decoder.close():
        yield event


class StampedStream:
    """Chunks as they arrived, with their arrival times; `events` are decoded on `parse`.

    Kept apart from the read loop so that what arrived before a failure (a dropped
    connection) is still there to decode."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.times: list[float] = []
        self.events: list[tuple[float, dict[str, Any]]] = []  # (arrival of its last chunk, event)
        self._decoder = SSEDecoder()
        self._parsed = 0

    @property
    def done(self) -> bool:
        return self._decoder.done

    def parse(self, final: bool = False) -> list[tuple[float, dict[str, Any]]]:
        """Decode the chunks not decoded yet (up to `[DONE]`); `final` also decodes a last
        line without a newline. Raises json.JSONDecodeError for a line that is not JSON."""
        decoder = self._decoder
        while self._parsed < len(self.chunks) and not decoder.done:
            t, chunk = self.times[self._parsed], self.chunks[self._parsed]
            self._parsed += 1
            self.events.extend((t, event) for event in decoder.feed(chunk))
        if final and not decoder.done:
            t = self.times[-1] if self.times else time.perf_counter()
            self.events.extend((t, event) for event in decoder.close())
        return self.events


_DONE_BYTES = DONE.encode()
_TURNS: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]" = weakref.WeakKeyDictionary()


class decode_turn:
    """`async with decode_turn():` waits for this event loop's decode turn, then lets the loop
    poll its sockets once before the body runs: one reply's decode per pass of the loop."""

    async def __aenter__(self) -> "decode_turn":
        loop = asyncio.get_running_loop()
        self._lock = _TURNS.get(loop)
        if self._lock is None:
            self._lock = _TURNS[loop] = asyncio.Lock()
        await self._lock.acquire()
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._lock.release()


_DONE_LINES = (b"\ndata: [DONE]", b"\ndata:[DONE]", b"\rdata: [DONE]", b"\rdata:[DONE]")


def _ends_stream(tail: bytes, chunk: bytes) -> bool:
    """Whether a `data: [DONE]` line starts in `chunk` (`tail`: the bytes before it). Exact
    without decoding: JSON strings hold no raw line breaks, so a reply's text that contains
    `data: [DONE]` never has it at the start of a line."""
    if _DONE_BYTES not in chunk and _DONE_BYTES not in tail[-6:] + chunk[:6]:
        return False
    window = tail + chunk
    return any(line in window for line in _DONE_LINES)


async def read_stamped(chunks: AsyncIterable[bytes], into: StampedStream, decode: bool = True) -> StampedStream:
    """Read a byte stream into `into`, stamping each chunk with time.perf_counter() the moment
    it is read, until a `data: [DONE]` line (as `aiter_sse`) or the stream's end. With
    `decode` its events are decoded then, in a `decode_turn`; without, the caller decodes
    later with `into.parse(final=True)` (the client does, after its next request is sent)."""
    stamp, times, kept = time.perf_counter, into.times, into.chunks
    tail = b"\n"  # the stream's start is a line's start
    async for chunk in chunks:
        times.append(stamp())
        kept.append(chunk)
        if _ends_stream(tail, chunk):
            break
        tail = (tail + chunk)[-16:] if len(chunk) < 16 else chunk[-16:]
    if decode:
        async with decode_turn():
            into.parse(final=True)
    return into


__all__ = ["DONE", "SSEDecoder", "StampedStream", "aiter_sse", "data_of", "decode_turn", "iter_sse", "read_stamped"]
