"""`SimulationReport`: a fleet simulation with its timeline chart, as every face shows it.

A notebook shows it as its chart: `_repr_mimebundle_` hands Jupyter the PNG itself
(image/png) and the summary as text/plain, so the image is stored once in the notebook as
an image output, not as base64 text inside HTML. The summary table is `report.result`
(a SimulationResult with its own `_repr_html_`); a terminal prints `str(report)`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any


@dataclass
class SimulationReport:
    """A fleet simulation and its timeline chart (arrivals, in-flight requests, instances,
    alarms). `.result` is the core's SimulationResult; `.figure` a matplotlib Figure made
    without pyplot, so showing it switches no backend and nothing is drawn twice."""

    result: Any
    figure: Any

    @classmethod
    def of(cls, result: Any, title: str | None = None) -> "SimulationReport":
        from matplotlib.figure import Figure

        from .timeline import timeline_chart

        figure = Figure(figsize=(9, 4), layout="constrained")
        timeline_chart(result, ax=figure.subplots(), title=title)
        return cls(result, figure)

    def summary(self) -> dict[str, Any]:
        return self.result.summary()

    def to_dict(self) -> dict[str, Any]:
        return self.result.to_dict()

    def png(self, dpi: int = 80) -> bytes:
        buf = io.BytesIO()
        self.figure.savefig(buf, format="png", dpi=dpi)
        return buf.getvalue()

    def save(self, path: str, dpi: int = 100) -> str:
        self.figure.savefig(path, dpi=dpi)
        return path

    def __str__(self) -> str:
        return str(self.result)

    def __repr__(self) -> str:
        return repr(self.result)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """The chart as image/png and the summary as text/plain (IPython keeps the kinds
        `include`/`exclude` ask for); no text/html, which a notebook would show instead."""
        return {"image/png": self.png(), "text/plain": str(self)}
