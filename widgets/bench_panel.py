"""Benchmark the builder's recipe from buttons: levels, run/stop, live progress, table, chart.

The run is a core `BackgroundBenchmark` (a worker thread with a stop event), so the kernel
stays free while it runs and Stop keeps the finished levels. Its `on_update` hook, called
from the worker thread, only sets widget values (which ipywidgets sends from any thread);
the chart is drawn to PNG bytes and appended to the Output widget, which is thread-safe,
unlike printing into an Output context from a thread.
"""

from __future__ import annotations

import argparse
import html
import io
from typing import Any

import ipywidgets as W
from IPython.display import Image

from jupyter_ext import catalog, defaults
from jupyter_ext.bench.background import BackgroundBenchmark
from jupyter_ext.bench.result import html_table
from jupyter_ext.bench.spec import WORKLOAD_SHAPES, Load, Workload, field_default
from jupyter_ext.errors import BenchError
from jupyter_ext.verbs import run

from .messages import MessageArea, shown_in


def parse_levels(text: str) -> list[int]:
    """'1,2,4' -> [1, 2, 4], with the faces' shared parser and message."""
    from jupyter_ext.verbs.table import parse_int_list

    try:
        return parse_int_list(text)
    except argparse.ArgumentTypeError as e:
        raise BenchError(f"concurrency levels: {e}") from None


def parse_rates(text: str) -> list[float] | None:
    """'' -> None (closed loop); '1,2.5' -> [1.0, 2.5] req/s, with the faces' shared parser."""
    from jupyter_ext.verbs.table import parse_float_list

    if not text.strip():
        return None
    try:
        return parse_float_list(text)
    except argparse.ArgumentTypeError as e:
        raise BenchError(f"request rates: {e}") from None


def chart_png(results: list[Any], kind: str = "dashboard") -> bytes:
    """The result chart as PNG bytes (no pyplot: safe from the worker thread)."""
    from jupyter_ext import charts

    buf = io.BytesIO()
    charts.figure(results, kind).savefig(buf, format="png", dpi=80)
    return buf.getvalue()


class BenchmarkPanel(W.VBox):
    """Run/Stop a benchmark of `recipe_source()`; `.job` is the BackgroundBenchmark."""

    def __init__(self, builder: Any = None, *, concurrency: list[int] | None = None,
                 instance: str = defaults.DEFAULT_INSTANCE, results_dir: str | None = None,
                 **kwargs: Any) -> None:
        self.builder = builder
        self.job: BackgroundBenchmark | None = None
        self.results_dir = results_dir
        self.message = MessageArea()
        levels = concurrency or list(defaults.DEFAULT_CONCURRENCY)
        wide = {"style": {"description_width": "110px"}}
        self.concurrency = W.Text(value=",".join(map(str, levels)), description="concurrency", **wide)
        self.prompts = W.BoundedIntText(value=0, min=0, max=10000, description="prompts/level",
                                        tooltip="0 = 2 x concurrency (at least 4)", **wide)
        self.max_tokens = W.BoundedIntText(value=defaults.DEFAULT_MAX_TOKENS, min=1, max=8192,
                                           description="max tokens", **wide)
        self.input_scale = W.BoundedFloatText(value=1.0, min=0.01, max=4.0, step=0.1, description="input scale",
                                              **wide)
        self.rate = W.Text(value="", description="rate req/s", placeholder="empty: closed loop; e.g. 1,2,4",
                           tooltip="request rate(s); the highest concurrency caps in-flight requests", **wide)
        self.arrival = W.Dropdown(options=["poisson", "constant"], value="poisson", description="arrival", **wide)
        self.sweep = W.BoundedIntText(value=0, min=0, max=64, description="sweep rates",
                                      tooltip="N > 0: find saturation, then N rates up to it", **wide)
        self.workload = W.Dropdown(options=["copy", "open"], value="copy", description="workload",
                                   tooltip="copy: questions over a quoted passage; open: nothing to quote", **wide)
        self.cooldown = W.BoundedIntText(value=field_default(Load, "cooldown"), min=0, max=10000,
                                         description="cooldown", tooltip="leave each level's last N completions out "
                                         "of its metrics (counted in the result)", **wide)
        self.ramp_up = W.BoundedFloatText(value=field_default(Load, "ramp_up_s"), min=0, max=3600,
                                          description="ramp-up s", tooltip="start a closed-loop level's users "
                                          "evenly over this many seconds (0: all at once)", **wide)
        self.shape = W.Dropdown(options=list(WORKLOAD_SHAPES), value=field_default(Workload, "workload_shape"),
                                description="shape", tooltip="multi-turn: each simulated user holds a conversation "
                                "(every prompt carries the earlier turns and the actual replies)", **wide)
        self.turns = W.BoundedIntText(value=field_default(Workload, "turns"), min=1, max=100, description="turns",
                                      tooltip="turns per conversation (multi-turn)", **wide)
        self.shared_prefix = W.BoundedIntText(value=field_default(Workload, "shared_prefix"), min=0, max=100000,
                                              description="shared prefix", tooltip="tokens of one system prefix that "
                                              "start every prompt (what prefix caching reuses)", **wide)
        self.shape.observe(lambda _c: self._sync_turns(), names="value")
        self._sync_turns()
        self.dataset = W.Text(value="", description="dataset", layout=W.Layout(width="600px"),
                              placeholder="empty: the built-in workload; else a .jsonl/.json/.csv file", **wide)
        self.url = W.Text(value="", description="endpoint", placeholder="empty: start vLLM for the recipe",
                          layout=W.Layout(width="600px"), **wide)
        self.sagemaker = W.Text(value="", description="SageMaker", layout=W.Layout(width="400px"),
                                placeholder="endpoint name (instead of a URL)", **wide)
        self.sessions = W.Checkbox(value=False, description="sticky sessions", indent=False,
                                   tooltip="SageMaker, multi-turn: each conversation in one session "
                                   "(InvokeEndpoint SessionId=NEW_SESSION, reused, then closed)")
        self.adapters = W.BoundedIntText(value=0, min=0, max=10000, description="adapters",
                                         tooltip="N > 0: spread requests over the recipe's first N LoRA adapters", **wide)
        self.adapter_skew = W.Text(value="uniform", description="adapter skew", placeholder="uniform or zipf:S",
                                   **wide)
        self.instance = W.Dropdown(options=[i.name for i in catalog.list_instances()], value=instance,
                                   description="price as", **wide)
        self.slo = W.Text(value="", description="SLO", placeholder="e.g. ttft_p99=2s,tpot_p50=50ms (adds goodput)",
                          layout=W.Layout(width="600px"), **wide)
        self.repeats = W.BoundedIntText(value=1, min=1, max=100, description="repeats",
                                        tooltip="runs of every level; > 1 adds 95% intervals", **wide)
        self.report = W.Button(description="HTML report", icon="file", disabled=True,
                               tooltip="write report.html of the finished run (self-contained)")
        self.run = W.Button(description="Run benchmark", button_style="primary", icon="play")
        self.stop = W.Button(description="Stop", icon="stop", disabled=True)
        self.reason = W.HTML()
        self.progress = W.IntProgress(value=0, min=0, max=1, description="levels")
        self.status = W.HTML()
        self.table = W.HTML()
        self.chart = W.Output()
        for w, cls in ((self.run, "jo-run"), (self.stop, "jo-stop"), (self.reason, "jo-run-reason"),
                       (self.table, "jo-table"), (self.chart, "jo-chart"), (self.status, "jo-status"),
                       (self.url, "jo-url"), (self.concurrency, "jo-concurrency"), (self.rate, "jo-rate"),
                       (self.arrival, "jo-arrival"), (self.sweep, "jo-sweep"), (self.dataset, "jo-dataset"),
                       (self.slo, "jo-slo"), (self.report, "jo-report"), (self.cooldown, "jo-cooldown"),
                       (self.ramp_up, "jo-ramp-up"),
                       (self.shape, "jo-shape"), (self.turns, "jo-turns"), (self.sagemaker, "jo-sagemaker"),
                       (self.sessions, "jo-sessions"), (self.adapters, "jo-adapters")):
            w.add_class(cls)
        settings = [W.HBox([self.concurrency, self.prompts]), W.HBox([self.max_tokens, self.input_scale]),
                    W.HBox([self.rate, self.arrival, self.sweep]), W.HBox([self.cooldown, self.ramp_up, self.shared_prefix]),
                    W.HBox([self.workload, self.shape, self.turns]), W.HBox([self.adapters, self.adapter_skew]),
                    self.dataset, self.url, W.HBox([self.sagemaker, self.sessions]),
                    self.instance, self.slo, self.repeats]
        super().__init__([*settings, W.HBox([self.run, self.stop, self.report, self.reason]), self.progress, self.status,
                          self.message, self.table, self.chart], **kwargs)
        self.add_class("jo-bench-panel")
        self.run.on_click(shown_in(self.message)(self._start))
        self.stop.on_click(shown_in(self.message)(lambda _b: self.job and self.job.stop()))
        self.report.on_click(shown_in(self.message)(self._report))
        if builder is not None:
            builder.observe(lambda _c: self._sync_run_button(), names="error")
        self._sync_run_button()

    # -- state -----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.job is not None and not self.job.done

    def _sync_turns(self) -> None:
        """Turns mean something only for multi-turn conversations."""
        self.turns.disabled = self.shape.value != "multi-turn"

    def _sync_run_button(self) -> None:
        """Run is enabled only when there is something runnable and nothing running."""
        why = ""
        if self.running:
            why = "a benchmark is running"
        elif self.builder is not None and self.builder.error:
            why = f"the recipe cannot run: {self.builder.error}"
        self.run.disabled = bool(why)
        self.run.tooltip = why or "benchmark the recipe"
        self.reason.value = f"<span style='color:#a40000'>{html.escape(why)}</span>" if why and not self.running else ""

    # -- actions ---------------------------------------------------------------------------
    def _options(self) -> dict[str, Any]:
        opts: dict[str, Any] = dict(concurrency=parse_levels(self.concurrency.value),
                                    num_prompts=self.prompts.value or None, max_tokens=self.max_tokens.value,
                                    input_scale=self.input_scale.value, instance=self.instance.value,
                                    request_rate=parse_rates(self.rate.value), arrival=self.arrival.value,
                                    sweep_rates=self.sweep.value or None, cooldown=self.cooldown.value,
                                    ramp_up_s=self.ramp_up.value,
                                    workload_shape=self.shape.value, turns=self.turns.value,
                                    shared_prefix=self.shared_prefix.value,
                                    workload=self.workload.value, dataset=self.dataset.value.strip() or None,
                                    slo=self.slo.value.strip() or None, repeats=self.repeats.value,
                                    sessions=self.sessions.value, adapters=self.adapters.value or None,
                                    adapter_skew=self.adapter_skew.value.strip() or "uniform")
        if self.sagemaker.value.strip():
            opts["sagemaker_endpoint"] = self.sagemaker.value.strip()
        if self.results_dir:
            opts["results_dir"] = self.results_dir
        return opts

    def _start(self, _button: Any = None) -> None:
        self.message.clear()
        recipe = self.builder.recipe if self.builder is not None else None
        if self.builder is not None and recipe is None:
            raise BenchError(f"the recipe cannot run: {self.builder.error}")
        spec = run.bench_spec(recipe, url=self.url.value.strip() or None, **self._options())
        job = BackgroundBenchmark(spec, progress=False, on_update=shown_in(self.message)(self._update))
        self.job = job
        self.chart.clear_output()
        self.table.value = ""
        self.progress.max, self.progress.value = job.levels_total, 0
        self.stop.disabled = False
        self._sync_run_button()
        job.start()
        self._update(job)

    def _update(self, job: BackgroundBenchmark) -> None:
        """Called from the worker thread after each level and at the end."""
        self.progress.value = job.levels_done
        self.status.value = html.escape(job._headline())
        self.table.value = "".join(f"<b>{html.escape(r.name)}</b>{html_table(r.rows())}" for r in job._tables())
        if job.done:
            self._finish(job)

    def _finish(self, job: BackgroundBenchmark) -> None:
        self.stop.disabled = True
        self._sync_run_button()
        if job.error is not None:
            self.message.error(job.error)
            return
        shown = [r for r in job.results if r.levels]
        if shown:
            self.chart.append_display_data(Image(data=chart_png(shown), format="png"))
        failure = run.bench_failure(job.result) if job.result is not None else None
        if failure is not None:
            self.message.error(failure)
        elif job.result is not None and getattr(job.result, "path", None):
            self.message.note(f"saved {job.result.path}")
        self.report.disabled = not shown

    def _report(self, _button: Any = None) -> Any:
        """Write the self-contained HTML report of the finished run next to its results."""
        from pathlib import Path

        from jupyter_ext.verbs.tune import report

        shown = [r for r in (self.job.results if self.job else []) if r.levels]
        if not shown:
            raise BenchError("no finished benchmark to report; run one first")
        where = Path(shown[-1].path).with_suffix(".html") if shown[-1].path else Path("report.html")
        rep = report(shown, str(where))
        self.message.note(f"report written: {rep.path}")
        return rep

    def wait(self, timeout: float | None = None) -> Any:
        """Wait for the running benchmark (for code that drives the panel) and return its result."""
        if self.job is None:
            raise BenchError("no benchmark was started; click Run (or call .run.click())")
        return self.job.wait(timeout)
