"""Cold start of the compiled recipe with and without its compile cache.

Cold start = process start -> first token (server launched, /health answers, then a 1-token
completion returns). Per repeat: a brand-new empty cache folder (what a fresh replica sees
without `prepare`), a first compiled start that fills it ("no cache"), then a second start
of the same recipe on the filled folder ("cache"). An eager start (the baseline recipe) is
measured in each repeat for reference. The goal (the seed's claim): >= 40% shorter with the
cache. Each start records vLLM's engine-init seconds and the cache folder's files, which a
start that reuses the cache leaves unchanged.

    python benchmarks/cold_start.py [--repeats 3] [--recipe compiled]
JSON goes to benchmarks/results/cold_start.json (--out); a markdown line is printed.
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

from jupyter_ext.bench.result import machine_description, package_versions  # noqa: E402
from jupyter_ext.recipes import load_recipe  # noqa: E402
from jupyter_ext.techniques import prepare_artifacts  # noqa: E402
from jupyter_ext.techniques.compile import compiled  # noqa: E402
from jupyter_ext.engine.prepare import timed_start  # noqa: E402


def one_repeat(recipe_name: str, tmp: Path) -> dict:
    """eager start, compiled start on an empty cache folder, compiled start on the filled one."""
    recipe = load_recipe(recipe_name)
    if not compiled(recipe) or not recipe.compile.cache:
        raise SystemExit(f"recipe {recipe_name!r} is not compiled with cache: true")
    artifacts = prepare_artifacts(recipe)
    artifacts.compile_cache_dir = str(tmp)  # empty: nothing from earlier runs is reused
    base = load_recipe("baseline")
    out = {"eager": timed_start(base, prepare_artifacts(base))}
    out["no_cache"] = timed_start(recipe, artifacts)
    out["cache"] = timed_start(recipe, artifacts)
    for k, v in out.items():
        print(k, json.dumps({x: v[x] for x in ("ready_after_s", "first_token_after_s", "init_engine_s", "aot_load_failures")}), flush=True)
    return out


def summary(runs: list[dict]) -> dict:
    """Median (min-max) first-token time per kind, and the cached/uncached ratio per repeat."""
    out = {}
    for kind in ("eager", "no_cache", "cache"):
        v = [r[kind]["first_token_after_s"] for r in runs]
        out[kind] = {"min": min(v), "median": statistics.median(v), "max": max(v)}
    ratio = [r["cache"]["first_token_after_s"] / r["no_cache"]["first_token_after_s"] for r in runs]
    out["cache_vs_no_cache"] = {"min": min(ratio), "median": statistics.median(ratio), "max": max(ratio)}
    out["reduction_pct_median"] = 100 * (1 - out["cache_vs_no_cache"]["median"])
    return out


def markdown_line(result: dict) -> str:
    s = result["summary"]
    return (f"cold start to first token ({result['recipe']}, {len(result['runs'])} repeats, median [min-max]): "
            f"compiled without cache {s['no_cache']['median']:.0f} s [{s['no_cache']['min']:.0f}-{s['no_cache']['max']:.0f}], "
            f"with cache {s['cache']['median']:.0f} s [{s['cache']['min']:.0f}-{s['cache']['max']:.0f}] "
            f"({s['reduction_pct_median']:.0f}% shorter; goal >= 40%), eager {s['eager']['median']:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="compiled")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(HERE / "results" / "cold_start.json"))
    a = ap.parse_args()
    result = {"command": " ".join(["python", "benchmarks/cold_start.py", *sys.argv[1:]]),
              "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine_description(),
              "versions": package_versions(), "recipe": a.recipe, "runs": []}
    for rep in range(a.repeats):
        with tempfile.TemporaryDirectory(prefix="compile-cache-") as tmp:
            result["runs"].append(one_repeat(a.recipe, Path(tmp)))
    result["summary"] = summary(result["runs"])
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(markdown_line(result))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
