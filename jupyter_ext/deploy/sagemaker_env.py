"""What SageMaker and its LMI (vLLM) container are told, and the checks made before telling them.

What the container is told comes from the recipe, one environment variable per setting, so
that the endpoint runs the same vLLM configuration the recipe was benchmarked with locally:
the engine-wide settings here, each technique's own OPTION_* variables (and the speculative
config, built by the same function that builds the local server's) from the techniques registry.
Inputs SageMaker would refuse only after minutes of provisioning (a malformed role ARN, an
unaccepted licence, an AWQ stack without its checkpoint) are refused here at once.
"""

from __future__ import annotations

import functools
import json
import re
import time
from typing import Any

from ..errors import DeployError
from ..recipes import ROUTING_STRATEGIES as RECIPE_ROUTING
from ..recipes import Recipe
from ..techniques import LmiTarget, active
from ..techniques.registry import speculative_method
from .aws import ApiRequest

# DJL LMI (vLLM) image, LMI V17 = DJL Serving 0.35.0 (vLLM 0.11.1, CUDA 12.8; djl-serving
# serving/docs/lmi/release_notes.md). The accounts are the SageMaker Python SDK's own table,
# `image_uris.retrieve("djl-lmi", region, version="0.35.0")`, read from sagemaker 3.20.0
# (sagemaker-core 2.20.0: src/sagemaker/core/image_uri_config/djl-lmi.json, 2026-08-14), and
# checked unchanged against sagemaker-core 2.27.0 (sagemaker 3.27.0) on 2026-12-03.
# The SDK is not a dependency: installing it would downgrade protobuf (7 -> 6), pyarrow and
# rich in the engine environment. tests/test_deploy_sagemaker.py compares this table with
# image_uris wherever the SDK is importable. The SDK's newest LMI is 0.38.0 (0.38.0-lmi29.0.0-
# cu130); the container settings here were written against V17 and not tried on newer ones.
LMI_SDK_RELEASE = "sagemaker 3.20.0"
LMI_VERSION = "0.35.0"
LMI_REPOSITORY = "djl-inference"
LMI_TAG = "0.35.0-lmi17.0.0-cu128"
LMI_TABLE_SOURCE = f"LMI V17; accounts from the SageMaker SDK's djl-lmi table ({LMI_SDK_RELEASE})"
_DLC_ACCOUNT_DEFAULT = "763104351884"
LMI_ACCOUNTS: dict[str, str] = {
    **{r: _DLC_ACCOUNT_DEFAULT for r in (
        "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "sa-east-1",
        "eu-central-1", "eu-north-1", "eu-west-1", "eu-west-2", "eu-west-3",
        "ap-northeast-1", "ap-northeast-2", "ap-south-1", "ap-southeast-1", "ap-southeast-2")},
    "af-south-1": "626614931356", "ap-east-1": "871362719292", "ap-east-2": "975050140332",
    "ap-northeast-3": "364406365360", "ap-south-2": "772153158452", "ap-southeast-3": "907027046896",
    "ap-southeast-4": "457447274322", "ap-southeast-5": "550225433462", "ap-southeast-6": "633930458069",
    "ap-southeast-7": "590183813437", "ca-west-1": "204538143572", "eu-central-2": "380420809688",
    "eu-south-1": "692866216735", "eu-south-2": "503227376785", "il-central-1": "780543022126",
    "me-central-1": "914824155844", "me-south-1": "217643126080", "mx-central-1": "637423239942",
    "cn-north-1": "727897471807", "cn-northwest-1": "727897471807",
    "us-gov-east-1": "446045086412", "us-gov-west-1": "442386744353",
    "eusc-de-east-1": "204133271717", "eu-isoe-west-1": "371248457586", "us-iso-east-1": "886529160074",
    "us-isob-east-1": "094389454867", "us-isof-east-1": "303241398832", "us-isof-south-1": "454834333376",
}

# SageMaker's RoutingStrategy enum, as recipes' deploy.routing lists it (recipes.py).
ROUTING_STRATEGIES = tuple(r.upper() for r in RECIPE_ROUTING)
NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
ROLE_ARN_RE = re.compile(r"^arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$")
# Where SageMaker mounts an AdditionalModelDataSources channel inside the container.
DRAFT_CHANNEL = "draft_model"
DRAFT_MOUNT = f"/opt/ml/additional-model-data-sources/{DRAFT_CHANNEL}"
# LMI's advice for LLMs: allow long weight downloads and a long first health check.
STARTUP_TIMEOUT_S = 900
# The switch of SageMaker's hosting standard (model_hosting_container_standards) for sessions.
SESSIONS_ENV = "SAGEMAKER_ENABLE_STATEFUL_SESSIONS"
_LMI_DTYPE = {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32"}


def lmi_image_uri(region: str, tag: str = LMI_TAG) -> str:
    """The LMI image for `region`; pass image_uri to plan_deployment for another one."""
    account = LMI_ACCOUNTS.get(region)
    if account is None:
        raise DeployError(f"no LMI image is known for region {region!r} (known: "
                          f"{', '.join(sorted(LMI_ACCOUNTS))}); pass image_uri=... explicitly")
    return f"{account}.dkr.{_ecr_host(region)}/{LMI_REPOSITORY}:{tag}"


@functools.lru_cache(maxsize=None)
def _ecr_host(region: str) -> str:
    """ECR's host in `region` as botocore's endpoint data has it (ecr.<region>.amazonaws.com,
    .amazonaws.com.cn, .c2s.ic.gov, .amazonaws.eu, ...): how the SDK's image_uris builds it."""
    import botocore.loaders
    import botocore.regions

    resolver = botocore.regions.EndpointResolver(botocore.loaders.create_loader().load_data("endpoints"))
    endpoint = resolver.construct_endpoint("ecr", region)
    if endpoint is None:  # a region this botocore does not list yet: its partition's domain
        partition = resolver.get_partition_for_region(region)
        return f"ecr.{region}.{resolver.get_partition_dns_suffix(partition)}"
    return endpoint["hostname"]


def s3_data_source(uri: str, accept_eula: bool = False) -> dict[str, Any]:
    """An uncompressed S3 prefix (the form LMI loads fastest: no tarball to unpack)."""
    if not uri.startswith("s3://"):
        raise DeployError(f"model data must be an s3:// prefix, got {uri!r}")
    src: dict[str, Any] = {"S3Uri": uri.rstrip("/") + "/", "S3DataType": "S3Prefix", "CompressionType": "None"}
    if accept_eula:
        src["ModelAccessConfig"] = {"AcceptEula": True}
    return src


def speculative_config(recipe: Recipe, draft_model_s3: str | None, draft_hf_id: str | None) -> dict[str, Any] | None:
    """vLLM's --speculative-config for the endpoint (LMI passes OPTION_SPECULATIVE_CONFIG through
    to vLLM), with the draft, if the method has one, at its S3 channel's mount or its Hub id."""
    technique = speculative_method(recipe)
    if technique is None:
        return None
    draft = DRAFT_MOUNT if draft_model_s3 else draft_hf_id  # a Hub id: vLLM downloads it at start
    return technique.lmi_speculative_config(recipe, LmiTarget(draft=draft))


def container_environment(recipe: Recipe, *, hf_id: str | None, model_data_s3: str | None,
                          tensor_parallel: int | str, spec_config: dict[str, Any] | None) -> dict[str, str]:
    """LMI environment variables for the recipe (all values strings, as SageMaker requires)."""
    eng = recipe.engine
    env: dict[str, str] = {"OPTION_ENGINE": "Python", "OPTION_ROLLING_BATCH": "vllm",
                           "OPTION_TENSOR_PARALLEL_DEGREE": str(tensor_parallel)}
    if model_data_s3 is None:
        if not hf_id:
            raise DeployError(f"model {recipe.model!r} has no Hugging Face id; pass model_data_s3='s3://...'")
        env["HF_MODEL_ID"] = hf_id
    # else: SageMaker puts the S3 prefix at /opt/ml/model, where LMI looks by default.
    optional = {
        "OPTION_MAX_MODEL_LEN": eng.max_model_len,
        "OPTION_MAX_ROLLING_BATCH_SIZE": eng.max_num_seqs,
        "OPTION_MAX_NUM_BATCHED_TOKENS": eng.max_num_batched_tokens,
        "OPTION_GPU_MEMORY_UTILIZATION": eng.gpu_memory_utilization,
        "OPTION_DTYPE": _LMI_DTYPE.get(eng.dtype),
        "OPTION_KV_CACHE_DTYPE": None if eng.kv_cache_dtype == "auto" else eng.kv_cache_dtype,
        "OPTION_PIPELINE_PARALLEL_DEGREE": eng.pipeline_parallel_size,
    }
    env.update({k: str(v) for k, v in optional.items() if v is not None})
    # No compilation asked for = vLLM eager mode, exactly as the local baseline runs.
    env["OPTION_ENFORCE_EAGER"] = "true"
    target = LmiTarget(model_data_s3=model_data_s3)
    for t in active(recipe):
        env.update(t.lmi_env(recipe, target))
    if recipe.deploy is not None and recipe.deploy.sessions:
        env[SESSIONS_ENV] = "true"
    if spec_config is not None:  # from `speculative_config`, which knows where the draft is
        env["OPTION_SPECULATIVE_CONFIG"] = json.dumps(spec_config, separators=(",", ":"))
    env.update(_extra_args_env(eng.extra_args))
    env.update({k: str(v) for k, v in eng.env.items() if not k.startswith("VLLM_CPU_")})
    return env


def _extra_args_env(args: list[str]) -> dict[str, str]:
    """vLLM CLI flags as LMI options: `--max-num-batched-tokens 8192` -> OPTION_MAX_NUM_BATCHED_TOKENS."""
    out: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise DeployError(f"engine.extra_args: expected a --flag, got {arg!r}")
        name, _, value = arg[2:].partition("=")
        if not value:
            has_value = i + 1 < len(args) and not args[i + 1].startswith("--")
            value = args[i + 1] if has_value else "true"
            i += 1 if has_value else 0
        out["OPTION_" + name.replace("-", "_").upper()] = value
        i += 1
    return out


# -- the SageMaker requests that carry all this ---------------------------------------
def model_request(name: str, image: str, env: dict[str, str], role_arn: str, model_data_s3: str | None,
                  draft_model_s3: str | None, accept_eula: bool, tags: list[dict[str, str]]) -> ApiRequest:
    container: dict[str, Any] = {"Image": image, "Environment": env}
    if model_data_s3:
        container["ModelDataSource"] = {"S3DataSource": s3_data_source(model_data_s3, accept_eula)}
    if draft_model_s3:
        container["AdditionalModelDataSources"] = [
            {"ChannelName": DRAFT_CHANNEL, "S3DataSource": s3_data_source(draft_model_s3, accept_eula)}]
    return ApiRequest("sagemaker", "CreateModel", {
        "ModelName": name, "ExecutionRoleArn": role_arn, "PrimaryContainer": container, "Tags": tags},
        "the LMI container and the recipe's vLLM settings")


def endpoint_config_request(names: dict[str, str], instance_type: str, count: int, routing: str,
                             with_ic: bool, role_arn: str, tags: list[dict[str, str]]) -> ApiRequest:
    variant: dict[str, Any] = {"VariantName": "AllTraffic", "InstanceType": instance_type,
                               "InitialInstanceCount": count,
                               "RoutingConfig": {"RoutingStrategy": routing}}
    params: dict[str, Any] = {"EndpointConfigName": names["config"], "ProductionVariants": [variant], "Tags": tags}
    if with_ic:
        # Inference components carry the model; the endpoint only provides instances.
        params["ExecutionRoleArn"] = role_arn
    else:
        variant["ModelName"] = names["model"]
        variant["ModelDataDownloadTimeoutInSeconds"] = STARTUP_TIMEOUT_S
        variant["ContainerStartupHealthCheckTimeoutInSeconds"] = STARTUP_TIMEOUT_S
    return ApiRequest("sagemaker", "CreateEndpointConfig", params, f"{count} x {instance_type}, {routing} routing")


def inference_component_request(names: dict[str, str], accelerators: int, min_memory_mb: int,
                                 copies: int, tags: list[dict[str, str]]) -> ApiRequest:
    return ApiRequest("sagemaker", "CreateInferenceComponent", {
        "InferenceComponentName": names["ic"], "EndpointName": names["endpoint"], "VariantName": "AllTraffic",
        "Specification": {
            "ModelName": names["model"],
            "StartupParameters": {"ModelDataDownloadTimeoutInSeconds": STARTUP_TIMEOUT_S,
                                  "ContainerStartupHealthCheckTimeoutInSeconds": STARTUP_TIMEOUT_S},
            "ComputeResourceRequirements": {"NumberOfAcceleratorDevicesRequired": accelerators,
                                            "MinMemoryRequiredInMb": min_memory_mb}},
        "RuntimeConfig": {"CopyCount": copies}, "Tags": tags},
        "places the model on the endpoint (made once the endpoint is InService)")


def adapter_component_requests(recipe: Recipe, names: dict[str, str], adapters_s3: str,
                               tags: list[dict[str, str]]) -> list[ApiRequest]:
    """One adapter inference component per LoRA adapter of the recipe, on the base component:
    it names the base (BaseInferenceComponentName) and the adapter's tarball (ArtifactUrl), and
    uses the base component's compute, so it takes no variant, resources or copy count."""
    from ..techniques.adapters import adapter_artifact_url

    return [ApiRequest("sagemaker", "CreateInferenceComponent", {
        "InferenceComponentName": ic, "EndpointName": names["endpoint"],
        "Specification": {"BaseInferenceComponentName": names["ic"],
                          "Container": {"ArtifactUrl": adapter_artifact_url(adapters_s3, adapter)}},
        "Tags": tags}, f"LoRA adapter {adapter} on {names['ic']} (made once that component is InService)")
        for adapter, ic in adapter_component_names(recipe, names).items()]


def adapter_component_names(recipe: Recipe, names: dict[str, str]) -> dict[str, str]:
    """adapter name -> its inference component's name (`<endpoint>-lora-<adapter>`, <= 63 characters)."""
    if recipe.adapters is None:
        return {}
    return {a: adapter_component_name(names["endpoint"], a) for a in recipe.adapters.modules}


def adapter_component_name(endpoint: str, adapter: str) -> str:
    """The inference component deploy makes for LoRA adapter `adapter` on `endpoint`."""
    return f"{endpoint[:57 - len(adapter)].rstrip('-')}-lora-{adapter}"


# -- checks: refuse now what SageMaker would refuse after minutes ----------------------
def deploy_tensor_parallel(recipe: Recipe, instance_type: str, accelerators: int) -> int | str:
    """OPTION_TENSOR_PARALLEL_DEGREE: the planner's degree for the instance (or the recipe's
    own), refused as a DeployError when it cannot run there; "max" where the catalog gives no
    accelerator count."""
    if not accelerators:
        return recipe.engine.tensor_parallel_size or "max"
    from ..errors import PlanError
    from ..planning.planner import parallel_degree

    try:
        return parallel_degree(recipe, instance_type)
    except PlanError as e:
        raise DeployError(str(e)) from None


def ic_devices(recipe: Recipe, tp: int | str, accelerators: int) -> int:
    """Accelerators one inference-component copy asks for: its tensor x pipeline degree."""
    if isinstance(tp, str):
        return accelerators or 1
    return tp * (recipe.engine.pipeline_parallel_size or 1)


def validate_inputs(recipe: Recipe, role_arn: str, instance_type: str | None, instance_count: int,
                    routing: str, accept_eula: bool, model_data_s3: str | None, copy_count: int,
                    adapters_s3: str | None = None) -> tuple[Any, Any]:
    """The catalog entries of the model and instance, or the named error for the first input
    SageMaker would refuse (after minutes of provisioning, for some of them)."""
    from ..catalog import get_instance, get_model  # late: the catalog reads data files

    if not instance_type:
        raise DeployError("no instance type: set instance_type in the recipe or pass "
                          "instance_type='ml.g5.2xlarge' (any GPU type of the catalog)")
    inst = get_instance(instance_type)  # UnknownInstanceError names the known types
    kind = getattr(inst, "kind", "gpu")
    if kind != "gpu":
        raise DeployError(f"{instance_type} is a {kind} instance; the LMI vLLM container needs a GPU "
                          "instance (ml.g5, ml.g6, ml.p4d, ml.p5)")
    if not isinstance(role_arn, str) or not ROLE_ARN_RE.match(role_arn):
        raise DeployError(f"role_arn {role_arn!r} is not an IAM role ARN; expected "
                          "arn:aws:iam::<12-digit account>:role/<name> with SageMaker execution rights")
    if instance_count < 1:
        raise DeployError(f"instance_count must be at least 1, got {instance_count}")
    if copy_count < 1:
        raise DeployError(f"copy_count must be at least 1, got {copy_count}")
    if routing not in ROUTING_STRATEGIES:
        raise DeployError(f"routing {routing!r} is not one of SageMaker's RoutingStrategy values "
                          f"({', '.join(ROUTING_STRATEGIES)}); in a recipe: deploy: {{routing: random}}")
    model_spec = get_model(recipe.model)
    if getattr(model_spec, "eula_required", False) and not accept_eula:
        licence = getattr(model_spec, "license", None) or "its licence"
        raise DeployError(f"{recipe.model} is published under {licence}, which must be accepted "
                          "before deploying: read it, then pass accept_eula=True (CLI and magic: --accept-eula)")
    target = LmiTarget(model_data_s3=model_data_s3, adapters_s3=adapters_s3)
    for t in active(recipe):
        t.check_deploy(recipe, target)  # e.g. AWQ refuses to deploy without its checkpoint on S3
    return model_spec, inst


def resource_names(endpoint: str) -> dict[str, str]:
    """Model, config and component names derived from the endpoint's, so undeploy can find them."""
    if not NAME_RE.match(endpoint):
        raise DeployError(f"endpoint name {endpoint!r} is invalid: use 1-63 letters, digits and "
                          "hyphens, starting and ending with a letter or digit")
    base = endpoint[:56].rstrip("-")
    return {"endpoint": endpoint, "config": f"{base}-config", "model": f"{base}-model", "ic": f"{base}-ic"}


def default_endpoint_name(recipe: Recipe) -> str:
    """A new name per deploy (recipe + time): endpoint names must be unique in a region."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", recipe.name).strip("-")[:40].rstrip("-")
    return f"jo-{slug}-{time.strftime('%Y%m%d-%H%M%S')}"


def draft_hf_id(recipe: Recipe) -> str | None:
    """The Hub id of the recipe's draft model (the endpoint can download it); None otherwise."""
    technique = speculative_method(recipe)
    return technique.draft_hf_id(recipe) if technique else None


def plan_warnings(recipe: Recipe, model_spec: Any, env: dict[str, str], model_data_s3: str | None,
                  image_uri: str | None) -> list[str]:
    """What will not fail the plan but may fail or mislead later."""
    out = []
    if getattr(model_spec, "eula_required", False) and not model_data_s3 and "HF_TOKEN" not in env:
        out.append(f"{model_spec.hf_id} is gated on the Hugging Face Hub: put HF_TOKEN in the recipe's "
                   "engine.env, or pass model_data_s3 with the weights on S3")
    for t in active(recipe):
        out += t.deploy_warnings(recipe)
    if image_uri is None:
        out.append(f"image from {LMI_TABLE_SOURCE}; pass image_uri to pin another")
    return out
