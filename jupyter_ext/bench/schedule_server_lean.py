"""The schedule server's lean twin: the same token schedule, at hundreds of streams on one core.

`schedule_server` (aiohttp) costs about 150 us of Python per request it reads and tens per
token it writes; with 256 requests sent at once, the last of them is read some 40 ms late,
and that lateness lands in the measured TTFT of the harness under test. This one is a bare
asyncio protocol: a request is stamped (T0) in the callback that delivers its last byte, its
tokens are timer callbacks that write a pre-framed HTTP chunk to the socket, each at the
absolute deadline T0 + ttft + i * itl, each scheduling the next (50 timers made at once per
request made reading a burst of 256 requests cost 25 ms). Every token's text is ` i:T0:TW` (TW: the time it was
written, on the machine-wide monotonic clock), as `schedule_server --stamp` writes it, so the
client's error can be split into the server's part and its own. It serves what
benchmarks/harness_fidelity.py needs: POST /v1/chat/completions and /v1/completions
(streamed), GET /v1/models, /health and /lateness; no failure injection (use
`schedule_server` for that).

    python -m jupyter_ext.bench.schedule_server_lean --port 8123 --ttft-ms 100 --itl-ms 20
"""

from __future__ import annotations

import asyncio
import json
import re
import time

_MAX_TOKENS = re.compile(rb'"max_(?:completion_)?tokens"\s*:\s*(\d+)')  # vLLM's client sends the latter
_LENGTH = re.compile(rb"\r\ncontent-length\s*:\s*(\d+)", re.I)


class Schedule:
    """The schedule and what every connection shares: lateness of each token written."""

    def __init__(self, ttft_s: float, itl_s: float, model: str = "schedule") -> None:
        self.ttft_s, self.itl_s, self.model = ttft_s, itl_s, model
        self.late_s: list[float] = []
        self.received = 0


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def _reply(status: str, body: bytes, ctype: bytes = b"application/json") -> bytes:
    return (b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s"
            % (status.encode(), ctype, len(body), body))


class ScheduleProtocol(asyncio.BufferedProtocol):
    """One connection: HTTP/1.1 keep-alive, one request at a time (as a benchmark client sends).

    A buffered protocol: asyncio's plain one reads with recv(256 KiB), and CPython maps and
    unmaps a fresh 256 KiB block for every read (some 90 us of a burst's each request)."""

    def __init__(self, schedule: Schedule) -> None:
        self.s = schedule
        self.buf = b""
        self._in = memoryview(bytearray(1 << 16))
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.transport = None

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._in

    def buffer_updated(self, nbytes: int) -> None:
        now = time.perf_counter()  # first: the request's read time is the schedule's origin
        self.buf += self._in[:nbytes]
        while True:
            head_end = self.buf.find(b"\r\n\r\n")
            if head_end < 0:
                return
            m = _LENGTH.search(self.buf, 0, head_end + 2)
            end = head_end + 4 + (int(m.group(1)) if m else 0)
            if len(self.buf) < end:
                return
            head, body, self.buf = self.buf[:head_end], self.buf[head_end + 4:end], self.buf[end:]
            self._handle(now, head, body)

    def _handle(self, t0: float, head: bytes, body: bytes) -> None:
        method, _, rest = head.partition(b" ")
        path = rest.partition(b" ")[0]
        route, _, query = path.partition(b"?")
        if method == b"POST" and route in (b"/v1/chat/completions", b"/v1/completions"):
            self._stream(t0, route.endswith(b"chat/completions"), body)
        elif route == b"/v1/models":
            self._send(_reply("200 OK", json.dumps({"object": "list", "data": [
                {"id": self.s.model, "object": "model"}]}).encode()), head)
        elif route == b"/health":
            self._send(_reply("200 OK", b"ok", b"text/plain"), head)
        elif route == b"/lateness":
            self._send(_reply("200 OK", json.dumps(lateness(self.s, b"reset" in query)).encode()), head)
        elif route == b"/stats":
            self._send(_reply("200 OK", json.dumps({"received": self.s.received}).encode()), head)
        else:
            self._send(_reply("404 Not Found", b'{"error": {"message": "no such route"}}'), head)

    def _send(self, data: bytes, head: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)
            if b"connection: close" in head.lower():
                self.transport.close()

    def _stream(self, t0: float, chat: bool, body: bytes) -> None:
        s = self.s
        s.received += 1
        m = _MAX_TOKENS.search(body)
        max_tokens = int(m.group(1)) if m else 16
        self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n")
        key = b'"delta": {"content": "' if chat else b'"text": "'
        start = b'data: {"object": "chunk", "model": "%s", "choices": [{"index": 0, %s' % (s.model.encode(), key)
        tail = b'"}}]}\n\n' if chat else b'"}]}\n\n'
        stamp0 = b" %%d:%.7f:" % t0
        loop = asyncio.get_running_loop()
        # loop.time() is time.monotonic(): the same CLOCK_MONOTONIC as time.perf_counter() on Linux
        offset = loop.time() - time.perf_counter()

        def token(i: int) -> None:
            transport = self.transport
            if transport is None:
                return
            now = time.perf_counter()
            s.late_s.append(now - (t0 + s.ttft_s + i * s.itl_s))
            transport.write(_chunk(start + (stamp0 % i) + b"%.7f" % now + tail))
            if i + 1 < max_tokens:  # one timer at a time: reading a request stays cheap
                self.timer = loop.call_at(t0 + s.ttft_s + (i + 1) * s.itl_s + offset, token, i + 1)
                return
            usage = {"prompt_tokens": max(1, len(body) // 4), "completion_tokens": max_tokens,
                     "total_tokens": max(1, len(body) // 4) + max_tokens}
            transport.write(_chunk(b"data: " + json.dumps({"choices": [], "usage": usage}).encode() + b"\n\n")
                            + _chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")

        self.timer = loop.call_at(t0 + s.ttft_s + offset, token, 0)


def lateness(s: Schedule, reset: bool) -> dict:
    """How late the server itself wrote tokens (p50, p99, max, in seconds)."""
    late = sorted(s.late_s)
    if reset:
        s.late_s = []
    p = (lambda q: late[min(len(late) - 1, int(q * len(late)))] if late else 0.0)
    return {"count": len(late), "p50_s": p(0.5), "p99_s": p(0.99), "max_s": late[-1] if late else 0}


async def serve(host: str, port: int, schedule: Schedule) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: ScheduleProtocol(schedule), host, port, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    from .eventloop import precise_loop
    from .schedule_server import schedule_arguments

    ap = schedule_arguments(__doc__)
    ap.add_argument("--spin-us", type=float, default=0.0,
                    help="poll instead of sleeping this long before a deadline (a core of its own only)")
    a = ap.parse_args()
    loop = precise_loop(spin_s=a.spin_us / 1e6)
    try:
        loop.run_until_complete(serve(a.host, a.port, Schedule(a.ttft_ms / 1e3, a.itl_ms / 1e3)))
    except KeyboardInterrupt:
        pass
    finally:
        loop.close()


if __name__ == "__main__":
    main()
