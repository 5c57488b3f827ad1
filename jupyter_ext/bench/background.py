"""A benchmark that runs on a worker thread and can be watched, waited on or stopped.

Notebooks need this because a cell that blocks for minutes locks the user out, and the
kernel's event loop forbids `asyncio.run()` in the cell anyway. `BackgroundBenchmark`
wraps `run_benchmark` (and an optional baseline run before it) with a stop `Event`: the
levels that finished before `stop()` are kept in the returned result. It imports nothing
from IPython: the faces (magic, widgets) watch it through `on_update` and show it through
`_repr_html_` / `__str__`, which render the progress and the partial table so far.
"""

from __future__ import annotations

import contextvars
import html
import threading
import time
from typing import Any, Callable

from .. import defaults
from ..errors import BenchError
from ..recipes import Recipe, load_recipe
from .compare import Comparison
from .result import BenchResult, LevelResult, format_table, html_table

__all__ = ["BackgroundBenchmark"]


def _check_options(options: dict[str, Any]) -> None:
    """The checks run_benchmark makes before it starts a server, made in the caller's thread."""
    from ..catalog import get_instance
    from .sweep import SweepSpec

    SweepSpec(concurrency=list(options.get("concurrency", defaults.DEFAULT_CONCURRENCY)),
              num_prompts=options.get("num_prompts"), warmup=options.get("warmup"),
              request_rate=options.get("request_rate"))
    get_instance(options.get("instance", defaults.DEFAULT_INSTANCE))
    discount = options.get("discount", 0.0)
    if not 0 <= discount < 1:
        raise BenchError(f"discount must be in [0, 1) (got {discount})")


class BackgroundBenchmark:
    """Run `run_benchmark(recipe, **options)` on a thread; with `baseline`, run that first and
    return a `Comparison`. `server` / `baseline_server` reuse already running engines."""

    def __init__(self, recipe: Recipe | str | None = None, *, baseline: Recipe | str | None = None,
                 url: str | None = None, model: str | None = None, server: Any = None,
                 baseline_server: Any = None,
                 on_update: Callable[["BackgroundBenchmark"], None] | None = None, **options: Any) -> None:
        # Parse and check everything now, so a mistake fails in the caller, not on the thread.
        self.recipe = load_recipe(recipe) if isinstance(recipe, str) else recipe
        self.baseline = load_recipe(baseline) if isinstance(baseline, str) else baseline
        if self.recipe is None and url is None and server is None:
            raise BenchError("give a recipe (e.g. recipes/baseline.yaml) or an endpoint URL to benchmark")
        _check_options(options)
        self.options = options
        self.on_update = on_update
        # (recipe, running server, url, served model name): `url` is for the recipe run only.
        self._runs: list[tuple[Recipe | None, Any, str | None, str | None]] = (
            [(self.baseline, baseline_server, None, None)] if self.baseline else [])
        self._runs.append((self.recipe, server, url, model))
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
        return len(self.options.get("concurrency", defaults.DEFAULT_CONCURRENCY)) * len(self._runs)

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
        from . import run_benchmark  # late: bench/__init__ imports this module's neighbours

        try:
            for recipe, server, url, model in self._runs:
                if self._stop.is_set():
                    break
                self.partial = self._shadow(recipe)
                res = run_benchmark(recipe, url=url, model=model, server=server, stop=self._stop,
                                    on_level=self._level_done, **self.options)
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

    def _shadow(self, recipe: Recipe | None) -> BenchResult:
        """An empty result the levels are copied into as they finish, for the live table."""
        name = self.options.get("name") or (recipe.name if recipe else "endpoint")
        return BenchResult(name=name, recipe=None, endpoint={}, workload={}, instance=self.options.get(
            "instance", defaults.DEFAULT_INSTANCE), discount=self.options.get("discount", 0.0))

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
        what = " then ".join(run[0].name if run[0] else "endpoint" for run in self._runs)
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
