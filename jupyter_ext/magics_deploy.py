"""The `%optimize` verbs that deploy and autoscale: deploy, endpoints, undeploy, invoke,
autoscale and simulate.

Each verb takes the arguments the command line parsed (`cli_deploy`), calls the same core
function the CLI calls (mostly through `cli_deploy.DEPLOY_VERBS` itself) and returns its
object. Where the CLI prints text (a dry run's JSON, an invocation's reply), the notebook
gets an object instead: `DryRun` keeps the exact requests and, for a deployment, the plan
they came from, so `%optimize deploy @dry` makes exactly what was reviewed; a simulation
comes back as a `SimulationReport` that shows its timeline chart, drawn on a pyplot-free
Figure so that no notebook backend is switched. The panels reuse both views, so nothing
here imports IPython.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import time
from dataclasses import dataclass
from typing import Any

from .cli_deploy import DRY_RUN_ROLE  # the same placeholder role keeps CLI and magic dry runs identical
from .errors import DeployError, ResultFileError


# -- views ------------------------------------------------------------------------------
@dataclass
class DryRun:
    """The requests a --dry-run would have sent, as JSON (secret-looking environment values
    redacted; building a plan involves no credentials, so none can appear). `plan` is the
    DeploymentPlan of a deploy dry run (None for autoscaling): pass the DryRun back to
    `%optimize deploy @name` to make exactly these requests."""

    title: str
    requests_json: str
    plan: Any = None

    @property
    def requests(self) -> list[dict[str, Any]]:
        return json.loads(self.requests_json)["requests"]

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, **json.loads(self.requests_json)}

    def __str__(self) -> str:
        return f"{self.title}\n{self.requests_json}"

    __repr__ = __str__

    def _repr_html_(self) -> str:
        head = self.plan._repr_html_() if self.plan is not None else f"<b>{html.escape(self.title)}</b>"
        steps = "".join(f"<li><code>{html.escape(r['service'])}.{html.escape(r['operation'])}</code>"
                        f" {html.escape(r.get('purpose') or '')}</li>" for r in self.requests)
        return (f"{head}<p>Nothing was sent. The requests, in order:</p><ol>{steps}</ol>"
                f"<details><summary>exact parameters (JSON)</summary>"
                f"<pre>{html.escape(self.requests_json)}</pre></details>")


@dataclass
class SimulationReport:
    """A fleet simulation and its timeline chart (arrivals, in-flight requests, instances,
    alarms). `.result` is the core's SimulationResult; `.figure` a matplotlib Figure made
    without pyplot, so showing it switches no backend and nothing is drawn twice."""

    result: Any
    figure: Any

    @classmethod
    def of(cls, result: Any, title: str | None = None) -> "SimulationReport":
        from matplotlib.figure import Figure

        from .autoscale.timeline import timeline_chart

        figure = Figure(figsize=(9, 4), layout="constrained")
        timeline_chart(result, ax=figure.subplots(), title=title)
        return cls(result, figure)

    def summary(self) -> dict[str, Any]:
        return self.result.summary()

    def to_dict(self) -> dict[str, Any]:
        return self.result.to_dict()

    def png(self, dpi: int = 80) -> bytes:
        buf = io.BytesIO()
        self.figure.savefig(buf, format="png", dpi=dpi)
        return buf.getvalue()

    def save(self, path: str, dpi: int = 100) -> str:
        self.figure.savefig(path, dpi=dpi)
        return path

    def __str__(self) -> str:
        return str(self.result)

    def __repr__(self) -> str:
        return repr(self.result)

    def _repr_html_(self) -> str:
        img = base64.b64encode(self.png()).decode("ascii")
        return (f"{self.result._repr_html_()}<img alt='fleet timeline' "
                f"src='data:image/png;base64,{img}'/>")


# -- arguments that may be objects (from @name) -------------------------------------------
def given_plan(value: Any) -> Any:
    """The DeploymentPlan in `value` (a plan or a deploy DryRun), or None for a recipe."""
    from .deploy.sagemaker import DeploymentPlan

    if isinstance(value, DryRun):
        if value.plan is None:
            raise DeployError(f"{value.title!r} is not a deployment dry run; pass a recipe, or the "
                              "result of `%optimize deploy RECIPE --target sagemaker --dry-run -o VAR`")
        return value.plan
    return value if isinstance(value, DeploymentPlan) else None


def endpoint_of(value: Any, target: str) -> tuple[str, str]:
    """(target, endpoint name) from a name or from what deploy returned: a returned
    endpoint says where it runs, so `%optimize undeploy @ep` needs no --target."""
    from .deploy.local import LocalEndpoint
    from .deploy.sagemaker import SageMakerDeployment

    if isinstance(value, LocalEndpoint):
        return "local", value.name
    if isinstance(value, SageMakerDeployment):
        return "sagemaker", value.endpoint_name
    if not isinstance(value, str):
        raise DeployError(f"expected an endpoint name or a deployed endpoint, got a {type(value).__name__}")
    return target, value


def _with(a: argparse.Namespace, **changes: Any) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(a), **changes})


# -- verbs ------------------------------------------------------------------------------
def plan_from_args(a: argparse.Namespace) -> Any:
    """The SageMaker plan for `deploy RECIPE --target sagemaker [options]`, mapped as the CLI does."""
    from .cli_deploy import plan_from_args as plan
    from .magics_verbs import as_recipe

    return plan(a, as_recipe(a.recipe))


def verb_deploy(m: Any, a: argparse.Namespace) -> Any:
    """Local: start vLLM for the recipe and leave it running. SageMaker: plan, then show the
    plan (--dry-run) or make it; a plan or dry run passed as @name is made as it is."""
    from .deploy import local, sagemaker
    from .magics_verbs import as_recipe

    plan = given_plan(a.recipe)
    if plan is None and a.target == "local":
        if a.dry_run:
            raise DeployError("--dry-run shows the AWS requests of a SageMaker deploy; a local deploy "
                              "sends none. Add --target sagemaker, or drop --dry-run")
        recipe = as_recipe(a.recipe)
        print(f"starting vLLM for recipe {recipe.name} (a minute or more on a CPU) ...")
        return local.deploy(recipe, name=a.name, host=a.host, port=a.port)
    plan = plan or plan_from_args(a)
    if a.dry_run:
        return DryRun(f"Requests to deploy {plan.endpoint_name}", sagemaker.dry_run(plan), plan)
    if plan.requests[0].params.get("ExecutionRoleArn") == DRY_RUN_ROLE:
        raise DeployError("that dry run was planned without --role-arn, so it names a placeholder role; "
                          "plan it again with --role-arn (the endpoint's execution role), then deploy it")
    return sagemaker.deploy(plan, endpoint_url=a.endpoint_url)


def verb_endpoints(m: Any, a: argparse.Namespace) -> Any:
    from .cli_deploy import DEPLOY_VERBS

    return DEPLOY_VERBS["endpoints"](a)


def verb_undeploy(m: Any, a: argparse.Namespace) -> Any:
    """Local: stop the server by its pid (returns the stopped endpoint). SageMaker: delete
    the endpoint, its config, models and autoscaling (returns what was deleted)."""
    from .cli_deploy import DEPLOY_VERBS

    target, name = endpoint_of(a.name, a.target)
    if target == "local":
        from .deploy import local

        return local.undeploy(name)
    return DEPLOY_VERBS["undeploy"](_with(a, name=name, target=target))


def verb_invoke(m: Any, a: argparse.Namespace) -> Any:
    """One prompt; the reply comes back as an InvocationResult (text, latency) for both targets."""
    from .cli_deploy import DEPLOY_VERBS
    from .deploy.sagemaker_invoke import InvocationResult

    target, name = endpoint_of(a.name, a.target)
    start = time.perf_counter()
    out = DEPLOY_VERBS["invoke"](_with(a, name=name, target=target))
    if isinstance(out, str):  # local replies and joined streams are plain text
        return InvocationResult(name, out, time.perf_counter() - start, None, None)
    return out


def verb_autoscale(m: Any, a: argparse.Namespace) -> Any:
    """attach / show / detach (AutoscalingState), or attach --dry-run (the requests)."""
    from .cli_deploy import DEPLOY_VERBS

    component = getattr(a.endpoint, "inference_component_name", None)
    _, endpoint = endpoint_of(a.endpoint, "sagemaker")
    out = DEPLOY_VERBS["autoscale"](_with(a, endpoint=endpoint,
                                          inference_component=a.inference_component or component))
    if isinstance(out, str):
        return DryRun(f"Requests to attach autoscaling to {endpoint}", out)
    return out


def verb_simulate(m: Any, a: argparse.Namespace) -> Any:
    """The CLI's simulation, returned with its timeline chart (saved too with --chart)."""
    from .cli_deploy import DEPLOY_VERBS
    from .magics_verbs import as_result

    result = a.result
    if result is not None and not isinstance(result, str):
        result = getattr(as_result(result), "path", None)
        if not result:
            raise ResultFileError("that benchmark result was never saved, and the simulator reads a "
                                  "result file: pass the JSON path of a saved result to --result")
    # chart=None: the CLI would draw with pyplot; the report draws on its own Figure.
    report = SimulationReport.of(DEPLOY_VERBS["simulate"](_with(a, result=result, chart=None)))
    if a.chart:
        report.save(a.chart)
    return report
