"""Baseline of the default model on vLLM CPU, and what the CPU settings change.

1. The baseline recipe (vLLM defaults, eager) on the seed-shaped workload (prompts
   500-1000 tokens, 250 new tokens) at concurrency 1, 2, 4, 8: output tokens/s, TTFT, ITL,
   blended price at the "this machine" rate, as median [min-max] over the repeats.
2. The CPU levers as ratios against that baseline at concurrency 1 and 8, measured
   interleaved (baseline, A, B, C, baseline, A, B, C, ...) so drift on this shared machine
   hits every variant alike: both cores (VLLM_CPU_NUM_OF_RESERVED_CPU=0), thread binding,
   and a preloaded tcmalloc (Debian's libtcmalloc-minimal4; skipped when not installed).
The JSON is rewritten after every repeat, so an interrupted run keeps its finished repeats.

    python benchmarks/cpu_baseline.py [--repeats 3] [--skip-sweep]
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
from jupyter_ext.engine.args import find_allocator  # noqa: E402
from jupyter_ext.recipes import load_recipe  # noqa: E402

VARIANTS = {
    "baseline": {},
    "both-cores": {"cpu_reserved_cores": 0},
    "both-cores-bind": {"cpu_reserved_cores": 0, "cpu_threads_bind": "0-1"},
    "both-cores-tcmalloc": {"cpu_reserved_cores": 0, "preload_allocator": "tcmalloc"},
}


def variant(name: str):
    r = load_recipe("baseline").model_copy(deep=True)
    r.name = name
    for k, v in VARIANTS[name].items():
        setattr(r.engine, k, v)
    return r


def level_figures(res, c: int) -> dict:
    m = res.level(c).metrics
    price = {p.concurrency: p for p in res.prices().rows}[c]
    return {"out_tok_s": m.output_throughput, "ttft_p50_ms": m.ttft.p50 * 1e3, "itl_p50_ms": m.itl.p50 * 1e3,
            "tpot_p50_ms": m.tpot.p50 * 1e3, "blended_usd_per_1M": price.blended_usd_per_1M,
            "failed": m.failed, "start_s": (res.server or {}).get("ready_after_s")}


def interleaved(names: list[str], repeats: int, levels: dict[str, list[int]], tmp: str,
                on_repeat=None) -> dict:
    """One server per variant and repeat (its levels share it), variants in turn each repeat."""
    runs: dict[str, list[dict]] = {n: [] for n in names}
    for rep in range(repeats):
        for n in names:
            res = run_benchmark(variant(n), concurrency=levels[n], results_dir=tmp, progress=False, name=f"{n}-r{rep}")
            per_level = {c: level_figures(res, c) for c in levels[n]}
            runs[n].append(per_level)
            print(n, rep, json.dumps(per_level), flush=True)
        if on_repeat:
            on_repeat(runs)
    return runs


def sweep_spread(reps: list[dict]) -> dict:
    """The baseline's figures per level, median/min/max over repeats."""
    out: dict = {}
    for c in reps[0]:
        for key in ("out_tok_s", "ttft_p50_ms", "itl_p50_ms", "tpot_p50_ms", "blended_usd_per_1M"):
            vals = [r[c][key] for r in reps]
            out.setdefault(c, {})[key] = {"min": min(vals), "median": statistics.median(vals), "max": max(vals)}
    return out


def ratios(runs: dict, levels: list[int]) -> dict:
    """variant / baseline of the same repeat, then min/median/max over repeats."""
    out = {}
    for n, reps in runs.items():
        if n == "baseline":
            continue
        out[n] = {}
        for c in levels:
            for key in ("out_tok_s", "ttft_p50_ms", "itl_p50_ms", "blended_usd_per_1M"):
                vals = [r[c][key] / b[c][key] for r, b in zip(reps, runs["baseline"])]
                out[n].setdefault(c, {})[key] = {"min": min(vals), "median": statistics.median(vals), "max": max(vals)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-sweep", action="store_true", help="run the baseline at c=1,8 only")
    ap.add_argument("--out", default=str(HERE / "results" / "cpu_baseline.json"))
    a = ap.parse_args()
    names = [n for n in VARIANTS if "tcmalloc" not in n or find_allocator("tcmalloc")]
    result = {"command": " ".join(["python", "benchmarks/cpu_baseline.py", *sys.argv[1:]]),
              "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine_description(),
              "versions": package_versions(), "order": "interleaved",
              "workload": "seed shape: prompts 500-1000 tokens (mean ~622), 250 new tokens, ignore_eos",
              "variants": {n: VARIANTS[n] for n in names}}
    levels = {n: [1, 8] for n in names}
    if not a.skip_sweep:
        levels["baseline"] = [1, 2, 4, 8]
    out = Path(a.out)

    def save(runs: dict) -> None:
        result["runs"] = runs
        result["repeats_done"] = len(runs["baseline"])
        result["sweep"] = sweep_spread(runs["baseline"])
        result["ratios"] = ratios(runs, [1, 8])
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = out.with_suffix(".json.partial")
        tmp_path.write_text(json.dumps(result, indent=1))
        tmp_path.replace(out)

    with tempfile.TemporaryDirectory() as tmp:
        interleaved(names, a.repeats, levels, tmp, on_repeat=save)
    print(json.dumps({"sweep": result["sweep"], "ratios": result["ratios"]}, indent=1))


if __name__ == "__main__":
    main()
