"""`OptimizePanel`: the model picker, recipe builder and benchmark panel as tabs of one
widget, as `%optimize panel` shows it, with the tune, deploy and autoscale panels.

The picker's model flows into the builder, and the builder's recipe (or its error) into the
benchmark and deploy panels, and the endpoint deployed last into the autoscale panel;
each tab stays usable on its own.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as W

from jupyter_ext import defaults

from .autoscale_panel import AutoscalePanel
from .bench_panel import BenchmarkPanel
from .deploy_panel import DeployPanel
from .model_picker import ModelPicker
from .recipe_builder import RecipeBuilder
from .tune_panel import TunePanel


class OptimizePanel(W.Tab):
    """Tabs: Model, Recipe, Benchmark, Deploy, Autoscale, Tune. Reach each as an attribute
    (.picker, .builder, .bench, .tune, .deploy, .autoscale)."""

    def __init__(self, model: str = defaults.DEFAULT_MODEL, *, results_dir: str | None = None,
                 instance: str = defaults.DEFAULT_INSTANCE, concurrency: list[int] | None = None,
                 **kwargs: Any) -> None:
        self.picker = ModelPicker(model)
        self.builder = RecipeBuilder(model)
        self.bench = BenchmarkPanel(self.builder, concurrency=concurrency, instance=instance,
                                    results_dir=results_dir)
        self.deploy = DeployPanel(self.builder)
        self.autoscale = AutoscalePanel()
        self.tune = TunePanel(model, instance=instance, results_dir=results_dir)
        W.dlink((self.picker.model, "value"), (self.builder.model, "value"))
        W.dlink((self.picker.model, "value"), (self.tune.model, "value"))
        W.dlink((self.deploy, "endpoint_name"), (self.autoscale.endpoint, "value"))
        tabs = [("Model", self.picker), ("Recipe", self.builder), ("Benchmark", self.bench),
                ("Deploy", self.deploy), ("Autoscale", self.autoscale), ("Tune", self.tune)]
        super().__init__(children=[w for _, w in tabs], **kwargs)
        self.titles = tuple(t for t, _ in tabs)
        self.add_class("jo-optimize-panel")

