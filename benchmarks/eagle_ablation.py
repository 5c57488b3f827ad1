"""EAGLE head training variants, side by side on one teacher set: held-out acceptance of each.

Trains recipes/eagle.yaml's head (techniques/eagle_train.py, the code `prepare` runs) once per
variant, each a set of overrides of the recipe's `speculative.train` section, on the same
cached teacher answers and target features, and reports the held-out acceptance at k =
num_tokens (rate, tokens per target step, per position) and the training time of each. The
teacher set is made once (the first variant pays for it; it is timed apart).

    python benchmarks/eagle_ablation.py --variant unroll=1 --variant unroll=2
    python benchmarks/eagle_ablation.py --variant unroll=2,steps=600 --recipe eagle
JSON goes to benchmarks/results/eagle_ablation.json (--out); a markdown table is printed.
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
from jupyter_ext.store.artifacts import read_marker  # noqa: E402
from jupyter_ext.store.model_files import cache_root  # noqa: E402
from jupyter_ext.techniques.eagle_head import EagleHeadTraining  # noqa: E402
from jupyter_ext.techniques.eagle_train import teacher_and_features, trained_eagle_head  # noqa: E402


def overrides(text: str) -> dict:
    """`key=value,key=value` -> the training settings it changes, values read as JSON where they
    parse (numbers), else as text."""
    out = {}
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value.strip()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="eagle")
    ap.add_argument("--variant", action="append", required=True, help="overrides, e.g. unroll=2,steps=600")
    ap.add_argument("--cache", default=None, help="cache folder (default: the toolkit's; heads trained there stay)")
    ap.add_argument("--out", default=str(HERE / "results" / "eagle_ablation.json"))
    a = ap.parse_args()
    recipe = load_recipe(a.recipe)
    spec = recipe.speculative
    target = model_folder(recipe.model)
    cache = Path(a.cache) if a.cache else cache_root()
    base = spec.train.model_dump(mode="json")
    t = time.monotonic()
    teacher_and_features(target, base, cache)  # made once here, so the first variant's time is its training alone
    doc = {"command": " ".join(["python", "benchmarks/eagle_ablation.py", *sys.argv[1:]]),
           "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine_description(), "versions": package_versions(),
           "recipe": a.recipe, "base_settings": base, "teacher_s": time.monotonic() - t, "k": spec.num_tokens,
           "variants": []}
    for text in a.variant:
        settings = EagleHeadTraining(**{**base, **overrides(text)}).model_dump(mode="json")
        t = time.monotonic()
        head = trained_eagle_head(target, settings, spec.num_tokens, cache)
        training = read_marker(head)["training"]
        doc["variants"].append({"variant": text, "settings": settings, "wall_s": time.monotonic() - t,
                                "acceptance": training["acceptance"], "train_acceptance": training["train_acceptance"],
                                "train_seconds": training["train_seconds"], "final_loss": training["final_loss"]})
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(doc, indent=1, default=str))
    print(f"| variant | held-out acceptance at k={spec.num_tokens} | tokens per step | per position | "
          f"on training prompts | train s |\n|---|---|---|---|---|---|")
    for v in doc["variants"]:
        acc = v["acceptance"]
        print(f"| {v['variant']} | {acc['rate']:.3f} | {acc['tokens_per_step']:.2f} | "
              f"{' / '.join(f'{x:.2f}' for x in acc['per_position'])} | {v['train_acceptance']:.3f} | "
              f"{v['train_seconds']:.0f} |")
    print(f"written {a.out}")


if __name__ == "__main__":
    main()
