"""Benchmark results built from a known (TTFT, TPOT) per level, with per-request samples,
for tests of what reads results (tune, reports) without a server."""

from __future__ import annotations

from jupyter_ext.bench.metrics import RequestSample, compute_metrics
from jupyter_ext.bench.result import BenchResult, LevelResult


def level(concurrency: int, ttft_s: float, tpot_s: float, max_tokens: int = 20, requests: int = 8,
          tokens_per_chunk: int = 1) -> LevelResult:
    """A closed-loop level: every request streams its first token at `ttft_s`, then the
    other max_tokens - 1 at `tpot_s` each, `tokens_per_chunk` to a chunk (speculation)."""
    samples = []
    steps = -(-(max_tokens - 1) // tokens_per_chunk)
    for i in range(requests):
        chunks = [ttft_s + k * tpot_s * tokens_per_chunk for k in range(steps + 1)]
        samples.append(RequestSample(i, True, ttft_s=ttft_s, e2el_s=chunks[-1], chunk_times_s=chunks,
                                     input_tokens=100, output_tokens=max_tokens, usage_from_server=True))
    waves = -(-requests // concurrency)
    duration = waves * samples[0].e2el_s
    return LevelResult(concurrency, compute_metrics(samples, duration), samples)


def result(name: str, points, instance: str = "local", slo: str | None = None, max_tokens: int = 20,
           recipe: dict | None = None, tokens_per_chunk: int = 1) -> BenchResult:
    """points: [(concurrency, ttft_s, tpot_s), ...]."""
    r = BenchResult(name=name, recipe=recipe or {"name": name}, endpoint={"model": "m", "base_url": "http://x"},
                    workload={"num_prompts": 8, "max_tokens": max_tokens, "source": "synthetic"},
                    instance=instance, slo=slo, status="complete")
    r.levels = [level(c, a, b, max_tokens, tokens_per_chunk=tokens_per_chunk) for c, a, b in points]
    return r
