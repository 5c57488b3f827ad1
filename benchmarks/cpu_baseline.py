"""Baseline of the default model on vLLM CPU, and what the CPU settings change.

1. The baseline recipe (vLLM defaults, eager) on the seed-shaped workload (prompts
   500-1000 tokens, 250 new tokens) at concurrency 1, 2, 4, 8: output tokens/s, TTFT, ITL,
   blended price at the "this machine" rate.
2. The CPU levers as ratios against that baseline, measured interleaved (baseline, A, B,
   C, baseline, A, B, C, ...) so drift on this shared machine hits every variant alike:
   both cores (VLLM_CPU_NUM_OF_RESERVED_CPU=0), thread binding, and a preloaded tcmalloc
   (Debian's libtcmalloc-minimal4; skipped when it is not installed).

    python benchmarks/cpu_baseline.py [--repeats 2] [--skip-sweep]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from jupyter_ext.bench import run_benchmark  # noqa: E402
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


def interleaved(names: list[str], repeats: int, levels: list[int], tmp: str) -> dict:
    """One server per variant and repeat (its levels share it), variants in turn each repeat."""
    runs: dict[str, list[dict]] = {n: [] for n in names}
    for rep in range(repeats):
        for n in names:
            res = run_benchmark(variant(n), concurrency=levels, results_dir=tmp, progress=False, name=f"{n}-r{rep}")
            per_level = {c: level_figures(res, c) for c in levels}
            runs[n].append(per_level)
            print(n, rep, json.dumps(per_level), flush=True)
    return runs


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
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--skip-sweep", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results" / "cpu_baseline.json"))
    a = ap.parse_args()
    names = [n for n in VARIANTS if "tcmalloc" not in n or find_allocator("tcmalloc")]
    result = {"command": " ".join(["python", "benchmarks/cpu_baseline.py", *sys.argv[1:]]),
              "date": time.strftime("%Y-%m-%d"),
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
              "workload": "seed shape: prompts 500-1000 tokens (mean ~622), 250 new tokens, ignore_eos",
              "variants": {n: VARIANTS[n] for n in names}}
    with tempfile.TemporaryDirectory() as tmp:
        if not a.skip_sweep:
            res = run_benchmark(variant("baseline"), concurrency=[1, 2, 4, 8], results_dir=tmp, progress=False,
                                name="baseline-sweep")
            result["sweep"] = {c: level_figures(res, c) for c in [1, 2, 4, 8]}
            print("sweep", json.dumps(result["sweep"]), flush=True)
        runs = interleaved(names, a.repeats, [1, 8], tmp)
    result["runs"] = runs
    result["ratios"] = ratios(runs, [1, 8])
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result["ratios"], indent=1))


if __name__ == "__main__":
    main()
