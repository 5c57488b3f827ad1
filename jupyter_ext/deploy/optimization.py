"""A recipe as a SageMaker optimization job (CreateOptimizationJob), planned and checked.

The job's OptimizationConfigs come from the recipe's techniques, one config per technique
the job can do:
  quantize awq / fp8     -> ModelQuantizationConfig {Image: LMI, OverrideEnvironment: {OPTION_QUANTIZE}}
  compile                -> ModelCompilationConfig {} (SageMaker picks the compiler image)
  tensor parallel N      -> ModelShardingConfig {Image: LMI, OverrideEnvironment: {OPTION_TENSOR_PARALLEL_DEGREE: N}}
  speculative eagle      -> ModelSpeculativeDecodingConfig {Technique: EAGLE, TrainingDataSource: S3 data}
Speculation the endpoint does itself (ngram, suffix, draft_model) is no job config: it goes
with the deployed output's container environment, as in a plain deploy. `plan_optimization`
is pure: it refuses now what the SageMaker SDK's optimize() or SageMaker itself would refuse
(the SDK's combination rules, SageMaker's stated limits of its draft models), validates the
request against botocore's service model, and returns the requests; optimization_run makes
them, waits and deploys the output.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import OptimizationJobError, SageMakerLimitError
from ..recipes import Recipe, check_stack
from .aws import ApiRequest, redact, region_from_env
from .dryrun import DryRun
from .sagemaker_env import NAME_RE, ROLE_ARN_RE, lmi_image_uri

DEFAULT_MAX_RUNTIME_S = 36000  # the SDK's optimize() default (10 h)
# Placeholders a dry run names when planned without them; such a plan is never sent.
DRY_RUN_ROLE = "arn:aws:iam::123456789012:role/DRY-RUN"
DRY_RUN_BUCKET = "s3://DRY-RUN-BUCKET"
# The SageMaker SDK's optimize() rules (sagemaker-serve 1.27 validations/optimization.py):
# vLLM/TensorRT-LLM containers on these GPU families, compilation only on Neuron.
SDK_GPU_FAMILIES = ("p4d", "p4de", "p5", "g5", "g6")
SDK_NEURON_FAMILIES = ("inf2", "trn1", "trn1n")
# SageMaker's stated limits of its draft models (speculative decoding with a SageMaker draft):
DRAFT_LIMITS = ("fine-tuned models", "custom inference scripts", "local testing", "inference components")
CUSTOM_SCRIPT_KEYS = ("SAGEMAKER_PROGRAM", "OPTION_ENTRYPOINT", "SAGEMAKER_SUBMIT_DIRECTORY")
_TP_FLAGS = ("--tensor-parallel-size", "-tp")


def sagemaker_model() -> Any:
    """botocore's SageMaker service model (the installed version's): every shape is checked against it."""
    import botocore.session

    return botocore.session.get_session().get_service_model("sagemaker")


def validate_request(req: ApiRequest) -> None:
    """botocore's own parameter validation of the request (types, required members, lengths,
    ranges) plus the enums and patterns it leaves to the service; OptimizationJobError lists
    every problem."""
    from botocore.validate import ParamValidator

    if req.service != "sagemaker":
        return
    shape = sagemaker_model().operation_model(req.operation).input_shape
    report = ParamValidator().validate(req.params, shape)
    problems = [report.generate_report()] if report.has_errors() else []
    problems += _enum_and_pattern_problems(req.params, shape, req.operation)
    if problems:
        raise OptimizationJobError(f"{req.operation} would be refused by SageMaker: " + "; ".join(problems))


def _enum_and_pattern_problems(value: Any, shape: Any, path: str) -> list[str]:
    if shape.type_name == "structure" and isinstance(value, dict):
        return [p for k, v in value.items() if k in shape.members
                for p in _enum_and_pattern_problems(v, shape.members[k], f"{path}.{k}")]
    if shape.type_name == "list" and isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _enum_and_pattern_problems(v, shape.member, f"{path}[{i}]")]
    if shape.type_name == "string" and isinstance(value, str):
        if shape.enum and value not in shape.enum:
            return [f"{path}: {value!r} is not one of {', '.join(shape.enum)}"]
        pattern = shape.metadata.get("pattern")
        if pattern and "\\p{" not in pattern and not re.fullmatch(pattern, value):
            return [f"{path}: {value!r} does not match {pattern}"]
    return []


def deployment_instance_types() -> list[str]:
    """What CreateOptimizationJob accepts as DeploymentInstanceType (the service model's enum)."""
    return list(sagemaker_model().shape_for("OptimizationJobDeploymentInstanceType").enum)


def tensor_parallel_degree(recipe: Recipe, given: int | None = None) -> int | None:
    """`given`, else the recipe's tensor parallel degree (engine.tensor_parallel_size, or an
    engine.extra_args --tensor-parallel-size N)."""
    if given is not None:
        return given
    if recipe.engine.tensor_parallel_size is not None:
        return recipe.engine.tensor_parallel_size
    args = recipe.engine.extra_args
    for i, arg in enumerate(args):
        name, _, value = arg.partition("=")
        if name in _TP_FLAGS:
            value = value or (args[i + 1] if i + 1 < len(args) else "")
            try:
                return int(value)
            except ValueError:
                raise OptimizationJobError(f"engine.extra_args: {name} needs a whole number, got {value!r}") from None
    return None


def check_draft_limits(recipe: Recipe, *, fine_tuned: bool = False, inference_component: bool = False,
                       target: str = "sagemaker") -> None:
    """SageMakerLimitError for a SageMaker-trained draft (EAGLE) where SageMaker does not
    support one: with fine-tuned models, custom inference scripts, local testing or
    inference components."""
    if recipe.speculative is None or recipe.speculative.method != "eagle":
        return
    why = None
    if fine_tuned or getattr(recipe, "adapters", None):
        why = ("fine-tuned models", "optimize the base model, or use method: draft_model with your own draft")
    elif any(k in recipe.engine.env for k in CUSTOM_SCRIPT_KEYS):
        keys = ", ".join(k for k in CUSTOM_SCRIPT_KEYS if k in recipe.engine.env)
        why = ("custom inference scripts", f"drop {keys} from engine.env (the LMI container's own handler serves it)")
    elif target == "local":
        why = ("local testing", "run the job with --target sagemaker and benchmark the endpoint it deploys")
    elif inference_component:
        why = ("inference components", "deploy the job's output on the endpoint's variant (no --inference-component)")
    if why:
        raise SageMakerLimitError(f"speculative: eagle uses a SageMaker draft model, which SageMaker does not "
                                  f"support with {why[0]} (its stated limits: {', '.join(DRAFT_LIMITS)}): {why[1]}")


def _check_combination(recipe: Recipe, instance_type: str, tp: int | None) -> None:
    """The SDK's combination rules, with its reasons (check_stack holds compile + speculative)."""
    family = instance_type.split(".")[1] if instance_type.count(".") == 2 else ""
    if family not in SDK_GPU_FAMILIES + SDK_NEURON_FAMILIES:
        raise OptimizationJobError(
            f"optimization jobs run for GPU families {', '.join(SDK_GPU_FAMILIES)} and Neuron families "
            f"{', '.join(SDK_NEURON_FAMILIES)} (the SageMaker SDK's rule); {instance_type} is neither: pass "
            "--instance-type, e.g. ml.g5.12xlarge")
    if tp is not None and (recipe.quantize or _compiled(recipe) or recipe.speculative and recipe.speculative.method == "eagle"):
        raise OptimizationJobError("sharding (tensor parallel) combines with no other optimization in one job (the "
                                   "SageMaker SDK's rule): drop engine.tensor_parallel_size, or the other "
                                   "techniques, and run two jobs")
    if family in SDK_NEURON_FAMILIES and (recipe.quantize or recipe.speculative or not _compiled(recipe)):
        raise OptimizationJobError(f"on Neuron instances ({instance_type}) optimization jobs only compile (the SageMaker "
                                   "SDK's rule): keep compile and drop quantize and speculative")


def _compiled(recipe: Recipe) -> bool:
    return recipe.compile is not None and recipe.compile.enabled


def optimization_configs(recipe: Recipe, image: str, tp: int | None, data_s3: str | None) -> list[dict[str, Any]]:
    """The OptimizationConfigs union members for the recipe (one per technique the job can do)."""
    configs: list[dict[str, Any]] = []
    if recipe.quantize is not None:
        configs.append({"ModelQuantizationConfig": {
            "Image": image, "OverrideEnvironment": {"OPTION_QUANTIZE": recipe.quantize.method}}})
    if _compiled(recipe):
        configs.append({"ModelCompilationConfig": {}})
    if tp is not None:
        configs.append({"ModelShardingConfig": {
            "Image": image, "OverrideEnvironment": {"OPTION_TENSOR_PARALLEL_DEGREE": str(tp)}}})
    if recipe.speculative is not None and recipe.speculative.method == "eagle":
        spec: dict[str, Any] = {"Technique": "EAGLE"}
        if data_s3:
            spec["TrainingDataSource"] = {"S3Uri": data_s3, "S3DataType": "S3Prefix"}
        configs.append({"ModelSpeculativeDecodingConfig": spec})
    return configs


def _s3(uri: str, what: str) -> str:
    if not uri.startswith("s3://") or len(uri) <= 5:
        raise OptimizationJobError(f"{what} must be an s3:// URI, got {uri!r}")
    return uri.rstrip("/") + "/"


@dataclass
class OptimizationPlan:
    """Everything an optimization run will do, as the requests that do it (nothing sent yet).
    `uploads` are (local file, s3 URI) pairs for an EAGLE dataset that is not on S3 yet;
    `deployment` is the plan that deploys the job's output (its image is replaced by the job's
    RecommendedInferenceImage once the job has run)."""

    recipe_name: str
    region: str
    job_name: str
    instance_type: str
    output_s3: str
    requests: list[ApiRequest]
    uploads: list[tuple[str, str]] = field(default_factory=list)
    deployment: Any = None
    placeholders: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def job_request(self) -> ApiRequest:
        return next(r for r in self.requests if r.operation == "CreateOptimizationJob")

    def to_dict(self) -> dict[str, Any]:
        return {"recipe_name": self.recipe_name, "region": self.region, "job_name": self.job_name,
                "instance_type": self.instance_type, "output_s3": self.output_s3,
                "requests": [r.to_dict() for r in self.requests], "uploads": self.uploads,
                "placeholders": self.placeholders, "warnings": self.warnings}

    def __str__(self) -> str:
        ops = " -> ".join(r.operation for r in self.requests)
        return f"Optimization plan {self.job_name} ({self.recipe_name}, {self.instance_type}): {ops}"

    def _repr_html_(self) -> str:
        import html

        from ..catalog.specs import html_table

        rows = [("recipe", self.recipe_name), ("region", self.region), ("instance", self.instance_type),
                ("configs", ", ".join(next(iter(c)) for c in self.job_request.params["OptimizationConfigs"])),
                ("output", self.output_s3), ("then", "deploy the output" if self.deployment else "nothing")]
        warn = "".join(f"<br>&#9888; {html.escape(w)}" for w in self.warnings)
        return html_table(["field", "value"], rows, caption=f"Optimization job {self.job_name}") + warn


def plan_optimization(recipe: Recipe, *, role_arn: str | None = None, model_data_s3: str | None = None,
                      output_s3: str | None = None, instance_type: str | None = None, region: str | None = None,
                      job_name: str | None = None, tensor_parallel: int | None = None, image_uri: str | None = None,
                      accept_eula: bool = False, max_runtime_s: int = DEFAULT_MAX_RUNTIME_S,
                      fine_tuned: bool = False, inference_component: bool = False,
                      endpoint_name: str | None = None, deploy_output: bool = True,
                      draft_model_s3: str | None = None) -> OptimizationPlan:
    """The requests of an optimization job for `recipe` (and of the deploy of its output;
    `draft_model_s3` is a draft_model recipe's draft, as in a plain deploy). Without role_arn,
    model_data_s3 or output_s3 the plan names placeholders (a dry run to look at) and cannot
    be run."""
    check_stack(recipe, "sagemaker")
    check_draft_limits(recipe, fine_tuned=fine_tuned, inference_component=inference_component)
    region = region or region_from_env()
    if not region:
        raise OptimizationJobError("no AWS region: pass --region us-east-1 (or set AWS_REGION)")
    instance_type = instance_type or recipe.instance_type
    if not instance_type:
        raise OptimizationJobError("no instance type: set instance_type in the recipe or pass --instance-type "
                                   "(the instance the optimized model is made for, e.g. ml.g5.12xlarge)")
    tp = tensor_parallel_degree(recipe, tensor_parallel)
    _check_combination(recipe, instance_type, tp)
    placeholders = [n for n, v in (("role ARN", role_arn), ("model S3 URI", model_data_s3),
                                   ("output S3 URI", output_s3)) if not v]
    name = job_name or _job_name(recipe)
    if not NAME_RE.match(name):
        raise OptimizationJobError(f"job name {name!r} is invalid: use 1-63 letters, digits and hyphens")
    role = role_arn or DRY_RUN_ROLE
    if not ROLE_ARN_RE.match(role):
        raise OptimizationJobError(f"role ARN {role!r} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)")
    model_s3 = _s3(model_data_s3 or f"{DRY_RUN_BUCKET}/models/{recipe.model}/", "--model-data-s3")
    out = _s3(output_s3 or f"{DRY_RUN_BUCKET}/optimized/", "--output-s3") + f"{name}/"
    requests, uploads, data_s3 = _dataset_upload(recipe, out)
    image = image_uri or lmi_image_uri(region)
    params = _job_params(recipe, name, role, model_s3, out, instance_type, tp, image, data_s3, accept_eula, max_runtime_s)
    job = ApiRequest("sagemaker", "CreateOptimizationJob", params,
                     f"{', '.join(next(iter(c)) for c in params['OptimizationConfigs'])} for {instance_type}")
    validate_request(job)
    requests.append(job)
    plan = OptimizationPlan(recipe.name, region, name, instance_type, out, requests, uploads,
                            placeholders=placeholders)
    if deploy_output:
        from .sagemaker import plan_deployment

        plan.deployment = plan_deployment(recipe, endpoint_name, role_arn=role, region=region,
                                          instance_type=instance_type, model_data_s3=out, image_uri=image,
                                          accept_eula=accept_eula, inference_component=inference_component,
                                          draft_model_s3=draft_model_s3)
        plan.warnings += [w for w in plan.deployment.warnings if "image from" not in w]
        if _compiled(recipe):
            # A GPU compilation job makes a TensorRT-LLM model: the image the job recommends picks
            # its own engine, which OPTION_ROLLING_BATCH=vllm would override.
            plan.deployment.requests[0].params["PrimaryContainer"]["Environment"].pop("OPTION_ROLLING_BATCH", None)
            plan.warnings.append("a compiled output is served by the image the job recommends (TensorRT-LLM on GPU, "
                                 "Neuron on inf2/trn1), with its own engine: OPTION_ROLLING_BATCH is left unset")
    plan.warnings += _warnings(recipe, placeholders)
    return plan


def _job_params(recipe: Recipe, name: str, role: str, model_s3: str, out: str, instance_type: str, tp: int | None,
                image: str, data_s3: str | None, accept_eula: bool, max_runtime_s: int) -> dict[str, Any]:
    from ..catalog import get_model

    spec = get_model(recipe.model)
    if getattr(spec, "eula_required", False) and not accept_eula:
        raise OptimizationJobError(f"{recipe.model} is published under {getattr(spec, 'license', 'its licence')}, "
                                   "which must be accepted first: read it, then pass --accept-eula")
    configs = optimization_configs(recipe, image, tp, data_s3)
    if not configs:
        raise OptimizationJobError(
            f"recipe {recipe.name!r} has nothing an optimization job does: add quantize (awq or fp8), compile, "
            "speculative: {method: eagle} or a tensor parallel degree (--tensor-parallel N); an empty stack is refused")
    source: dict[str, Any] = {"S3Uri": model_s3}
    if accept_eula:
        source["ModelAccessConfig"] = {"AcceptEula": True}
    env = {"OPTION_MAX_MODEL_LEN": recipe.engine.max_model_len, "OPTION_DTYPE": _lmi_dtype(recipe.engine.dtype)}
    return {"OptimizationJobName": name, "RoleArn": role, "ModelSource": {"S3": source},
            "DeploymentInstanceType": instance_type,
            "OptimizationEnvironment": {k: str(v) for k, v in env.items() if v is not None},
            "OptimizationConfigs": configs, "OutputConfig": {"S3OutputLocation": out},
            "StoppingCondition": {"MaxRuntimeInSeconds": int(max_runtime_s)},
            "Tags": [{"Key": "created-by", "Value": "jupyter-optimize"},
                     {"Key": "jupyter-optimize:recipe", "Value": recipe.name}]}


def _lmi_dtype(dtype: str) -> str | None:
    return {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32"}.get(dtype)


def _dataset_upload(recipe: Recipe, out: str) -> tuple[list[ApiRequest], list[tuple[str, str]], str | None]:
    """An EAGLE dataset on S3 is used where it is; a local file is uploaded beside the output."""
    spec = recipe.speculative
    if spec is None or spec.method != "eagle" or not spec.dataset:
        return [], [], None
    if spec.dataset.startswith("s3://"):
        return [], [], _s3(spec.dataset, "speculative.dataset")
    path = Path(spec.dataset).expanduser()
    prefix = f"{out}eagle-data/"
    bucket, _, key = (prefix + path.name)[5:].partition("/")
    put = ApiRequest("s3", "PutObject", {"Bucket": bucket, "Key": key,
                                         "Body": f"<contents of {path} ({path.stat().st_size} bytes)>"},
                     "uploads the EAGLE training data")
    return [put], [(str(path), prefix + path.name)], prefix


def _job_name(recipe: Recipe) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", recipe.name).strip("-")[:36].rstrip("-")
    return f"jo-{slug}-opt-{time.strftime('%Y%m%d-%H%M%S')}"


def _warnings(recipe: Recipe, placeholders: list[str]) -> list[str]:
    out = []
    if placeholders:
        out.append(f"planned without {', '.join(placeholders)}: the plan names placeholders (DRY-RUN) and "
                   "cannot be run; pass --role-arn, --model-data-s3 and --output-s3")
    spec = recipe.speculative
    if spec is not None and spec.method != "eagle":
        out.append(f"speculative: {spec.method} is no optimization job config: the endpoint runs it from the "
                   "container environment of the deployed output")
    return out


def dry_run(plan: OptimizationPlan) -> DryRun:
    """The exact requests an optimization run makes, in order (nothing sent, no credentials)."""
    then = ["poll DescribeOptimizationJob until OptimizationJobStatus is COMPLETED (FAILED or STOPPED: stop)"]
    requests = [r.to_dict() for r in plan.requests]
    if plan.deployment is not None:
        then.append("deploy the output: the requests below, with the image replaced by the job's "
                    "OptimizationOutput.RecommendedInferenceImage when it names one")
        requests += [r.to_dict() for r in plan.deployment.requests]
    doc = {"job_name": plan.job_name, "region": plan.region, "requests": requests, "then": then,
           "placeholders": plan.placeholders, "warnings": plan.warnings}
    return DryRun(f"Requests of optimization job {plan.job_name}", json.dumps(redact(doc), indent=2), plan)
