"""tune against a full grid search of the same space, on this CPU with the default model.

Issue 14's goal: `tune` finds a configuration meeting the SLO that costs no more than the
best of a full grid search. Three runs over one space (recipes x concurrency levels, SLO,
instance `local`):
  1. grid: every candidate measured at every level (`tune(..., grid=True)`);
  2. tune: the same search with roofline / memory / host pruning and branch and bound,
     measured live (its own measurements: on a shared machine they differ by noise);
  3. tune replayed on the grid's measurements: the pruning logic alone, no noise, so its
     winner must be the grid's exactly.
Reported: each winner, its blended $/1M (ANCHORS.md's formula on TPOT p50), levels
measured, wall time, and whether tune's winner costs no more than the grid's.

    python benchmarks/tune_vs_grid.py                       # full: c = 1,2,4,8, 16 prompts/level
    python benchmarks/tune_vs_grid.py --dry-run             # a synthetic measure: checks the script, no vLLM
JSON goes to benchmarks/results/tune_vs_grid.json (--out); the markdown table is printed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from jupyter_ext.bench.result import machine_description, package_versions  # noqa: E402
from jupyter_ext.planning.tune import bench_measure, best_of, tune  # noqa: E402
from jupyter_ext.planning.tune_space import SearchSpace, bound  # noqa: E402

DEFAULT_SLO = "ttft_p99=4s,tpot_p50=120ms"


def synthetic_measure(space: SearchSpace, max_tokens: int):
    """A stand-in for vLLM (--dry-run): the bound times a slowdown growing with concurrency."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    from synthetic_results import result

    by_name = {c.recipe.name: c for c in space.candidates}

    def measure(recipe, levels):
        c = by_name[recipe.name]
        pts = [(n, 0.2 * n, bound(c, n, "local").tpot_s * (20 + 3 * n + 7 * (len(c.label) % 5))) for n in levels]
        return result(c.label, pts, max_tokens=max_tokens, tokens_per_chunk=1 + c.draft_tokens)

    return measure


def replay(grid_results: dict, space: SearchSpace):
    """A measure function that answers from the grid's results (the levels asked for)."""
    by_name = {c.recipe.name: c.label for c in space.candidates}

    def measure(recipe, levels):
        import copy

        from jupyter_ext.errors import OptimizeError

        if by_name[recipe.name] not in grid_results:
            raise OptimizeError(f"the grid could not measure {recipe.name} either")
        r = copy.copy(grid_results[by_name[recipe.name]])
        r.levels = [lv for lv in r.levels if lv.concurrency in levels]
        return r

    return measure


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def summary(name: str, res, wall_s: float) -> dict:
    w = res.winner
    return {"run": name, "winner": w.candidate if w else None, "concurrency": w.concurrency if w else None,
            "usd_per_1M": w.usd_per_1M if w else None, "measured_levels": res.measured_levels,
            "pruned_levels": sum(r.status == "pruned" for r in res.rows), "wall_s": wall_s}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slo", default=DEFAULT_SLO)
    ap.add_argument("--recipes", nargs="+", help="recipes to search (default: tune's default space)")
    ap.add_argument("--concurrency", default="1,2,4,8")
    ap.add_argument("--prompts", type=int, default=16, help="requests per level")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--input-scale", type=float, default=1.0)
    ap.add_argument("--dry-run", action="store_true", help="synthetic measurements (no vLLM): checks the script")
    ap.add_argument("--out", help="JSON path (default benchmarks/results/tune_vs_grid.json; a temporary file "
                                  "with --dry-run)")
    a = ap.parse_args(argv)
    if a.out is None:
        import tempfile

        a.out = (str(Path(tempfile.mkdtemp()) / "tune_vs_grid.json") if a.dry_run
                 else str(HERE / "results" / "tune_vs_grid.json"))
    levels = tuple(int(x) for x in a.concurrency.split(","))
    space = SearchSpace.of(a.recipes, concurrency=levels)
    if a.dry_run:
        measure = synthetic_measure(space, a.max_tokens)
    else:
        measure = bench_measure({"num_prompts": a.prompts, "max_tokens": a.max_tokens, "input_scale": a.input_scale,
                                 "instance": "local", "slo": a.slo,
                                 "results_dir": str(HERE / "results" / "tune_vs_grid")}, progress=True)
    kw = {"instance": "local", "max_tokens": a.max_tokens}
    grid, grid_s = _timed(lambda: tune(space, a.slo, measure, grid=True, **kw))
    live, live_s = _timed(lambda: tune(space, a.slo, measure, **kw))
    replayed, replay_s = _timed(lambda: tune(space, a.slo, replay(grid.results, space), **kw))
    rows = [summary("grid", grid, grid_s), summary("tune (live)", live, live_s),
            summary("tune (replayed on the grid's measurements)", replayed, replay_s)]
    g = best_of(grid.rows)
    checks = {"replayed_equals_grid": (replayed.winner and g and replayed.winner.candidate == g.candidate
                                       and replayed.winner.concurrency == g.concurrency) or (g is None and
                                                                                          replayed.winner is None),
              "live_costs_no_more_than_grid": bool(live.winner and g and live.winner.usd_per_1M <= g.usd_per_1M)}
    out = {"slo": a.slo, "space": [c.label for c in space.candidates], "concurrency": list(levels),
           "prompts_per_level": a.prompts, "max_tokens": a.max_tokens, "dry_run": a.dry_run, "runs": rows,
           "checks": checks, "grid": grid.to_dict(), "tune": live.to_dict(), "versions": package_versions(),
           "machine": machine_description()}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1, default=str))
    print(f"SLO {a.slo}; space {len(space.candidates)} recipes x {len(levels)} levels; instance local\n")
    print("| run | winner | concurrency | blended $/1M | levels measured | pruned | wall s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        usd = f"{r['usd_per_1M']:.6g}" if r["usd_per_1M"] is not None else "-"
        print(f"| {r['run']} | {r['winner']} | {r['concurrency']} | {usd} | {r['measured_levels']} | "
              f"{r['pruned_levels']} | {r['wall_s']:.0f} |")
    print(f"\nchecks: {checks}\nsaved: {a.out}")
    return 0 if checks["replayed_equals_grid"] else 1


if __name__ == "__main__":
    sys.exit(main())
