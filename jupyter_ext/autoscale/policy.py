"""Autoscaling for a SageMaker endpoint: Application Auto Scaling policies and CloudWatch alarms.

SageMaker's SDK has no autoscaling helper, so users write these boto3 calls by hand. Here one
validated `AutoscalingConfig` becomes them: a scalable target (an endpoint variant's instance
count, or an inference component's copy count), a target-tracking policy on the
high-resolution concurrency metric (10 s datapoints: scale-out is noticed in under a minute
instead of several), and optionally an invocation-count guard policy, a step policy with its
alarm, and scale-to-zero for inference components. Policy and alarm names are derived from the
endpoint and the variant/component (`jo-<endpoint>-<scope>-...`) so `show` and `detach` find
exactly what `attach` made.
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ..catalog.specs import html_table
from ..deploy.aws import ApiRequest, AwsClients, as_clients, redact
from ..deploy.dryrun import DryRun
from ..errors import AutoscaleError, AwsPermissionError
from .policy_steps import StepAdjustment, StepScaling

NAMESPACE = "sagemaker"
VARIANT_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
COMPONENT_DIMENSION = "sagemaker:inference-component:DesiredCopyCount"
# Predefined metrics of Application Auto Scaling, by (target kind, metric).
PREDEFINED = {
    ("variant", "concurrency"): "SageMakerVariantConcurrentRequestsPerModelHighResolution",
    ("variant", "invocations"): "SageMakerVariantInvocationsPerInstance",
    ("component", "concurrency"): "SageMakerInferenceComponentConcurrentRequestsPerCopyHighResolution",
    ("component", "invocations"): "SageMakerInferenceComponentInvocationsPerCopy",
}
SCALE_TO_ZERO_WARNING = (
    "min_capacity 0: when the component has no copy left, the first request is rejected "
    "(a no-capacity error), not buffered, while a copy starts (minutes for large models); "
    "clients must retry with backoff")

__all__ = ["AutoscalingConfig", "AutoscalingState", "ScalingTarget", "StepAdjustment", "StepScaling",
           "plan_autoscaling", "attach", "show", "detach", "dry_run"]


@dataclass
class AutoscalingConfig:
    """How an endpoint scales. target_value is concurrent requests per instance (variant) or
    per copy (inference component) for metric "concurrency", invocations per minute for
    "invocations". guard_invocations_target adds an invocation-based target tracking policy:
    when a crash makes concurrency collapse, it keeps the fleet from scaling in by mistake
    (Application Auto Scaling scales in only if every policy agrees)."""

    min_capacity: int = 1
    max_capacity: int = 4
    target_value: float = 5.0
    metric: str = "concurrency"
    scale_in_cooldown_s: int = 300
    scale_out_cooldown_s: int = 300
    guard_invocations_target: float | None = None
    step: StepScaling | None = None
    from_zero_cooldown_s: int = 60

    def __post_init__(self) -> None:
        if isinstance(self.step, dict):
            self.step = StepScaling(**self.step)
        ints = ("min_capacity", "max_capacity", "scale_in_cooldown_s", "scale_out_cooldown_s", "from_zero_cooldown_s")
        for name in ints:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise AutoscaleError(f"{name} must be a whole number >= 0, got {value!r}")
        if self.max_capacity < 1 or self.max_capacity < self.min_capacity:
            raise AutoscaleError(f"max_capacity ({self.max_capacity}) must be at least 1 and at least "
                                 f"min_capacity ({self.min_capacity}); raise max_capacity or lower min_capacity")
        if not _positive(self.target_value):
            raise AutoscaleError(f"target_value must be > 0 (requests per instance or copy), got {self.target_value!r}")
        if self.metric not in ("concurrency", "invocations"):
            raise AutoscaleError(f"metric must be 'concurrency' (high-resolution, default) or 'invocations', "
                                 f"got {self.metric!r}")
        if self.guard_invocations_target is not None and not _positive(self.guard_invocations_target):
            raise AutoscaleError(f"guard_invocations_target must be > 0 invocations per minute, "
                                 f"got {self.guard_invocations_target!r}; or leave it out")

    @property
    def scale_to_zero(self) -> bool:
        return self.min_capacity == 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AutoscalingConfig":
        try:
            return cls(**data)
        except TypeError as err:
            raise AutoscaleError(f"invalid autoscaling settings: {err}") from None


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


@dataclass(frozen=True)
class ScalingTarget:
    """What is scaled: an endpoint variant's instances or an inference component's copies."""

    endpoint_name: str
    variant_name: str = "AllTraffic"
    inference_component: str | None = None

    @property
    def kind(self) -> str:
        return "component" if self.inference_component else "variant"

    @property
    def resource_id(self) -> str:
        if self.inference_component:
            return f"inference-component/{self.inference_component}"
        return f"endpoint/{self.endpoint_name}/variant/{self.variant_name}"

    @property
    def dimension(self) -> str:
        return COMPONENT_DIMENSION if self.inference_component else VARIANT_DIMENSION

    @property
    def prefix(self) -> str:
        """Every policy and alarm name we make starts with this (show/detach rely on it)."""
        return f"jo-{self.endpoint_name}-{self.inference_component or self.variant_name}"

    def alarm_dimensions(self) -> list[dict[str, str]]:
        if self.inference_component:
            return [{"Name": "InferenceComponentName", "Value": self.inference_component}]
        return [{"Name": "EndpointName", "Value": self.endpoint_name},
                {"Name": "VariantName", "Value": self.variant_name}]

    def ids(self) -> dict[str, str]:
        return {"ServiceNamespace": NAMESPACE, "ResourceId": self.resource_id, "ScalableDimension": self.dimension}


def _arn_placeholder(policy_name: str) -> str:
    return f"{{PolicyARN of {policy_name}}}"


def plan_autoscaling(target: ScalingTarget, config: AutoscalingConfig) -> list[ApiRequest]:
    """The requests `attach` makes, in order. Alarm actions hold a placeholder for the ARN of
    their policy, which only exists once PutScalingPolicy has answered."""
    if config.scale_to_zero and target.inference_component is None:
        raise AutoscaleError("min_capacity 0 (scale to zero) needs inference components: SageMaker cannot "
                             "scale an endpoint variant below one instance. Set min_capacity >= 1, or deploy "
                             "with inference_component=True and attach to the component")
    reqs = [ApiRequest("application-autoscaling", "RegisterScalableTarget", {
        **target.ids(), "MinCapacity": config.min_capacity, "MaxCapacity": config.max_capacity},
        f"{target.kind} scales between {config.min_capacity} and {config.max_capacity}")]
    reqs.append(_target_tracking(target, f"{target.prefix}-{config.metric}", config.metric,
                                 config.target_value, config))
    if config.guard_invocations_target is not None:
        reqs.append(_target_tracking(target, f"{target.prefix}-invocations-guard", "invocations",
                                     config.guard_invocations_target, config))
    if config.step is not None:
        reqs += _step_policy_and_alarm(target, config.step)
    if config.scale_to_zero:
        reqs += _from_zero(target, config.from_zero_cooldown_s)
    return reqs


def _target_tracking(target: ScalingTarget, name: str, metric: str, value: float,
                     config: AutoscalingConfig) -> ApiRequest:
    predefined = PREDEFINED[(target.kind, metric)]
    return ApiRequest("application-autoscaling", "PutScalingPolicy", {
        "PolicyName": name, **target.ids(), "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": float(value),
            "PredefinedMetricSpecification": {"PredefinedMetricType": predefined},
            "ScaleInCooldown": config.scale_in_cooldown_s,
            "ScaleOutCooldown": config.scale_out_cooldown_s,
            "DisableScaleIn": False}}, f"target tracking: {predefined} at {value:g}")


def _step_policy_and_alarm(target: ScalingTarget, step: StepScaling) -> list[ApiRequest]:
    name = f"{target.prefix}-step"
    metric = "ConcurrentRequestsPerCopy" if target.inference_component else "ConcurrentRequestsPerModel"
    return [
        ApiRequest("application-autoscaling", "PutScalingPolicy", {
            "PolicyName": name, **target.ids(), "PolicyType": "StepScaling",
            "StepScalingPolicyConfiguration": step.policy_configuration()}, "step scaling"),
        ApiRequest("cloudwatch", "PutMetricAlarm", {
            "AlarmName": name, "AlarmDescription": "jupyter-optimize step scaling",
            "Namespace": "AWS/SageMaker", "MetricName": metric, "Dimensions": target.alarm_dimensions(),
            **step.alarm_parameters(), "AlarmActions": [_arn_placeholder(name)]},
            f"alarm on {metric} {step.comparison} {step.threshold:g}")]


def _from_zero(target: ScalingTarget, cooldown_s: int) -> list[ApiRequest]:
    """The only way out of zero copies: a step policy on NoCapacityInvocationFailures
    (requests refused for lack of a copy) that adds one copy."""
    name = f"{target.prefix}-from-zero"
    return [
        ApiRequest("application-autoscaling", "PutScalingPolicy", {
            "PolicyName": name, **target.ids(), "PolicyType": "StepScaling",
            "StepScalingPolicyConfiguration": {
                "AdjustmentType": "ChangeInCapacity", "MetricAggregationType": "Maximum",
                "Cooldown": cooldown_s,
                "StepAdjustments": [{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}]}},
            "scale out from zero copies"),
        ApiRequest("cloudwatch", "PutMetricAlarm", {
            "AlarmName": name, "AlarmDescription": "jupyter-optimize scale from zero",
            "Namespace": "AWS/SageMaker", "MetricName": "NoCapacityInvocationFailures",
            "Dimensions": target.alarm_dimensions(), "Statistic": "Maximum", "Period": 30,
            "EvaluationPeriods": 1, "DatapointsToAlarm": 1, "Threshold": 1.0,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold", "TreatMissingData": "missing",
            "AlarmActions": [_arn_placeholder(name)]}, "alarm on requests refused at zero copies")]


# -- results ----------------------------------------------------------------------------
@dataclass
class AutoscalingState:
    """What autoscaling an endpoint variant or inference component has (as AWS reports it)."""

    endpoint_name: str
    resource_id: str
    scalable_dimension: str
    attached: bool
    min_capacity: int | None = None
    max_capacity: int | None = None
    policies: list[dict[str, Any]] = field(default_factory=list)
    alarms: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def _rows(self) -> list[tuple[str, str]]:
        rows = [("resource", self.resource_id),
                ("capacity", f"{self.min_capacity}..{self.max_capacity}" if self.attached else "not attached")]
        rows += [(f"policy {p['name']}", p["summary"]) for p in self.policies]
        rows += [(f"alarm {a['name']}", a["summary"]) for a in self.alarms]
        return rows

    def __str__(self) -> str:
        lines = [f"Autoscaling of {self.endpoint_name}"] + [f"  {k}: {v}" for k, v in self._rows()]
        return "\n".join(lines + [f"  warning: {w}" for w in self.warnings])

    def _repr_html_(self) -> str:
        warn = "".join(f"<br>&#9888; {html.escape(w)}" for w in self.warnings)
        return html_table(["", ""], self._rows(), caption=f"Autoscaling of {self.endpoint_name}") + warn


def _policy_summary(p: dict[str, Any]) -> dict[str, Any]:
    tt = p.get("TargetTrackingScalingPolicyConfiguration")
    if tt:
        metric = tt.get("PredefinedMetricSpecification", {}).get("PredefinedMetricType", "custom metric")
        summary = f"target tracking {metric} at {tt.get('TargetValue')}"
    else:
        ss = p.get("StepScalingPolicyConfiguration", {})
        summary = f"step scaling ({ss.get('AdjustmentType')}, {len(ss.get('StepAdjustments', []))} steps)"
    return {"name": p["PolicyName"], "type": p.get("PolicyType"), "arn": p.get("PolicyARN"), "summary": summary}


def _alarm_summary(a: dict[str, Any]) -> dict[str, Any]:
    return {"name": a["AlarmName"], "metric": a.get("MetricName"), "state": a.get("StateValue"),
            "summary": f"{a.get('MetricName')} {a.get('ComparisonOperator')} {a.get('Threshold')} "
                       f"({a.get('StateValue', 'not evaluated yet')})"}


def _dims(dimensions: list[dict[str, str]]) -> set[tuple[str, str]]:
    return {(d["Name"], d["Value"]) for d in dimensions}


def _warnings(config: AutoscalingConfig) -> list[str]:
    return [SCALE_TO_ZERO_WARNING] if config.scale_to_zero else []


# -- making it --------------------------------------------------------------------------
def attach(endpoint_name: str, config: AutoscalingConfig | None = None, *, variant_name: str = "AllTraffic",
           inference_component: str | None = None, session: Any = None, region: str | None = None,
           endpoint_url: str | None = None) -> AutoscalingState:
    """Register the target and put the policies and alarms. Re-attaching updates them in place
    (the calls are upserts by name). If a call fails, what this call made is removed again."""
    config = config or AutoscalingConfig()
    target = ScalingTarget(endpoint_name, variant_name, inference_component)
    requests = plan_autoscaling(target, config)
    clients = as_clients(session, region, endpoint_url)
    arns: dict[str, str] = {}
    done: list[ApiRequest] = []
    try:
        for req in requests:
            resp = clients.send(_with_arns(req, arns))
            done.append(req)
            if req.operation == "PutScalingPolicy":
                arns[_arn_placeholder(req.params["PolicyName"])] = resp["PolicyARN"]
    except Exception as err:
        leftovers = _undo(clients, target, done)
        note = (f"could not remove {', '.join(leftovers)}: run detach({endpoint_name!r})" if leftovers
                else "what this call had created was removed")
        cls = type(err) if isinstance(err, (AutoscaleError, AwsPermissionError)) else AutoscaleError
        raise cls(f"attaching autoscaling to {target.resource_id} failed at {req.operation}: {err}; {note}") from err
    policies = [_policy_summary({**r.params, "PolicyARN": arns[_arn_placeholder(r.params["PolicyName"])]})
                for r in requests if r.operation == "PutScalingPolicy"]
    alarms = [_alarm_summary(r.params) for r in requests if r.operation == "PutMetricAlarm"]
    return AutoscalingState(endpoint_name, target.resource_id, target.dimension, True,
                            config.min_capacity, config.max_capacity, policies, alarms, _warnings(config))


def _with_arns(req: ApiRequest, arns: dict[str, str]) -> ApiRequest:
    if req.operation != "PutMetricAlarm":
        return req
    actions = [arns.get(a, a) for a in req.params["AlarmActions"]]
    return ApiRequest(req.service, req.operation, {**req.params, "AlarmActions": actions}, req.purpose)


def _undo(clients: AwsClients, target: ScalingTarget, done: list[ApiRequest]) -> list[str]:
    """Remove what a failed attach made, newest first; return what could not be removed."""
    leftovers = []
    for req in reversed(done):
        name = req.params.get("AlarmName") or req.params.get("PolicyName") or target.resource_id
        try:
            if req.operation == "PutMetricAlarm":
                clients.call("cloudwatch", "DeleteAlarms", AlarmNames=[name])
            elif req.operation == "PutScalingPolicy":
                clients.call("application-autoscaling", "DeleteScalingPolicy", PolicyName=name, **target.ids())
            else:
                clients.call("application-autoscaling", "DeregisterScalableTarget", **target.ids())
        except Exception as err:  # keep undoing the rest; the caller reports each leftover
            leftovers.append(f"{name} ({err})")
    return leftovers


def dry_run(endpoint_name: str, config: AutoscalingConfig | None = None, *, variant_name: str = "AllTraffic",
            inference_component: str | None = None) -> DryRun:
    """The requests `attach` would make (a DryRun; nothing is sent)."""
    target = ScalingTarget(endpoint_name, variant_name, inference_component)
    reqs = plan_autoscaling(target, config or AutoscalingConfig())
    return DryRun(f"Requests to attach autoscaling to {endpoint_name}",
                  json.dumps(redact({"resource_id": target.resource_id, "requests": [r.to_dict() for r in reqs]}), indent=2))


def show(endpoint_name: str, *, variant_name: str = "AllTraffic", inference_component: str | None = None,
         session: Any = None, region: str | None = None, endpoint_url: str | None = None) -> AutoscalingState:
    """The scalable target, every policy on it, and our alarms, as AWS reports them now."""
    target = ScalingTarget(endpoint_name, variant_name, inference_component)
    clients = as_clients(session, region, endpoint_url)
    aas = "application-autoscaling"
    found = clients.call(aas, "DescribeScalableTargets", ServiceNamespace=NAMESPACE,
                         ResourceIds=[target.resource_id], ScalableDimension=target.dimension)
    targets = found.get("ScalableTargets", [])
    policies = clients.call(aas, "DescribeScalingPolicies", **target.ids()).get("ScalingPolicies", [])
    alarms = clients.call("cloudwatch", "DescribeAlarms", AlarmNamePrefix=f"{target.prefix}-").get("MetricAlarms", [])
    # The prefix alone could match another endpoint whose name continues with a hyphen.
    alarms = [a for a in alarms if _dims(a.get("Dimensions", [])) == _dims(target.alarm_dimensions())]
    t = targets[0] if targets else {}
    warnings = [SCALE_TO_ZERO_WARNING] if t.get("MinCapacity") == 0 else []
    return AutoscalingState(endpoint_name, target.resource_id, target.dimension, bool(targets),
                            t.get("MinCapacity"), t.get("MaxCapacity"),
                            [_policy_summary(p) for p in policies], [_alarm_summary(a) for a in alarms], warnings)


def detach(endpoint_name: str, *, variant_name: str = "AllTraffic", inference_component: str | None = None,
           session: Any = None, region: str | None = None, endpoint_url: str | None = None) -> AutoscalingState:
    """Delete our alarms, every policy on the target, then the target itself."""
    clients = as_clients(session, region, endpoint_url)
    before = show(endpoint_name, variant_name=variant_name, inference_component=inference_component,
                  session=clients)
    if not (before.attached or before.policies or before.alarms):
        raise AutoscaleError(f"no autoscaling is attached to {before.resource_id}; nothing to detach "
                             "(check the endpoint, variant or inference component name and the region)")
    target = ScalingTarget(endpoint_name, variant_name, inference_component)
    if before.alarms:
        clients.call("cloudwatch", "DeleteAlarms", AlarmNames=[a["name"] for a in before.alarms])
    for p in before.policies:
        clients.call("application-autoscaling", "DeleteScalingPolicy", PolicyName=p["name"], **target.ids())
    if before.attached:
        clients.call("application-autoscaling", "DeregisterScalableTarget", **target.ids())
    return AutoscalingState(endpoint_name, target.resource_id, target.dimension, False,
                            policies=[], alarms=[], warnings=[])
