"""Service-level objectives and goodput: `ttft_p99=2s,tpot_p50=50ms,itl_p90=30ms,e2e_p50=3s`.

An SLO is a list of (metric, percentile, threshold) terms. Two readings of one level:

  * goodput (vLLM `bench serve --goodput`, per request): request i is good when each of its
    own values meets every term's threshold,
        TTFT_i <= ttft, TPOT_i <= tpot, E2EL_i <= e2e, and (ITL has many gaps per request)
        the request's own p-th percentile of its ITL gaps <= itl;
        goodput = good requests / wall time of the level        (requests/s)
  * pass (the level as a whole): the level's p-th percentile of each metric <= its threshold.

A failed request is never good. Percentiles are numpy's linear interpolation
(numpy's linear percentile, as `metrics.Percentiles`), taken from the level's per-request samples.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from ..errors import BenchError
from .metrics import RequestSample

if TYPE_CHECKING:
    from .result import LevelResult


def _percentile(values: list[float], q: float) -> float:
    """numpy's linear percentile (the method every figure of a result uses)."""
    import numpy as np

    return float(np.percentile(values, q, method="linear"))


METRICS = ("ttft", "tpot", "itl", "e2e")
PERCENTILES = (50, 90, 95, 99)
FORM = ("METRIC_pP=VALUE[s|ms] terms joined by commas, e.g. ttft_p99=2s,tpot_p50=50ms,itl_p90=30ms,e2e_p50=3s "
        f"(metrics {', '.join(METRICS)}; percentiles {', '.join(f'p{p}' for p in PERCENTILES)})")
_TERM = re.compile(r"^(?P<metric>[a-z0-9]+)_p(?P<pct>\d+)=(?P<value>\d+(?:\.\d*)?|\.\d+)(?P<unit>ms|s)$")


@dataclass(frozen=True)
class SLOTerm:
    """One objective: the `percentile`-th percentile of `metric` at most `threshold_s` seconds."""

    metric: str
    percentile: int
    threshold_s: float

    @property
    def key(self) -> str:
        return f"{self.metric}_p{self.percentile}"

    def __str__(self) -> str:
        ms = self.threshold_s * 1e3
        return f"{self.key}={ms:g}ms" if ms < 1000 else f"{self.key}={self.threshold_s:g}s"


def _request_value(term: SLOTerm, s: RequestSample) -> float | None:
    """The request's own value of the term's metric (None when it has none, e.g. TPOT of a
    one-token answer: such a term does not count against the request, as in vLLM)."""
    if term.metric == "ttft":
        return s.ttft_s
    if term.metric == "tpot":
        return s.tpot_s
    if term.metric == "e2e":
        return s.e2el_s
    gaps = sorted(s.itls_s)
    return _percentile(gaps, term.percentile) if gaps else None


def _level_values(metric: str, ok: Sequence[RequestSample]) -> list[float]:
    if metric == "itl":
        return sorted(g for s in ok for g in s.itls_s)
    attr = {"ttft": "ttft_s", "tpot": "tpot_s", "e2e": "e2el_s"}[metric]
    return sorted(v for v in (getattr(s, attr) for s in ok) if v is not None)


@dataclass(frozen=True)
class SLO:
    """A parsed SLO (see the module docstring); `str(slo)` gives the text back."""

    terms: tuple[SLOTerm, ...]

    @classmethod
    def parse(cls, text: "str | SLO") -> "SLO":
        """`ttft_p99=2s,tpot_p50=50ms` -> SLO; a BenchError naming the bad term and the form."""
        if isinstance(text, SLO):
            return text
        parts = [p.strip().lower() for p in str(text).split(",") if p.strip()]
        if not parts:
            raise BenchError(f"an SLO needs at least one term; the form is {FORM}")
        terms: dict[str, SLOTerm] = {}
        for part in parts:
            m = _TERM.match(part.replace(" ", ""))
            if not m:
                raise BenchError(f"cannot read SLO term {part!r}; the form is {FORM}")
            metric, pct = m["metric"], int(m["pct"])
            if metric not in METRICS:
                raise BenchError(f"unknown SLO metric {metric!r} in {part!r}; the form is {FORM}")
            if pct not in PERCENTILES:
                raise BenchError(f"unsupported percentile p{pct} in {part!r}; the form is {FORM}")
            value = float(m["value"]) * (1e-3 if m["unit"] == "ms" else 1.0)
            if value <= 0:
                raise BenchError(f"SLO threshold must be > 0 in {part!r}; the form is {FORM}")
            term = SLOTerm(metric, pct, value)
            if term.key in terms:
                raise BenchError(f"SLO term {term.key} is given twice; keep one")
            terms[term.key] = term
        return cls(tuple(terms.values()))

    def __str__(self) -> str:
        return ",".join(str(t) for t in self.terms)

    def threshold(self, metric: str) -> float | None:
        """The tightest threshold on `metric` (seconds), or None when the SLO has none."""
        vals = [t.threshold_s for t in self.terms if t.metric == metric]
        return min(vals) if vals else None

    def request_ok(self, s: RequestSample) -> bool:
        """Does this request meet every term on its own values (vLLM's goodput rule)?"""
        if not s.ok:
            return False
        for term in self.terms:
            v = _request_value(term, s)
            if v is not None and v > term.threshold_s:
                return False
        return True

    def evaluate(self, samples: Sequence[RequestSample], duration_s: float) -> dict[str, Any]:
        """Goodput and pass/fail of one level: {'slo', 'good_requests', 'goodput_rps',
        'met', 'terms': {key: {'threshold_s', 'value_s', 'met'}}}."""
        ok = [s for s in samples if s.ok]
        good = sum(1 for s in samples if self.request_ok(s))
        terms = {}
        for t in self.terms:
            vals = _level_values(t.metric, ok)
            value = _percentile(vals, t.percentile) if vals else float("nan")
            terms[t.key] = {"threshold_s": t.threshold_s, "value_s": value, "met": bool(vals) and value <= t.threshold_s}
        return {"slo": str(self), "requests": len(samples), "good_requests": good,
                "goodput_rps": good / duration_s if duration_s > 0 else float("nan"),
                "met": bool(ok) and all(x["met"] for x in terms.values()), "terms": terms}

    def evaluate_level(self, level: "LevelResult") -> dict[str, Any]:
        # cool-down completions are kept as samples but left out of the level's figures
        return self.evaluate([s for s in level.samples if not s.cooldown], level.metrics.duration_s)
