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
         on_row: Callable | None = None) -> Any:
    """The TuneResult: ranked candidates, the winner's recipe written to `output` (default
    tuned.yaml), and the sizing for `target_rps` when given; the search is saved as
    results_dir/tune-DATE.json. `measure` replaces the real
    benchmark (tests); `recipes` replaces the default search space."""
    from ..bench.slo import SLO
    from ..bench.spec import Pricing
    from ..planning.tune import bench_measure, tune as search, winner_recipe_file
    from ..planning.tune_space import SearchSpace
    from .results import as_recipe

    if not slo:
        raise OptimizeError("tune needs an SLO to meet, e.g. --slo ttft_p99=2s,tpot_p50=50ms")
    parsed = SLO.parse(slo)
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
