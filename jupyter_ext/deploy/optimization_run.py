"""Running an optimization plan: upload the EAGLE data, create the job, wait, deploy its output.

The wait polls DescribeOptimizationJob with a progress bar until COMPLETED, FAILED or STOPPED,
or a deadline. The job is SageMaker's, not ours: an interrupt (Ctrl-C, a stopped notebook
cell) or the deadline leaves it running on AWS, and the error says how to resume waiting
(`optimize RECIPE --target sagemaker --resume JOB`) or look at it (`aws sagemaker
describe-optimization-job`). The output is deployed like any recipe (deploy.sagemaker), with
the job's output folder as the model data and its RecommendedInferenceImage as the image,
as the SageMaker SDK's optimize() does.
"""

from __future__ import annotations

import dataclasses
import html
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import OptimizationJobError
from .aws import AwsClients, as_clients
from .optimization import DRY_RUN_BUCKET, DRY_RUN_ROLE, OptimizationPlan

DEFAULT_TIMEOUT_S = 4 * 3600.0  # jobs take 20 min (quantize) to hours (EAGLE training)
DEFAULT_POLL_S = 30.0
DONE, FAILED = "COMPLETED", ("FAILED", "STOPPED")


@dataclass
class OptimizationRun:
    """An optimization job as SageMaker described it last, and the endpoint made from its output."""

    job_name: str
    region: str
    status: str
    output_s3: str | None = None
    recommended_image: str | None = None
    failure_reason: str | None = None
    elapsed_s: float = 0.0
    deployment: Any = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["deployment"] = self.deployment.to_dict() if self.deployment is not None else None
        return d

    def _rows(self) -> list[tuple[str, Any]]:
        rows = [("status", self.status), ("region", self.region), ("output", self.output_s3 or "-"),
                ("recommended image", self.recommended_image or "-"), ("elapsed", f"{self.elapsed_s:.0f} s")]
        if self.failure_reason:
            rows.append(("failure", self.failure_reason))
        if self.deployment is not None:
            rows.append(("endpoint", f"{self.deployment.endpoint_name} ({self.deployment.status})"))
        return rows

    def __str__(self) -> str:
        lines = [f"Optimization job {self.job_name}"] + [f"  {k}: {v}" for k, v in self._rows()]
        return "\n".join(lines + [f"  warning: {w}" for w in self.warnings])

    __repr__ = __str__

    def _repr_html_(self) -> str:
        from ..catalog.specs import html_table

        return html_table(["field", "value"], self._rows(), caption=f"Optimization job {html.escape(self.job_name)}")


def resume_hint(job: str, region: str) -> str:
    return (f"the job keeps running on AWS (and bills) until it ends: wait for it again with "
            f"`jupyter-optimize optimize RECIPE --target sagemaker --resume {job}`, look at it with "
            f"`aws sagemaker describe-optimization-job --optimization-job-name {job} --region {region}`, "
            f"or stop it with `aws sagemaker stop-optimization-job --optimization-job-name {job}`")


def run(plan: OptimizationPlan, session: Any = None, wait: bool = True, deploy: bool = True,
        timeout_s: float = DEFAULT_TIMEOUT_S, poll_s: float = DEFAULT_POLL_S, progress: bool = True,
        endpoint_url: str | None = None) -> OptimizationRun:
    """Upload, create the job, and (with wait) wait for it and (with deploy) deploy its output."""
    if plan.placeholders:
        raise OptimizationJobError(f"that plan was made without {', '.join(plan.placeholders)} "
                                   f"(it names {DRY_RUN_ROLE} / {DRY_RUN_BUCKET}); plan it again with "
                                   "--role-arn, --model-data-s3 and --output-s3, then run it")
    clients = as_clients(session, plan.region, endpoint_url)
    for path, uri in plan.uploads:
        bucket, _, key = uri[5:].partition("/")
        with open(path, "rb") as body:
            clients.call("s3", "PutObject", Bucket=bucket, Key=key, Body=body)
    clients.send(plan.job_request)
    if not wait:
        return OptimizationRun(plan.job_name, plan.region, "STARTING", plan.output_s3,
                               warnings=[resume_hint(plan.job_name, plan.region)])
    return finish(plan, clients, deploy=deploy, timeout_s=timeout_s, poll_s=poll_s, progress=progress)


def finish(plan: OptimizationPlan, session: Any = None, deploy: bool = True, timeout_s: float = DEFAULT_TIMEOUT_S,
           poll_s: float = DEFAULT_POLL_S, progress: bool = True, endpoint_url: str | None = None) -> OptimizationRun:
    """Wait for the plan's job (made now or earlier: --resume) and deploy its output."""
    clients = as_clients(session, plan.region, endpoint_url)
    result = wait_for_job(clients, plan.job_name, timeout_s=timeout_s, poll_s=poll_s, progress=progress)
    if result.status != DONE:
        raise OptimizationJobError(f"optimization job {plan.job_name} ended {result.status}: "
                                   f"{result.failure_reason or 'no reason given'}; nothing was deployed")
    if deploy and plan.deployment is not None:
        from . import sagemaker

        dplan = plan.deployment
        image = result.recommended_image or dplan.image_uri
        dplan = _with_output(dplan, result.output_s3 or plan.output_s3, image)
        result.deployment = sagemaker.deploy(dplan, session=clients, progress=progress)
    return result


def _with_output(dplan: Any, output_s3: str, image: str) -> Any:
    """The deploy plan pointed at the job's output folder and recommended image."""
    import copy

    dplan = copy.deepcopy(dplan)
    dplan.image_uri = image
    container = dplan.requests[0].params["PrimaryContainer"]
    container["Image"] = image
    container["ModelDataSource"]["S3DataSource"]["S3Uri"] = output_s3.rstrip("/") + "/"
    return dplan


def wait_for_job(session: Any, job_name: str, region: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                 poll_s: float = DEFAULT_POLL_S, progress: bool = True,
                 endpoint_url: str | None = None) -> OptimizationRun:
    """Poll DescribeOptimizationJob until the job ends or the deadline; an interrupt or the
    deadline raise OptimizationJobError saying the job goes on and how to resume."""
    clients: AwsClients = as_clients(session, region, endpoint_url)
    start = time.monotonic()
    deadline = start + timeout_s
    describe: Callable[[], dict[str, Any]] = lambda: clients.call(  # noqa: E731
        "sagemaker", "DescribeOptimizationJob", OptimizationJobName=job_name)
    from tqdm.auto import tqdm

    status = "?"
    try:
        with tqdm(total=max(1, int(timeout_s)), unit="s", desc=f"optimization job {job_name}",
                  disable=not progress, bar_format="{desc} [{elapsed}]") as bar:
            while True:
                desc = describe()
                status = desc.get("OptimizationJobStatus", "?")
                bar.set_description_str(f"optimization job {job_name}: {status}")
                if status == DONE or status in FAILED:
                    return _result(job_name, clients.region, desc, time.monotonic() - start)
                if time.monotonic() + poll_s > deadline:
                    raise OptimizationJobError(f"optimization job {job_name} still {status} at the deadline "
                                               f"({timeout_s:.0f} s); {resume_hint(job_name, clients.region)}")
                time.sleep(poll_s)
                bar.update(int(time.monotonic() - start) - bar.n)
    except KeyboardInterrupt:
        raise OptimizationJobError(f"stopped waiting for optimization job {job_name} ({status}); "
                                   f"{resume_hint(job_name, clients.region)}") from None


def _result(job: str, region: str, desc: dict[str, Any], elapsed: float) -> OptimizationRun:
    return OptimizationRun(job, region, desc["OptimizationJobStatus"],
                           (desc.get("OutputConfig") or {}).get("S3OutputLocation"),
                           (desc.get("OptimizationOutput") or {}).get("RecommendedInferenceImage"),
                           desc.get("FailureReason"), elapsed)
