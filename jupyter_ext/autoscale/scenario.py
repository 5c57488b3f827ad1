"""One simulation request, as a value: the service curve's source, the policy, the traffic.

`Scenario` holds what a face asks for (a bench result or two figures for the curve, the
autoscaling settings, a ramp and its length, the price, the TTFT SLO) with the defaults
every face shows; `run(scenario)` returns the `SimulationReport` (summary and timeline).
The CLI, the magic and the autoscale panel all build a Scenario, so their defaults (an hour
of the 0:1,600:3,900:6 ramp) cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .policy import AutoscalingConfig
from .report import SimulationReport
from .sim_traffic import DEFAULT_DURATION_S, DEFAULT_RAMP, parse_ramp

# Without a measured result: a per-user 30 tok/s at batch 1, decode slowing past 16 in flight.
DEFAULT_BATCH1_TOK_S = 30.0
DEFAULT_SATURATION = 16.0
DEFAULT_USD_PER_HOUR = 1.515  # ml.g5.2xlarge on demand, us-east-1 (catalog snapshot)
DEFAULT_MAX_CAPACITY = 20     # a simulation may look further than the attach default (4)


@dataclass
class Scenario:
    """What to simulate. `result` is a BenchResult (saved or not) or the path of one; without
    it the curve is estimated from `batch1_tok_s` and `saturation`."""

    config: AutoscalingConfig = field(default_factory=lambda: AutoscalingConfig(max_capacity=DEFAULT_MAX_CAPACITY))
    result: Any = None
    batch1_tok_s: float = DEFAULT_BATCH1_TOK_S
    saturation: float = DEFAULT_SATURATION
    ramp: str = DEFAULT_RAMP
    duration_s: float = DEFAULT_DURATION_S
    usd_per_hour: float = DEFAULT_USD_PER_HOUR
    compile_cache: bool = False
    ttft_slo_s: float = 2.0
    seed: int = 0

    def steps(self) -> list[tuple[float, float]]:
        return parse_ramp(self.ramp)  # SimulationError naming the form on a bad ramp

    def curve(self) -> Any:
        from .simulate import ServiceCurve

        if self.result is None:
            return ServiceCurve.estimate(self.batch1_tok_s, self.saturation)
        result = self.result
        if isinstance(result, (str, Path)):
            from ..bench.result import BenchResult

            result = BenchResult.load(str(result))
        return ServiceCurve.from_result(result)


def run(scenario: Scenario, title: str | None = None) -> SimulationReport:
    """Simulate the scenario: the fleet its autoscaling would run under its traffic ramp."""
    from . import sim_traffic
    from .simulate import FleetConfig, simulate

    steps = scenario.steps()
    fleet = FleetConfig.from_autoscaling(scenario.config, scenario.curve(), usd_per_hour=scenario.usd_per_hour,
                                         compile_cache=scenario.compile_cache)
    traffic = sim_traffic.ramp(steps, scenario.duration_s, seed=scenario.seed)
    return SimulationReport.of(simulate(traffic, fleet, seed=scenario.seed, ttft_slo_s=scenario.ttft_slo_s), title)
