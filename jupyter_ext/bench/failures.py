"""What went wrong with a request, and when that ends a benchmark.

Every failed request is recorded with a message and a `kind`; the kinds that no amount of
retrying fixes - nothing listening, an HTTP 4xx (a wrong model name, a rejected field), a
reply that is not a stream - end the run at its first request if no request has succeeded
yet, with a named error that carries the URL and the server's own words. A level where more
than `max_failed_share` of the requests failed is marked failed with its most common error.
"""

from __future__ import annotations

import errno
import json
from collections import Counter
from typing import Sequence

from ..errors import BenchError, EndpointRejectedError, EndpointUnreachableError, NotStreamingError, SessionError
from .metrics import RequestSample

CONNECT, HTTP_4XX, HTTP_5XX, NOT_STREAM, TIMEOUT, DISCONNECTED, STREAM, EMPTY, NOT_SENT, SESSION = (
    "connect", "http_4xx", "http_5xx", "not_stream", "timeout", "disconnected", "stream", "empty", "not_sent",
    "session")
# fail the run when nothing has succeeded yet (SESSION: the container opens no sticky sessions)
FATAL = frozenset({CONNECT, HTTP_4XX, NOT_STREAM, SESSION})


def server_message(body: str) -> str:
    """The server's own words from an error body: OpenAI's/vLLM's `{"error": {"message"}}`,
    FastAPI's `{"detail": ...}`, `{"message": ...}`, else the text itself (shortened)."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.strip()[:300]
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:300]
        for key in ("error", "detail", "message", "Message"):
            if data.get(key):
                return str(data[key])[:300]
    return body.strip()[:300]


def describe_exception(exc: BaseException) -> tuple[str, str]:
    """(kind, message) of an exception raised while sending or reading a request."""
    import asyncio

    import aiohttp

    if isinstance(exc, aiohttp.ClientConnectorError):
        os_err = exc.os_error
        if getattr(os_err, "errno", None) == errno.ECONNREFUSED:
            why = "connection refused"
        else:
            why = getattr(os_err, "strerror", None) or str(os_err)
        return CONNECT, f"cannot connect to {exc.host}:{exc.port} ({why})"
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return TIMEOUT, f"timed out: {type(exc).__name__} {exc}".rstrip()
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, ConnectionResetError)):
        return DISCONNECTED, f"the server closed the connection mid-reply ({type(exc).__name__}: {exc})"
    return STREAM, f"{type(exc).__name__}: {exc}"[:300]


def http_error(status: int, body: str) -> tuple[str, str]:
    """(kind, message) of a reply with a status other than 200."""
    return (HTTP_4XX if 400 <= status < 500 else HTTP_5XX), f"HTTP {status}: {server_message(body)}"


def fatal_error(sample: RequestSample, url: str, model: str | None = None) -> BenchError | None:
    """The named error a failed first request means, or None when it may be transient."""
    if sample.ok or sample.error_kind not in FATAL:
        return None
    if sample.error_kind == CONNECT:
        return EndpointUnreachableError(f"{sample.error} for {url}: is the server running, and at this address?")
    if sample.error_kind == SESSION:
        return SessionError(f"{url}: {sample.error}")
    if sample.error_kind == NOT_STREAM:
        return NotStreamingError(f"{url} did not stream its reply: {sample.error}. The benchmark needs "
                                 f"server-sent events (`stream: true`); check the URL points at an "
                                 f"OpenAI-compatible streaming server")
    hint = ""
    if model is not None and ("model" in (sample.error or "").lower() or "HTTP 404" in (sample.error or "")):
        hint = f" (the benchmark asked for model {model!r}; check --model, or leave it out to use /v1/models)"
    return EndpointRejectedError(f"{url} rejected the benchmark's request: {sample.error}{hint}")


def level_failure(samples: Sequence[RequestSample], max_failed_share: float) -> dict | None:
    """{'share', 'failed', 'requests', 'error', 'count', 'kind'} when more than
    `max_failed_share` of the level's requests failed (the most common error and how many
    requests it failed), else None."""
    failed = [s for s in samples if not s.ok]
    if not samples or len(failed) / len(samples) <= max_failed_share:
        return None
    (error, kind), count = Counter((s.error or "unknown error", s.error_kind) for s in failed).most_common(1)[0]
    return {"share": len(failed) / len(samples), "failed": len(failed), "requests": len(samples),
            "error": error, "count": count, "kind": kind}


def ends_sweep(failure: dict | None) -> bool:
    """A failed level whose main error is the server gone or refusing: later levels would
    only repeat it."""
    return failure is not None and failure.get("kind") in FATAL | {DISCONNECTED}
