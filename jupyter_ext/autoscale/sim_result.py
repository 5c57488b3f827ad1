"""What a fleet simulation returns: per-request records, timelines, alarms, scaling, cost.

Latency figures follow vLLM's definitions, measured from the request's arrival at the
endpoint (so queueing at a replica or in a zero-capacity buffer counts):
TTFT = first token - arrival, E2E = last token - arrival. SLO attainment counts every
request that arrived in the window: rejected, cut or unserved requests miss the SLO.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import numpy as np

from jupyter_ext.autoscale.sim_policy import AlarmEvent, ScalingActivity

DONE, REJECTED, CUT, UNSERVED = 1, 2, 3, 4
STATUS_NAMES = {0: "unfinished", DONE: "done", REJECTED: "rejected", CUT: "cut",
                UNSERVED: "unserved"}
QUANTILES = (50, 90, 99)


@dataclass
class RequestRecords:
    """One row per request, as arrays; times in seconds, NaN where a stage never happened."""

    arrival: np.ndarray
    start: np.ndarray
    first_token: np.ndarray
    end: np.ndarray
    replica: np.ndarray
    status: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray

    def __len__(self) -> int:
        return int(self.arrival.size)

    @property
    def ttft(self) -> np.ndarray:
        return self.first_token - self.arrival

    @property
    def e2e(self) -> np.ndarray:
        return self.end - self.arrival

    @property
    def served(self) -> np.ndarray:
        return self.status == DONE

    def count(self, status: int) -> int:
        return int(np.count_nonzero(self.status == status))

    def to_dict(self) -> dict[str, list]:
        out = {name: [None if v != v else float(v) for v in getattr(self, name).tolist()]
               for name in ("arrival", "start", "first_token", "end")}
        out["replica"] = self.replica.tolist()
        out["status"] = [STATUS_NAMES[int(s)] for s in self.status]
        out["input_tokens"] = self.input_tokens.tolist()
        out["output_tokens"] = self.output_tokens.tolist()
        return out


def _pcts(values: np.ndarray) -> dict[str, float | None]:
    if values.size == 0:
        return {f"p{q}": None for q in QUANTILES}
    got = np.percentile(values, QUANTILES)
    return {f"p{q}": float(v) for q, v in zip(QUANTILES, got)}


@dataclass
class SimulationResult:
    """Everything one simulation produced; see summary() for the headline figures."""

    requests: RequestRecords
    timeline: dict[str, np.ndarray]
    capacity: list[tuple[float, int, int, int]]
    alarms: list[AlarmEvent]
    activities: list[ScalingActivity]
    replicas: list[dict]
    datapoints: dict[str, dict[str, list]]
    duration_s: float
    instance_hours: float
    usd_per_hour: float
    change_s: float | None = None
    ttft_slo_s: float | None = None
    e2e_slo_s: float | None = None
    wall_s: float = 0.0
    config: dict = field(default_factory=dict)
    traffic: dict = field(default_factory=dict)
    prefix_hits: float = 0.0  # of a conversation's later turns, the share served where its prefix was cached

    @property
    def cost_usd(self) -> float:
        """instance_hours x usd_per_hour (launch to termination is billed, starts included)."""
        return self.instance_hours * self.usd_per_hour

    @property
    def time_to_detect_s(self) -> float | None:
        """First scale-out alarm entering ALARM at or after the traffic change, minus the change."""
        if self.change_s is None:
            return None
        hits = [e.t for e in self.alarms if e.alarm == "scale-out" and e.state == "ALARM"
                and e.t >= self.change_s]
        return min(hits) - self.change_s if hits else None

    @property
    def time_to_scale_out_s(self) -> float | None:
        """First scale-out activity (desired capacity raised) after the change."""
        if self.change_s is None:
            return None
        hits = [a.t for a in self.activities if a.direction == "out" and a.t >= self.change_s]
        return min(hits) - self.change_s if hits else None

    @property
    def time_to_new_capacity_s(self) -> float | None:
        """First request admitted on a replica launched after the change: end-to-end scale-out."""
        if self.change_s is None:
            return None
        hits = [r["first_served_s"] for r in self.replicas if not r["initial"]
                and r["launched_s"] >= self.change_s and r["first_served_s"] is not None]
        return min(hits) - self.change_s if hits else None

    def _window(self, start_s: float | None, end_s: float | None) -> slice:
        arr = self.requests.arrival
        lo = 0 if start_s is None else int(np.searchsorted(arr, start_s, "left"))
        hi = arr.size if end_s is None else int(np.searchsorted(arr, end_s, "left"))
        return slice(lo, hi)

    def percentiles(self, metric: str = "ttft", start_s: float | None = None,
                    end_s: float | None = None) -> dict[str, float | None]:
        """p50/p90/p99 of 'ttft' or 'e2e' over served requests arriving in [start_s, end_s)."""
        win = self._window(start_s, end_s)
        values = getattr(self.requests, metric)[win][self.requests.served[win]]
        return _pcts(values)

    def slo_attainment(self, ttft_slo_s: float | None = None, e2e_slo_s: float | None = None,
                       start_s: float | None = None, end_s: float | None = None) -> float | None:
        """Share of requests arriving in the window that were served within every SLO."""
        ttft_slo = self.ttft_slo_s if ttft_slo_s is None else ttft_slo_s
        e2e_slo = self.e2e_slo_s if e2e_slo_s is None else e2e_slo_s
        win = self._window(start_s, end_s)
        total = win.stop - win.start
        if (ttft_slo is None and e2e_slo is None) or total == 0:
            return None
        ok = self.requests.served[win].copy()
        with np.errstate(invalid="ignore"):
            if ttft_slo is not None:
                ok &= self.requests.ttft[win] <= ttft_slo
            if e2e_slo is not None:
                ok &= self.requests.e2e[win] <= e2e_slo
        return float(np.count_nonzero(ok)) / total

    def windows(self, width_s: float = 60.0) -> list[dict]:
        """Latency percentiles, counts and SLO attainment per window of arrival time."""
        rows = []
        for lo in np.arange(0.0, self.duration_s, width_s):
            win = self._window(lo, lo + width_s)
            st = self.requests.status[win]
            rows.append({"start_s": float(lo), "requests": int(st.size),
                         "rejected": int(np.count_nonzero(st == REJECTED)),
                         "ttft": self.percentiles("ttft", lo, lo + width_s),
                         "e2e": self.percentiles("e2e", lo, lo + width_s),
                         "slo_attainment": self.slo_attainment(start_s=lo, end_s=lo + width_s)})
        return rows

    def summary(self) -> dict:
        """Headline figures: counts, latency, SLO, scaling times, instance-hours and cost."""
        rq = self.requests
        return {"requests": len(rq), "served": rq.count(DONE), "rejected": rq.count(REJECTED),
                "cut": rq.count(CUT), "unserved": rq.count(UNSERVED),
                "ttft_s": self.percentiles("ttft"), "e2e_s": self.percentiles("e2e"),
                "ttft_slo_s": self.ttft_slo_s, "e2e_slo_s": self.e2e_slo_s,
                "slo_attainment": self.slo_attainment(),
                "change_s": self.change_s, "time_to_detect_s": self.time_to_detect_s,
                "time_to_scale_out_s": self.time_to_scale_out_s,
                "time_to_new_capacity_s": self.time_to_new_capacity_s,
                "max_instances": max((c[1] + c[2] + c[3] for c in self.capacity), default=0),
                "instance_hours": self.instance_hours, "cost_usd": self.cost_usd,
                "scaling_activities": len(self.activities), "wall_s": self.wall_s,
                "simulated_requests_per_wall_s": len(rq) / self.wall_s if self.wall_s else None}

    def to_dict(self, include_requests: bool = False) -> dict:
        """JSON-ready; per-request rows only when asked (an hour at 100 req/s is 360k rows)."""
        out = {"summary": self.summary(), "config": self.config, "traffic": self.traffic,
               "duration_s": self.duration_s, "usd_per_hour": self.usd_per_hour,
               "capacity": [list(c) for c in self.capacity],
               "alarms": [vars(e) for e in self.alarms],
               "activities": [vars(a) for a in self.activities],
               "replicas": self.replicas, "datapoints": self.datapoints,
               "timeline": {k: v.tolist() for k, v in self.timeline.items()}}
        if include_requests:
            out["requests"] = self.requests.to_dict()
        return out

    def _lines(self) -> list[tuple[str, str]]:
        s = self.summary()

        def sec(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.2f} s"

        slo = s["slo_attainment"]
        return [
            ("requests", f"{s['requests']} ({s['served']} served, {s['rejected']} rejected, "
                         f"{s['cut']} cut, {s['unserved']} unserved)"),
            ("TTFT p50 / p90 / p99", " / ".join(sec(v) for v in s["ttft_s"].values())),
            ("E2E p50 / p90 / p99", " / ".join(sec(v) for v in s["e2e_s"].values())),
            ("SLO attainment", "n/a (no SLO given)" if slo is None else
             f"{100 * slo:.1f}% (TTFT <= {self.ttft_slo_s} s, E2E <= {self.e2e_slo_s} s)"),
            ("time to detect", sec(s["time_to_detect_s"])),
            ("time to new capacity", sec(s["time_to_new_capacity_s"])),
            ("instances (max)", str(s["max_instances"])),
            ("instance-hours / cost", f"{self.instance_hours:.3f} h / ${self.cost_usd:.2f}"),
            ("scaling activities", str(s["scaling_activities"])),
        ]

    def __str__(self) -> str:
        head = (f"Fleet simulation over {self.duration_s:g} s "
                f"({self.traffic.get('description', '')})")
        width = max(len(k) for k, _ in self._lines())
        return "\n".join([head] + [f"  {k:<{width}}  {v}" for k, v in self._lines()])

    def __repr__(self) -> str:
        s = self.summary()
        return (f"SimulationResult(requests={s['requests']}, rejected={s['rejected']}, "
                f"ttft_p90={s['ttft_s']['p90']}, cost_usd={self.cost_usd:.2f})")

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
                       f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
                       for k, v in self._lines())
        title = html.escape(f"Fleet simulation over {self.duration_s:g} s — "
                            f"{self.traffic.get('description', '')}")
        return f"<div><strong>{title}</strong><table>{rows}</table></div>"
