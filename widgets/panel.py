"""`OptimizePanel`: the model picker, recipe builder and benchmark panel as tabs of one
widget, as `%optimize panel` shows it (deploy and autoscale tabs are still to come).

The picker's model flows into the builder, and the builder's recipe (or its error) into the
benchmark panel; each tab stays usable on its own.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as W

from jupyter_ext import defaults

from .bench_panel import BenchmarkPanel
from .model_picker import ModelPicker
from .recipe_builder import RecipeBuilder


class OptimizePanel(W.Tab):
    """Tabs: Model, Recipe, Benchmark. Reach each as an attribute (.picker, .builder, .bench)."""

    def __init__(self, model: str = defaults.DEFAULT_MODEL, *, results_dir: str | None = None,
                 instance: str = defaults.DEFAULT_INSTANCE, concurrency: list[int] | None = None,
                 **kwargs: Any) -> None:
        self.picker = ModelPicker(model)
        self.builder = RecipeBuilder(model)
        self.bench = BenchmarkPanel(self.builder, concurrency=concurrency, instance=instance,
                                    results_dir=results_dir)
        W.dlink((self.picker.model, "value"), (self.builder.model, "value"))
        tabs = [("Model", self.picker), ("Recipe", self.builder), ("Benchmark", self.bench)]
        super().__init__(children=[w for _, w in tabs], **kwargs)
        self.titles = tuple(t for t, _ in tabs)
        self.add_class("jo-optimize-panel")

