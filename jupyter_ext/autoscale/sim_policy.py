"""Scaling policies and the CloudWatch alarms behind them, as the fleet simulation runs them.

The semantics follow AWS's documentation for Application Auto Scaling on SageMaker:
- target tracking creates two alarms: scale out when the metric is above the target for
  3 of 3 datapoints, scale in when it is below 0.9 x target for 15 minutes of datapoints;
  desired = ceil(in_service * metric / target), clamped to [min, max];
- step scaling (the same StepScaling object autoscale.policy attaches) maps
  (metric - threshold) to a StepAdjustment (ChangeInCapacity,
  ExactCapacity or PercentChangeInCapacity); above the threshold a step's lower bound is
  inclusive and its upper bound exclusive, below it the other way round;
- an alarm in ALARM re-invokes its Auto Scaling action every 60 s while it stays there;
- a policy scales on the average of the datapoints in its alarm's evaluation window (step
  scaling's MetricAggregationType; target tracking uses Average);
- during a scale-out cooldown, capacity added by the initiating activity counts as part of
  the capacity: a policy adds more only when it asks for a larger scale-out;
- with several policies, any may scale out; scale-in happens only when every policy that
  can scale in agrees, and then to the largest capacity any of them proposes.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any

from jupyter_ext.autoscale.policy_steps import StepAdjustment, StepScaling
from jupyter_ext.errors import SimulationError

CONCURRENCY = "ConcurrentRequestsPerModel"  # Average in-flight per instance (high resolution)
INVOCATIONS = "InvocationsPerInstance"  # Sum of invocations per instance in the period
NO_CAPACITY = "NoCapacityInvocationFailures"  # Sum of requests that met zero capacity
METRICS = (CONCURRENCY, INVOCATIONS, NO_CAPACITY)
ACTION_REPEAT_S = 60.0
_STATISTICS = ("Average", "Maximum", "Minimum")
_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
_AGGREGATES = {"Average": lambda v: sum(v) / len(v), "Minimum": min, "Maximum": max}


@dataclass(frozen=True)
class AlarmEvent:
    """An alarm changing state (OK <-> ALARM) at time t, with the latest datapoint."""

    t: float
    policy: str
    alarm: str
    state: str
    value: float | None


@dataclass(frozen=True)
class ScalingActivity:
    """A change of desired capacity; ready_s is when the added instances serve (None: scale-in)."""

    t: float
    policy: str
    direction: str
    from_capacity: int
    to_capacity: int
    ready_s: float | None = None


def _check_period(metric: str, period_s: int) -> None:
    if metric not in METRICS:
        raise SimulationError(f"metric {metric!r} is not simulated; use one of "
                              f"{', '.join(METRICS)}.")
    ok = period_s in (10, 20, 30) or (period_s > 0 and period_s % 60 == 0)
    if metric == INVOCATIONS and period_s % 60:
        ok = False
    if not ok:
        raise SimulationError(f"period_s={period_s} for {metric}: CloudWatch periods are 10, 20, "
                              f"30 (high resolution; not for {INVOCATIONS}) or a multiple of 60.")


class Alarm:
    """M-of-N evaluation of one metric against a threshold; missing datapoints do not breach."""

    __slots__ = ("name", "key", "threshold", "op", "m", "n", "direction", "aggregate",
                 "state", "last_action", "last_value")

    def __init__(self, name: str, key: tuple[str, int, str], threshold: float, op: str,
                 datapoints: int, periods: int, aggregate: str = "Average") -> None:
        self.name, self.key, self.threshold = name, key, float(threshold)
        self.op, self.m, self.n = op, int(datapoints), int(periods)
        self.direction = "out" if op in (">", ">=") else "in"
        self.aggregate = _AGGREGATES[aggregate]
        self.state, self.last_action, self.last_value = "OK", -math.inf, None

    def evaluate(self, values: list) -> bool:
        """Look at the latest n datapoints; return True when the state changed.

        last_value, which the policy scales on, aggregates the window's datapoints
        (MetricAggregationType, Average by default) rather than taking the last one alone:
        a single 10 s datapoint is noisy enough to make a fleet flap.
        """
        window = values[-self.n:]
        present = [v for v in window if v is not None]
        self.last_value = self.aggregate(present) if present else None
        cmp, thr = _OPS[self.op], self.threshold
        breaching = sum(1 for v in window if v is not None and cmp(v, thr))
        state = "ALARM" if breaching >= self.m else "OK"
        changed, self.state = state != self.state, state
        return changed


@dataclass(frozen=True)
class TargetTracking:
    """Target tracking on a per-instance metric (SageMaker: ConcurrentRequestsPerModel at 10 s,
    or InvocationsPerInstance at 60 s); the defaults are AWS's."""

    target: float
    metric: str = CONCURRENCY
    period_s: int = 10
    scale_out_cooldown_s: float = 300.0
    scale_in_cooldown_s: float = 300.0
    scale_out_datapoints: int = 3
    scale_in_hold_s: float = 900.0
    scale_in_ratio: float = 0.9
    disable_scale_in: bool = False
    name: str = ""

    def validate(self) -> None:
        if not self.target > 0:
            raise SimulationError(f"TargetTracking target={self.target}: the target must be > 0 "
                                  f"(e.g. 5 concurrent requests per instance).")
        _check_period(self.metric, self.period_s)
        if self.scale_out_cooldown_s < 0 or self.scale_in_cooldown_s < 0:
            raise SimulationError("cooldowns must be >= 0 seconds (AWS's default is 300).")
        if self.scale_out_datapoints < 1 or self.scale_in_hold_s < self.period_s:
            raise SimulationError("scale_out_datapoints must be >= 1 and scale_in_hold_s at "
                                  "least one period.")
        if not 0 < self.scale_in_ratio <= 1:
            raise SimulationError(f"scale_in_ratio={self.scale_in_ratio}: use a value in (0, 1].")

    @property
    def statistic(self) -> str:
        return "Average" if self.metric == CONCURRENCY else "Sum"

    @property
    def label(self) -> str:
        return self.name or f"target {self.metric}={self.target:g}@{self.period_s}s"

    def alarms(self) -> list[Alarm]:
        n, key = self.scale_out_datapoints, (self.metric, self.period_s, self.statistic)
        out = [Alarm("scale-out", key, self.target, ">", n, n)]
        if not self.disable_scale_in:
            held = max(1, round(self.scale_in_hold_s / self.period_s))
            out.append(Alarm("scale-in", key, self.scale_in_ratio * self.target, "<", held, held))
        return out

    def cooldown(self, direction: str) -> float:
        return self.scale_out_cooldown_s if direction == "out" else self.scale_in_cooldown_s

    def propose(self, alarm: Alarm, in_service: int, base: int) -> int | None:
        """desired = ceil(in_service * metric / target): the instances that would bring the
        per-instance metric back to the target if the total load stayed the same."""
        if alarm.last_value is None or in_service == 0:
            return None
        return math.ceil(in_service * alarm.last_value / self.target - 1e-9)


_AWS_OPS = {"GreaterThanThreshold": ">", "GreaterThanOrEqualToThreshold": ">=",
            "LessThanThreshold": "<", "LessThanOrEqualToThreshold": "<="}


@dataclass(frozen=True)
class StepPolicy:
    """A step scaling policy as `autoscale.policy` attaches it (a policy_steps.StepScaling,
    validated there the way AWS judges it), watching one simulated metric.

    The alarm reads the metric with the StepScaling's statistic: Average is the period's
    time-weighted in-flight count per instance; Maximum / Minimum take the largest / smallest
    per-instance in-flight count sampled every 10 s in the period (a stand-in for what each
    instance reports). For NoCapacityInvocationFailures the datapoint is the period's count.
    """

    scaling: StepScaling
    metric: str = CONCURRENCY
    name: str = ""

    def validate(self) -> None:
        _check_period(self.metric, self.scaling.period_s)
        if self.metric == CONCURRENCY and self.scaling.statistic not in _STATISTICS:
            raise SimulationError(f"statistic {self.scaling.statistic!r} of {CONCURRENCY} is not "
                                  f"simulated; use one of {', '.join(_STATISTICS)}.")

    @property
    def statistic(self) -> str:
        return self.scaling.statistic if self.metric == CONCURRENCY else "Sum"

    @property
    def label(self) -> str:
        sc = self.scaling
        op = _AWS_OPS[sc.comparison]
        return self.name or f"step {self.metric}{op}{sc.threshold:g}@{sc.period_s}s"

    def alarms(self) -> list[Alarm]:
        sc, op = self.scaling, _AWS_OPS[self.scaling.comparison]
        name = "scale-out" if op in (">", ">=") else "scale-in"
        return [Alarm(name, (self.metric, sc.period_s, self.statistic), sc.threshold, op,
                      sc.datapoints_to_alarm, sc.evaluation_periods, sc.metric_aggregation_type)]

    def cooldown(self, direction: str) -> float:
        return self.scaling.cooldown_s

    def _step_for(self, diff: float) -> StepAdjustment | None:
        above = diff >= 0  # above the threshold: [lower, upper); below it: (lower, upper]
        for s in self.scaling.steps:
            low = -math.inf if s.lower is None else s.lower
            high = math.inf if s.upper is None else s.upper
            if (low <= diff < high) if above else (low < diff <= high):
                return s
        return None

    def propose(self, alarm: Alarm, in_service: int, base: int) -> int | None:
        if alarm.last_value is None:
            return None
        step = self._step_for(alarm.last_value - alarm.threshold)
        if step is None:
            return None
        kind = self.scaling.adjustment_type
        if kind == "ExactCapacity":
            return int(step.adjustment)
        if kind == "ChangeInCapacity":
            return base + int(step.adjustment)
        delta = base * step.adjustment / 100.0
        # AWS rounding: beyond +-1 toward zero; between 0 and +-1 to +-1.
        delta = math.trunc(delta) if abs(delta) >= 1 else math.copysign(1, delta) if delta else 0
        least = self.scaling.min_adjustment_magnitude
        if least and 0 < abs(delta) < least:
            delta = math.copysign(least, delta)
        return base + int(delta)


Policy = TargetTracking | StepPolicy


class _PolicyState:
    __slots__ = ("policy", "label", "alarms", "in_alarm", "last_out_t", "out_base", "last_in_t")

    def __init__(self, policy: Policy, label: str) -> None:
        self.policy, self.label, self.alarms = policy, label, policy.alarms()
        self.in_alarm = next((a for a in self.alarms if a.direction == "in"), None)
        self.last_out_t, self.out_base, self.last_in_t = -math.inf, 0, -math.inf


class Autoscaler:
    """Evaluates the policies' alarms on each new datapoint and decides desired capacity."""

    def __init__(self, policies: list[Policy], min_capacity: int, max_capacity: int) -> None:
        labels = [p.label for p in policies]
        self.states = [_PolicyState(p, lab if labels.count(lab) == 1 else f"{lab} #{i}")
                       for i, (p, lab) in enumerate(zip(policies, labels))]
        self.min, self.max = min_capacity, max_capacity
        self.events: list[AlarmEvent] = []
        self.keys = sorted({a.key for s in self.states for a in s.alarms})

    def evaluate(self, t: float, key: tuple[str, int, str], values: list, in_service: int,
                 desired: int) -> list[tuple[str, str, int, int]]:
        """Alarms on `key` look at `values`; returns decisions (policy, direction, from, to)."""
        fired = []
        for ps in self.states:
            for alarm in ps.alarms:
                if alarm.key != key:
                    continue
                changed = alarm.evaluate(values)
                if changed:
                    self.events.append(AlarmEvent(t, ps.label, alarm.name, alarm.state,
                                                  alarm.last_value))
                repeat = t - alarm.last_action >= ACTION_REPEAT_S - 1e-6
                if alarm.state == "ALARM" and (changed or repeat):
                    alarm.last_action = t
                    fired.append((ps, alarm))
        decisions = []
        for ps, alarm in fired:
            scale = self._scale_out if alarm.direction == "out" else self._scale_in
            new = scale(t, ps, alarm, in_service, desired)
            if new is not None:
                decisions.append((ps.label, alarm.direction, desired, new))
                desired = new
        return decisions

    def _clamp(self, n: int) -> int:
        return max(self.min, min(self.max, n))

    def _scale_out(self, t: float, ps: _PolicyState, alarm: Alarm, in_service: int,
                   desired: int) -> int | None:
        in_cooldown = t < ps.last_out_t + ps.policy.cooldown("out")
        base = ps.out_base if in_cooldown else desired
        proposal = ps.policy.propose(alarm, in_service, base)
        if proposal is None or self._clamp(proposal) <= desired:
            return None
        if not in_cooldown:
            ps.out_base = desired
        ps.last_out_t = t
        return self._clamp(proposal)

    def _scale_in(self, t: float, ps: _PolicyState, alarm: Alarm, in_service: int,
                  desired: int) -> int | None:
        if t < ps.last_in_t + ps.policy.cooldown("in"):
            return None
        proposals = []
        for other in self.states:
            if other.in_alarm is None:
                continue
            if other.in_alarm.state != "ALARM":
                return None
            proposal = other.policy.propose(other.in_alarm, in_service, desired)
            if proposal is None:
                return None
            proposals.append(proposal)
        new = self._clamp(max(proposals))
        if new >= desired:
            return None
        for other in self.states:
            other.last_in_t = t
        return new


def policies_from_autoscaling(config: Any) -> list[Policy]:
    """The policies `autoscale.policy.attach` creates for an AutoscalingConfig, ready to
    simulate: the target tracking policy, the invocations guard, the step policy, and the
    scale-from-zero step on NoCapacityInvocationFailures when min_capacity is 0."""
    cooldowns = {"scale_in_cooldown_s": config.scale_in_cooldown_s,
                 "scale_out_cooldown_s": config.scale_out_cooldown_s}
    if config.metric == "concurrency":
        policies: list[Policy] = [TargetTracking(target=config.target_value, **cooldowns)]
    else:
        policies = [TargetTracking(target=config.target_value, metric=INVOCATIONS, period_s=60,
                                   **cooldowns)]
    if config.guard_invocations_target is not None:
        policies.append(TargetTracking(target=config.guard_invocations_target, metric=INVOCATIONS,
                                       period_s=60, name="invocations guard", **cooldowns))
    if config.step is not None:
        policies.append(StepPolicy(config.step, name="step"))
    if config.min_capacity == 0:
        from_zero = StepScaling(threshold=1.0, steps=[StepAdjustment(0.0, None, 1)],
                                metric_aggregation_type="Maximum", statistic="Maximum",
                                cooldown_s=config.from_zero_cooldown_s, period_s=30,
                                evaluation_periods=1, datapoints_to_alarm=1)
        policies.append(StepPolicy(from_zero, metric=NO_CAPACITY, name="from zero"))
    return policies
