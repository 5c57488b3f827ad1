"""The verbs that hand a recipe to SageMaker's managed optimization: optimize, recommend, export.

`optimize` makes a SageMaker optimization job from the recipe, waits for it and deploys its
output (or, with dry_run, returns the exact requests); `recommend` builds an AI recommendation
job from an SLO (the managed twin of `tune`); `export` writes the same job and endpoint as
SageMaker Python SDK code. Each returns an object that shows itself (a DryRun, an
OptimizationRun, an ExportedCode). An optimization DryRun given back to `optimize` is run as
it was reviewed.
"""

from __future__ import annotations

from typing import Any

from ..deploy.dryrun import DryRun
from ..errors import OptimizationJobError
from .results import as_recipe


def _local_refusal(recipe: Any) -> OptimizationJobError:
    from ..deploy.optimization import check_draft_limits

    check_draft_limits(recipe, target="local")  # SageMakerLimitError for an EAGLE recipe
    return OptimizationJobError("optimize runs a SageMaker optimization job: add --target sagemaker (with --dry-run "
                                "to see its requests). Locally, `prepare RECIPE` builds the AWQ checkpoint, draft and "
                                "compile cache, and `bench` measures them")


def optimize(recipe: Any, target: str = "local", dry_run: bool = False, role_arn: str | None = None,
             model_data_s3: str | None = None, output_s3: str | None = None, instance_type: str | None = None,
             tensor_parallel: int | None = None, job_name: str | None = None, resume: str | None = None,
             name: str | None = None, no_deploy: bool = False, inference_component: bool = False,
             fine_tuned: bool = False, accept_eula: bool = False, max_runtime: int = 36000,
             timeout: float = 4 * 3600.0, draft_model_s3: str | None = None, region: str | None = None,
             endpoint_url: str | None = None) -> Any:
    """Plan the job (a DryRun with `dry_run`), or run it: upload the EAGLE data, create the
    job, wait with a progress bar and a deadline, deploy its output. `resume` waits for a job
    made earlier (after an interrupt) and deploys its output."""
    from ..deploy import optimization, optimization_run

    if isinstance(recipe, DryRun) and isinstance(recipe.plan, optimization.OptimizationPlan):
        if dry_run:
            return recipe
        return optimization_run.run(recipe.plan, deploy=not no_deploy, timeout_s=timeout, endpoint_url=endpoint_url)
    recipe = as_recipe(recipe)
    if target != "sagemaker":
        raise _local_refusal(recipe)
    if not dry_run and not role_arn:
        raise OptimizationJobError("optimize --target sagemaker needs --role-arn (the job's execution role), "
                                   "--model-data-s3 and --output-s3; --dry-run shows the requests without them")
    plan = optimization.plan_optimization(
        recipe, role_arn=role_arn, model_data_s3=model_data_s3, output_s3=output_s3, instance_type=instance_type,
        region=region, job_name=resume or job_name, tensor_parallel=tensor_parallel, accept_eula=accept_eula,
        max_runtime_s=max_runtime, fine_tuned=fine_tuned, inference_component=inference_component,
        endpoint_name=name, deploy_output=not no_deploy, draft_model_s3=draft_model_s3)
    if dry_run:
        return optimization.dry_run(plan)
    if resume:
        return optimization_run.finish(plan, deploy=not no_deploy, timeout_s=timeout, endpoint_url=endpoint_url)
    return optimization_run.run(plan, deploy=not no_deploy, timeout_s=timeout, endpoint_url=endpoint_url)


def recommend(recipe: Any, slo: Any = None, optimize_for: str | None = None, dry_run: bool = False,
              role_arn: str | None = None, model_data_s3: str | None = None, output_s3: str | None = None,
              instance_types: str | None = None, framework: str = "LMI", concurrency: int = 1,
              region: str | None = None, endpoint_url: str | None = None) -> Any:
    """A SageMaker AI recommendation job for the recipe under the SLO (a DryRun with
    `dry_run`; otherwise the ARNs of the workload config and the job it made). `slo` is text
    (`ttft_p99=2s`) or a dict {metric: (percentile, seconds)}."""
    from ..deploy import recommend as rec

    slo_dict = rec.slo_from_text(slo) if isinstance(slo, str) else dict(slo or {})
    objectives = [o.strip() for o in (optimize_for or "").split(",") if o.strip()]
    types = [t.strip() for t in (instance_types or "").split(",") if t.strip()] or None
    plan = rec.plan_recommendation(as_recipe(recipe), slo_dict, objectives=objectives, role_arn=role_arn,
                                   model_data_s3=model_data_s3, output_s3=output_s3, instance_types=types,
                                   region=region, framework=framework, concurrency=concurrency)
    if dry_run:
        return rec.dry_run(plan)
    return rec.submit(plan, endpoint_url=endpoint_url)


def export(recipe: Any, format: str = "sagemaker-sdk", output: str | None = None, role_arn: str | None = None,
           model_data_s3: str | None = None, output_s3: str | None = None, instance_type: str | None = None,
           tensor_parallel: int | None = None, accept_eula: bool = False, region: str | None = None) -> Any:
    """The recipe's optimization job and endpoint as SageMaker Python SDK code (ExportedCode;
    written to `output` when given)."""
    from ..deploy.sdk_export import export_sdk

    return export_sdk(as_recipe(recipe), fmt=format, output=output, role_arn=role_arn, model_data_s3=model_data_s3,
                      output_s3=output_s3, instance_type=instance_type, tensor_parallel=tensor_parallel,
                      accept_eula=accept_eula, region=region)
