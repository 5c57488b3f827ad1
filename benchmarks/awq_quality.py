"""AWQ int4 quality and size on CPU: perplexity vs the fp model and vs round-to-nearest int4.

Builds (or reuses) the AWQ checkpoint of recipes/awq.yaml, then scores the fp model, the AWQ
checkpoint (loaded and decompressed by transformers) and plain RTN int4 (same group size,
asymmetric, same layers) on held-out standard-library documentation that calibration never
saw, and reads the weight memory from the checkpoint's tensors. AWQ must beat RTN.

    python benchmarks/awq_quality.py [--recipe awq] [--windows 16]
JSON goes to benchmarks/results/awq_quality.json (--out); a markdown line is printed.
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
from jupyter_ext.engine import model_folder  # noqa: E402
from jupyter_ext.recipes import load_recipe  # noqa: E402
from jupyter_ext.techniques import prepare_artifacts  # noqa: E402
from jupyter_ext.store.artifacts import read_marker  # noqa: E402
from jupyter_ext.techniques.quantize_eval import evaluate_awq  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="awq")
    ap.add_argument("--windows", type=int, default=16, help="held-out windows of 512 tokens")
    ap.add_argument("--out", default=str(HERE / "results" / "awq_quality.json"))
    a = ap.parse_args()
    recipe = load_recipe(a.recipe)
    t = time.monotonic()
    artifacts = prepare_artifacts(recipe, check_host=False)  # quality is measured on any host
    build_s = time.monotonic() - t
    checkpoint = Path(artifacts.model_path)
    t = time.monotonic()
    report = evaluate_awq(checkpoint, model_folder(recipe.model), max_windows=a.windows)
    result = {"command": " ".join(["python", "benchmarks/awq_quality.py", *sys.argv[1:]]),
              "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine_description(),
              "versions": package_versions(), "recipe": recipe.to_dict(), "checkpoint": str(checkpoint),
              "build": read_marker(checkpoint), "prepare_s": build_s, "eval_s": time.monotonic() - t,
              **report.to_dict()}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(report.markdown_line())
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
