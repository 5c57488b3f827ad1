"""A recipe as SageMaker Python SDK code, for users who work with the SDK rather than with us.

`export_sdk` writes a script that makes the same optimization job and endpoint as
`optimize RECIPE --target sagemaker`: `ModelBuilder(model=<JumpStart id>, ...)`, its
`optimize(quantization_config=..., compilation_config=..., sharding_config=...,
speculative_decoding_config=...)` and `deploy(...)`. The names and keywords are the ones
sagemaker 3.27.0 (sagemaker-serve 1.27.0) defines (read from that package, `SDK_SIGNATURES`);
where the SDK is installed, its signatures are checked against them first, so an export never
calls a keyword the installed SDK lacks. The SDK's optimize() has no way to ask for SageMaker's
EAGLE draft training (ModelSpeculativeDecodingConfig with TrainingDataSource): an EAGLE recipe's
job and deploy are written as boto3 calls, the requests `optimize --dry-run` shows, and the
script says so. The SDK needs a region when `sagemaker.serve` is imported (NoRegionError
otherwise): the script sets AWS_DEFAULT_REGION before importing it.
"""

from __future__ import annotations

import html
import pprint
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..base.files import atomic_write_text
from ..errors import ExportError
from ..recipes import Recipe
from .optimization import DEFAULT_MAX_RUNTIME_S, OptimizationPlan, plan_optimization

SDK_VERSION = "sagemaker 3.27.0 (sagemaker-serve 1.27.0)"
# The keywords the script uses, as that SDK's signatures define them.
SDK_SIGNATURES: dict[str, tuple[str, ...]] = {
    "ModelBuilder": ("model", "role_arn", "instance_type", "env_vars", "image_uri", "s3_model_data_url"),
    "ModelBuilder.optimize": ("model_name", "output_path", "instance_type", "role_arn", "sagemaker_session",
                              "region", "tags", "job_name", "accept_eula", "quantization_config",
                              "compilation_config", "speculative_decoding_config", "sharding_config", "env_vars",
                              "vpc_config", "kms_key", "image_uri", "max_runtime_in_sec"),
    "ModelBuilder.deploy": ("endpoint_name", "initial_instance_count", "instance_type", "wait"),
}
FORMATS = ("sagemaker-sdk",)
EAGLE_NOTE = ("The SageMaker SDK's ModelBuilder.optimize() does not emit the EAGLE training config "
              "(ModelSpeculativeDecodingConfig {Technique: EAGLE, TrainingDataSource}), so this job is made "
              "with boto3: the exact request `jupyter-optimize optimize --dry-run` shows.")


@dataclass
class ExportedCode:
    """The script (and where it was written, if it was)."""

    recipe_name: str
    code: str
    path: str | None = None
    uses_boto3_for_eagle: bool = False

    def __str__(self) -> str:
        return self.code if self.path is None else f"wrote {self.path} ({len(self.code.splitlines())} lines)"

    def _repr_html_(self) -> str:
        where = f"<p>written to <code>{html.escape(self.path)}</code></p>" if self.path else ""
        return f"<b>SageMaker SDK code for {html.escape(self.recipe_name)}</b>{where}<pre>{html.escape(self.code)}</pre>"

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def installed_sdk_signatures() -> dict[str, tuple[str, ...]] | None:
    """The installed SDK's keyword names for what the script calls (None: not installed)."""
    import inspect
    import os

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # sagemaker.serve needs one at import
    try:
        from sagemaker.serve import ModelBuilder
    except ImportError:
        return None
    return {"ModelBuilder": tuple(inspect.signature(ModelBuilder).parameters),
            "ModelBuilder.optimize": tuple(p for p in inspect.signature(ModelBuilder.optimize).parameters if p != "self"),
            "ModelBuilder.deploy": tuple(p for p in inspect.signature(ModelBuilder.deploy).parameters if p != "self")}


def check_installed_sdk() -> None:
    """ExportError when the installed SDK lacks a keyword the script would pass."""
    found = installed_sdk_signatures()
    if found is None:
        return
    missing = {name: [k for k in keys if k not in found[name]] for name, keys in SDK_SIGNATURES.items()}
    missing = {k: v for k, v in missing.items() if v}
    if missing:
        raise ExportError(f"the installed SageMaker SDK differs from {SDK_VERSION}, which this export is written "
                          f"for: it lacks {missing}; install sagemaker==3.27.0 in the environment that runs the script")


def _py(value: Any, indent: int = 4) -> str:
    text = pprint.pformat(value, width=100 - indent, sort_dicts=False)
    return text.replace("\n", "\n" + " " * indent)


def export_sdk(recipe: Recipe, *, fmt: str = "sagemaker-sdk", output: str | None = None, **plan_kw: Any) -> ExportedCode:
    """SDK code for the recipe's optimization job and endpoint; `plan_kw` as plan_optimization
    takes them (role_arn, model_data_s3, output_s3, instance_type, region, ...)."""
    if fmt not in FORMATS:
        raise ExportError(f"export format {fmt!r} is not one of {', '.join(FORMATS)}")
    check_installed_sdk()
    plan = plan_optimization(recipe, **plan_kw)
    eagle = recipe.speculative is not None and recipe.speculative.method == "eagle"
    code = _boto3_script(recipe, plan) if eagle else _sdk_script(recipe, plan)
    compile(code, f"<export of {recipe.name}>", "exec")  # a syntax error here is ours, not the user's
    path = None
    if output:
        path = str(atomic_write_text(Path(output), code))
    return ExportedCode(recipe.name, code, path, eagle)


def _header(recipe: Recipe, plan: OptimizationPlan, sdk: bool = True) -> list[str]:
    written = (f"Written for {SDK_VERSION}: ModelBuilder, ModelBuilder.optimize() and ModelBuilder.deploy()\n"
               "as that package defines them." if sdk else
               "Written for boto3 (EAGLE draft training is not reachable through the SageMaker SDK).")
    lines = [f'"""SageMaker code for the jupyter-optimize recipe {recipe.name!r} ({", ".join(recipe.techniques)}).',
             "", written, "Run it where AWS credentials are configured.", '"""']
    if plan.placeholders:
        lines.insert(1, f"Replace the DRY-RUN placeholders ({', '.join(plan.placeholders)}) before running it.")
    lines += ["import os", "", f"REGION = {plan.region!r}"]
    if sdk:
        lines.append("os.environ.setdefault('AWS_DEFAULT_REGION', REGION)  # sagemaker.serve needs a region at import")
    return lines


def _sdk_script(recipe: Recipe, plan: OptimizationPlan) -> str:
    job = plan.job_request.params
    configs = {next(iter(c)): next(iter(c.values())) for c in job["OptimizationConfigs"]}
    kw = {"quantization_config": configs.get("ModelQuantizationConfig"),
          "compilation_config": configs.get("ModelCompilationConfig"),
          "sharding_config": configs.get("ModelShardingConfig")}
    deploy = plan.deployment
    env = dict(deploy.requests[0].params["PrimaryContainer"]["Environment"]) if deploy is not None else {}
    for key in ("OPTION_QUANTIZE", "HF_MODEL_ID"):  # the job sets the first; the JumpStart id names the model
        env.pop(key, None)
    eula = bool(job["ModelSource"]["S3"].get("ModelAccessConfig"))
    lines = _header(recipe, plan) + [
        "from sagemaker.serve import ModelBuilder", "",
        f"ROLE_ARN = {job['RoleArn']!r}", f"INSTANCE_TYPE = {job['DeploymentInstanceType']!r}",
        f"OUTPUT_PATH = {job['OutputConfig']['S3OutputLocation']!r}", "",
        "model_builder = ModelBuilder(",
        f"    model={recipe.model!r},  # JumpStart model id (jupyter-optimize's catalog)",
        "    role_arn=ROLE_ARN,", "    instance_type=INSTANCE_TYPE,",
        f"    env_vars={_py(env, 4)},  # the recipe's LMI (vLLM) settings", ")",
        "optimized_model = model_builder.optimize(",
        "    instance_type=INSTANCE_TYPE,", f"    accept_eula={eula!r},"]
    lines += [f"    {k}={_py(v, 4)}," for k, v in kw.items() if v is not None]
    lines += ["    output_path=OUTPUT_PATH,", f"    job_name={job['OptimizationJobName']!r},",
              f"    max_runtime_in_sec={job['StoppingCondition'].get('MaxRuntimeInSeconds', DEFAULT_MAX_RUNTIME_S)},",
              ")  # waits for the job (DescribeOptimizationJob) and points the builder at its output"]
    if deploy is not None:
        count = deploy.instance_count
        lines += [f"endpoint = model_builder.deploy(endpoint_name={deploy.endpoint_name!r}, "
                  f"initial_instance_count={count}, instance_type=INSTANCE_TYPE, wait=True)"]
    return "\n".join(lines) + "\n"


def _boto3_script(recipe: Recipe, plan: OptimizationPlan) -> str:
    job = plan.job_request.params
    lines = _header(recipe, plan, sdk=False) + [
        "import time", "", "import boto3", "",
        *("# " + line for line in textwrap.wrap(EAGLE_NOTE, 94)),
        "sagemaker = boto3.client('sagemaker', region_name=REGION)", ""]
    for path, uri in plan.uploads:
        bucket, _, key = uri[5:].partition("/")
        lines += [f"boto3.client('s3', region_name=REGION).upload_file({path!r}, {bucket!r}, {key!r})"
                  "  # the EAGLE training data"]
    lines += [f"CREATE_OPTIMIZATION_JOB = {_py(job, 0)}", "sagemaker.create_optimization_job(**CREATE_OPTIMIZATION_JOB)",
              f"deadline = time.time() + {job['StoppingCondition'].get('MaxRuntimeInSeconds', DEFAULT_MAX_RUNTIME_S)} + 3600",
              "while True:",
              "    job = sagemaker.describe_optimization_job(OptimizationJobName=CREATE_OPTIMIZATION_JOB['OptimizationJobName'])",
              "    if job['OptimizationJobStatus'] in ('COMPLETED', 'FAILED', 'STOPPED'):", "        break",
              "    if time.time() > deadline:",
              "        raise SystemExit('the optimization job is still running on AWS: describe it later')",
              "    time.sleep(60)",
              "if job['OptimizationJobStatus'] != 'COMPLETED':",
              "    raise SystemExit(f\"optimization job {job['OptimizationJobStatus']}: {job.get('FailureReason')}\")"]
    if plan.deployment is not None:
        reqs = [r.params for r in plan.deployment.requests]
        lines += ["# Deploy the output (SageMaker's draft models are not supported on inference components):",
                  f"CREATE_MODEL = {_py(reqs[0], 0)}",
                  "CREATE_MODEL['PrimaryContainer']['Image'] = job.get('OptimizationOutput', {}).get(",
                  "    'RecommendedInferenceImage', CREATE_MODEL['PrimaryContainer']['Image'])",
                  "sagemaker.create_model(**CREATE_MODEL)",
                  f"sagemaker.create_endpoint_config(**{_py(reqs[1], 0)})",
                  f"sagemaker.create_endpoint(**{_py(reqs[2], 0)})"]
    return "\n".join(lines) + "\n"
