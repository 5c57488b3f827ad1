"""Per-request samples and the metrics computed from them, with vLLM's definitions.

For request i (times relative to the moment the request was sent):
    TTFT_i  = first streamed event carrying content - send time
    ITL     = every gap between consecutive content events (per chunk, not per token:
              under speculative decoding one chunk may carry several tokens)
    E2EL_i  = last content event - send time
    TPOT_i  = (E2EL_i - TTFT_i) / (output_tokens_i - 1)        for output_tokens_i > 1
    output throughput     = sum(output tokens) / wall time of the whole level
    total token throughput = sum(input + output tokens) / wall time
    request throughput    = completed requests / wall time
    queue time_i          = send time - the time the request was due (client-side waiting,
                            reported apart, never inside TTFT)
Token counts come from the server's `usage` (stream_options.include_usage); a chunk count
is only a fallback and is flagged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence

import numpy as np


@dataclass
class RequestSample:
    """Timings of one streamed request, in seconds (monotonic clock, relative to send)."""

    prompt_index: int
    ok: bool
    sent_at: float = 0.0  # monotonic time the request's last byte was written (absolute)
    queue_s: float = 0.0  # client-side wait before that: a free slot (rate mode), connect, event loop
    send_s: float = 0.0  # the part of queue_s between issuing the request and its last byte written
    ttft_s: float | None = None
    e2el_s: float | None = None
    chunk_times_s: list[float] = field(default_factory=list)  # content events, relative to send
    input_tokens: int | None = None
    output_tokens: int | None = None
    usage_from_server: bool = False
    error: str | None = None
    text: str = ""
    error_kind: str | None = None  # bench.failures: connect, http_4xx, http_5xx, not_stream, timeout, ...
    finished_at: float = 0.0  # monotonic time the request ended (ok or not), absolute
    cooldown: bool = False  # one of the level's last completions, kept but left out of its metrics
    turn: int = 0  # multi-turn workloads: the turn of its conversation (0 = the first)
    model: str | None = None  # the adapter the request asked for (None: the endpoint's model)

    @property
    def itls_s(self) -> list[float]:
        t = self.chunk_times_s
        return [b - a for a, b in zip(t, t[1:])]

    @property
    def tpot_s(self) -> float | None:
        if not self.ok or self.output_tokens is None or self.output_tokens <= 1:
            return None
        return (self.e2el_s - self.ttft_s) / (self.output_tokens - 1)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RequestSample":
        return cls(**d)


@dataclass
class Percentiles:
    """Summary of one latency distribution, in seconds. Empty input gives NaN fields."""

    mean: float
    p50: float
    p90: float
    p99: float
    min: float
    max: float
    count: int

    @classmethod
    def of(cls, values: Iterable[float]) -> "Percentiles":
        v = sorted(x for x in values if x is not None)
        if not v:
            nan = float("nan")
            return cls(nan, nan, nan, nan, nan, nan, 0)
        # numpy's "linear" method: position (n - 1) * q / 100 between the two neighbours,
        # the same definition vLLM's benchmark reports use.
        p50, p90, p99 = (float(x) for x in np.percentile(v, [50, 90, 99], method="linear"))
        return cls(sum(v) / len(v), p50, p90, p99, v[0], v[-1], len(v))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class LevelMetrics:
    """Metrics of one level (one concurrency or request rate) of a sweep."""

    completed: int
    failed: int
    duration_s: float
    input_tokens: int
    output_tokens: int
    request_throughput: float
    output_throughput: float
    total_token_throughput: float
    ttft: Percentiles
    itl: Percentiles
    tpot: Percentiles
    e2el: Percentiles
    queue: Percentiles
    mean_input_tokens: float
    mean_output_tokens: float
    usage_from_server: bool

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LevelMetrics":
        d = dict(d)
        for k in ("ttft", "itl", "tpot", "e2el", "queue"):
            d[k] = Percentiles(**d[k])
        return cls(**d)


def compute_metrics(samples: Sequence[RequestSample], duration_s: float) -> LevelMetrics:
    """Aggregate per-request samples of one level; `duration_s` is the level's wall time."""
    ok = [s for s in samples if s.ok]
    in_tok = sum(s.input_tokens or 0 for s in ok)
    out_tok = sum(s.output_tokens or 0 for s in ok)
    dur = duration_s if duration_s > 0 else float("nan")
    itls = [g for s in ok for g in s.itls_s]
    return LevelMetrics(
        completed=len(ok),
        failed=len(samples) - len(ok),
        duration_s=duration_s,
        input_tokens=in_tok,
        output_tokens=out_tok,
        request_throughput=len(ok) / dur,
        output_throughput=out_tok / dur,
        total_token_throughput=(in_tok + out_tok) / dur,
        ttft=Percentiles.of(s.ttft_s for s in ok),
        itl=Percentiles.of(itls),
        tpot=Percentiles.of(s.tpot_s for s in ok),
        e2el=Percentiles.of(s.e2el_s for s in ok),
        queue=Percentiles.of(s.queue_s for s in samples),
        mean_input_tokens=in_tok / len(ok) if ok else float("nan"),
        mean_output_tokens=out_tok / len(ok) if ok else float("nan"),
        usage_from_server=bool(ok) and all(s.usage_from_server for s in ok),
    )


def per_model(samples: Sequence[RequestSample], duration_s: float) -> dict[str, dict]:
    """Latency per requested model (LoRA adapter) of one level: requests, failures, TTFT,
    TPOT and E2EL p50/p99 in seconds, and output tokens per second of the level's wall time
    (so the adapters' figures add up to the level's). Empty when no request named one."""
    groups: dict[str, list[RequestSample]] = {}
    for s in samples:
        if s.model is not None:
            groups.setdefault(s.model, []).append(s)
    out = {}
    for name, group in sorted(groups.items()):
        m = compute_metrics(group, duration_s)
        out[name] = {"requests": len(group), "failed": m.failed, "ttft_p50_s": m.ttft.p50, "ttft_p99_s": m.ttft.p99,
                     "tpot_p50_s": m.tpot.p50, "e2el_p50_s": m.e2el.p50, "e2el_p99_s": m.e2el.p99,
                     "output_throughput": m.output_throughput}
    return out
