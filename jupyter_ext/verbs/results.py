"""The objects verbs return, and the readers of what a user may pass instead of a path.

Every result object lives in the core and shows itself (`__str__`, `_repr_html_`, and
`to_dict` where it has data): the faces print or display it and hold nothing of their own.
Here are `RecipeList`, and the readers that turn an argument - an object from the notebook
(`@name`) or a path/name typed on a line - into the value a verb needs.
"""

from __future__ import annotations

from typing import Any

from ..autoscale.report import SimulationReport
from ..deploy.dryrun import DryRun
from ..deploy.sagemaker_invoke import InvocationResult
from ..errors import DeployError, ResultFileError

__all__ = ["DryRun", "InvocationResult", "RecipeList", "SimulationReport", "as_recipe", "as_result",
           "endpoint_of", "given_plan"]


class RecipeList(list):
    """Recipes, shown as one block per recipe."""

    def __str__(self) -> str:
        return "\n".join(str(r) for r in self)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return "".join(r._repr_html_() for r in self)


def as_recipe(value: Any) -> Any:
    """A Recipe from a Recipe object, a YAML path or a shipped recipe name."""
    from ..recipes import Recipe, load_recipe

    return value if isinstance(value, Recipe) else load_recipe(str(value))


def as_result(value: Any) -> Any:
    """A BenchResult from a result, a Comparison (its recipe side), a finished background
    benchmark, or a JSON path."""
    from ..bench import BackgroundBenchmark, BenchResult, Comparison

    if isinstance(value, BackgroundBenchmark):
        value = value.result
    if isinstance(value, Comparison):
        value = value.recipe
    if isinstance(value, BenchResult):
        return value
    if value is None:
        raise ResultFileError("that benchmark has no result yet; wait for it (.wait()) or pass a results JSON path")
    return BenchResult.load(str(value))


def given_plan(value: Any) -> Any:
    """The DeploymentPlan in `value` (a plan or a deploy DryRun), or None for a recipe."""
    from ..deploy.sagemaker import DeploymentPlan

    if isinstance(value, DryRun):
        if value.plan is None:
            raise DeployError(f"{value.title!r} is not a deployment dry run; pass a recipe, or the "
                              "result of `deploy RECIPE --target sagemaker --dry-run`")
        return value.plan
    return value if isinstance(value, DeploymentPlan) else None


def endpoint_of(value: Any, target: str) -> tuple[str, str]:
    """(target, endpoint name) from a name or from what deploy returned: a returned
    endpoint says where it runs, so `undeploy @ep` needs no --target."""
    from ..deploy.local import LocalEndpoint
    from ..deploy.sagemaker import SageMakerDeployment

    if isinstance(value, LocalEndpoint):
        return "local", value.name
    if isinstance(value, SageMakerDeployment):
        return "sagemaker", value.endpoint_name
    if not isinstance(value, str):
        raise DeployError(f"expected an endpoint name or a deployed endpoint, got a {type(value).__name__}")
    return target, value
