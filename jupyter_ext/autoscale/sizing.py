"""Deployment sizing from a measured knee: what SageMaker's recommendation jobs return.

The knee is tune's winner: the highest-value concurrency at which one model copy still met
the SLO, and the request rate it served there. From it:

    copies_per_instance = accelerators of the instance // accelerators one copy needs
                          (the fewest whose memory holds the model: planning/planner.py);
                          1 copy on a CPU instance
    capacity_rps        = copies_per_instance * measured req/s of one copy at the knee
    instance_count      = ceil(target_rps / (capacity_rps * UTILISATION))
    target value        = TARGET_FRACTION * knee concurrency, per copy
                          (ConcurrentRequestsPerCopy, inference components) and times
                          copies_per_instance per instance (ConcurrentRequestsPerModel)

scaling before the knee, not at it. The numbers are then run through the fleet simulator
(autoscale/simulate.py): steady Poisson traffic at target_rps against that fleet, with the
knee's measured TTFT/TPOT curve, and the share of requests within the SLO's TTFT/E2E.
"""

from __future__ import annotations

import html
import math
from dataclasses import asdict, dataclass
from typing import Any

from ..catalog import get_instance
from ..errors import OptimizeError
from ..planning.planner import plan

UTILISATION = 0.8      # run copies at 80% of their measured knee throughput
TARGET_FRACTION = 0.8  # the autoscaling target sits below the knee concurrency
SIM_DURATION_S = 900.0


@dataclass
class Sizing:
    """Instances, copies and the autoscaling target for `target_rps`, and the simulator's check."""

    instance: str
    target_rps: float
    knee_concurrency: int
    knee_rps_per_copy: float
    accelerators_per_copy: int
    copies_per_instance: int
    instance_count: int
    concurrent_requests_per_copy: float
    concurrent_requests_per_model: float
    simulated_slo_attainment: float | None = None
    simulated_ttft_p99_s: float | None = None
    simulated_max_instances: int | None = None
    simulated_cost_usd_per_hour: float | None = None
    simulation_ok: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def _lines(self) -> list[tuple[str, str]]:
        sim = ("not run" if self.simulated_slo_attainment is None else
               f"{self.simulated_slo_attainment:.1%} of requests within the SLO, TTFT p99 "
               f"{self.simulated_ttft_p99_s:.3g} s, up to {self.simulated_max_instances} copies"
               f" -> {'ok' if self.simulation_ok else 'NOT ok: add instances or lower the target'}")
        return [("target load", f"{self.target_rps:g} req/s"),
                ("knee (one copy)", f"concurrency {self.knee_concurrency}, {self.knee_rps_per_copy:.3g} req/s"),
                ("copies per instance", f"{self.copies_per_instance} ({self.accelerators_per_copy} accelerator(s) each)"
                 if self.accelerators_per_copy else f"{self.copies_per_instance} (the whole host: no accelerator)"),
                ("instance count", f"{self.instance_count} x {self.instance}"),
                ("ConcurrentRequestsPerCopy target", f"{self.concurrent_requests_per_copy:g}"),
                ("ConcurrentRequestsPerModel target", f"{self.concurrent_requests_per_model:g}"),
                ("fleet simulator", sim)]

    def __str__(self) -> str:
        return "deployment sizing:\n" + "\n".join(f"  {k}: {v}" for k, v in self._lines())

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in self._lines())
        return f"<table><caption>deployment sizing</caption>{rows}</table>"


def accelerators_per_copy(model: str, precision: str, concurrency: int, instance: str) -> int:
    """The fewest accelerators of `instance` one copy fits on (0 on a CPU instance: the host)."""
    spec = get_instance(instance)
    if spec.accelerator is None:
        return 0
    row = plan(model, precision=precision, concurrency=concurrency, instances=[instance]).rows[0]
    per = spec.accelerator_memory_gb or 0
    need = row.needed_gb - row.overhead_gb
    for n in range(1, spec.accelerator_count + 1):
        if spec.accelerator_count % n == 0 and need + 1.5 * n <= 0.9 * per * n:
            return n
    raise OptimizeError(f"{model} at {precision} does not fit on {instance} at concurrency {concurrency}; "
                        "pick a larger instance or a smaller precision")


def size_deployment(result: Any, target_rps: float, *, precision: str = "bf16", knee: Any = None,
                    simulate_check: bool = True, seed: int = 0) -> Sizing:
    """Sizing for `target_rps` from a TuneResult (its winner and measured results), checked
    in the fleet simulator (module docstring)."""
    if not isinstance(target_rps, (int, float)) or not target_rps > 0:
        raise OptimizeError(f"--target-rps must be > 0 requests/s (got {target_rps!r})")
    w = knee or result.winner
    if w is None:
        raise OptimizeError("no candidate met the SLO, so there is no knee to size from")
    if not w.request_rps > 0:
        raise OptimizeError(f"the knee ({w.candidate} at concurrency {w.concurrency}) served no requests")
    spec = get_instance(result.instance)
    acc = accelerators_per_copy(result.model, precision, w.concurrency, result.instance)
    copies = max(1, spec.accelerator_count // acc) if spec.accelerator else 1
    capacity = copies * w.request_rps
    count = max(1, math.ceil(target_rps / (capacity * UTILISATION)))
    per_copy = max(1.0, math.floor(TARGET_FRACTION * w.concurrency))
    sizing = Sizing(result.instance, float(target_rps), w.concurrency, w.request_rps, acc, copies, count,
                    per_copy, per_copy * copies)
    bench = result.results.get(w.candidate)
    if simulate_check and bench is not None:
        _simulate(sizing, bench, result, spec.usd_per_hour, seed)
    return sizing


def _simulate(sizing: Sizing, bench: Any, result: Any, usd_per_hour: float, seed: int) -> None:
    """Steady Poisson traffic at the target rate against the sized fleet (copies as replicas)."""
    from ..bench.slo import SLO
    from . import sim_traffic
    from .policy import AutoscalingConfig
    from .simulate import FleetConfig, ServiceCurve, simulate

    slo = SLO.parse(result.slo)
    copies = sizing.instance_count * sizing.copies_per_instance
    config = AutoscalingConfig(min_capacity=copies, max_capacity=2 * copies,
                               target_value=sizing.concurrent_requests_per_copy)
    curve = ServiceCurve.from_result(bench)
    out_tokens = max(1, int(round(bench.levels[0].metrics.mean_output_tokens or 1)))
    fleet = FleetConfig.from_autoscaling(config, curve, usd_per_hour=usd_per_hour / sizing.copies_per_instance,
                                         max_num_seqs=max(32, 2 * sizing.knee_concurrency))
    traffic = sim_traffic.poisson(sizing.target_rps, SIM_DURATION_S, output_tokens=out_tokens, seed=seed)
    sim = simulate(traffic, fleet, seed=seed, ttft_slo_s=slo.threshold("ttft") or math.inf,
                   e2e_slo_s=slo.threshold("e2e"))
    s = sim.summary()
    sizing.simulated_slo_attainment = s["slo_attainment"]
    sizing.simulated_ttft_p99_s = (s["ttft_s"] or {}).get("p99") if isinstance(s["ttft_s"], dict) else None
    sizing.simulated_max_instances = s["max_instances"]
    sizing.simulated_cost_usd_per_hour = s["cost_usd"] / (SIM_DURATION_S / 3600) if s["cost_usd"] else None
    sizing.simulation_ok = s["slo_attainment"] is not None and s["slo_attainment"] >= 0.95
