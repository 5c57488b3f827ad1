"""Step scaling settings for autoscale.policy, validated the way AWS will judge them.

A step policy maps how far the metric is past its alarm threshold to a capacity change. AWS
refuses (or silently mis-scales with) steps that overlap, leave gaps, or do not start at the
threshold; checking here turns that into an AutoscaleError that says which steps and how to
fix them, before anything is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import AutoscaleError

UP = ("GreaterThanThreshold", "GreaterThanOrEqualToThreshold")
DOWN = ("LessThanThreshold", "LessThanOrEqualToThreshold")
_CHOICES = {"adjustment_type": ("ChangeInCapacity", "ExactCapacity", "PercentChangeInCapacity"),
            "metric_aggregation_type": ("Average", "Minimum", "Maximum"),
            "statistic": ("Average", "Minimum", "Maximum", "Sum", "SampleCount"), "comparison": UP + DOWN}


@dataclass(frozen=True)
class StepAdjustment:
    """Change capacity by `adjustment` while the metric is in [threshold + lower, threshold +
    upper): bounds are relative to the alarm threshold, None means unbounded."""

    lower: float | None
    upper: float | None
    adjustment: int

    def to_api(self) -> dict[str, Any]:
        d: dict[str, Any] = {"ScalingAdjustment": self.adjustment}
        if self.lower is not None:
            d["MetricIntervalLowerBound"] = float(self.lower)
        if self.upper is not None:
            d["MetricIntervalUpperBound"] = float(self.upper)
        return d


@dataclass
class StepScaling:
    """A step scaling policy on ConcurrentRequestsPerModel (per copy for a component) and the
    CloudWatch alarm that triggers it. Period 10 or 30 s reads the high-resolution metric."""

    threshold: float
    steps: list[StepAdjustment]
    comparison: str = "GreaterThanOrEqualToThreshold"
    adjustment_type: str = "ChangeInCapacity"
    metric_aggregation_type: str = "Maximum"
    cooldown_s: int = 60
    statistic: str = "Maximum"
    period_s: int = 10
    evaluation_periods: int = 3
    datapoints_to_alarm: int = 3
    min_adjustment_magnitude: int | None = None

    def __post_init__(self) -> None:
        self.steps = [_as_step(s) for s in self.steps]
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise AutoscaleError(f"step.{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if not (self.period_s in (10, 20, 30) or (self.period_s > 0 and self.period_s % 60 == 0)):
            raise AutoscaleError(f"step.period_s must be 10, 20, 30 or a multiple of 60, got {self.period_s}")
        if self.cooldown_s < 0 or self.evaluation_periods < 1 or not 1 <= self.datapoints_to_alarm <= self.evaluation_periods:
            raise AutoscaleError("step: cooldown_s must be >= 0 and 1 <= datapoints_to_alarm <= evaluation_periods "
                                 f"(got {self.cooldown_s}, {self.datapoints_to_alarm}, {self.evaluation_periods})")
        if self.min_adjustment_magnitude is not None and self.adjustment_type != "PercentChangeInCapacity":
            raise AutoscaleError("step.min_adjustment_magnitude only applies to PercentChangeInCapacity; remove it")
        if self.adjustment_type == "ExactCapacity" and any(s.adjustment < 0 for s in self.steps):
            raise AutoscaleError("step: ExactCapacity adjustments are capacities and cannot be negative")
        self.steps = _checked_steps(self.steps, self.comparison in UP)

    def policy_configuration(self) -> dict[str, Any]:
        conf: dict[str, Any] = {"AdjustmentType": self.adjustment_type, "Cooldown": self.cooldown_s,
                                "MetricAggregationType": self.metric_aggregation_type,
                                "StepAdjustments": [s.to_api() for s in self.steps]}
        if self.min_adjustment_magnitude is not None:
            conf["MinAdjustmentMagnitude"] = self.min_adjustment_magnitude
        return conf

    def alarm_parameters(self) -> dict[str, Any]:
        return {"Statistic": self.statistic, "Period": self.period_s, "EvaluationPeriods": self.evaluation_periods,
                "DatapointsToAlarm": self.datapoints_to_alarm, "Threshold": float(self.threshold),
                "ComparisonOperator": self.comparison}


def _as_step(s: Any) -> StepAdjustment:
    if isinstance(s, StepAdjustment):
        return s
    if isinstance(s, dict):
        return StepAdjustment(s.get("lower"), s.get("upper"), s["adjustment"])
    return StepAdjustment(*s)


def _checked_steps(steps: list[StepAdjustment], upward: bool) -> list[StepAdjustment]:
    """Steps sorted, or AutoscaleError: AWS needs contiguous ranges that cover the whole breach
    side of the threshold (from 0 up for a Greater* alarm, from 0 down for a Less* alarm)."""
    if not steps:
        raise AutoscaleError("step.steps is empty; give at least one (lower, upper, adjustment)")
    for s in steps:
        if s.lower is not None and s.upper is not None and s.lower >= s.upper:
            raise AutoscaleError(f"step {s}: lower bound must be below upper bound")
    ordered = sorted(steps, key=lambda s: float("-inf") if s.lower is None else s.lower)
    for a, b in zip(ordered, ordered[1:]):
        if a.upper is None or b.lower is None or a.upper > b.lower:
            raise AutoscaleError(f"steps overlap: {a} and {b}; make each upper bound the next lower bound")
        if a.upper < b.lower:
            raise AutoscaleError(f"gap between steps {a} and {b}: make {a.upper} and {b.lower} equal")
    first, last = ordered[0], ordered[-1]
    if upward and (first.lower != 0 or last.upper is not None):
        raise AutoscaleError("for a GreaterThan alarm the steps must start at 0 (bounds are relative to the "
                             "threshold) and the last must have no upper bound (None)")
    if not upward and (last.upper != 0 or first.lower is not None):
        raise AutoscaleError("for a LessThan alarm the steps must end at 0 (bounds are relative to the "
                             "threshold) and the first must have no lower bound (None)")
    return ordered
