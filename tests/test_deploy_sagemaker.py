"""SageMaker deployment: plans (pure), deploy/undeploy on a moto server, what moto lacks with
botocore's Stubber (request shapes checked against the real service model), and retries and
event streams on a scripted_http local HTTP server. No test reaches AWS."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

sys.path.insert(0, str(Path(__file__).parent))
pytest.register_assert_rewrite("aws_fixtures")
# The fixtures load once as a plugin, so both test modules share one moto server.
pytest_plugins = ["aws_fixtures"]
pytestmark = pytest.mark.usefixtures("fake_aws_env")
from aws_fixtures import FAKE_KEY_ID, FAKE_SECRET, REGION, ROLE_ARN, queue_moto_invoke_results, running_moto  # noqa: E402
from eventstream_frames import exception_frame, frame, payload_part, stream_reply  # noqa: E402

from jupyter_ext.deploy import sagemaker as sm  # noqa: E402
from jupyter_ext.deploy import sagemaker_undeploy  # noqa: E402
from jupyter_ext.deploy.aws import AwsClients, RequestRecorder  # noqa: E402
from jupyter_ext.bench.sse import SSEDecoder  # noqa: E402
from jupyter_ext.deploy.sagemaker_invoke import iter_stream_events, iter_stream_text  # noqa: E402
from jupyter_ext.errors import AwsPermissionError, DeployError, EndpointNotFoundError, StackError  # noqa: E402
from jupyter_ext.recipes import recipe_from_dict  # noqa: E402

ARN = "arn:aws:sagemaker:us-east-1:123456789012:"
MOTO_GPU = "ml.g4dn.xlarge"  # a GPU type moto's CreateEndpointConfig accepts (it rejects g5/g6/p4d/p5)


def recipe(**over):
    data = {"name": "ngram-test", "model": "huggingface-llm-mistral-7b-instruct",
            "instance_type": "ml.g5.2xlarge",
            "engine": {"max_model_len": 4096, "max_num_seqs": 32, "dtype": "bfloat16"},
            "speculative": {"method": "ngram", "num_tokens": 5, "prompt_lookup_min": 2, "prompt_lookup_max": 4}}
    data.update(over)
    return recipe_from_dict(data)


def plan(r=None, **kw):
    kw.setdefault("role_arn", ROLE_ARN)
    kw.setdefault("region", REGION)
    return sm.plan_deployment(r or recipe(), kw.pop("endpoint_name", "jo-test-ep"), **kw)


def moto_plan(**kw):
    """A plan whose GPU type moto accepts; the Stubber tests cover the real g5/p5 types."""
    p = plan(**kw)
    for req in p.requests:
        for variant in req.params.get("ProductionVariants", []):
            variant["InstanceType"] = MOTO_GPU
    return p


# -- plans ------------------------------------------------------------------------------
def test_plan_has_the_requests_in_order_with_the_recipe_in_the_environment():
    p = plan()
    assert [r.operation for r in p.requests] == ["CreateModel", "CreateEndpointConfig", "CreateEndpoint"]
    container = p.requests[0].params["PrimaryContainer"]
    env = container["Environment"]
    assert container["Image"] == "763104351884.dkr.ecr.us-east-1.amazonaws.com/djl-inference:0.35.0-lmi17.0.0-cu128"
    assert env["HF_MODEL_ID"] == "mistralai/Mistral-7B-Instruct-v0.3"
    assert env["OPTION_ROLLING_BATCH"] == "vllm"
    assert env["OPTION_MAX_MODEL_LEN"] == "4096" and env["OPTION_MAX_ROLLING_BATCH_SIZE"] == "32"
    assert env["OPTION_DTYPE"] == "bf16"
    assert env["OPTION_ENFORCE_EAGER"] == "true"  # no compile in the recipe
    assert json.loads(env["OPTION_SPECULATIVE_CONFIG"]) == {
        "method": "ngram", "num_speculative_tokens": 5, "prompt_lookup_min": 2, "prompt_lookup_max": 4}
    assert all(isinstance(v, str) for v in env.values())
    variant = p.requests[1].params["ProductionVariants"][0]
    assert variant["ModelName"] == p.model_name and variant["InstanceType"] == "ml.g5.2xlarge"
    assert variant["RoutingConfig"] == {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"}
    assert p.usd_per_hour and p.usd_per_hour > 0
    assert "jo-test-ep" in str(p) and "<table>" in p._repr_html_()
    assert p.to_dict()["requests"][2]["operation"] == "CreateEndpoint"


def test_the_lmi_image_host_follows_the_region_partition():
    """ECR hosts come from botocore's endpoint data, as the SDK builds them: the China, ISO and
    European sovereign partitions have domains of their own."""
    from jupyter_ext.deploy.sagemaker_env import LMI_ACCOUNTS, LMI_TAG, LMI_VERSION, lmi_image_uri

    assert LMI_TAG.startswith(LMI_VERSION + "-")
    assert lmi_image_uri("cn-north-1") == f"727897471807.dkr.ecr.cn-north-1.amazonaws.com.cn/djl-inference:{LMI_TAG}"
    assert lmi_image_uri("us-iso-east-1").startswith("886529160074.dkr.ecr.us-iso-east-1.c2s.ic.gov/")
    assert lmi_image_uri("eusc-de-east-1").startswith("204133271717.dkr.ecr.eusc-de-east-1.amazonaws.eu/")
    assert all(".dkr.ecr." + r + "." in lmi_image_uri(r) for r in LMI_ACCOUNTS)
    with pytest.raises(DeployError, match="no LMI image is known for region 'xx-nowhere-1'"):
        lmi_image_uri("xx-nowhere-1")


def test_the_lmi_table_is_the_sagemaker_sdk_s():
    """The table is the SDK's djl-lmi table, copied (the SDK would downgrade protobuf here):
    where the SDK is installed, every region and image must be what image_uris says."""
    try:
        from sagemaker.core import image_uris  # SDK v3
    except ImportError:
        image_uris = pytest.importorskip("sagemaker.image_uris", reason="the SageMaker SDK is not installed")
    from jupyter_ext.deploy.sagemaker_env import LMI_ACCOUNTS, LMI_VERSION, lmi_image_uri

    sdk_regions = image_uris.config_for_framework("djl-lmi")["versions"][LMI_VERSION]["registries"]
    assert sorted(LMI_ACCOUNTS) == sorted(sdk_regions)
    for region in LMI_ACCOUNTS:
        assert lmi_image_uri(region) == image_uris.retrieve("djl-lmi", region, version=LMI_VERSION), region


def test_plan_draft_model_from_s3_is_an_additional_model_data_source():
    r = recipe(speculative={"method": "draft_model", "model": "self:4", "num_tokens": 3},
               compile=None, quantize={"method": "fp8", "bits": 8})
    p = plan(r, draft_model_s3="s3://bucket/draft", image_uri="my.registry/lmi:pinned")
    container = p.requests[0].params["PrimaryContainer"]
    assert container["Image"] == "my.registry/lmi:pinned"
    assert container["AdditionalModelDataSources"] == [{"ChannelName": "draft_model", "S3DataSource": {
        "S3Uri": "s3://bucket/draft/", "S3DataType": "S3Prefix", "CompressionType": "None"}}]
    assert json.loads(container["Environment"]["OPTION_SPECULATIVE_CONFIG"]) == {
        "method": "draft_model", "model": "/opt/ml/additional-model-data-sources/draft_model",
        "num_speculative_tokens": 3}
    assert container["Environment"]["OPTION_QUANTIZE"] == "fp8"


def test_plan_refuses_what_sagemaker_would_refuse_later():
    with pytest.raises(StackError, match="compile"):
        plan(recipe(compile={"enabled": True}))
    with pytest.raises(DeployError, match="instance_type"):
        plan(recipe(instance_type=None))
    with pytest.raises(DeployError, match="accept_eula=True"):
        plan(recipe(model="meta-textgeneration-llama-3-8b-instruct"))
    assert plan(recipe(model="meta-textgeneration-llama-3-8b-instruct"), accept_eula=True)
    with pytest.raises(DeployError, match="IAM role ARN"):
        plan(role_arn="arn:aws:iam::123:user/bob")
    with pytest.raises(DeployError, match="model_data_s3"):
        plan(recipe(speculative=None, quantize={"method": "awq"}))
    with pytest.raises(DeployError, match="GPU"):
        plan(instance_type="ml.inf2.48xlarge")
    with pytest.raises(DeployError, match="routing"):
        plan(routing="ROUND_ROBIN")
    with pytest.raises(DeployError, match="draft_model_s3"):
        plan(recipe(speculative={"method": "draft_model", "model": "self:4"}))


def test_dry_run_shows_the_requests_and_no_credentials(monkeypatch):
    r = recipe(engine={"env": {"HF_TOKEN": "hf_verysecrettoken123"}})
    out = sm.dry_run(plan(r)).requests_json
    doc = json.loads(out)
    assert [q["operation"] for q in doc["requests"]] == ["CreateModel", "CreateEndpointConfig", "CreateEndpoint"]
    assert doc["requests"][0]["params"]["PrimaryContainer"]["Environment"]["HF_TOKEN"] == "***redacted***"
    for secret in (FAKE_KEY_ID, FAKE_SECRET, "hf_verysecrettoken123"):
        assert secret not in out
    assert "AKIA" not in out and "aws_secret" not in out.lower()


# -- moto server ------------------------------------------------------------------------
def test_deploy_creates_model_config_and_endpoint_on_moto(moto_clients, moto_boto):
    p = moto_plan()
    dep = sm.deploy(p, session=moto_clients, progress=False, poll_s=0)
    assert dep.status == "InService"
    assert dep.created == [f"Model {p.model_name}", f"EndpointConfig {p.endpoint_config_name}",
                           f"Endpoint {p.endpoint_name}"]
    client = moto_boto("sagemaker")
    env = client.describe_model(ModelName=p.model_name)["PrimaryContainer"]["Environment"]
    assert json.loads(env["OPTION_SPECULATIVE_CONFIG"])["method"] == "ngram"
    variant = client.describe_endpoint_config(EndpointConfigName=p.endpoint_config_name)["ProductionVariants"][0]
    assert variant["ModelName"] == p.model_name and variant["InstanceType"] == MOTO_GPU
    assert client.describe_endpoint(EndpointName=p.endpoint_name)["EndpointStatus"] == "InService"
    assert "InService" in str(dep) and dep.to_dict()["endpoint_name"] == p.endpoint_name


def test_moto_rejects_g5_and_the_deploy_rolls_the_model_back(moto_clients, moto_boto):
    p = plan()  # ml.g5.2xlarge is not in moto's list of instance types
    with pytest.raises(DeployError, match=r"failed at CreateEndpointConfig.*Rolled back: Model jo-test-ep-model"):
        sm.deploy(p, session=moto_clients, progress=False, poll_s=0)
    with pytest.raises(ClientError, match="Could not find model"):
        moto_boto("sagemaker").describe_model(ModelName=p.model_name)


def test_rollback_after_create_endpoint_fails(moto_clients, moto_boto, monkeypatch):
    real_send = AwsClients.send

    def failing_send(self, request):
        if request.operation == "CreateEndpoint":
            raise ClientError({"Error": {"Code": "ResourceLimitExceeded", "Message": "no g5 quota"}}, "CreateEndpoint")
        return real_send(self, request)

    monkeypatch.setattr(AwsClients, "send", failing_send)
    p = moto_plan()
    with pytest.raises(DeployError) as info:
        sm.deploy(p, session=moto_clients, progress=False, poll_s=0)
    msg = str(info.value)
    assert "failed at CreateEndpoint" in msg and "no g5 quota" in msg
    assert f"Rolled back: EndpointConfig {p.endpoint_config_name}, Model {p.model_name}" in msg
    client = moto_boto("sagemaker")
    assert client.list_models()["Models"] == []
    assert client.list_endpoint_configs()["EndpointConfigs"] == []


def test_undeploy_deletes_everything_and_then_reports_not_found(moto_clients, moto_boto):
    p = moto_plan()
    sm.deploy(p, session=moto_clients, progress=False, poll_s=0)
    res = sm.undeploy(p.endpoint_name, session=moto_clients)
    assert res.deleted == [f"Endpoint {p.endpoint_name}", f"EndpointConfig {p.endpoint_config_name}",
                           f"Model {p.model_name}"]
    client = moto_boto("sagemaker")
    assert client.list_endpoints()["Endpoints"] == [] and client.list_models()["Models"] == []
    with pytest.raises(EndpointNotFoundError, match=p.endpoint_name):
        sm.undeploy(p.endpoint_name, session=moto_clients)


def test_the_endpoint_url_can_come_from_the_environment(moto_url, monkeypatch):
    monkeypatch.setenv("JUPYTER_OPTIMIZE_AWS_ENDPOINT_URL", moto_url)
    with pytest.raises(EndpointNotFoundError, match="no SageMaker endpoint named 'nope' in us-east-1"):
        sm.undeploy("nope")


def test_undeploy_detaches_autoscaling_first(moto_clients, moto_boto):
    from jupyter_ext.autoscale.policy import AutoscalingConfig, StepScaling, attach

    p = moto_plan()
    sm.deploy(p, session=moto_clients, progress=False, poll_s=0)
    attach(p.endpoint_name, AutoscalingConfig(step=StepScaling(threshold=4, steps=[(0, None, 1)])), session=moto_clients)
    res = sm.undeploy(p.endpoint_name, session=moto_clients)
    assert res.deleted[0] == f"Autoscaling endpoint/{p.endpoint_name}/variant/AllTraffic"
    assert moto_boto("application-autoscaling").describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"] == []
    assert moto_boto("cloudwatch").describe_alarms()["MetricAlarms"] == []


def test_invoke_sends_a_chat_body_and_reads_the_reply(moto_clients, moto_url):
    sm.deploy(moto_plan(), session=moto_clients, progress=False, poll_s=0)
    reply = {"choices": [{"message": {"role": "assistant", "content": "Paris."}}],
             "usage": {"prompt_tokens": 9, "completion_tokens": 2}}
    queue_moto_invoke_results(moto_url, [json.dumps(reply)])
    res = sm.invoke("jo-test-ep", "Capital of France?", max_tokens=8, session=moto_clients)
    assert res.text == "Paris." and res.usage["completion_tokens"] == 2
    assert str(res) == "Paris." and "Paris." in res._repr_html_()


# -- Stubber: what moto does not implement ----------------------------------------------
def test_inference_component_deploy_request_shapes(boto_stub):
    client, stub = boto_stub("sagemaker")
    p = plan(instance_type="ml.g5.12xlarge", inference_component=True, copy_count=2)
    model, config, endpoint, component = (r.params for r in p.requests)
    assert "ModelName" not in config["ProductionVariants"][0] and config["ExecutionRoleArn"] == ROLE_ARN
    assert component["Specification"]["ComputeResourceRequirements"] == {
        "NumberOfAcceleratorDevicesRequired": 4, "MinMemoryRequiredInMb": 1024}
    assert component["RuntimeConfig"] == {"CopyCount": 2}
    assert model["PrimaryContainer"]["Environment"]["OPTION_TENSOR_PARALLEL_DEGREE"] == "4"
    arn = ARN
    stub.add_response("create_model", {"ModelArn": arn + "model/m"}, model)
    stub.add_response("create_endpoint_config", {"EndpointConfigArn": arn + "endpoint-config/c"}, config)
    stub.add_response("create_endpoint", {"EndpointArn": arn + "endpoint/e"}, endpoint)
    stub.add_response("describe_endpoint", _endpoint_desc(p, "InService"), {"EndpointName": p.endpoint_name})
    stub.add_response("create_inference_component", {"InferenceComponentArn": arn + "inference-component/i"}, component)
    stub.add_response("describe_inference_component", {
        "InferenceComponentName": p.inference_component_name, "InferenceComponentArn": arn + "inference-component/i",
        "EndpointName": p.endpoint_name, "EndpointArn": arn + "endpoint/e", "InferenceComponentStatus": "InService",
        "CreationTime": "2026-01-01T00:00:00Z", "LastModifiedTime": "2026-01-01T00:00:00Z"},
        {"InferenceComponentName": p.inference_component_name})
    stub.add_response("describe_endpoint", _endpoint_desc(p, "InService"), {"EndpointName": p.endpoint_name})
    dep = sm.deploy(p, session=AwsClients.from_clients({"sagemaker": client}), progress=False, poll_s=0)
    stub.assert_no_pending_responses()
    assert dep.inference_component_name == p.inference_component_name
    assert dep.created[-1] == f"InferenceComponent {p.inference_component_name}"


def _endpoint_desc(p, status, reason=None):
    d = {"EndpointName": p.endpoint_name, "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/e",
         "EndpointConfigName": p.endpoint_config_name, "EndpointStatus": status,
         "CreationTime": "2026-01-01T00:00:00Z", "LastModifiedTime": "2026-01-01T00:00:00Z"}
    if reason:
        d["FailureReason"] = reason
    return d


def test_failed_endpoint_is_rolled_back_in_reverse_order_with_the_reason(boto_stub):
    client, stub = boto_stub("sagemaker")
    p = plan(instance_type="ml.p5.48xlarge")
    assert p.requests[1].params["ProductionVariants"][0]["InstanceType"] == "ml.p5.48xlarge"
    for req, out in zip(p.requests, ({"ModelArn": ARN + "model/m"}, {"EndpointConfigArn": ARN + "endpoint-config/c"},
                                 {"EndpointArn": ARN + "endpoint/e"})):
        stub.add_response(sm_name(req.operation), out, req.params)
    stub.add_response("describe_endpoint", _endpoint_desc(p, "Failed", "CUDA out of memory"), {"EndpointName": p.endpoint_name})
    stub.add_response("delete_endpoint", {}, {"EndpointName": p.endpoint_name})
    stub.add_response("delete_endpoint_config", {}, {"EndpointConfigName": p.endpoint_config_name})
    stub.add_response("delete_model", {}, {"ModelName": p.model_name})
    with pytest.raises(DeployError, match="CUDA out of memory") as info:
        sm.deploy(p, session=AwsClients.from_clients({"sagemaker": client}), progress=False, poll_s=0)
    stub.assert_no_pending_responses()
    assert "Rolled back: Endpoint jo-test-ep, EndpointConfig jo-test-ep-config, Model jo-test-ep-model" in str(info.value)


def sm_name(operation):
    from botocore import xform_name
    return xform_name(operation)


def test_access_denied_names_the_iam_action_and_rolls_back(boto_stub):
    client, stub = boto_stub("sagemaker")
    p = plan()
    stub.add_response("create_model", {"ModelArn": ARN + "model/m"}, p.requests[0].params)
    stub.add_client_error("create_endpoint_config", "AccessDeniedException", "User: arn:aws:sts::123456789012:"
                          "assumed-role/x/y is not authorized to perform: sagemaker:CreateEndpointConfig on resource")
    stub.add_response("delete_model", {}, {"ModelName": p.model_name})
    with pytest.raises(AwsPermissionError, match="'sagemaker:CreateEndpointConfig'") as info:
        sm.deploy(p, session=AwsClients.from_clients({"sagemaker": client}), progress=False, poll_s=0)
    assert "Rolled back: Model jo-test-ep-model" in str(info.value)
    stub.assert_no_pending_responses()


def test_access_denied_without_action_in_message_uses_the_operation(boto_stub):
    client, stub = boto_stub("sagemaker")
    stub.add_client_error("describe_endpoint", "AccessDenied", "Access denied")
    with pytest.raises(AwsPermissionError, match="sagemaker:DescribeEndpoint"):
        sm.undeploy("ep", session=AwsClients.from_clients({"sagemaker": client}))


def test_undeploy_of_an_inference_component_endpoint(boto_stub):
    client, stub = boto_stub("sagemaker")
    p = plan(inference_component=True, instance_type="ml.g5.12xlarge")
    stub.add_response("describe_endpoint", _endpoint_desc(p, "InService"), {"EndpointName": p.endpoint_name})
    stub.add_response("describe_endpoint_config", {
        "EndpointConfigName": p.endpoint_config_name, "EndpointConfigArn": ARN + "endpoint-config/c",
        "ProductionVariants": [{"VariantName": "AllTraffic", "InstanceType": "ml.g5.12xlarge", "InitialInstanceCount": 1}],
        "CreationTime": "2026-01-01T00:00:00Z"}, {"EndpointConfigName": p.endpoint_config_name})
    stub.add_response("list_inference_components", {"InferenceComponents": [{
        "InferenceComponentName": "ic1", "InferenceComponentArn": ARN + "inference-component/i", "EndpointName": p.endpoint_name,
        "EndpointArn": ARN + "endpoint/e", "VariantName": "AllTraffic", "CreationTime": "2026-01-01T00:00:00Z",
        "LastModifiedTime": "2026-01-01T00:00:00Z"}]}, {"EndpointNameEquals": p.endpoint_name})
    stub.add_response("describe_inference_component", {
        "InferenceComponentName": "ic1", "InferenceComponentArn": ARN + "inference-component/i", "EndpointName": p.endpoint_name,
        "EndpointArn": ARN + "endpoint/e", "Specification": {"ModelName": "m-ic"}, "CreationTime": "2026-01-01T00:00:00Z",
        "LastModifiedTime": "2026-01-01T00:00:00Z"}, {"InferenceComponentName": "ic1"})
    aas, aas_stub = boto_stub("application-autoscaling")
    cw, cw_stub = boto_stub("cloudwatch")
    for resource, dim, scope in ((f"endpoint/{p.endpoint_name}/variant/AllTraffic", "variant:DesiredInstanceCount",
                                  "AllTraffic"), ("inference-component/ic1", "inference-component:DesiredCopyCount", "ic1")):
        ids = {"ServiceNamespace": "sagemaker", "ScalableDimension": f"sagemaker:{dim}"}
        aas_stub.add_response("describe_scalable_targets", {"ScalableTargets": []}, {**ids, "ResourceIds": [resource]})
        aas_stub.add_response("describe_scaling_policies", {"ScalingPolicies": []}, {**ids, "ResourceId": resource})
        cw_stub.add_response("describe_alarms", {"MetricAlarms": []}, {"AlarmNamePrefix": f"jo-{p.endpoint_name}-{scope}-"})
    stub.add_response("delete_inference_component", {}, {"InferenceComponentName": "ic1"})
    stub.add_client_error("describe_inference_component", "ValidationException", "Could not find inference component")
    stub.add_response("delete_endpoint", {}, {"EndpointName": p.endpoint_name})
    stub.add_response("delete_endpoint_config", {}, {"EndpointConfigName": p.endpoint_config_name})
    stub.add_response("delete_model", {}, {"ModelName": "m-ic"})
    clients = AwsClients.from_clients({"sagemaker": client, "application-autoscaling": aas, "cloudwatch": cw})
    res = sm.undeploy(p.endpoint_name, session=clients, poll_s=0)
    for s in (stub, aas_stub, cw_stub):
        s.assert_no_pending_responses()
    assert res.deleted[0] == "InferenceComponent ic1" and res.deleted[-1] == "Model m-ic"


def test_inference_components_are_listed_over_every_page(boto_stub):
    """boto3's paginator follows NextToken; a refused listing names the IAM action."""
    client, stub = boto_stub("sagemaker")

    def component(name):
        return {"InferenceComponentName": name, "InferenceComponentArn": ARN + f"inference-component/{name}",
                "EndpointName": "ep", "EndpointArn": ARN + "endpoint/ep", "VariantName": "AllTraffic",
                "CreationTime": "2026-01-01T00:00:00Z", "LastModifiedTime": "2026-01-01T00:00:00Z"}

    stub.add_response("list_inference_components", {"InferenceComponents": [component("ic1")], "NextToken": "t2"},
                      {"EndpointNameEquals": "ep"})
    stub.add_response("list_inference_components", {"InferenceComponents": [component("ic2"), component("ic3")]},
                      {"EndpointNameEquals": "ep", "NextToken": "t2"})
    stub.add_client_error("list_inference_components", "AccessDeniedException", "not allowed")
    clients = AwsClients.from_clients({"sagemaker": client})
    assert sagemaker_undeploy._list_components(clients, "ep") == ["ic1", "ic2", "ic3"]
    with pytest.raises(AwsPermissionError, match="sagemaker:ListInferenceComponents"):
        sagemaker_undeploy._list_components(clients, "ep")
    stub.assert_no_pending_responses()


def test_the_moto_server_listens_on_loopback_only_and_is_stopped():
    import urllib.error
    import urllib.request

    import psutil

    with running_moto() as url:
        port = int(url.rsplit(":", 1)[1])
        with urllib.request.urlopen(f"{url}/moto-api/", timeout=10) as r:
            assert r.status == 200
        listening = {c.laddr.ip for c in psutil.Process().net_connections(kind="tcp")
                     if c.status == psutil.CONN_LISTEN and c.laddr.port == port}
        assert listening == {"127.0.0.1"}
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{url}/moto-api/", timeout=5)


# -- the wire: retries and event streams ------------------------------------------------
def test_throttling_is_retried_by_botocore(scripted_http, caplog):
    throttle = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()
    ok = json.dumps({"ModelArn": "arn:aws:sagemaker:us-east-1:123456789012:model/m"}).encode()
    scripted_http.script = [(400, {"Content-Type": "application/x-amz-json-1.1"}, throttle),
                       (200, {"Content-Type": "application/x-amz-json-1.1"}, ok)]
    clients = AwsClients(region=REGION, endpoint_url=scripted_http.url)
    caplog.set_level("INFO", logger="jupyter_ext.deploy.aws")
    out = clients.send(plan().requests[0])
    assert out["ModelArn"].endswith("model/m")
    assert "sagemaker.CreateModel succeeded after 1 retries" in caplog.text  # a retry is not silent
    assert len(scripted_http.requests) == 2
    assert all(b"CreateModel" in r["headers"].get("X-Amz-Target", "").encode() for r in scripted_http.requests)
    assert clients.get("sagemaker").meta.config.retries == {"mode": "adaptive", "total_max_attempts": 8}


def test_our_retry_budget_is_the_one_in_force(scripted_http):
    throttle = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()
    scripted_http.script = [(400, {"Content-Type": "application/x-amz-json-1.1"}, throttle)] * 3
    clients = AwsClients(region=REGION, endpoint_url=scripted_http.url, max_attempts=2, retry_mode="standard")
    with pytest.raises(ClientError, match="ThrottlingException"):
        clients.call("sagemaker", "DescribeEndpoint", EndpointName="ep")
    assert len(scripted_http.requests) == 2


def test_streaming_invoke_parses_payload_parts_from_the_event_stream(scripted_http):
    raw = ('data: {"choices":[{"delta":{"content":"Bon"}}]}\n\n'
           'data: {"choices":[{"delta":{"content":"jour \u00e9"}}]}\n\n'
           'data: {"choices":[],"usage":{"completion_tokens":3}}\n\ndata: [DONE]\n\n').encode()
    cut = raw.index(b"\xc3") + 1  # a PayloadPart may end inside a line and inside a UTF-8 character
    pieces = [raw[:60], raw[60:cut], raw[cut:]]
    scripted_http.script = [stream_reply(*(payload_part(p) for p in pieces))]
    chunks = list(sm.invoke("ep", "Say hello in French", max_tokens=8, stream=True,
                            session=AwsClients(region=REGION, endpoint_url=scripted_http.url)))
    assert chunks == ["Bon", "jour \u00e9"]
    sent = json.loads(scripted_http.requests[0]["body"])
    assert sent["stream"] is True and sent["messages"][0]["content"] == "Say hello in French"
    assert scripted_http.requests[0]["path"] == "/endpoints/ep/invocations-response-stream"


def test_sse_parser_joins_split_lines_and_characters():
    raw = 'data: {"choices":[{"delta":{"content":"caf\u00e9"}}]}\n\n{"token":{"text":"!"}}\n: comment\ndata: [DONE]\n'.encode()
    events = [{"PayloadPart": {"Bytes": raw[i:i + 5]}} for i in range(0, len(raw), 5)]
    assert list(iter_stream_text(events)) == ["caf\u00e9", "!"]
    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"a": 1}\nid: 7\nevent: x\nretry: 5\n\n: ping\ndata: [DO') == [{"a": 1}]
    assert decoder.feed(b'NE]\ndata: {"after": "done"}\n') == [] and decoder.done
    assert decoder.close() == []


def test_a_line_that_is_not_json_raises():
    with pytest.raises(DeployError, match="not JSON: '<html>'"):
        list(iter_stream_events([{"PayloadPart": {"Bytes": b"data: <html>\n"}}]))


def test_the_test_encoder_writes_what_botocore_decodes():
    from botocore.eventstream import EventStreamBuffer

    buf = EventStreamBuffer()
    buf.add_data(payload_part(b"data: x\n") + exception_frame("ModelStreamError", "m", "500"))
    part, err = list(buf)
    assert (part.headers[":event-type"], part.payload) == ("PayloadPart", b"data: x\n")
    assert err.headers == {":message-type": "exception", ":exception-type": "ModelStreamError",
                           ":content-type": "application/json"}
    assert json.loads(err.payload) == {"Message": "m", "ErrorCode": "500"}
    assert frame({}, b"") == bytes.fromhex("00000010 00000000 05c248eb 7d98c8ff")  # the spec's empty message


@pytest.mark.parametrize("kind", ["ModelStreamError", "InternalStreamFailure"])
def test_a_failure_sent_mid_stream_is_a_deploy_error(scripted_http, kind):
    """What the service sends when the model fails after it began to answer: a PayloadPart,
    then an exception message, which real boto3 raises as EventStreamError while reading."""
    first = b'data: {"choices":[{"delta":{"content":"Bon"}}]}\n\n'
    scripted_http.script = [stream_reply(payload_part(first), exception_frame(kind, "model crashed", "500"))]
    chunks = sm.invoke("ep", "hi", max_tokens=8, stream=True,
                       session=AwsClients(region=REGION, endpoint_url=scripted_http.url))
    assert next(chunks) == "Bon"
    with pytest.raises(DeployError, match=rf"^the endpoint's stream failed \({kind}\): model crashed$") as caught:
        next(chunks)
    assert type(caught.value.__cause__).__name__ == "EventStreamError"


def test_endpoint_stream_fn_yields_json_chunks_for_the_bench_client(scripted_http):
    payload = b'data: {"choices":[{"delta":{"content":"x"}}]}\n\n'
    scripted_http.script = [stream_reply(payload_part(payload))]
    send = sm.endpoint_stream_fn("ep", AwsClients(region=REGION, endpoint_url=scripted_http.url))
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4,
            "stream_options": {"include_usage": True}}
    assert list(send(body)) == [{"choices": [{"delta": {"content": "x"}}]}]
    assert json.loads(scripted_http.requests[0]["body"])["stream_options"] == {"include_usage": True}


def test_recorder_intercepts_every_request_of_a_deploy():
    """A --dry-run of code that needs answers: the recorder answers, nothing is sent."""
    p = plan()
    rec = RequestRecorder(intercept=True, responses={"DescribeEndpoint": {"EndpointStatus": "InService"}})
    client = rec.attach(boto3.client("sagemaker", region_name=REGION, endpoint_url="http://127.0.0.1:9"))
    dep = sm.deploy(p, session=AwsClients.from_clients({"sagemaker": client}), progress=False, poll_s=0)
    assert dep.status == "InService"
    assert [r.operation for r in rec.requests] == [r.operation for r in p.requests] + ["DescribeEndpoint"] * 2
    assert rec.requests[0].params == p.requests[0].params
    assert FAKE_SECRET not in json.dumps(rec.to_dict())
