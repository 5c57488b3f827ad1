"""The verbs that look things up, benchmark and serve: one typed core function per verb.

models, instances, plan, recipe, bench, compare, price, chart, prepare, serve and stop.
Each takes plain values (what the option table's `dest`s name), returns a result object
that shows itself, and raises a named OptimizeError on a mistake. The CLI prints the object,
the magic returns it, the panels display it; none of them does more than that.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from ..errors import OptimizeError
from .results import RecipeList, as_recipe, as_result


# -- catalog -----------------------------------------------------------------------------
def models() -> Any:
    from ..catalog import list_models

    return list_models()


def instances() -> Any:
    from ..catalog import list_instances

    return list_instances()


def plan(model: str, precision: str = "fp16", concurrency: int = 1, input_tokens: int = 622,
         output_tokens: int = 250) -> Any:
    from ..planning import plan as make_plan

    return make_plan(model, precision=precision, concurrency=concurrency, input_tokens=input_tokens,
                     output_tokens=output_tokens)


# -- recipes -----------------------------------------------------------------------------
def recipe(action: str, paths: Sequence[Any] = (), base: Any = "baseline", save: str | None = None,
           target: str = "local") -> Any:
    """list | show | validate | new: shipped recipes, loaded and checked recipes (for
    `target`), or a new recipe made from `base` (saved atomically with `save`)."""
    from ..recipes import check_stack, list_recipes, recipe_from_dict

    if action == "list":
        return RecipeList(list_recipes())
    if not paths:
        what = "a name for the new recipe" if action == "new" else "at least one recipe path or name"
        raise OptimizeError(f"recipe {action} needs {what}")
    if action == "new":
        base_recipe = as_recipe(base)
        data = {**base_recipe.to_dict(), "name": paths[0], "description": f"made from {base if isinstance(base, str) else base_recipe.name}"}
        recipes = [recipe_from_dict(data, source=f"recipe new {paths[0]}")]
    else:
        recipes = [as_recipe(p) for p in paths]
    for r in recipes:
        check_stack(r, target)
    if save:
        if len(recipes) != 1:
            raise OptimizeError("--save writes one recipe; give one recipe")
        recipes[0].save(save)
    return recipes[0] if len(recipes) == 1 else RecipeList(recipes)


# -- benchmarks --------------------------------------------------------------------------
def bench_spec(recipe: Any = None, **options: Any) -> Any:
    """The BenchSpec of `bench RECIPE [options]` (options: BenchSpec.of keywords), checked."""
    from ..bench.spec import BenchSpec

    return BenchSpec.of(as_recipe(recipe) if recipe is not None else None, **options)


def bench(spec: Any, progress: bool = True) -> Any:
    """Run the spec here: a BenchResult, or a Comparison when it has a baseline. A server kept
    by `serve` for the same recipe is reused; otherwise one is started and stopped."""
    from ..bench import run_spec

    return run_spec(spec, progress=progress)


def bench_failure(out: Any) -> Any:
    """A BenchFailedError (carrying `out`) when a finished benchmark has a failed level or run,
    else None: the faces turn it into a non-zero exit code or a failing cell."""
    from ..errors import BenchFailedError

    runs = [out.baseline, out.recipe] if hasattr(out, "baseline") and hasattr(out, "recipe") else [out]
    lines = []
    for r in (r for r in runs if r is not None):
        lines += [f"{r.name}: {lv.label}: {lv.failure['failed']}/{lv.failure['requests']} requests failed, most "
                  f"often ({lv.failure['count']}x) {lv.failure['error']}" for lv in r.levels if lv.failure]
        if r.status == "failed" and not any(lv.failure for lv in r.levels):
            lines.append(f"{r.name}: failed: {'; '.join(r.notes) or 'see the result'}")
    if not lines:
        return None
    saved = ", ".join(str(r.path) for r in runs if r is not None and r.path)
    return BenchFailedError("the benchmark has failed levels:\n  " + "\n  ".join(lines)
                            + (f"\n(what was measured is saved in {saved})" if saved else ""), out)


def bench_job(spec: Any, on_update: Callable[[Any], None] | None = None, job_type: type | None = None) -> Any:
    """The same run as `bench`, on a thread (not started yet): a BackgroundBenchmark, or the
    face's display subclass given as `job_type`."""
    from ..bench import BackgroundBenchmark

    return (job_type or BackgroundBenchmark)(spec, on_update=on_update)


def compare(recipe_result: Any, baseline_result: Any) -> Any:
    from ..bench import Comparison

    return Comparison.of(as_result(recipe_result), as_result(baseline_result))


def price(result: Any = None, instance: str = "local", discount: float = 0.0, usd_per_hour: float | None = None,
          itl_ms: float | None = None, concurrency: int | None = None) -> Any:
    """$/1M tokens of every level of a result, or the blended price of given figures."""
    from ..pricing import blended_price, price_levels

    if result is not None:
        return price_levels(as_result(result), instance=instance, discount=discount)
    if None in (usd_per_hour, itl_ms, concurrency):
        raise OptimizeError("price needs a result (a file, or @variable in a notebook), or all of --usd-per-hour, "
                            "--itl-ms and --concurrency")
    return blended_price(usd_per_hour, itl_ms / 1000.0, concurrency, discount)


def chart(results: Sequence[Any], kind: str = "dashboard", output: str | None = None) -> Any:
    """A pyplot-free Figure of the results, or (with `output`) the PNG path it was saved to."""
    from .. import charts

    loaded = [as_result(r) for r in results]
    return charts.save(loaded, output, kind) if output else charts.figure(loaded, kind, None)


# -- artifacts and servers ---------------------------------------------------------------
def prepare(recipe: Any, warm: bool = True, dataset: str | None = None) -> Any:
    """Build the recipe's artifacts ahead of deployment (training a `trained` draft, on
    `dataset` when given); returns the PrepareReport."""
    from ..engine.prepare import prepare as run_prepare

    return run_prepare(as_recipe(recipe), warm=warm, dataset=dataset)


def serve(recipe: Any, host: str = "127.0.0.1", port: int | None = None,
          on_start: Callable[[Any], None] | None = None) -> Any:
    """A local deployment kept attached to this process (`deploy.local.serve`): the running
    LocalServer, reused by benchmarks of the same recipe, stopped by `stop` or at exit."""
    from ..deploy import local

    return local.serve(as_recipe(recipe), host=host, port=port, on_start=on_start)


def stop(pids: Sequence[int] | None = None) -> list[Any]:
    """Stop kept servers by pid (all when none given) and running background benchmarks'
    servers with them; returns the stopped servers."""
    from ..engine import registry

    return registry.stop(list(pids) if pids else None)
