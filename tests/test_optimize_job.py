"""SageMaker optimization jobs (CreateOptimizationJob) and AI recommendation jobs from recipes.

moto 5.2 implements neither (no create_optimization_job, no create_ai_recommendation_job), so
every request is checked by botocore's Stubber, which validates it against the installed
service model, and by the toolkit's own validation against the same model. The wait, the
interrupt and the deploy of the output run against the Stubber too.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from botocore import xform_name
from IPython.core.error import UsageError

sys.path.insert(0, str(Path(__file__).parent))
pytest.register_assert_rewrite("aws_fixtures")
pytest_plugins = ["aws_fixtures"]
pytestmark = pytest.mark.usefixtures("fake_aws_env")
from aws_fixtures import FAKE_KEY_ID, FAKE_SECRET, REGION, ROLE_ARN  # noqa: E402

from jupyter_ext.deploy import optimization as opt  # noqa: E402
from jupyter_ext.deploy import optimization_run as orun  # noqa: E402
from jupyter_ext.deploy import recommend as rec  # noqa: E402
from jupyter_ext.deploy.aws import AwsClients  # noqa: E402
from jupyter_ext.deploy.dryrun import DryRun  # noqa: E402
from jupyter_ext.errors import (OptimizationJobError, RecipeError, RecommendationUnavailableError,  # noqa: E402
                                SageMakerLimitError, StackError, TechniqueUnavailableError)
from jupyter_ext.faces import cli  # noqa: E402
from jupyter_ext.recipes import load_recipe, recipe_from_dict  # noqa: E402
from jupyter_ext.techniques import check_host_support  # noqa: E402

ARN = "arn:aws:sagemaker:us-east-1:123456789012:"
MODEL_S3, OUT_S3 = "s3://my-bucket/models/smollm2/", "s3://my-bucket/optimized/"
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/djl-inference:0.36.0-lmi18.0.0-cu128"
REAL = dict(role_arn=ROLE_ARN, model_data_s3=MODEL_S3, output_s3=OUT_S3, instance_type="ml.g5.12xlarge",
            region=REGION, job_name="jo-test-opt")


def recipe(**sections):
    return recipe_from_dict({"name": "t", "engine": {"max_model_len": 2048}, **sections})


def configs(plan):
    return plan.job_request.params["OptimizationConfigs"]


def stub_send(boto_stub, req):
    """Send one planned request through a Stubber that checks it against the service model."""
    client, stub = boto_stub(req.service)
    replies = {"CreateOptimizationJob": {"OptimizationJobArn": ARN + "optimization-job/x"},
               "CreateAIWorkloadConfig": {"AIWorkloadConfigArn": ARN + "ai-workload-config/w"},
               "CreateAIRecommendationJob": {"AIRecommendationJobArn": ARN + "ai-recommendation-job/r"}}
    stub.add_response(xform_name(req.operation), replies[req.operation], req.params)
    AwsClients.from_clients({req.service: client}).send(req)
    stub.assert_no_pending_responses()


# -- what the recipe becomes ------------------------------------------------------------
@pytest.mark.parametrize("sections, member, env", [
    ({"quantize": {"method": "awq"}}, "ModelQuantizationConfig", {"OPTION_QUANTIZE": "awq"}),
    ({"quantize": {"method": "fp8"}}, "ModelQuantizationConfig", {"OPTION_QUANTIZE": "fp8"}),
    ({"engine": {"extra_args": ["--tensor-parallel-size", "4"]}}, "ModelShardingConfig",
     {"OPTION_TENSOR_PARALLEL_DEGREE": "4"}),
])
def test_techniques_become_the_union_members_with_their_environment(boto_stub, sections, member, env):
    plan = opt.plan_optimization(recipe(**sections), **REAL)
    (config,) = configs(plan)
    assert list(config) == [member] and config[member]["OverrideEnvironment"] == env
    assert config[member]["Image"].endswith("djl-inference:0.35.0-lmi17.0.0-cu128")  # the LMI (vLLM) image
    assert plan.job_request.params["ModelSource"] == {"S3": {"S3Uri": MODEL_S3}}
    assert plan.job_request.params["OutputConfig"]["S3OutputLocation"] == OUT_S3 + "jo-test-opt/"
    stub_send(boto_stub, plan.job_request)


def test_compilation_and_quantization_make_two_configs_and_tp_flag_is_read():
    plan = opt.plan_optimization(recipe(quantize={"method": "awq"}, compile={"enabled": True}), **REAL)
    assert [list(c)[0] for c in configs(plan)] == ["ModelQuantizationConfig", "ModelCompilationConfig"]
    assert configs(plan)[1]["ModelCompilationConfig"] == {}  # SageMaker picks the compiler image
    assert opt.tensor_parallel_degree(recipe(engine={"extra_args": ["--tensor-parallel-size=8"]})) == 8
    assert opt.tensor_parallel_degree(recipe(engine={"tensor_parallel_size": 3})) == 3


def test_eagle_with_s3_data_is_a_speculative_decoding_config(boto_stub):
    plan = opt.plan_optimization(recipe(speculative={"method": "eagle", "dataset": "s3://my-bucket/chats"}), **REAL)
    assert configs(plan) == [{"ModelSpeculativeDecodingConfig": {
        "Technique": "EAGLE", "TrainingDataSource": {"S3Uri": "s3://my-bucket/chats/", "S3DataType": "S3Prefix"}}}]
    assert not plan.uploads and [r.operation for r in plan.requests] == ["CreateOptimizationJob"]
    stub_send(boto_stub, plan.job_request)


def test_a_local_eagle_dataset_is_checked_then_uploaded_beside_the_output(tmp_path, boto_stub):
    data = tmp_path / "chats.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n')
    plan = opt.plan_optimization(recipe(speculative={"method": "eagle", "dataset": str(data)}), **REAL)
    prefix = OUT_S3 + "jo-test-opt/eagle-data/"
    assert plan.uploads == [(str(data), prefix + "chats.jsonl")]
    put = plan.requests[0]
    assert (put.operation, put.params["Bucket"], put.params["Key"]) == (
        "PutObject", "my-bucket", "optimized/jo-test-opt/eagle-data/chats.jsonl")
    assert configs(plan)[0]["ModelSpeculativeDecodingConfig"]["TrainingDataSource"]["S3Uri"] == prefix
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n{"text": "not a chat"}\n')
    with pytest.raises(RecipeError, match="bad.jsonl line 2"):
        recipe(speculative={"method": "eagle", "dataset": str(bad)})
    with pytest.raises(RecipeError, match="neither an s3:// prefix nor a file"):
        recipe(speculative={"method": "eagle", "dataset": str(tmp_path / "missing.jsonl")})


def test_every_shape_is_the_service_models():
    """The toolkit's validation is botocore's: a wrong member or enum value is named."""
    plan = opt.plan_optimization(recipe(quantize={"method": "awq"}), **REAL)
    req = plan.job_request
    req.params["OptimizationConfigs"].append({"ModelSpeculativeDecodingConfig": {"Technique": "MEDUSA"}})
    with pytest.raises(OptimizationJobError, match="MEDUSA.*EAGLE"):
        opt.validate_request(req)
    req.params["OptimizationConfigs"][-1] = {"ModelQuantizationConfig": {"Imagee": "x"}}
    with pytest.raises(OptimizationJobError, match="Imagee"):
        opt.validate_request(req)
    assert "ml.g5.12xlarge" in opt.deployment_instance_types()


# -- refusals ---------------------------------------------------------------------------
@pytest.mark.parametrize("sections, kw, error, words", [
    ({}, {}, OptimizationJobError, "nothing an optimization job does"),
    ({"speculative": {"method": "ngram"}}, {}, OptimizationJobError, "empty stack"),
    ({"quantize": {"method": "awq"}}, {"tensor_parallel": 4}, OptimizationJobError, "combines with no other"),
    ({"quantize": {"method": "awq"}}, {"instance_type": "ml.inf2.xlarge"}, OptimizationJobError, "only compile"),
    ({"quantize": {"method": "awq"}}, {"instance_type": "ml.g4dn.xlarge"}, OptimizationJobError, "GPU families"),
    ({"compile": {}, "speculative": {"method": "ngram"}}, {}, StackError, "compilation together with speculative"),
    ({"quantize": {"method": "awq"}}, {"output_s3": "my-bucket/out"}, OptimizationJobError, "s3:// URI"),
])
def test_refusals_name_the_rule(sections, kw, error, words):
    with pytest.raises(error, match=words):
        opt.plan_optimization(recipe(**sections), **{**REAL, **kw})


@pytest.mark.parametrize("kw, env, limit", [
    ({"fine_tuned": True}, {}, "fine-tuned models"),
    ({}, {"SAGEMAKER_PROGRAM": "inference.py"}, "custom inference scripts"),
    ({"inference_component": True}, {}, "inference components"),
])
def test_sagemaker_draft_limits_are_named_errors(kw, env, limit):
    r = recipe_from_dict({"name": "t", "engine": {"env": env}, "speculative": {"method": "eagle"}})
    with pytest.raises(SageMakerLimitError) as e:
        opt.plan_optimization(r, **{**REAL, **kw})
    assert f"does not support with {limit}" in str(e.value) and "local testing" in str(e.value)


def test_eagle_is_refused_for_local_testing_before_a_server_starts():
    r = recipe(speculative={"method": "eagle"})
    with pytest.raises(SageMakerLimitError, match="local testing") as e:
        check_host_support(r, "cpu")
    assert isinstance(e.value, TechniqueUnavailableError)  # the engine's own refusal type
    assert cli.main(["optimize", "ngram"]) == 2  # a non-EAGLE recipe: the message says --target sagemaker


def test_a_dry_run_prints_the_exact_request_and_no_credentials(capsys):
    code = cli.main(["optimize", "awq", "--target", "sagemaker", "--dry-run", "--instance-type", "ml.g5.2xlarge",
                     "--region", REGION, "--job-name", "jo-dry"])
    out = capsys.readouterr().out
    assert code == 0 and FAKE_SECRET not in out and FAKE_KEY_ID not in out
    doc = json.loads(out[out.index("{"):])
    ops = [r["operation"] for r in doc["requests"]]
    assert ops == ["CreateOptimizationJob", "CreateModel", "CreateEndpointConfig", "CreateEndpoint"]
    job = doc["requests"][0]["params"]
    assert job["OptimizationConfigs"][0]["ModelQuantizationConfig"]["OverrideEnvironment"] == {"OPTION_QUANTIZE": "awq"}
    assert job["RoleArn"] == opt.DRY_RUN_ROLE and "role ARN" in doc["placeholders"]
    model = doc["requests"][1]["params"]["PrimaryContainer"]
    assert model["ModelDataSource"]["S3DataSource"]["S3Uri"] == job["OutputConfig"]["S3OutputLocation"]


def test_a_placeholder_plan_is_never_run():
    plan = opt.plan_optimization(recipe(quantize={"method": "awq"}), instance_type="ml.g5.2xlarge", region=REGION)
    with pytest.raises(OptimizationJobError, match="made without role ARN"):
        orun.run(plan, session=AwsClients(region=REGION))


# -- running it -------------------------------------------------------------------------
def _describe(plan, status, **extra):
    return {"OptimizationJobArn": ARN + "optimization-job/x", "OptimizationJobStatus": status,
            "CreationTime": "2026-01-01T00:00:00Z", "LastModifiedTime": "2026-01-01T00:00:00Z",
            "OptimizationJobName": plan.job_name, "ModelSource": plan.job_request.params["ModelSource"],
            "DeploymentInstanceType": plan.instance_type, "OptimizationConfigs": configs(plan),
            "OutputConfig": plan.job_request.params["OutputConfig"], "RoleArn": ROLE_ARN,
            "StoppingCondition": plan.job_request.params["StoppingCondition"], **extra}


def test_run_waits_then_deploys_the_output_with_the_recommended_image(boto_stub):
    client, stub = boto_stub("sagemaker")
    plan = opt.plan_optimization(recipe(quantize={"method": "awq"}), endpoint_name="jo-test-ep", **REAL)
    name = {"OptimizationJobName": plan.job_name}
    stub.add_response("create_optimization_job", {"OptimizationJobArn": ARN + "optimization-job/x"},
                      plan.job_request.params)
    stub.add_response("describe_optimization_job", _describe(plan, "INPROGRESS"), name)
    stub.add_response("describe_optimization_job", _describe(
        plan, "COMPLETED", OptimizationOutput={"RecommendedInferenceImage": IMAGE}), name)
    model, config, endpoint = (r.params for r in plan.deployment.requests)
    model = json.loads(json.dumps(model))
    model["PrimaryContainer"]["Image"] = IMAGE
    assert model["PrimaryContainer"]["ModelDataSource"]["S3DataSource"]["S3Uri"] == OUT_S3 + "jo-test-opt/"
    assert model["PrimaryContainer"]["Environment"]["OPTION_QUANTIZE"] == "awq"
    stub.add_response("create_model", {"ModelArn": ARN + "model/m"}, model)
    stub.add_response("create_endpoint_config", {"EndpointConfigArn": ARN + "endpoint-config/c"}, config)
    stub.add_response("create_endpoint", {"EndpointArn": ARN + "endpoint/e"}, endpoint)
    ep = {"EndpointName": "jo-test-ep", "EndpointArn": ARN + "endpoint/e", "EndpointConfigName": "jo-test-ep-config",
          "EndpointStatus": "InService", "CreationTime": "2026-01-01T00:00:00Z", "LastModifiedTime": "2026-01-01T00:00:00Z"}
    stub.add_response("describe_endpoint", ep, {"EndpointName": "jo-test-ep"})
    stub.add_response("describe_endpoint", ep, {"EndpointName": "jo-test-ep"})
    out = orun.run(plan, session=AwsClients.from_clients({"sagemaker": client}), poll_s=0, progress=False)
    stub.assert_no_pending_responses()
    assert (out.status, out.recommended_image, out.deployment.status) == ("COMPLETED", IMAGE, "InService")
    assert "jo-test-ep" in str(out) and out.to_dict()["deployment"]["endpoint_name"] == "jo-test-ep"


def test_a_failed_job_deploys_nothing_and_says_why(boto_stub):
    client, stub = boto_stub("sagemaker")
    plan = opt.plan_optimization(recipe(quantize={"method": "fp8"}), **REAL)
    stub.add_response("describe_optimization_job", _describe(plan, "FAILED", FailureReason="CUDA OOM"),
                      {"OptimizationJobName": plan.job_name})
    with pytest.raises(OptimizationJobError, match="ended FAILED: CUDA OOM; nothing was deployed"):
        orun.finish(plan, session=AwsClients.from_clients({"sagemaker": client}), poll_s=0, progress=False)
    stub.assert_no_pending_responses()


def test_an_interrupt_or_the_deadline_leave_the_job_running_and_say_how_to_resume(boto_stub, monkeypatch):
    client, stub = boto_stub("sagemaker")
    plan = opt.plan_optimization(recipe(quantize={"method": "awq"}), **REAL)
    clients = AwsClients.from_clients({"sagemaker": client})
    stub.add_response("describe_optimization_job", _describe(plan, "INPROGRESS"), {"OptimizationJobName": plan.job_name})
    with pytest.raises(OptimizationJobError) as e:
        orun.wait_for_job(clients, plan.job_name, timeout_s=0, poll_s=1, progress=False)
    assert "still INPROGRESS at the deadline" in str(e.value) and f"--resume {plan.job_name}" in str(e.value)

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(clients, "call", interrupted)
    with pytest.raises(OptimizationJobError) as e:
        orun.wait_for_job(clients, plan.job_name, progress=False)
    assert "keeps running on AWS" in str(e.value) and "describe-optimization-job" in str(e.value)


# -- recommendation jobs ----------------------------------------------------------------
def test_an_slo_becomes_a_recommendation_job_the_service_model_accepts(boto_stub):
    slo = rec.slo_from_text("ttft_p99=2s")
    assert slo == {"ttft": ("p99", 2.0)} and rec.slo_from_text("ttft_p50=500ms") == {"ttft": ("p50", 0.5)}
    plan = rec.plan_recommendation(load_recipe("baseline"), slo, objectives=["cost"], role_arn=ROLE_ARN,
                                   model_data_s3=MODEL_S3, output_s3=OUT_S3, instance_types=["ml.g5.xlarge"])
    workload, job = plan.requests
    assert job.params["PerformanceTarget"] == {"Constraints": [{"Metric": "ttft-ms"}, {"Metric": "cost"}]}
    assert {"Key": "jupyter-optimize:slo", "Value": "ttft.p99=2000ms"} in job.params["Tags"]
    spec = json.loads(workload.params["AIWorkloadConfigs"]["WorkloadSpec"]["Inline"])
    assert spec["benchmark"] == {"type": "aiperf"} and 600 < spec["parameters"]["prompt_input_tokens_mean"] < 650
    assert job.params["AIWorkloadConfigIdentifier"] == workload.params["AIWorkloadConfigName"]
    for req in plan.requests:
        stub_send(boto_stub, req)
    assert "then" in rec.dry_run(plan).to_dict()


def test_recommendation_refusals_are_named(monkeypatch):
    with pytest.raises(RecommendationUnavailableError, match="constrain only ttft-ms, throughput, cost"):
        rec.constraints({"tpot": ("p50", 0.05)})
    with pytest.raises(RecommendationUnavailableError, match="METRIC_pNN"):
        rec.slo_from_text("ttft<2s")

    class OldModel:
        operation_names = ["CreateOptimizationJob"]

    monkeypatch.setattr(rec, "sagemaker_model", lambda: OldModel())
    with pytest.raises(RecommendationUnavailableError, match="has no CreateAIWorkloadConfig, CreateAIRecommendationJob"):
        rec.plan_recommendation(load_recipe("baseline"), {"ttft": ("p99", 2.0)})


def test_recommendations_are_checked_against_the_slo_thresholds():
    slo = {"ttft": ("p99", 2.0)}
    good = {"ExpectedPerformance": [{"Metric": "ttft-ms", "Stat": "P99", "Value": "1500", "Unit": "ms"}]}
    slow = {"ExpectedPerformance": [{"Metric": "time_to_first_token", "Stat": "p99", "Value": "2.5", "Unit": "s"}]}
    assert rec.meets_slo(good, slo) == {"ttft": True} and rec.meets_slo(slow, slo) == {"ttft": False}
    assert rec.meets_slo({"ExpectedPerformance": []}, slo) == {"ttft": None}


# -- the magic --------------------------------------------------------------------------
def test_the_magic_has_the_verbs(ip):
    dry = ip.run_line_magic("optimize", f"optimize awq --target sagemaker --dry-run --instance-type ml.g5.2xlarge "
                                        f"--region {REGION}")
    assert isinstance(dry, DryRun) and dry.requests[0]["operation"] == "CreateOptimizationJob"
    assert "CreateOptimizationJob" in dry._repr_html_()
    r = ip.run_line_magic("optimize", "recommend baseline --slo ttft_p99=2s --dry-run")
    assert r.requests[1]["params"]["PerformanceTarget"]["Constraints"] == [{"Metric": "ttft-ms"}]
    with pytest.raises(UsageError, match="local testing"):
        ip.run_cell("from jupyter_ext.recipes import recipe_from_dict\n"
                    "eg = recipe_from_dict({'name': 'eg', 'speculative': {'method': 'eagle'}})")
        ip.run_line_magic("optimize", "optimize @eg")


def test_a_recommendation_job_is_submitted_in_order(boto_stub):
    client, stub = boto_stub("sagemaker")
    plan = rec.plan_recommendation(load_recipe("baseline"), {"ttft": ("p99", 2.0)}, role_arn=ROLE_ARN,
                                   model_data_s3=MODEL_S3, output_s3=OUT_S3, job_name="jo-rec")
    workload, job = plan.requests
    stub.add_response("create_ai_workload_config", {"AIWorkloadConfigArn": ARN + "ai-workload-config/w"}, workload.params)
    stub.add_response("create_ai_recommendation_job", {"AIRecommendationJobArn": ARN + "ai-recommendation-job/r"},
                      job.params)
    out = rec.submit(plan, session=AwsClients.from_clients({"sagemaker": client}))
    stub.assert_no_pending_responses()
    assert out.job_arn.endswith("ai-recommendation-job/r") and "describe-ai-recommendation-job" in str(out)
    with pytest.raises(RecommendationUnavailableError, match="DRY-RUN"):
        rec.submit(rec.plan_recommendation(load_recipe("baseline"), {"ttft": ("p99", 2.0)}))


def test_a_compiled_output_is_deployed_without_forcing_vllm():
    plan = opt.plan_optimization(recipe(compile={"enabled": True}), **REAL)
    env = plan.deployment.requests[0].params["PrimaryContainer"]["Environment"]
    assert "OPTION_ROLLING_BATCH" not in env and env["OPTION_ENFORCE_EAGER"] == "false"
    assert any("TensorRT-LLM" in w for w in plan.warnings)
    vllm = opt.plan_optimization(recipe(quantize={"method": "awq"}), **REAL)
    assert vllm.deployment.requests[0].params["PrimaryContainer"]["Environment"]["OPTION_ROLLING_BATCH"] == "vllm"


def test_run_uploads_the_local_eagle_data_before_the_job(tmp_path, boto_stub):
    from botocore.stub import ANY

    data = tmp_path / "chats.jsonl"
    data.write_text('{"prompt": "2+2=", "completion": "4"}\n')
    plan = opt.plan_optimization(recipe(speculative={"method": "eagle", "dataset": str(data)}), **REAL)
    s3, s3_stub = boto_stub("s3")
    sm, sm_stub = boto_stub("sagemaker")
    s3_stub.add_response("put_object", {}, {"Bucket": "my-bucket", "Key": "optimized/jo-test-opt/eagle-data/chats.jsonl",
                                            "Body": ANY})
    sm_stub.add_response("create_optimization_job", {"OptimizationJobArn": ARN + "optimization-job/x"},
                         plan.job_request.params)
    out = orun.run(plan, session=AwsClients.from_clients({"s3": s3, "sagemaker": sm}), wait=False)
    s3_stub.assert_no_pending_responses()
    sm_stub.assert_no_pending_responses()
    assert out.status == "STARTING" and f"--resume {plan.job_name}" in out.warnings[0]
