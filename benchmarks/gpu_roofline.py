"""Measured GPU decode throughput beside the catalog's roofline estimate.

Reads benchmarks/results/gpu_llama.json (or the gpu_bench.py JSON files given) and prints,
for each run and concurrency, measured output tok/s / predicted tok/s (roofline with the
planner's default efficiencies). Measured throughput includes prefill and the HTTP path,
so it sits below a decode-only estimate.

    python benchmarks/gpu_roofline.py [GPU_JSON ...] [--out JSON]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from jupyter_ext.planning import predict_decode  # noqa: E402

PRECISION = {"llama8b-bf16-eager": "bf16", "llama8b-bf16-compiled": "bf16", "llama8b-awq-compiled": "awq-int4",
             "llama8b-awq-marlin-compiled": "awq-int4", "llama8b-fp8-compiled": "fp8",
             "llama8b-bf16-compiled-again": "bf16", "llama8b-awq-marlin-fp8kv": "awq-int4",
             "llama8b-fp8-fp8kv": "fp8", "llama8b-awq-marlin-atomic-fp8kv": "awq-int4",
             "llama8b-awq-marlin-w4a8-fp8kv": "awq-int4"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", default=[str(HERE / "results" / "gpu_llama.json")])
    ap.add_argument("--out", default=str(HERE / "results" / "gpu_roofline.json"))
    a = ap.parse_args()
    runs = [run for f in a.files for run in json.loads(Path(f).read_text())["runs"] if run["name"] in PRECISION]
    rows = []
    for run in runs:
        for c, lv in run.get("levels", {}).items():
            kv = "fp8" if run["name"].endswith("fp8kv") else "auto"
            est = predict_decode("meta-textgeneration-llama-3-8b-instruct", PRECISION[run["name"]], int(c), "H200",
                                 kv_cache_dtype=kv)
            rows.append({"run": run["name"], "concurrency": int(c), "measured_tok_s": lv["out_tok_s"],
                         "predicted_tok_s": est.tokens_per_s, "bound": est.bound,
                         "measured_over_predicted": lv["out_tok_s"] / est.tokens_per_s})
    for r in rows:
        print(f"| {r['run']} | {r['concurrency']} | {r['measured_tok_s']:.0f} | {r['predicted_tok_s']:.0f} "
              f"({r['bound']}) | {r['measured_over_predicted']:.2f} |")
    Path(a.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
