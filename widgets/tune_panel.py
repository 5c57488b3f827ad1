"""Tune from buttons: model, SLO, instance, recipes, levels and target load; Tune runs the
core `tune` verb on a worker thread (it measures recipes for minutes) and shows the ranked
table, the winner's recipe file and the deployment sizing. Widget callbacks only read
`.value`s and call the verb; errors show in the message area."""

from __future__ import annotations

import html
import threading
from typing import Any, Callable

import ipywidgets as W

from jupyter_ext import catalog, defaults
from jupyter_ext.verbs import tune as tune_verbs

from .bench_panel import parse_levels
from .messages import MessageArea, shown_in

SEARCHABLE = ("baseline", "ngram", "suffix", "awq", "compiled", "cpu-tuned", "best", "draft")


class TunePanel(W.VBox):
    """`.result` is the TuneResult once done; `.wait()` waits for it. `measure` replaces the
    real benchmark (tests)."""

    def __init__(self, model: str = defaults.DEFAULT_MODEL, *, instance: str = defaults.DEFAULT_INSTANCE,
                 results_dir: str | None = None, measure: Callable | None = None, **kwargs: Any) -> None:
        wide = {"style": {"description_width": "110px"}}
        self.measure, self.results_dir = measure, results_dir
        self.result: Any = None
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self.message = MessageArea()
        self.model = W.Dropdown(options=[m.id for m in catalog.list_models()], value=model, description="model", **wide)
        self.slo = W.Text(value="ttft_p99=2s,tpot_p50=50ms", description="SLO", layout=W.Layout(width="500px"),
                          **wide)
        self.instance = W.Dropdown(options=[i.name for i in catalog.list_instances()], value=instance,
                                   description="instance", **wide)
        self.recipes = W.SelectMultiple(options=SEARCHABLE, value=(), description="recipes", rows=4,
                                        tooltip="none selected: the default space (baseline, ngram k=2/4, suffix, "
                                                "awq, compile, fp32)", **wide)
        self.concurrency = W.Text(value="1,2,4,8", description="concurrency", **wide)
        self.max_tokens = W.BoundedIntText(value=defaults.DEFAULT_MAX_TOKENS, min=1, max=8192,
                                           description="max tokens", **wide)
        self.target_rps = W.BoundedFloatText(value=0.0, min=0.0, max=1e6, description="target req/s",
                                             tooltip="0 = no deployment sizing", **wide)
        self.output = W.Text(value="tuned.yaml", description="recipe file", **wide)
        self.run = W.Button(description="Tune", button_style="primary", icon="search")
        self.status = W.HTML()
        self.table = W.HTML()
        for w, cls in ((self.run, "jo-tune-run"), (self.status, "jo-tune-status"), (self.table, "jo-tune-table"),
                       (self.slo, "jo-tune-slo")):
            w.add_class(cls)
        super().__init__([self.model, self.slo, self.instance, self.recipes,
                          W.HBox([self.concurrency, self.max_tokens]), W.HBox([self.target_rps, self.output]),
                          self.run, self.status, self.message, self.table], **kwargs)
        self.add_class("jo-tune-panel")
        self.run.on_click(shown_in(self.message)(self._start))

    def _options(self) -> dict[str, Any]:
        return dict(model=self.model.value, slo=self.slo.value.strip(), instance=self.instance.value,
                    recipes=list(self.recipes.value) or None, concurrency=parse_levels(self.concurrency.value),
                    max_tokens=self.max_tokens.value, target_rps=self.target_rps.value or None,
                    output=self.output.value.strip() or None, results_dir=self.results_dir, measure=self.measure,
                    progress=False)

    def _start(self, _button: Any = None) -> None:
        self.message.clear()
        if self._thread is not None and self._thread.is_alive():
            return
        opts = self._options()  # parse here: a bad value shows at once
        from jupyter_ext.bench.slo import SLO

        SLO.parse(opts["slo"])
        self.result, self.error, self.table.value = None, None, ""
        self.run.disabled = True
        self.status.value = "tuning: measuring the candidates the roofline cannot rule out ..."
        self._thread = threading.Thread(target=self._work, args=(opts,), daemon=True, name="jupyter-optimize-tune")
        self._thread.start()

    def _work(self, opts: dict[str, Any]) -> None:
        try:
            self.result = tune_verbs.tune(**opts)
            self.table.value = self.result._repr_html_()
            self.status.value = "done: " + html.escape(self.result._headline())
        except Exception as e:  # noqa: BLE001 - shown in the panel (messages.py)
            self.error = e
            self.message.error(e)
            self.status.value = "failed"
        finally:
            self.run.disabled = False

    def wait(self, timeout: float | None = None) -> Any:
        """Wait for the running search and return the TuneResult (re-raising its error)."""
        if self._thread is None:
            raise RuntimeError("no tune was started; click Tune (or call .run.click())")
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error
        return self.result
