"""Autoscaling policies: attach/show/detach on a moto server (checked with moto_boto boto3 clients),
inference components and scale-to-zero with botocore's Stubber (moto has no
inference-component dimension), and every invalid setting raising AutoscaleError."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
pytest.register_assert_rewrite("aws_fixtures")
# The fixtures load once as a plugin, so both test modules share one moto server.
pytest_plugins = ["aws_fixtures"]
pytestmark = pytest.mark.usefixtures("fake_aws_env")

from jupyter_ext.autoscale.policy import (AutoscalingConfig, StepAdjustment, StepScaling, attach,  # noqa: E402
                                          detach, dry_run, show)
from jupyter_ext.deploy.aws import AwsClients  # noqa: E402
from jupyter_ext.errors import AutoscaleError, AwsPermissionError  # noqa: E402

EP = "jo-test-ep"
PREFIX = f"jo-{EP}-AllTraffic"
POLICY_ARN = ("arn:aws:autoscaling:us-east-1:123456789012:scalingPolicy:0b1a2c3d-0000-4000-8000-000000000000:"
              "resource/sagemaker/inference-component/ic1:policyName/")


def step_up() -> StepScaling:
    return StepScaling(threshold=8, steps=[(0, 4, 1), (4, None, 2)], evaluation_periods=3, datapoints_to_alarm=2)


def test_attach_show_detach_on_moto(moto_clients, moto_boto):
    config = AutoscalingConfig(min_capacity=1, max_capacity=4, target_value=5, guard_invocations_target=120,
                               step=step_up())
    state = attach(EP, config, session=moto_clients)
    assert state.attached and state.warnings == []
    aas, cw = moto_boto("application-autoscaling"), moto_boto("cloudwatch")
    resource = f"endpoint/{EP}/variant/AllTraffic"
    targets = aas.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[resource])["ScalableTargets"]
    assert [(t["MinCapacity"], t["MaxCapacity"], t["ScalableDimension"]) for t in targets] == [
        (1, 4, "sagemaker:variant:DesiredInstanceCount")]
    policies = {p["PolicyName"]: p for p in aas.describe_scaling_policies(
        ServiceNamespace="sagemaker", ResourceId=resource)["ScalingPolicies"]}
    assert set(policies) == {f"{PREFIX}-concurrency", f"{PREFIX}-invocations-guard", f"{PREFIX}-step"}
    tt = policies[f"{PREFIX}-concurrency"]["TargetTrackingScalingPolicyConfiguration"]
    assert tt["PredefinedMetricSpecification"]["PredefinedMetricType"] == \
        "SageMakerVariantConcurrentRequestsPerModelHighResolution"
    assert (tt["TargetValue"], tt["ScaleInCooldown"], tt["ScaleOutCooldown"]) == (5.0, 300, 300)
    guard = policies[f"{PREFIX}-invocations-guard"]["TargetTrackingScalingPolicyConfiguration"]
    assert guard["PredefinedMetricSpecification"]["PredefinedMetricType"] == "SageMakerVariantInvocationsPerInstance"
    assert guard["DisableScaleIn"] is False
    alarm = cw.describe_alarms(AlarmNames=[f"{PREFIX}-step"])["MetricAlarms"][0]
    assert alarm["AlarmActions"] == [policies[f"{PREFIX}-step"]["PolicyARN"]]
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Period"], alarm["Threshold"]) == (
        "AWS/SageMaker", "ConcurrentRequestsPerModel", 10, 8.0)
    assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {"EndpointName": EP, "VariantName": "AllTraffic"}
    steps = policies[f"{PREFIX}-step"]["StepScalingPolicyConfiguration"]["StepAdjustments"]
    assert [s.get("MetricIntervalUpperBound") for s in steps] == [4.0, None]

    seen = show(EP, session=moto_clients)
    assert seen.attached and (seen.min_capacity, seen.max_capacity) == (1, 4)
    assert {p["name"] for p in seen.policies} == set(policies)
    assert [a["name"] for a in seen.alarms] == [f"{PREFIX}-step"]
    assert "ConcurrentRequestsPerModel" in str(seen) and "<table>" in seen._repr_html_()
    assert seen.to_dict()["resource_id"] == resource

    gone = detach(EP, session=moto_clients)
    assert not gone.attached
    assert aas.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[resource])["ScalableTargets"] == []
    assert aas.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=resource)["ScalingPolicies"] == []
    assert cw.describe_alarms(AlarmNamePrefix=f"{PREFIX}-")["MetricAlarms"] == []
    with pytest.raises(AutoscaleError, match="nothing to detach"):
        detach(EP, session=moto_clients)


def test_reattach_updates_in_place(moto_clients, moto_boto):
    attach(EP, AutoscalingConfig(max_capacity=2), session=moto_clients)
    attach(EP, AutoscalingConfig(max_capacity=6, target_value=3), session=moto_clients)
    seen = show(EP, session=moto_clients)
    assert seen.max_capacity == 6 and len(seen.policies) == 1
    assert "at 3.0" in seen.policies[0]["summary"]


def test_scale_to_zero_on_an_inference_component(boto_stub):
    aas, aas_stub = boto_stub("application-autoscaling")
    cw, cw_stub = boto_stub("cloudwatch")
    ids = {"ServiceNamespace": "sagemaker", "ResourceId": "inference-component/ic1",
           "ScalableDimension": "sagemaker:inference-component:DesiredCopyCount"}
    prefix = f"jo-{EP}-ic1"
    aas_stub.add_response("register_scalable_target", {}, {**ids, "MinCapacity": 0, "MaxCapacity": 2})
    aas_stub.add_response("put_scaling_policy", {"PolicyARN": POLICY_ARN + "c"}, {
        **ids, "PolicyName": f"{prefix}-concurrency", "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": 2.0, "ScaleInCooldown": 600, "ScaleOutCooldown": 60, "DisableScaleIn": False,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "SageMakerInferenceComponentConcurrentRequestsPerCopyHighResolution"}}})
    aas_stub.add_response("put_scaling_policy", {"PolicyARN": POLICY_ARN + "z"}, {
        **ids, "PolicyName": f"{prefix}-from-zero", "PolicyType": "StepScaling",
        "StepScalingPolicyConfiguration": {
            "AdjustmentType": "ChangeInCapacity", "MetricAggregationType": "Maximum", "Cooldown": 60,
            "StepAdjustments": [{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}]}})
    cw_stub.add_response("put_metric_alarm", {}, {
        "AlarmName": f"{prefix}-from-zero", "AlarmDescription": "jupyter-optimize scale from zero",
        "Namespace": "AWS/SageMaker", "MetricName": "NoCapacityInvocationFailures",
        "Dimensions": [{"Name": "InferenceComponentName", "Value": "ic1"}], "Statistic": "Maximum",
        "Period": 30, "EvaluationPeriods": 1, "DatapointsToAlarm": 1, "Threshold": 1.0,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold", "TreatMissingData": "missing",
        "AlarmActions": [POLICY_ARN + "z"]})
    config = AutoscalingConfig(min_capacity=0, max_capacity=2, target_value=2, scale_in_cooldown_s=600,
                               scale_out_cooldown_s=60)
    state = attach(EP, config, inference_component="ic1",
                   session=AwsClients.from_clients({"application-autoscaling": aas, "cloudwatch": cw}))
    aas_stub.assert_no_pending_responses()
    cw_stub.assert_no_pending_responses()
    assert state.min_capacity == 0 and "rejected" in state.warnings[0] and "retry" in state.warnings[0]
    assert "rejected" in str(state)


def test_step_policy_on_a_component_uses_the_per_copy_metric():
    doc = json.loads(dry_run(EP, AutoscalingConfig(step=step_up()), inference_component="ic1").requests_json)
    alarm = doc["requests"][-1]["params"]
    assert alarm["MetricName"] == "ConcurrentRequestsPerCopy"
    assert alarm["AlarmActions"] == [f"{{PolicyARN of jo-{EP}-ic1-step}}"]
    assert doc["resource_id"] == "inference-component/ic1"


def test_a_failed_attach_removes_what_it_made_and_names_the_permission(boto_stub):
    aas, stub = boto_stub("application-autoscaling")
    ids = {"ServiceNamespace": "sagemaker", "ResourceId": f"endpoint/{EP}/variant/AllTraffic",
           "ScalableDimension": "sagemaker:variant:DesiredInstanceCount"}
    stub.add_response("register_scalable_target", {}, {**ids, "MinCapacity": 1, "MaxCapacity": 4})
    stub.add_client_error("put_scaling_policy", "AccessDeniedException", "not allowed")
    stub.add_response("deregister_scalable_target", {}, ids)
    with pytest.raises(AwsPermissionError, match="application-autoscaling:PutScalingPolicy"):
        attach(EP, session=AwsClients.from_clients({"application-autoscaling": aas}))
    stub.assert_no_pending_responses()


@pytest.mark.parametrize("kwargs, match", [
    ({"min_capacity": 5, "max_capacity": 2}, "max_capacity"),
    ({"target_value": 0}, "target_value must be > 0"),
    ({"target_value": -3}, "target_value must be > 0"),
    ({"scale_in_cooldown_s": -1}, "scale_in_cooldown_s"),
    ({"min_capacity": -1}, "min_capacity"),
    ({"metric": "cpu"}, "concurrency"),
    ({"guard_invocations_target": 0}, "guard_invocations_target"),
])
def test_invalid_settings_raise_autoscale_error(kwargs, match):
    with pytest.raises(AutoscaleError, match=match):
        AutoscalingConfig(**kwargs)


@pytest.mark.parametrize("steps, kwargs, match", [
    ([(0, 5, 1), (4, None, 2)], {}, "overlap"),
    ([(0, 4, 1), (5, None, 2)], {}, "gap"),
    ([(1, None, 1)], {}, "start at 0"),
    ([(0, 4, 1)], {}, "no upper bound"),
    ([(None, -2, -2), (-2, 0, -1)], {"comparison": "LessThanThreshold"}, None),
    ([(None, -2, -1)], {"comparison": "LessThanThreshold"}, "end at 0"),
    ([], {}, "empty"),
    ([(0, None, -1)], {"adjustment_type": "ExactCapacity"}, "cannot be negative"),
    ([(0, None, 1)], {"period_s": 15}, "period_s"),
    ([(0, None, 1)], {"datapoints_to_alarm": 5, "evaluation_periods": 3}, "datapoints_to_alarm"),
    ([(0, None, 1)], {"metric_aggregation_type": "Median"}, "metric_aggregation_type"),
])
def test_step_adjustments_are_validated(steps, kwargs, match):
    if match is None:
        ok = StepScaling(threshold=1, steps=steps, **kwargs)
        assert [s.upper for s in ok.steps] == [-2, 0]
        return
    with pytest.raises(AutoscaleError, match=match):
        StepScaling(threshold=1, steps=steps, **kwargs)


def test_scale_to_zero_needs_an_inference_component(moto_clients, moto_boto):
    with pytest.raises(AutoscaleError, match="inference components"):
        attach(EP, AutoscalingConfig(min_capacity=0), session=moto_clients)
    assert moto_boto("application-autoscaling").describe_scalable_targets(
        ServiceNamespace="sagemaker")["ScalableTargets"] == []


def test_config_round_trips_through_a_dict():
    config = AutoscalingConfig(max_capacity=3, step=step_up())
    again = AutoscalingConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again.step.steps == [StepAdjustment(0, 4, 1), StepAdjustment(4, None, 2)]
    assert again.max_capacity == 3
    with pytest.raises(AutoscaleError, match="invalid autoscaling settings"):
        AutoscalingConfig.from_dict({"max": 3})
