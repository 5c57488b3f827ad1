"""SageMaker AI recommendation jobs: the managed twin of `tune`, built from the same SLO.

A recommendation job benchmarks candidate deployments of a model (instance types, and with
OptimizeModel the service's own speculative decoding and kernel tuning) under a workload and
ranks them against a performance target. It takes two requests: CreateAIWorkloadConfig (the
workload: an inline AIPerf spec with the seed's prompt shape) and CreateAIRecommendationJob.

What the API can and cannot say (botocore's service model, checked at import of a plan):
PerformanceTarget.Constraints are a list of {Metric: ttft-ms | throughput | cost}, with no
threshold and no percentile. So an SLO `ttft_p99=2s` becomes the constraint {Metric: ttft-ms}
(what the job optimizes), and its threshold travels in a tag; `meets_slo` checks each
recommendation's ExpectedPerformance against the threshold once the job has run. An SLO on a
metric the API has no constraint for (tpot, itl, e2e) is refused with a named error.
"""

from __future__ import annotations

import json
import random
import re
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import RecommendationUnavailableError
from ..recipes import Recipe
from .aws import ApiRequest, redact, region_from_env
from .dryrun import DryRun
from .optimization import DRY_RUN_BUCKET, DRY_RUN_ROLE, sagemaker_model, validate_request

OPERATIONS = ("CreateAIWorkloadConfig", "CreateAIRecommendationJob")
# SLO metric (as `tune` and bench name it) -> the API's constraint metric.
CONSTRAINT_METRIC = {"ttft": "ttft-ms", "throughput": "throughput", "cost": "cost"}
OBJECTIVES = ("throughput", "cost")
FRAMEWORKS = ("LMI", "VLLM")
MAX_INSTANCE_TYPES = 3  # AIRecommendationInstanceTypeList max
_SLO_ITEM = re.compile(r"^(?P<metric>[a-z]+)_(?P<pct>p\d{1,2}(?:\.\d+)?)=(?P<value>[0-9.]+)(?P<unit>ms|s)?$")

Slo = Mapping[str, tuple[str, float]]  # metric -> (percentile, seconds), e.g. {"ttft": ("p99", 2.0)}


def require_operations() -> None:
    """RecommendationUnavailableError when the installed botocore lacks the operations."""
    import botocore

    names = set(sagemaker_model().operation_names)
    missing = [op for op in OPERATIONS if op not in names]
    if missing:
        raise RecommendationUnavailableError(
            f"the installed botocore {botocore.__version__} has no {', '.join(missing)} (SageMaker AI recommendation "
            "jobs); upgrade it (pip install -U boto3 botocore), or use the local `tune`")


def slo_from_text(text: str) -> dict[str, tuple[str, float]]:
    """'ttft_p99=2s,ttft_p50=500ms' -> {'ttft': ('p99', 2.0)} ... (the last one per metric wins)."""
    out: dict[str, tuple[str, float]] = {}
    for item in (x.strip() for x in str(text).split(",") if x.strip()):
        m = _SLO_ITEM.match(item)
        if not m:
            raise RecommendationUnavailableError(f"SLO {item!r} is not METRIC_pNN=VALUE[ms|s], e.g. ttft_p99=2s")
        value = float(m["value"]) / (1000.0 if m["unit"] == "ms" else 1.0)
        out[m["metric"]] = (m["pct"], value)
    return out


def constraints(slo: Slo, objectives: tuple[str, ...] | list[str] = ()) -> list[dict[str, str]]:
    """PerformanceTarget.Constraints for the SLO (and any throughput/cost objectives)."""
    unknown = [m for m in slo if m not in CONSTRAINT_METRIC]
    if unknown:
        raise RecommendationUnavailableError(
            f"SageMaker AI recommendation jobs constrain only {', '.join(CONSTRAINT_METRIC.values())}; the SLO on "
            f"{', '.join(unknown)} cannot be sent: drop it here and check it by benchmarking the recommended endpoint")
    bad = [o for o in objectives if o not in OBJECTIVES]
    if bad:
        raise RecommendationUnavailableError(f"objective {bad[0]!r} is not one of {', '.join(OBJECTIVES)}")
    metrics = [CONSTRAINT_METRIC[m] for m in slo] + [CONSTRAINT_METRIC[o] for o in objectives]
    if not metrics:
        raise RecommendationUnavailableError("give an SLO (e.g. --slo ttft_p99=2s) or an objective (throughput, cost)")
    return [{"Metric": m} for m in dict.fromkeys(metrics)]


def workload_spec(hf_id: str, concurrency: int = 1, request_count: int = 100, max_tokens: int = 250,
                  input_scale: float = 1.0) -> dict[str, Any]:
    """The inline AIPerf workload with the seed's prompt shape, the same lengths `bench` draws
    (500 + Exp(125) tokens clipped to 1000, mean ~622, times input_scale)."""
    from ..bench.workload import seed_lengths

    lengths = seed_lengths(2000, random.Random(0), input_scale)
    return {"benchmark": {"type": "aiperf"},
            "parameters": {"tokenizer": hf_id, "concurrency": concurrency, "request_count": request_count,
                           "prompt_input_tokens_mean": round(statistics.fmean(lengths)),
                           "prompt_input_tokens_stddev": round(statistics.pstdev(lengths), 1),
                           "output_tokens_mean": max_tokens, "output_tokens_stddev": 0.0, "streaming": True},
            "tooling": {"api_standard": "openai"}}


def slo_tag(slo: Slo) -> str:
    """The SLO as a tag value (tags allow letters, digits and _.:/=+-@)."""
    return ",".join(f"{m}.{p}={v * 1000:g}ms" for m, (p, v) in slo.items()) or "none"


def plan_recommendation(recipe: Recipe, slo: Slo, *, objectives: tuple[str, ...] | list[str] = (),
                        role_arn: str | None = None, model_data_s3: str | None = None, output_s3: str | None = None,
                        instance_types: list[str] | None = None, region: str | None = None,
                        framework: str = "LMI", optimize_model: bool = True, concurrency: int = 1,
                        request_count: int = 100, max_tokens: int = 250, input_scale: float = 1.0,
                        job_name: str | None = None) -> RecommendationPlan:
    """The two requests of a recommendation job for `recipe` under `slo`, validated against
    botocore's model. Missing role/model/output name placeholders (DRY-RUN)."""
    from ..catalog import get_model

    require_operations()
    region = region or region_from_env() or "us-east-1"
    if framework not in FRAMEWORKS:
        raise RecommendationUnavailableError(f"framework {framework!r} is not one of {', '.join(FRAMEWORKS)}")
    types = list(instance_types or ([recipe.instance_type] if recipe.instance_type else []))
    if len(types) > MAX_INSTANCE_TYPES:
        raise RecommendationUnavailableError(f"a recommendation job compares at most {MAX_INSTANCE_TYPES} instance "
                                             f"types, got {len(types)}")
    spec = get_model(recipe.model)
    if not spec.hf_id:
        raise RecommendationUnavailableError(f"{recipe.model} has no Hugging Face id for the workload's tokenizer")
    name = job_name or f"jo-{re.sub(r'[^A-Za-z0-9]+', '-', recipe.name).strip('-')[:30]}-rec-{time.strftime('%Y%m%d-%H%M%S')}"
    tags = [{"Key": "created-by", "Value": "jupyter-optimize"}, {"Key": "jupyter-optimize:recipe", "Value": recipe.name},
            {"Key": "jupyter-optimize:slo", "Value": slo_tag(slo)}]
    workload = ApiRequest("sagemaker", "CreateAIWorkloadConfig", {
        "AIWorkloadConfigName": f"{name}-wl"[:63],
        "AIWorkloadConfigs": {"WorkloadSpec": {"Inline": json.dumps(
            workload_spec(spec.hf_id, concurrency, request_count, max_tokens, input_scale))}},
        "Tags": tags}, "the workload: the seed's prompt shape as an AIPerf spec")
    job: dict[str, Any] = {
        "AIRecommendationJobName": name,
        "ModelSource": {"S3": {"S3Uri": model_data_s3 or f"{DRY_RUN_BUCKET}/models/{recipe.model}/"}},
        "OutputConfig": {"S3OutputLocation": output_s3 or f"{DRY_RUN_BUCKET}/recommendations/"},
        "AIWorkloadConfigIdentifier": workload.params["AIWorkloadConfigName"],
        "PerformanceTarget": {"Constraints": constraints(slo, objectives)},
        "RoleArn": role_arn or DRY_RUN_ROLE,
        "InferenceSpecification": {"Framework": framework}, "OptimizeModel": optimize_model, "Tags": tags}
    if types:
        job["ComputeSpec"] = {"InstanceTypes": types}
    create = ApiRequest("sagemaker", "CreateAIRecommendationJob", job,
                        f"rank deployments by {', '.join(c['Metric'] for c in job['PerformanceTarget']['Constraints'])}")
    for req in (workload, create):
        validate_request(req)
    placeholders = [n for n, v in (("role ARN", role_arn), ("model S3 URI", model_data_s3),
                                   ("output S3 URI", output_s3)) if not v]
    return RecommendationPlan(name, region, [workload, create], dict(slo), placeholders)


@dataclass
class RecommendationPlan:
    """The requests of a recommendation job (nothing sent yet) and the SLO they stand for."""

    job_name: str
    region: str
    requests: list[ApiRequest]
    slo: dict[str, tuple[str, float]]
    placeholders: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"Recommendation plan {self.job_name}: " + " -> ".join(r.operation for r in self.requests)

    def _repr_html_(self) -> str:
        import html

        return f"<b>{html.escape(str(self))}</b>"


def dry_run(plan: RecommendationPlan) -> DryRun:
    """The exact requests, with what happens after them (nothing sent, no credentials)."""
    doc = {"job_name": plan.job_name, "region": plan.region, "requests": [r.to_dict() for r in plan.requests],
           "slo": {m: {"percentile": p, "seconds": v} for m, (p, v) in plan.slo.items()},
           "then": ["poll DescribeAIRecommendationJob until Completed",
                    "keep the Recommendations whose ExpectedPerformance meets the SLO thresholds (the API's "
                    "constraints name the metric only: the thresholds are checked by meets_slo, not by SageMaker)"],
           "placeholders": plan.placeholders}
    return DryRun(f"Requests of recommendation job {plan.job_name}", json.dumps(redact(doc), indent=2), plan)


@dataclass
class RecommendationJob:
    """A recommendation job that was created (it runs on SageMaker; describe it to read its ranking)."""

    job_name: str
    region: str
    workload_config_arn: str
    job_arn: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __str__(self) -> str:
        return (f"Recommendation job {self.job_name} ({self.job_arn}) started; read its ranking with "
                f"`aws sagemaker describe-ai-recommendation-job --ai-recommendation-job-name {self.job_name} "
                f"--region {self.region}` and check it with deploy.recommend.meets_slo")

    __repr__ = __str__


def submit(plan: RecommendationPlan, session: Any = None, endpoint_url: str | None = None) -> RecommendationJob:
    """Make the two requests (workload config, then the job)."""
    from .aws import as_clients

    if plan.placeholders:
        raise RecommendationUnavailableError(f"that plan was made without {', '.join(plan.placeholders)} (it names "
                                             "DRY-RUN placeholders): pass --role-arn, --model-data-s3 and --output-s3")
    clients = as_clients(session, plan.region, endpoint_url)
    workload = clients.send(plan.requests[0])
    job = clients.send(plan.requests[1])
    return RecommendationJob(plan.job_name, plan.region, workload["AIWorkloadConfigArn"], job["AIRecommendationJobArn"])


def meets_slo(recommendation: Mapping[str, Any], slo: Slo) -> dict[str, bool | None]:
    """Per SLO metric: does this recommendation's ExpectedPerformance meet it (None: the job
    reported no such figure)? Metrics match by name (ttft / time_to_first_token), the
    percentile by Stat (p99, P99), values in the stated Unit (ms or s; ms when unstated)."""
    names = {"ttft": ("ttft", "time_to_first_token", "timetofirsttoken")}
    out: dict[str, bool | None] = {}
    for metric, (pct, seconds) in slo.items():
        verdict = None
        for perf in recommendation.get("ExpectedPerformance", []):
            name = re.sub(r"[^a-z_]", "", str(perf.get("Metric", "")).lower().replace("-", "_"))
            stat = str(perf.get("Stat", "")).lower()
            if any(n in name for n in names.get(metric, (metric,))) and stat == pct.lower():
                value = float(perf["Value"]) / (1.0 if str(perf.get("Unit", "ms")).lower() in ("s", "seconds") else 1000.0)
                verdict = value <= seconds
        out[metric] = verdict
    return out
