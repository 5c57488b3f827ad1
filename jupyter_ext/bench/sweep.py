"""Run a workload against an endpoint level by level: concurrencies, request rates, or a
sweep that finds the saturation throughput and then samples rates below it.

Levels, as in vLLM's and GuideLLM's harnesses (how requests are sent: `loops.py`):
  * concurrency levels (closed loop), one per `concurrency` value;
  * one request rate with several concurrencies: the levels are caps on in-flight requests;
  * several request rates: one level each, the highest concurrency capping what is in flight;
  * `sweep_rates=N`: a closed-loop level at the highest concurrency measures the saturation
    request throughput R (recorded in the result), then N rate levels at R/N, 2R/N, ..., R.
Each level starts with warm-up requests and may end with `cooldown` completions that are
both left out of its metrics and counted in it. Every level, repeat (`repeats`, merged into
one level with 95% intervals) and warm-up sends prompts no earlier one sent (`block`), and
the server's /metrics before and after give its prefix-cache hit rate (integrity.py). A level where more than `max_failed_share`
of its requests failed is marked failed with its most common error; one failed because the
server is gone or refuses ends the sweep. A first request that fails in a way no retry fixes
(nothing listening, HTTP 4xx, no stream) ends the run at once with a named error. The result
is saved after every level, so an interrupt (Ctrl-C, or `stop_event` from a notebook) or a
dying server keeps every finished level.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from ..errors import BenchError
from . import eventloop
from .client import Endpoint
from .failures import ends_sweep, level_failure
from .loops import Guard, run_level
from .metrics import RequestSample, compute_metrics, per_model
from .result import BenchResult, LevelResult
from .sagemaker_sessions import level_sessions
from .integrity import level_integrity, merge_repeats
from .spec_metrics import SpecCounters, scrape_metrics_text, spec_counters_in
from .workload import Workload

ARRIVALS = ("poisson", "constant")
log = logging.getLogger(__name__)


@dataclass
class SweepSpec:
    """What to run at each level. `num_prompts=None` means 2 x concurrency, at least 4 and
    at least `at_least` (a dataset's rows, so each is sent once a level)."""

    concurrency: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    num_prompts: int | None = None
    warmup: int | None = None  # requests per level before measuring; None = one per slot
    request_rate: float | None = None  # one rate for every concurrency level (caps)
    seed: int = 0
    rates: list[float] = field(default_factory=list)  # several rates: the levels
    arrival: str = "poisson"
    sweep_rates: int | None = None
    cooldown: int = 0
    ramp_up_s: float = 0.0  # closed-loop levels: users start evenly over this many seconds
    max_failed_share: float = 0.5
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
        for r in ([self.request_rate] if self.request_rate is not None else []) + list(self.rates):
            if not r > 0 or math.isinf(r):
                raise BenchError(f"request rate must be > 0 req/s (got {r})")
        if self.warmup is not None and self.warmup < 0:
            raise BenchError(f"warm-up requests must be >= 0 (got {self.warmup})")
        if self.arrival not in ARRIVALS:
            raise BenchError(f"arrival must be poisson or constant (got {self.arrival!r})")
        if self.sweep_rates is not None and self.sweep_rates < 1:
            raise BenchError(f"--sweep takes the number of rates to measure below saturation, >= 1 "
                             f"(got {self.sweep_rates})")
        if self.sweep_rates is not None and (self.rates or self.request_rate is not None):
            raise BenchError("give --sweep N (rates found from the saturation throughput) or --rate, not both")
        if self.cooldown < 0:
            raise BenchError(f"cool-down completions must be >= 0 (got {self.cooldown})")
        short = [c for c, _, _ in self.plan() if self.cooldown >= self.requests_at(c)]
        if short:
            raise BenchError(f"--cooldown {self.cooldown} leaves nothing to measure at concurrency {short[0]} "
                             f"({self.requests_at(short[0])} requests); lower it or raise --prompts")
        if isinstance(self.ramp_up_s, bool) or not isinstance(self.ramp_up_s, (int, float)) \
                or not 0 <= self.ramp_up_s < math.inf:
            raise BenchError(f"--ramp-up takes seconds >= 0 over which a closed-loop level starts its users "
                             f"(got {self.ramp_up_s!r})")
        if self.ramp_up_s and not any(rate is None for _, rate, _ in self.plan()):
            raise BenchError("--ramp-up spreads the start of closed-loop levels; every level here runs at a "
                             "--rate, whose arrivals are already spread: drop --ramp-up")
        if not 0 <= self.max_failed_share <= 1:
            raise BenchError(f"max failed share must be in [0, 1] (got {self.max_failed_share})")

    @property
    def cap(self) -> int:
        """In-flight cap of rate levels given as a list (and of the sweep): the top concurrency."""
        return max(self.concurrency)

    def plan(self) -> list[tuple[int, float | None, str]]:
        """(concurrency, rate or None, kind) of each level known before running; a sweep's rate
        levels are added once its saturation level was measured."""
        if self.sweep_rates is not None:
            return [(self.cap, None, "saturation")]
        if self.rates:
            return [(self.cap, r, "rate") for r in self.rates]
        kind = "rate" if self.request_rate is not None else "concurrency"
        return [(c, self.request_rate, kind) for c in self.concurrency]

    def sweep_rate_values(self, saturation_rps: float) -> list[float]:
        """N rates evenly spaced up to the saturation throughput: R/N, 2R/N, ..., R."""
        n = self.sweep_rates or 0
        return [saturation_rps * i / n for i in range(1, n + 1)]

    def levels_count(self) -> int:
        return len(self.plan()) + (self.sweep_rates or 0)
        if self.repeats < 1:
            raise BenchError(f"repeats must be >= 1 (got {self.repeats})")

    def requests_at(self, c: int) -> int:
        return self.num_prompts if self.num_prompts is not None else max(4, 2 * c, self.at_least)

    def warmup_at(self, c: int) -> int:
        return c if self.warmup is None else self.warmup

    def total_requests(self) -> int:
        return (sum(self.requests_at(c) for c, _, _ in self.plan())
                + (self.sweep_rates or 0) * self.requests_at(self.cap)) * self.repeats

    def describe(self) -> dict:
        """The load settings recorded with the result."""
        return {"arrival": self.arrival, "warmup": self.warmup, "cooldown": self.cooldown, "ramp_up_s": self.ramp_up_s,
                "max_failed_share": self.max_failed_share, "sweep_rates": self.sweep_rates,
                "cap": self.cap if (self.rates or self.sweep_rates) else None, "repeats": self.repeats}

    def level_concurrencies(self) -> list[int]:
        """The concurrency (in-flight cap) of every level in run order, a sweep's rates included."""
        return [c for c, _, _ in self.plan()] + [self.cap] * (self.sweep_rates or 0)

    def block(self, level: int, repeat: int = 0) -> tuple[list[int], list[int]]:
        """(warm-up, measured) prompt indices of the `level`-th level's (run order) repeat:
        every level, repeat and warm-up gets prompts nobody sent before, so the server's
        prefix cache cannot serve a measured prompt from an earlier one (bench/integrity.py)."""
        start = 0
        for li, c in enumerate(self.level_concurrencies()):
            for r in range(self.repeats):
                size = self.warmup_at(c) + self.requests_at(c)
                if (li, r) == (level, repeat):
                    # measured first in index order, so a dataset's first level sends its first
                    # rows; the warm-ups take the indices after them
                    n = self.requests_at(c)
                    return list(range(start + n, start + size)), list(range(start, start + n))
                start += size
        raise KeyError(f"no level {level} repeat {repeat} in this sweep")

    def prompts_needed(self) -> int:
        """Distinct prompts the whole sweep sends (warm-ups included)."""
        return sum(self.warmup_at(c) + self.requests_at(c) for c in self.level_concurrencies()) * self.repeats


def run_sweep(endpoint: Endpoint, workload: Workload, spec: SweepSpec, result: BenchResult,
              save_path: str | None = None, progress: bool = True,
              server_alive: Callable[[], bool] | None = None,
              on_level: Callable[[LevelResult], None] | None = None,
              stop: threading.Event | None = None,
              on_request: Callable[[RequestSample], None] | None = None) -> BenchResult:
    """Run every level of `spec`, appending to `result` and saving it after each level.

    Ctrl-C saves what finished, marks the result 'interrupted' and re-raises; a server that
    died or a failed level marks it 'failed'; a first request that cannot succeed raises its
    named error (EndpointUnreachableError, EndpointRejectedError, NotStreamingError). Never
    call from a running event loop: use `run_sweep_in_thread` there (Jupyter)."""
    from tqdm.auto import tqdm

    bar = tqdm(total=spec.total_requests(), disable=not progress, unit="req", desc=result.name)
    guard = Guard(endpoint, stop)
    plan = spec.plan()
    result.load_settings = spec.describe()

    def done(sample: RequestSample) -> None:
        bar.update(1)
        if on_request:
            on_request(sample)

    try:
        i = 0
        while i < len(plan):
            c, rate, kind = plan[i]
            i += 1
            if guard.stopped:
                result.status = "interrupted"
                break
            bar.set_postfix_str(f"concurrency {c}" + (f", {rate:.3g} req/s" if rate else ""))
            runs = []
            for r in range(spec.repeats):
                if r and (guard.halted or (server_alive is not None and not server_alive())):
                    break
                runs.append(_measure_level(endpoint, workload, spec, i - 1, c, rate, kind, guard, done, r))
            level = merge_repeats(runs, spec.max_failed_share)
            if guard.fatal is not None:
                result.status = "failed"
                result.notes.append(str(guard.fatal))
                raise guard.fatal
            result.levels.append(level)
            if kind == "saturation":
                plan += _saturation(result, level, spec)
            if save_path:
                result.save(save_path)
            if on_level:
                on_level(level)
            m = level.metrics
            log.info("level at %s: %d ok, %d failed, %.1f output tok/s%s", level.label, m.completed, m.failed,
                     m.output_throughput, "" if m.usage_from_server or not m.completed
                     else " (token counts from chunks: the server sent no usage)")
            if guard.stopped:
                result.status = "interrupted"
                result.notes.append(f"stopped during or after the level at {level.label}; finished levels "
                                    f"and the requests that ended are kept")
                break
            if ends_sweep(level.failure) or (server_alive is not None and not server_alive()):
                log.warning("the server stopped answering during the level at %s; stopping the sweep", level.label)
                result.status = "failed"
                result.notes.append(f"the server stopped answering during the level at {level.label}; "
                                    f"later levels were not run")
                break
        else:
            result.status = "failed" if any(lv.failure for lv in result.levels) else "complete"
    except KeyboardInterrupt:
        result.status = "interrupted"
        result.notes.append("interrupted by the user; finished levels are kept")
        raise
    finally:
        bar.close()
        if result.status == "running":
            result.status = "interrupted"
        result.finished = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        if save_path and result.levels:
            result.save(save_path)
    return result


def _saturation(result: BenchResult, level: LevelResult, spec: SweepSpec) -> list[tuple[int, float, str]]:
    """Record the saturation level's throughput and plan the rates below it."""
    rps = level.metrics.request_throughput
    result.saturation = {"concurrency": level.concurrency, "request_throughput": rps,
                         "output_throughput": level.metrics.output_throughput}
    if level.failure or not rps > 0 or math.isnan(rps):
        why = "failed" if level.failure else "measured no throughput"
        result.notes.append(f"the saturation level {why}; no rates below it were run")
        return []
    return [(level.concurrency, r, "rate") for r in spec.sweep_rate_values(rps)]


def _cooldown(samples: list[RequestSample], t0: float, n: int) -> tuple[list[RequestSample], float]:
    """Flag the last `n` completions as cool-down; return the rest and the wall time up to
    the last of them (the measured part ends there)."""
    ordered = sorted(samples, key=lambda s: s.finished_at)
    for s in ordered[len(ordered) - n:] if n else []:
        s.cooldown = True
    kept = ordered[: len(ordered) - n] if n else ordered
    end = max((s.finished_at for s in kept), default=0.0)
    return [s for s in samples if not s.cooldown], (end - t0 if end > t0 else time.perf_counter() - t0)


def _measure_level(endpoint: Endpoint, workload: Workload, spec: SweepSpec, index: int, c: int,
                   rate: float | None, kind: str, guard: Guard, on_done: Callable[[RequestSample], None],
                   repeat: int = 0) -> LevelResult:
    """One repeat of the `index`-th level, on its own fresh prompts (`spec.block`)."""
    text_before = scrape_metrics_text(endpoint.base_url)
    opened_before = endpoint.sessions.counts() if endpoint.sessions is not None else None
    samples, warm, t0 = eventloop.run(run_level(endpoint, workload, c, spec.requests_at(c), spec.warmup_at(c), guard,
                                              rate, spec.arrival, spec.seed, on_done, spec.block(index, repeat),
                                              ramp_up_s=spec.ramp_up_s))
    text_after = scrape_metrics_text(endpoint.base_url)
    sessions = level_sessions(opened_before, endpoint.sessions.counts()) if opened_before is not None else None
    before, after = spec_counters_in(text_before), spec_counters_in(text_after)
    spec_stats = SpecCounters.delta(before, after).summary() if before and after else None
    kept, wall = _cooldown(samples, t0, spec.cooldown)
    return LevelResult(concurrency=c, metrics=compute_metrics(kept, wall), samples=samples, request_rate=rate,
                       speculative=spec_stats, per_adapter=per_model(kept, wall) or None, kind=kind,
                       arrival=spec.arrival if rate else None,
                       warmup_requests=len(warm), warmup_failed=sum(not s.ok for s in warm),
                       cooldown_excluded=len(samples) - len(kept),
                       failure=level_failure(samples, spec.max_failed_share), sessions=sessions,
                       integrity=level_integrity(text_before, text_after, kept, workload.max_tokens,
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
