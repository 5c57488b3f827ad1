"""Pick a catalog model and see which instance types hold it, and at what price.

The table is `planning.plan(model, precision, concurrency)`: weights plus KV cache plus
overhead against each instance's usable memory, with the cheapest fit named first.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as W

from jupyter_ext import catalog, defaults, planning

from .messages import MessageArea, shown_in


def _model_options() -> list[tuple[str, str]]:
    return [(f"{m.display_name} ({m.id})", m.id) for m in catalog.list_models()]


class ModelPicker(W.VBox):
    """Model, precision and concurrency in; instance fit and $/hour out (`.value` = model id)."""

    def __init__(self, model: str = defaults.DEFAULT_MODEL, **kwargs: Any) -> None:
        self.message = MessageArea()
        self.model = W.Dropdown(options=_model_options(), value=model, description="model",
                                layout=W.Layout(width="560px"))
        self.precision = W.Dropdown(options=list(planning.PRECISIONS), value="fp16", description="precision")
        self.concurrency = W.BoundedIntText(value=1, min=1, max=4096, description="concurrency")
        self.details = W.HTML()
        self.table = W.HTML()
        self.table.add_class("jo-plan")
        self.model.add_class("jo-model")
        controls = W.HBox([self.precision, self.concurrency])
        super().__init__([self.model, controls, self.details, self.message, self.table], **kwargs)
        self.add_class("jo-model-picker")
        self.refresh = shown_in(self.message)(self._refresh)
        for w in (self.model, self.precision, self.concurrency):
            w.observe(lambda _change: self.refresh(), names="value")
        self.refresh()

    @property
    def value(self) -> str:
        return self.model.value

    def _refresh(self) -> None:
        self.message.clear()
        spec = catalog.get_model(self.model.value)
        self.details.value = (
            f"<b>{html.escape(spec.display_name)}</b>: {spec.params_total / 1e9:.2f} B parameters "
            f"({spec.params_active / 1e9:.2f} B active), context {spec.max_context}, licence "
            f"{html.escape(spec.license)}{' (EULA must be accepted)' if spec.eula_required else ''}; "
            f"{'runs on this machine' if spec.runnable_here else 'planned and priced here, run on SageMaker'}")
        self.table.value = ""
        plan = planning.plan(self.model.value, precision=self.precision.value,
                            concurrency=self.concurrency.value)
        self.plan = plan
        self.table.value = plan._repr_html_()
