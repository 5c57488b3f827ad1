"""The `tune` and `report` verbs: one core call each, as every face runs them.

`tune MODEL --slo ... --instance ...` searches recipes x concurrency for the cheapest
blended $ per 1M tokens meeting the SLO (planning/tune.py), writes the winner's recipe
YAML, and with `--target-rps` sizes the deployment and checks it in the fleet simulator
(autoscale/sizing.py). `report RESULT... -o report.html` writes one self-contained page
(bench/report.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from .. import defaults
from ..errors import OptimizeError

DEFAULT_TUNED_RECIPE = "tuned.yaml"


def tune(model: str | None = None, slo: str | None = None, instance: str = "local",
         recipes: Sequence[Any] | None = None, concurrency: Sequence[int] = (1, 2, 4, 8),
         num_prompts: int | None = None, max_tokens: int = defaults.DEFAULT_MAX_TOKENS, input_scale: float = 1.0,
         discount: float = 0.0, output: str | None = None, target_rps: float | None = None, grid: bool = False,
         results_dir: str | None = None, measure: Callable | None = None, progress: bool = True,
         on_row: Callable | None = None, target: str = "local", dry_run: bool = False,
         region: str | None = None) -> Any:
    """The TuneResult: ranked candidates, the winner's recipe written to `output` (default
    tuned.yaml), and the sizing for `target_rps` when given; the search is saved as
    results_dir/tune-DATE.json. `measure` replaces the real
    benchmark (tests); `recipes` replaces the default search space.
    With target "sagemaker" and `dry_run`: the same SLO as a SageMaker AI recommendation job
    (the managed twin of this search), a DryRun of its exact requests; nothing is sent."""
    from ..bench.slo import SLO
    from ..bench.spec import Pricing
    from ..planning.tune import bench_measure, tune as search, winner_recipe_file
    from ..planning.tune_space import SearchSpace
    from .results import as_recipe

    if not slo:
        raise OptimizeError("tune needs an SLO to meet, e.g. --slo ttft_p99=2s,tpot_p50=50ms")
    parsed = SLO.parse(slo)
    if target == "sagemaker" or dry_run:
        return _recommendation_dry_run(model, parsed, instance, concurrency, max_tokens, input_scale, target,
                                       dry_run, region)
    Pricing(instance=instance, discount=discount)  # a named error for an unknown instance or a bad discount
    space = SearchSpace.of([as_recipe(r) for r in recipes] if recipes else None, model=model,
                           concurrency=tuple(concurrency))
    if measure is None:
        opts = {"num_prompts": num_prompts, "max_tokens": max_tokens, "input_scale": input_scale,
                "instance": instance, "discount": discount, "slo": str(parsed), "results_dir": results_dir}
        measure = bench_measure({k: v for k, v in opts.items() if v is not None}, progress=progress)
    result = search(space, parsed, measure, instance=instance, discount=discount, max_tokens=max_tokens,
                    grid=grid, on_row=on_row)
    if result.winner is not None:
        winner_recipe_file(result, output or DEFAULT_TUNED_RECIPE)
    if target_rps is not None and result.winner is not None:
        from ..autoscale.sizing import size_deployment

        cand = next(c for c in space.candidates if c.label == result.winner.candidate)
        result.sizing = size_deployment(result, target_rps, precision=cand.precision)
    import time

    result.save(Path(results_dir or defaults.results_dir()) / f"tune-{time.strftime('%Y%m%d-%H%M%S')}.json")
    return result


def _recommendation_dry_run(model: str | None, slo: Any, instance: str, concurrency: Sequence[int], max_tokens: int,
                            input_scale: float, target: str, dry_run: bool, region: str | None) -> Any:
    """`tune --target sagemaker --dry-run`: deploy.recommend's plan for the model under the
    SLO (CreateAIWorkloadConfig with the same prompt shape, then CreateAIRecommendationJob),
    shown as a DryRun. The tune's --instance, when a SageMaker type, is the one candidate;
    the workload holds the highest --concurrency in flight."""
    from ..deploy import recommend as rec
    from ..recipes import recipe_from_dict

    if target != "sagemaker":
        raise OptimizeError("tune --dry-run shows the SageMaker AI recommendation job this search would be on "
                            "SageMaker: add --target sagemaker (a local tune measures, it has no requests to show)")
    if not dry_run:
        raise OptimizeError("tune --target sagemaker builds the AI recommendation job's requests: add --dry-run to "
                            "see them; to run the job, `recommend RECIPE --slo ... --role-arn ARN --model-data-s3 "
                            "S3_URI --output-s3 S3_URI`")
    model = model or defaults.DEFAULT_MODEL
    recipe = recipe_from_dict({"name": f"tune-{model}"[:60], "model": model}, source="tune --target sagemaker")
    types = [instance] if instance.startswith("ml.") else None
    plan = rec.plan_recommendation(recipe, rec.slo_from_text(str(slo)), instance_types=types, region=region,
                                   concurrency=max(concurrency), max_tokens=max_tokens, input_scale=input_scale)
    return rec.dry_run(plan)


def report(results: Sequence[Any], output: str = "report.html", title: str | None = None) -> Any:
    """Write one self-contained HTML page of the results (a comparison when more than one)."""
    from ..bench import Comparison
    from ..bench.report import write_report
    from .results import as_result

    if not results:
        raise OptimizeError("report needs at least one result (a JSON path, or @variable in a notebook)")
    loaded = []
    for r in results:
        r = getattr(r, "result", r) if not isinstance(r, (str, Path)) else r  # a finished background run
        if isinstance(r, Comparison):  # both sides, baseline first
            loaded += [r.baseline, r.recipe]
        else:
            loaded.append(as_result(r))
    return write_report(loaded, Path(output), title=title)
