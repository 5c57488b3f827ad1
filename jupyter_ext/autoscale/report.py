"""`SimulationReport`: a fleet simulation with its timeline chart, as every face shows it."""

from __future__ import annotations

import base64
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

    def _repr_html_(self) -> str:
        img = base64.b64encode(self.png()).decode("ascii")
        return (f"{self.result._repr_html_()}<img alt='fleet timeline' "
                f"src='data:image/png;base64,{img}'/>")
