"""A benchmark that runs on a worker thread and can be watched, waited on or stopped.

Notebooks need this because a cell that blocks for minutes locks the user out, and the
kernel's event loop forbids `asyncio.run()` in the cell anyway. `BackgroundBenchmark` runs
a BenchSpec - its baseline, if any, then its target: the one place that order is written -
with a stop `Event`: the levels that finished before `stop()` are kept in the returned
result. `run_here()` runs the same code in the caller's thread (the CLI, scripts). It imports nothing
from IPython: the faces (magic, widgets) watch it through `on_update` and show it through
`_repr_html_` / `__str__`, which render the progress and the partial table so far.
"""

from __future__ import annotations

import contextvars
import html
import threading
import time
from typing import Any, Callable

from .compare import Comparison
from .result import BenchResult, LevelResult, format_table, html_table
from .runner import run_target
from .spec import BenchSpec, Target

__all__ = ["BackgroundBenchmark"]


class BackgroundBenchmark:
    """Run a BenchSpec on a thread: its baseline first when it has one (the result is then a
    Comparison), then its target. `server` reuses an already running engine for the target;
    otherwise a server kept by `serve` for the same recipe is reused, or one is started."""

    def __init__(self, spec: BenchSpec, *, server: Any = None, progress: bool = True,
                 on_update: Callable[["BackgroundBenchmark"], None] | None = None) -> None:
        if not isinstance(spec, BenchSpec):
            raise TypeError("BackgroundBenchmark takes a BenchSpec (BenchSpec.of(recipe, **options))")
        # The spec's values were checked when built, so a mistake failed in the caller.
        self.spec = spec
        self.recipe = spec.target.recipe
        self.baseline = spec.baseline
        self.progress = progress
        self.on_update = on_update
        runs = spec.runs()
        self._runs: list[tuple[Target, Any]] = [(t, None) for t in runs[:-1]] + [(runs[-1], server)]
        self._stop = threading.Event()
        self._done = threading.Event()  # set after the final on_update; wait() waits on it
        self._finished = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # results/partial change together; readers see one or the other
        self.results: list[BenchResult] = []   # finished runs, in order
        self.partial: BenchResult | None = None  # the run in progress, levels so far
        self.result: BenchResult | Comparison | None = None
        self.error: BaseException | None = None
        self.update_error: Exception | None = None  # the last failure of on_update, shown in the display
        self.started_at: float | None = None
        self.finished_at: float | None = None

    # -- control -------------------------------------------------------------------------
    def start(self) -> "BackgroundBenchmark":
        """Start the thread. The caller's context is copied into it so that output the run
        makes (a tqdm bar, display updates) lands where the caller's would: in a Jupyter
        kernel that is the cell which started it, not whichever cell runs later."""
        if self._thread is not None:
            raise RuntimeError("this benchmark was already started; make a new one to run again")
        self.started_at = time.monotonic()
        ctx = contextvars.copy_context()
        self._thread = threading.Thread(target=ctx.run, args=(self._run,), daemon=True,
                                        name="jupyter-optimize-background-bench")
        self._thread.start()
        return self

    def run_here(self) -> BenchResult | Comparison | None:
        """Run in the calling thread (scripts, the CLI) and return what `wait()` would."""
        if self._thread is not None or self.started_at is not None:
            raise RuntimeError("this benchmark was already started; make a new one to run again")
        self.started_at = time.monotonic()
        self._run()
        if self.error is not None:
            raise self.error
        return self.result

    def stop(self) -> None:
        """Ask the run to stop after the requests in flight; finished levels are kept."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> BenchResult | Comparison | None:
        """Block until the run ends (or `timeout` s pass: then return None). Re-raises the
        run's error. A KeyboardInterrupt while waiting stops the run and waits for it, so an
        interrupted notebook cell still leaves the finished levels in `.result`."""
        try:
            if not self._done.wait(timeout):
                return None
        except KeyboardInterrupt:
            self.stop()
            self._done.wait()
            raise
        if self.error is not None:
            raise self.error
        return self.result

    # -- state ---------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self._finished

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    @property
    def levels(self) -> list[LevelResult]:
        """Levels finished so far in the run in progress (or the last run)."""
        tables = self._tables()
        return list(tables[-1].levels) if tables else []

    @property
    def levels_total(self) -> int:
        return self.spec.levels_total

    @property
    def levels_done(self) -> int:
        return sum(len(r.levels) for r in self._tables())

    @property
    def status(self) -> str:
        if self.error is not None:
            return "failed"
        if self.done:
            return "stopped" if self.stopped else "done"
        if self.stopped:
            return "stopping"
        return "running" if self._thread is not None else "not started"

    # -- the thread ----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            for target, server in self._runs:
                if self._stop.is_set():
                    break
                self.partial = self._shadow(target)
                res = run_target(self.spec, target, server=server, progress=self.progress, stop=self._stop,
                                 on_level=self._level_done)
                with self._lock:
                    self.results.append(res)
                    self.partial = None
                if res.status != "complete":
                    break  # a stopped or failed baseline is not worth a recipe run after it
            self.result = self._final()
        except BaseException as e:  # noqa: BLE001 - kept for wait() and shown in the display
            self.error = e
        finally:
            self.partial = None
            self.finished_at = time.monotonic()
            self._finished = True
            self._notify()  # before releasing wait(): whoever waits then sees the final display
            self._done.set()

    def _shadow(self, target: Target) -> BenchResult:
        """An empty result the levels are copied into as they finish, for the live table."""
        return BenchResult(name=self.spec.name or target.name, recipe=None, endpoint={}, workload={},
                           instance=self.spec.pricing.instance, discount=self.spec.pricing.discount)

    def _level_done(self, level: LevelResult) -> None:
        if self.partial is not None:
            self.partial.levels.append(level)
        self._notify()

    def _notify(self) -> None:
        if self.on_update is not None:
            try:
                self.on_update(self)
            except Exception as e:  # noqa: BLE001 - a broken display must not kill the run; it is shown
                self.update_error = e

    def _final(self) -> BenchResult | Comparison | None:
        if len(self._runs) == 2 and len(self.results) == 2:
            return Comparison.of(self.results[1], self.results[0])
        return self.results[-1] if self.results else None

    # -- display -------------------------------------------------------------------------
    def _elapsed(self) -> float:
        if self.started_at is None:
            return 0.0
        return (self.finished_at or time.monotonic()) - self.started_at

    def _headline(self) -> str:
        what = " then ".join(target.name for target, _ in self._runs)
        line = (f"benchmark {what}: {self.status}, {self.levels_done}/{self.levels_total} levels, "
                f"{self._elapsed():.0f} s")
        if self.error is not None:
            line += f"; error: {type(self.error).__name__}: {self.error}"
        if self.update_error is not None:
            line += f"; display update failed: {type(self.update_error).__name__}: {self.update_error}"
        return line

    def _tables(self) -> list[BenchResult]:
        with self._lock:
            return self.results + ([self.partial] if self.partial is not None else [])

    def __str__(self) -> str:
        parts = [self._headline()]
        for r in self._tables():
            parts.append(f"{r.name}:\n{format_table(r.rows())}")
        return "\n".join(parts)

    def __repr__(self) -> str:
        return f"<BackgroundBenchmark {self.status}, {self.levels_done}/{self.levels_total} levels>"

    def _repr_html_(self) -> str:
        bar = f"<progress max='{max(1, self.levels_total)}' value='{self.levels_done}'></progress>"
        err = (f"<pre style='color:#b00'>{html.escape(f'{type(self.error).__name__}: {self.error}')}</pre>"
               if self.error is not None else "")
        tables = "".join(f"<div><b>{html.escape(r.name)}</b>{html_table(r.rows())}</div>" for r in self._tables())
        return (f"<div class='jo-background-bench'>{bar} <span>{html.escape(self._headline())}</span>"
                f"{err}{tables}</div>")
