"""Discrete-event simulation of an autoscaled SageMaker-style endpoint, before paying for one.

`simulate(traffic, fleet)` replays arrivals (see sim_traffic) against replicas whose speed
comes from a measured `ServiceCurve`, emits CloudWatch-like metrics, evaluates the
policies' alarms (see sim_policy) and launches or removes instances with realistic delays.
It is deterministic: the traffic's seed and `seed` (random routing) fix every result.

Service model (continuous batching, processor sharing): a replica with n requests in flight
advances each request's prefill at 1/ttft(n) of a prompt per second and its decode at
1/tpot(n) tokens per second, re-evaluated whenever n changes. Each replica keeps two
virtual clocks (prefill progress, decode tokens) so an event costs O(log n), not O(n).
A request produces its first token when its prefill completes, then output_tokens - 1
tokens at TPOT each: E2E = TTFT + (output_tokens - 1) x TPOT at constant load, matching
vLLM's TPOT definition.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from jupyter_ext.autoscale.sim_engine import Engine
from jupyter_ext.autoscale.sim_policy import (Policy, StepAdjustment, StepPolicy, StepScaling,
                                              TargetTracking, policies_from_autoscaling)
from jupyter_ext.autoscale.sim_result import RequestRecords, SimulationResult
from jupyter_ext.autoscale.sim_traffic import Traffic
from jupyter_ext.errors import SimulationError

# The simulator's routers: SageMaker's LEAST_OUTSTANDING_REQUESTS and RANDOM, and sticky sessions.
ROUTERS = ("least_outstanding", "random", "sticky")

__all__ = ["ROUTERS", "ServiceCurve", "FleetConfig", "simulate", "SimulationResult", "TargetTracking",
           "StepPolicy", "StepScaling", "StepAdjustment"]


@dataclass(frozen=True)
class ServiceCurve:
    """Per-replica speed as a function of requests in flight: points (concurrency, ttft_s, tpot_s).

    Between points values are interpolated linearly. Below the smallest measured concurrency
    they stay flat (a replica is not faster than its fastest measurement); above the largest
    they continue along the last segment's slope, never decreasing (a bigger batch is not
    faster per token). `input_tokens` is the prompt length the curve was measured at: when
    given, a request's prefill takes ttft x its input_tokens / input_tokens.
    """

    points: tuple[tuple[int, float, float], ...]
    input_tokens: float | None = None
    source: str = "points"

    def __post_init__(self) -> None:
        pts = sorted((int(c), float(a), float(b)) for c, a, b in self.points) if self.points else []
        if not pts:
            raise SimulationError("ServiceCurve needs at least one (concurrency, ttft_s, tpot_s) "
                                  "point; measure one with `%optimize bench` or use "
                                  "ServiceCurve.estimate(batch1_tok_s=..., "
                                  "saturation_concurrency=...).")
        for c, ttft, tpot in pts:
            if c < 1 or not ttft > 0 or not tpot > 0:
                raise SimulationError(f"curve point ({c}, {ttft}, {tpot}): concurrency must be "
                                      f">= 1 and ttft_s, tpot_s > 0 seconds.")
        if len({c for c, _, _ in pts}) != len(pts):
            raise SimulationError("curve points repeat a concurrency; keep one point per level.")
        if self.input_tokens is not None and not self.input_tokens > 0:
            raise SimulationError("ServiceCurve input_tokens must be > 0 (or None to ignore "
                                  "prompt length).")
        object.__setattr__(self, "points", tuple(pts))

    def at(self, n: float) -> tuple[float, float]:
        """(ttft_s, tpot_s) with n requests in flight."""
        pts = self.points
        if len(pts) == 1 or n <= pts[0][0]:
            return pts[0][1], pts[0][2]
        if n >= pts[-1][0]:
            return self._beyond(n)
        for (c0, a0, b0), (c1, a1, b1) in zip(pts, pts[1:]):
            if c0 <= n <= c1:
                w = (n - c0) / (c1 - c0)
                return a0 + w * (a1 - a0), b0 + w * (b1 - b0)
        raise AssertionError("unreachable: n lies between the first and last points")

    def _beyond(self, n: float) -> tuple[float, float]:
        (c0, a0, b0), (c1, a1, b1) = self.points[-2], self.points[-1]
        w = (n - c1) / (c1 - c0)
        return max(a1, a1 + w * (a1 - a0)), max(b1, b1 + w * (b1 - b0))

    def table(self, max_n: int) -> tuple[list[float], list[float]]:
        """ttft and tpot for n = 0..max_n (index 0 repeats n = 1), for O(1) look-ups."""
        rows = [self.at(max(1, n)) for n in range(max_n + 1)]
        return [r[0] for r in rows], [r[1] for r in rows]

    @classmethod
    def from_result(cls, result: Any, input_tokens: float | None = None) -> "ServiceCurve":
        """From a benchmark result: each of result.levels gives .concurrency and the p50 of
        .metrics.ttft and .metrics.tpot in seconds."""
        try:
            pts = [(lv.concurrency, lv.metrics.ttft.p50, lv.metrics.tpot.p50)
                   for lv in result.levels]
        except AttributeError as exc:
            raise SimulationError(f"cannot read a service curve from {type(result).__name__}: "
                                  f"expected .levels with .concurrency and .metrics.ttft.p50 / "
                                  f".metrics.tpot.p50 ({exc}).") from exc
        return cls(points=tuple(pts), input_tokens=input_tokens, source="benchmark result")

    @classmethod
    def estimate(cls, batch1_tok_s: float, saturation_concurrency: float, ttft_s: float = 0.25,
                 max_concurrency: int = 256, input_tokens: float | None = None) -> "ServiceCurve":
        """A curve for a model never measured, from two figures.

        tpot(n) = tpot(1) x sqrt(1 + ((n - 1) / saturation)^2): decode is memory-bound, so
        per-request speed holds while the batch is small, and total throughput levels off at
        about saturation x batch1_tok_s. TTFT grows by the same factor. A rough guide only.
        """
        if not batch1_tok_s > 0 or not saturation_concurrency > 0 or not ttft_s > 0:
            raise SimulationError("estimate needs batch1_tok_s > 0, saturation_concurrency > 0 "
                                  "and ttft_s > 0.")
        levels = sorted({1, *(2 ** k for k in range(1, 16) if 2 ** k <= max_concurrency),
                         max(1, int(max_concurrency))})
        pts = []
        for n in levels:
            slow = math.sqrt(1.0 + ((n - 1) / saturation_concurrency) ** 2)
            pts.append((n, ttft_s * slow, slow / batch1_tok_s))
        return cls(points=tuple(pts), input_tokens=input_tokens,
                   source=f"estimate: {batch1_tok_s:g} tok/s at batch 1, saturation "
                          f"{saturation_concurrency:g}")

    def to_dict(self) -> dict:
        return {"points": [list(p) for p in self.points], "input_tokens": self.input_tokens,
                "source": self.source}


@dataclass
class FleetConfig:
    """The endpoint: capacity bounds, replica limits, routing, launch delays, price, policies.

    Launch delays are illustrative defaults for an 8B model on one GPU instance (not
    measured): a new instance serves after provisioning_s + container_start_s + model load,
    where model load is model_load_cached_s when compile_cache is on. metric_delay_s is how
    long after its period ends a datapoint reaches the alarm (default 10 s; a float for
    every metric or a dict by metric name).
    """

    curve: ServiceCurve
    policies: Sequence[Policy] = ()
    min_capacity: int = 1
    max_capacity: int = 4
    initial_capacity: int | None = None
    max_num_seqs: int = 32
    routing: str = "least_outstanding"
    prefix_hit_factor: float = 0.2  # prefill work of a session turn on the replica holding its prefix
    at_zero: str = "reject"
    scale_in_mode: str = "drain"
    provisioning_s: float = 180.0
    container_start_s: float = 60.0
    model_load_s: float = 120.0
    model_load_cached_s: float = 60.0
    compile_cache: bool = False
    usd_per_hour: float = 0.0
    metric_delay_s: float | dict[str, float] = 10.0

    @classmethod
    def from_autoscaling(cls, config: Any, curve: ServiceCurve, **kw: Any) -> "FleetConfig":
        """The fleet an `autoscale.policy.AutoscalingConfig` would run: its capacity bounds
        and the policies `attach` creates (see sim_policy.policies_from_autoscaling)."""
        return cls(curve=curve, policies=policies_from_autoscaling(config),
                   min_capacity=config.min_capacity, max_capacity=config.max_capacity, **kw)

    @property
    def launch_delay_s(self) -> float:
        load = self.model_load_cached_s if self.compile_cache else self.model_load_s
        return self.provisioning_s + self.container_start_s + load

    def delay_for(self, metric: str) -> float:
        if isinstance(self.metric_delay_s, dict):
            return float(self.metric_delay_s.get(metric, 10.0))
        return float(self.metric_delay_s)

    def validate(self) -> None:
        """Raise SimulationError naming the first inconsistent setting and how to fix it."""
        start = self.min_capacity if self.initial_capacity is None else self.initial_capacity
        if self.min_capacity < 0 or self.min_capacity > self.max_capacity:
            raise SimulationError(f"min_capacity={self.min_capacity} > max_capacity="
                                  f"{self.max_capacity} (or negative): need 0 <= min <= max.")
        if not self.min_capacity <= start <= self.max_capacity:
            raise SimulationError(f"initial_capacity={start} lies outside [{self.min_capacity}, "
                                  f"{self.max_capacity}].")
        if self.max_num_seqs < 1:
            raise SimulationError("max_num_seqs must be >= 1 (vLLM's --max-num-seqs).")
        choices = {"routing": ROUTERS, "at_zero": ("reject", "buffer"),
                   "scale_in_mode": ("drain", "cut")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise SimulationError(f"{name}={getattr(self, name)!r}: use one of {allowed}.")
        if not 0 <= self.prefix_hit_factor <= 1:
            raise SimulationError(f"prefix_hit_factor={self.prefix_hit_factor}: a prefix-cache hit leaves a "
                                  f"fraction in [0, 1] of the prefill to do (0.2: a fifth).")
        delays = [self.provisioning_s, self.container_start_s, self.model_load_s,
                  self.model_load_cached_s, self.usd_per_hour]
        delays += list(self.metric_delay_s.values()) if isinstance(self.metric_delay_s, dict) \
            else [self.metric_delay_s]
        if any(d < 0 for d in delays):
            raise SimulationError("delays, metric_delay_s and usd_per_hour must be >= 0.")
        for policy in self.policies:
            policy.validate()

    def to_dict(self) -> dict:
        keys = ("min_capacity", "max_capacity", "initial_capacity", "max_num_seqs", "routing", "prefix_hit_factor",
                "at_zero", "scale_in_mode", "provisioning_s", "container_start_s", "model_load_s",
                "model_load_cached_s", "compile_cache", "usd_per_hour", "metric_delay_s")
        out = {k: getattr(self, k) for k in keys}
        out["launch_delay_s"] = self.launch_delay_s
        out["curve"] = self.curve.to_dict()
        out["policies"] = [{"type": type(p).__name__, "label": p.label, **_policy_fields(p)}
                           for p in self.policies]
        return out


def _policy_fields(policy: Policy) -> dict:
    if isinstance(policy, StepPolicy):
        return {"metric": policy.metric, "name": policy.name,
                "step_scaling": {**policy.scaling.policy_configuration(),
                                 **policy.scaling.alarm_parameters()}}
    return dict(vars(policy))


def simulate(traffic: Traffic, fleet: FleetConfig, *, until_s: float | None = None,
             seed: int = 0, ttft_slo_s: float | None = None,
             e2e_slo_s: float | None = None) -> SimulationResult:
    """Run the fleet through the traffic and return what happened.

    Metrics, alarms, scaling and billing run up to until_s (default: the traffic's
    duration); requests still in flight then are finished at the capacity of that moment.
    seed drives random routing only (the traffic carries its own seed).
    """
    fleet.validate()
    until = traffic.duration_s if until_s is None else float(until_s)
    if len(traffic) and until < float(traffic.arrivals[-1]):
        raise SimulationError(f"until_s={until_s} ends before the last arrival "
                              f"({traffic.arrivals[-1]:.1f} s); leave it out or make it longer.")
    for name, slo in (("ttft_slo_s", ttft_slo_s), ("e2e_slo_s", e2e_slo_s)):
        if slo is not None and not slo > 0:
            raise SimulationError(f"{name}={slo}: an SLO must be > 0 seconds (or None).")
    wall0 = time.perf_counter()
    engine = Engine(traffic, fleet, until, seed)
    engine.run()
    wall = time.perf_counter() - wall0
    return _result(engine, traffic, fleet, until, wall, ttft_slo_s, e2e_slo_s)


def _result(engine: Engine, traffic: Traffic, fleet: FleetConfig, until: float, wall: float,
            ttft_slo_s: float | None, e2e_slo_s: float | None) -> SimulationResult:
    records = RequestRecords(
        arrival=traffic.arrivals, start=np.array(engine.start), first_token=np.array(engine.first),
        end=np.array(engine.end), replica=np.array(engine.rep, dtype=np.int32),
        status=np.array(engine.status, dtype=np.int8), input_tokens=traffic.input_tokens,
        output_tokens=traffic.output_tokens)
    cols = ("t", "arrival_rate", "inflight", "in_service", "pending", "draining", "buffered")
    rows = np.array(engine.rows, dtype=float).reshape(-1, len(cols))
    replicas = [{"replica": r.idx, "initial": r.idx < engine.initial_count,
                 "launched_s": r.launched, "ready_s": r.ready, "ended_s": r.ended,
                 "first_served_s": r.first_start, "served": r.served} for r in engine.replicas]
    datapoints = {f"{m}@{p}s" + ("" if st in ("Average", "Sum") else f" {st}"):
                  {"t": engine.datapoint_t[(m, p, st)], "value": engine.datapoints[(m, p, st)]}
                  for m, p, st in engine.series_keys}
    return SimulationResult(
        requests=records, timeline={c: rows[:, j] for j, c in enumerate(cols)},
        capacity=engine.capacity, alarms=engine.autoscaler.events, activities=engine.activities,
        replicas=replicas, datapoints=datapoints, duration_s=until,
        instance_hours=engine.area_bill / 3600.0, usd_per_hour=fleet.usd_per_hour,
        change_s=traffic.change_s, ttft_slo_s=ttft_slo_s, e2e_slo_s=e2e_slo_s, wall_s=wall,
        config=fleet.to_dict(), traffic=traffic.to_dict(),
        prefix_hits=engine.hits / engine.follow_ups if engine.follow_ups else 0.0)
