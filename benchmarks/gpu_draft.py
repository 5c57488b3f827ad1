"""The trained draft on a GPU: trained there with the toolkit's own trainer, then served by vLLM
beside n-gram speculation and no speculation (issue 12's last item, issue 13's draft on CUDA).

Runs on the GPU host after ../shared/gpu/install.sh (vLLM 0.24.0 in $HOME/vllm-site, SmolLM2
converted to $HOME/st/smollm2). Steps, each written to --out as it finishes:
  1. `trained_draft` (techniques/draft_train.py, the code `prepare recipes/draft.yaml` runs) on
     the GPU (train_device() picks CUDA), with the recipe's settings or larger ones (--prompts,
     --steps, --batch-size); prints held-out acceptance at k = --k; training.json keeps timings;
  2. HTTP benchmarks (engine module + jupyter_ext.bench, compiled, c = --levels) of
     smol-compiled, smol-ngram-compiled (k=4), smol-draft-trained-compiled (k = --k) and
     smol-suffix-compiled (recipes/suffix.yaml's settings), with vLLM's acceptance counters and
     the greedy texts compared prompt by prompt with the unspeculated run.
The draft is trained only when its arm is among those run. The suffix arm needs the
arctic-inference suffix trees importable: they are built on the GPU host from the sdist by
benchmarks/gpu_suffix.sh (no wheel exists for Python 3.12 there).

    python benchmarks/gpu_draft.py --out DIR [--prompts 2048 --steps 2000 --batch-size 16]
    python benchmarks/gpu_draft.py --out DIR --only smol-draft-trained-compiled   # one arm (the
        draft comes from the cache the training run filled), so each arm gets its own timeout
    python benchmarks/gpu_draft.py --combine A.json B.json ... --out DIR         # one file, greedy
        texts compared with the unspeculated arm
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from gpu_bench import bench_one, failed_run, gpu_name, runs, text_equality  # noqa: E402
from jupyter_ext.recipes import load_recipe  # noqa: E402
from jupyter_ext.techniques.draft_train import trained_draft  # noqa: E402
from jupyter_ext.techniques.eagle_head import EagleHeadTraining  # noqa: E402
from jupyter_ext.techniques.eagle_train import trained_eagle_head  # noqa: E402
from jupyter_ext.techniques.speculative import DraftTraining  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--prompts", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--heldout", type=int, default=64)
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--levels", default="1,16,64")
    ap.add_argument("--skip-bench", action="store_true")
    ap.add_argument("--head", choices=["draft", "eagle"], default="draft",
                    help="with --skip-bench: train the draft model (default) or the EAGLE head (recipes/eagle.yaml's "
                         "trainer) on the same teacher set")
    ap.add_argument("--lr", type=float, default=None, help="learning rate (default: the recipe's)")
    ap.add_argument("--unroll", type=int, default=1, help="--head eagle: passes on its own fed-back features")
    ap.add_argument("--only", default="", help="comma-separated arm names (default: all four)")
    ap.add_argument("--combine", nargs="*", default=None, help="gpu_draft.json files to merge")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.combine is not None:
        return combine([Path(f) for f in a.combine], out)
    target = Path(os.path.expanduser("~/st/smollm2"))
    kind = EagleHeadTraining if a.head == "eagle" else DraftTraining
    settings = kind(prompts=a.prompts, steps=a.steps, batch_size=a.batch_size, heldout_prompts=a.heldout,
                    **({"lr": a.lr} if a.lr else {}), **({"unroll": a.unroll} if a.head == "eagle" else {})).model_dump()
    doc: dict = {"date": time.strftime("%Y-%m-%d"), "gpu": gpu_name(), "command": " ".join(sys.argv), "runs": []}

    def save() -> None:
        (out / "gpu_draft.json").write_text(json.dumps(doc, indent=1, default=str))

    only = {x for x in a.only.split(",") if x}
    needs_draft = a.skip_bench or not only or "smol-draft-trained-compiled" in only
    draft = None
    if needs_draft:
        draft = train(a, target, settings, doc)
        save()
    if a.skip_bench:
        return
    levels = [int(x) for x in a.levels.split(",")]
    for spec, draft_path in arms(a.k, settings, draft):
        if only and spec["name"] not in only:
            continue
        try:
            doc["runs"].append(bench_one(spec, target, out, levels, draft_path=draft_path))
        except Exception as e:  # noqa: BLE001 - one failed configuration must not lose the others
            doc["runs"].append(failed_run(spec["name"], e))
        doc["comparisons"] = comparisons(doc["runs"])
        save()
    print(json.dumps(doc.get("comparisons"), default=str)[:2000], flush=True)


def arms(k: int, settings: dict, draft: Path | None) -> list[tuple[dict, str | None]]:
    """(recipe dict, draft folder) of every arm: gpu_bench's compiled SmolLM2 recipes (plain,
    n-gram k=4), the trained draft at k, and suffix decoding with recipes/suffix.yaml's settings."""
    plain, ngram = (spec for spec, _ in runs("offline")[:2])
    suffix = load_recipe("suffix").speculative.model_dump(mode="json", exclude_none=True)
    return [(plain, None), (ngram, None),
            ({**plain, "name": "smol-draft-trained-compiled",
              "speculative": {"method": "draft_model", "model": "trained", "num_tokens": k, "train": settings}},
             str(draft) if draft else None),
            ({**plain, "name": "smol-suffix-compiled", "speculative": suffix}, None)]


def train(a: argparse.Namespace, target: Path, settings: dict, doc: dict) -> Path:
    """The trained draft (from the cache when an earlier call trained it), its record in doc."""
    t = time.monotonic()
    make = trained_eagle_head if a.head == "eagle" else trained_draft
    draft = make(target, settings, a.k, Path(os.environ.get("JUPYTER_OPTIMIZE_CACHE", "/tmp/jo")))
    doc["training"] = {**json.loads((draft / "training.json").read_text()), "wall_s": time.monotonic() - t,
                       "draft_mb": sum(f.stat().st_size for f in draft.iterdir()) / 2**20}
    print("TRAINED", json.dumps(doc["training"]["training"], default=str)[:1500], flush=True)
    return draft


def comparisons(runs: list[dict]) -> dict:
    """Greedy texts of every arm against the unspeculated one, and speed ratios per level."""
    by = {r["name"]: {**r, "levels": {str(c): lv for c, lv in r["levels"].items()}} for r in runs if "levels" in r}
    ref = by.get("smol-compiled")
    if ref is None:
        return {}
    out = {}
    for n, r in by.items():
        if n == "smol-compiled":
            continue
        out[f"texts {n} vs smol-compiled"] = text_equality(ref, r)
        out[f"speed {n} / smol-compiled"] = {c: lv["out_tok_s"] / ref["levels"][c]["out_tok_s"]
                                             for c, lv in r["levels"].items() if c in ref["levels"]}
    return out


def combine(files: list[Path], out: Path) -> None:
    """One document from arms run by separate calls (the queue gives each its own timeout)."""
    docs = [json.loads(f.read_text()) for f in files]
    doc = {"date": docs[0]["date"], "gpu": docs[0]["gpu"], "commands": [d["command"] for d in docs],
           "training": next((d["training"] for d in docs if "training" in d), None),
           "runs": [r for d in docs for r in d.get("runs", [])]}
    doc["comparisons"] = comparisons(doc["runs"])
    (out / "gpu_draft.json").write_text(json.dumps(doc, indent=1, default=str))
    print(json.dumps(doc["comparisons"], default=str)[:3000])


if __name__ == "__main__":
    main()
