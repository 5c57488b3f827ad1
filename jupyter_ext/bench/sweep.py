"""Run a workload against an endpoint at several concurrency levels (or request rates).

Two modes, as in vLLM's and GuideLLM's harnesses:
  * fixed concurrency (closed loop): `c` workers each send the next prompt as soon as their
    previous request finished; client queue time is zero by construction;
  * request rate (open loop): arrivals are a Poisson process at `rate` req/s, optionally
    capped at `c` in flight; a request that waits for a free slot records that wait as its
    queue time, apart from TTFT.
Each level starts with warm-up requests that are not recorded. The result is saved after
every level, so an interrupt (Ctrl-C, or `stop_event` from a notebook) or a dying server
keeps every finished level.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from ..errors import BenchError
from .client import Endpoint, new_session, stream_request
from .metrics import RequestSample, compute_metrics
from .result import BenchResult, LevelResult
from .integrity import level_integrity, merge_repeats
from .spec_metrics import SpecCounters, scrape_metrics_text, spec_counters_in
from .workload import Workload

log = logging.getLogger(__name__)


@dataclass
class SweepSpec:
    """What to run at each level. `num_prompts=None` means 2 x concurrency, at least 4 and
    at least `at_least` (a dataset's rows, so each is sent once a level)."""

    concurrency: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    num_prompts: int | None = None
    warmup: int | None = None  # requests per level before measuring; None = one per slot
    request_rate: float | None = None
    seed: int = 0
    at_least: int = 0
    repeats: int = 1  # runs of every level, each on prompts of its own

    def __post_init__(self) -> None:
        if not self.concurrency:
            raise BenchError("give at least one concurrency level, e.g. --concurrency 1,2,4")
        bad = [c for c in self.concurrency if not isinstance(c, int) or c < 1]
        if bad:
            raise BenchError(f"concurrency levels must be whole numbers >= 1 (got {bad})")
        if self.num_prompts is not None and self.num_prompts < 1:
            raise BenchError(f"number of prompts per level must be >= 1 (got {self.num_prompts})")
        if self.request_rate is not None and self.request_rate <= 0:
            raise BenchError(f"request rate must be > 0 req/s (got {self.request_rate})")
        if self.warmup is not None and self.warmup < 0:
            raise BenchError(f"warm-up requests must be >= 0 (got {self.warmup})")
        if self.repeats < 1:
            raise BenchError(f"repeats must be >= 1 (got {self.repeats})")

    def requests_at(self, c: int) -> int:
        return self.num_prompts if self.num_prompts is not None else max(4, 2 * c, self.at_least)

    def warmup_at(self, c: int) -> int:
        return c if self.warmup is None else self.warmup

    def total_requests(self) -> int:
        return sum(self.requests_at(c) for c in self.concurrency) * self.repeats

    def block(self, c: int, repeat: int = 0) -> tuple[list[int], list[int]]:
        """(warm-up, measured) prompt indices of one level's repeat: every level, repeat and
        warm-up gets prompts nobody sent before, so the server's prefix cache cannot serve a
        measured prompt from an earlier one (bench/integrity.py)."""
        start = 0
        for level in self.concurrency:
            for r in range(self.repeats):
                size = self.warmup_at(level) + self.requests_at(level)
                if (level, r) == (c, repeat):
                    # measured first in index order, so a dataset's first level sends its first
                    # rows; the warm-ups take the indices after them
                    n = self.requests_at(level)
                    return list(range(start + n, start + size)), list(range(start, start + n))
                start += size
        raise KeyError(f"no level {c} repeat {repeat} in this sweep")

    def prompts_needed(self) -> int:
        """Distinct prompts the whole sweep sends (warm-ups included)."""
        return sum(self.warmup_at(c) + self.requests_at(c) for c in self.concurrency) * self.repeats


async def _closed_loop(session, endpoint: Endpoint, workload: Workload, indices: list[int], c: int,
                       max_tokens: int | None, on_done: Callable[[RequestSample], None] | None,
                       stop: threading.Event | None) -> list[RequestSample]:
    queue = list(reversed(indices))
    samples: list[RequestSample] = []

    async def worker() -> None:
        while queue and not (stop and stop.is_set()):
            prompt = workload.prompts[queue.pop() % len(workload)]
            s = await stream_request(session, endpoint, prompt, max_tokens or workload.tokens_for(prompt))
            samples.append(s)
            if on_done:
                on_done(s)

    await asyncio.gather(*(worker() for _ in range(min(c, len(indices)))))
    return samples


async def _open_loop(session, endpoint: Endpoint, workload: Workload, indices: list[int], c: int,
                     rate: float, seed: int, max_tokens: int | None,
                     on_done: Callable[[RequestSample], None] | None,
                     stop: threading.Event | None) -> list[RequestSample]:
    rng = random.Random(seed)
    slots = asyncio.Semaphore(c)
    start = time.perf_counter()
    due, tasks = 0.0, []

    async def one(i: int, due_at: float) -> RequestSample:
        await asyncio.sleep(max(0.0, due_at - time.perf_counter()))
        prompt = workload.prompts[i % len(workload)]
        async with slots:
            s = await stream_request(session, endpoint, prompt, max_tokens or workload.tokens_for(prompt), due_at)
        if on_done:
            on_done(s)
        return s

    for i in indices:
        due += rng.expovariate(rate)
        tasks.append(asyncio.ensure_future(one(i, start + due)))
    while not all(t.done() for t in tasks):
        if stop and stop.is_set():
            for t in tasks:
                t.cancel()
            break
        await asyncio.sleep(0.05)
    return [t.result() for t in tasks if t.done() and not t.cancelled()]


async def run_level(endpoint: Endpoint, workload: Workload, c: int, n: int, warmup: int,
                    request_rate: float | None = None, seed: int = 0,
                    on_done: Callable[[RequestSample], None] | None = None,
                    stop: threading.Event | None = None,
                    block: tuple[list[int], list[int]] | None = None) -> tuple[list[RequestSample], float]:
    """Warm up (short requests), then measure one level, each prompt asking for its own
    output length (a dataset row's) or the workload's; returns (samples, wall time of the
    measured part). `block` gives the (warm-up, measured) prompt indices (default: the first
    n, warm-ups among them)."""
    warm_idx, indices = block if block is not None else ([i % n for i in range(warmup)], list(range(n)))
    async with new_session(endpoint) as session:
        if warm_idx:
            await _closed_loop(session, endpoint, workload, warm_idx, c,
                               min(16, workload.max_tokens), None, stop)
        t0 = time.perf_counter()
        if request_rate is None:
            samples = await _closed_loop(session, endpoint, workload, indices, c, None, on_done, stop)
        else:
            samples = await _open_loop(session, endpoint, workload, indices, c, request_rate, seed,
                                       None, on_done, stop)
        return samples, time.perf_counter() - t0


def run_sweep(endpoint: Endpoint, workload: Workload, spec: SweepSpec, result: BenchResult,
              save_path: str | None = None, progress: bool = True,
              server_alive: Callable[[], bool] | None = None,
              on_level: Callable[[LevelResult], None] | None = None,
              stop: threading.Event | None = None,
              on_request: Callable[[RequestSample], None] | None = None) -> BenchResult:
    """Run every level of `spec`, appending to `result` and saving it after each level.

    Ctrl-C saves what finished, marks the result 'interrupted' and re-raises; a server that
    died marks it 'failed' and stops the sweep. Never call from a running event loop: use
    `run_sweep_in_thread` there (Jupyter)."""
    from tqdm.auto import tqdm

    bar = tqdm(total=spec.total_requests(), disable=not progress, unit="req", desc=result.name)
    try:
        for c in spec.concurrency:
            if stop and stop.is_set():
                result.status = "interrupted"
                break
            bar.set_postfix_str(f"concurrency {c}")
            def done(sample: RequestSample) -> None:
                bar.update(1)
                if on_request:
                    on_request(sample)

            level = merge_repeats([_measure_level(endpoint, workload, spec, c, done, stop, r)
                                   for r in range(spec.repeats) if not (r and stop and stop.is_set())])
            result.levels.append(level)
            if save_path:
                result.save(save_path)
            if on_level:
                on_level(level)
            m = level.metrics
            log.info("level concurrency %d: %d ok, %d failed, %.1f output tok/s%s", c, m.completed, m.failed,
                     m.output_throughput, "" if m.usage_from_server or not m.completed
                     else " (token counts from chunks: the server sent no usage)")
            if server_alive is not None and not server_alive():
                log.warning("the server died during the level at concurrency %d; stopping the sweep", c)
                result.status = "failed"
                result.notes.append(f"the server died during the level at concurrency {c}; later levels were not run")
                break
        else:
            result.status = "complete"
    except KeyboardInterrupt:
        result.status = "interrupted"
        result.notes.append("interrupted by the user; finished levels are kept")
        raise
    finally:
        bar.close()
        if result.status == "running":
            result.status = "interrupted"
        result.finished = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        if save_path:
            result.save(save_path)
    return result


def _measure_level(endpoint: Endpoint, workload: Workload, spec: SweepSpec, c: int,
                   on_done: Callable[[RequestSample], None], stop: threading.Event | None,
                   repeat: int = 0) -> LevelResult:
    text_before = scrape_metrics_text(endpoint.base_url)
    samples, wall = asyncio.run(run_level(endpoint, workload, c, spec.requests_at(c), spec.warmup_at(c),
                                          spec.request_rate, spec.seed, on_done, stop, spec.block(c, repeat)))
    text_after = scrape_metrics_text(endpoint.base_url)
    before, after = spec_counters_in(text_before), spec_counters_in(text_after)
    spec_stats = SpecCounters.delta(before, after).summary() if before and after else None
    return LevelResult(concurrency=c, metrics=compute_metrics(samples, wall), samples=samples,
                       request_rate=spec.request_rate, speculative=spec_stats,
                       integrity=level_integrity(text_before, text_after, samples, workload.max_tokens,
                                                 getattr(endpoint, "ignore_eos", False),
                                                 len(workload.prompts[0].system) if len(workload) else 0))


def run_sweep_in_thread(*args, **kwargs) -> BenchResult:
    """Run `run_sweep` on a worker thread and wait: safe where an event loop already runs
    (a Jupyter kernel), since asyncio.run() cannot be called from inside a running loop."""
    box: dict = {}

    def target() -> None:
        try:
            box["result"] = run_sweep(*args, **kwargs)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = e

    t = threading.Thread(target=target, name="jupyter-optimize-bench", daemon=True)
    t.start()
    try:
        t.join()
    except KeyboardInterrupt:
        stop = kwargs.get("stop")
        if stop is not None:
            stop.set()
        t.join()
        raise
    if "error" in box:
        raise box["error"]
    return box["result"]
