"""Our benchmark and vLLM's own client (`vllm bench serve`) on the real local vLLM server.

Issue 14's goal: a vLLM client on the same server agrees within 2% on throughput and TTFT
p50. One vLLM server (the `baseline` recipe, the default model, prefix caching off so that
both harnesses can send the very same prompts without the second one hitting the cache)
serves both. At every concurrency (1, 4, 16) and round, one fresh prompt file is written and
both harnesses run it, interleaved: ours first in even rounds, vLLM's first in odd rounds,
so drift on the machine falls on both alike. Same concurrency, request count, output length
(ignore_eos), temperature 0 and warm-ups. Reported per level: the median over rounds of
each harness's output throughput and TTFT p50, and ours / vLLM's - 1.

    python benchmarks/vllm_client_compare.py                   # c = 1,4,16, 3 rounds
    python benchmarks/vllm_client_compare.py --quick           # a smoke run (tiny)
    python benchmarks/vllm_client_compare.py --url URL --model NAME   # a running server
JSON goes to benchmarks/results/vllm_client_compare.json (--out); the table is printed.
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
sys.path.insert(0, str(HERE))

from jupyter_ext.bench.result import machine_description, package_versions  # noqa: E402
from vllm_client import TABLE_HEAD, agreement, row_markdown, run_ours, run_vllm, tokenizer_folder, write_prompts  # noqa: E402


def start_vllm(max_model_len: int):
    """The baseline recipe's server with prefix caching off (see the module's docstring)."""
    from jupyter_ext.engine import server_for_recipe
    from jupyter_ext.recipes import load_recipe

    recipe = load_recipe(HERE.parent / "recipes" / "baseline.yaml")
    recipe.engine.max_model_len = max_model_len
    recipe.engine.extra_args = [*recipe.engine.extra_args, "--no-enable-prefix-caching"]
    srv = server_for_recipe(recipe, start_timeout_s=900)
    srv.start()
    return srv


def median_of(runs: list[dict]) -> dict:
    """Per key, the median over rounds (the numbers only); an error if any round failed."""
    bad = [r for r in runs if "error" in r]
    if bad:
        return bad[0]
    keys = [k for k, v in runs[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return {k: statistics.median(r[k] for r in runs) for k in keys}


def measure_level(url: str, model: str, tok: Path, c: int, a: argparse.Namespace, tmp: Path) -> dict:
    n, warmup = max(a.min_prompts, 2 * c), min(c, a.warmup)
    ours_runs, vllm_runs = [], []
    for rnd in range(a.rounds):
        data = write_prompts(tmp / f"prompts-c{c}-r{rnd}.jsonl", n, a.max_tokens, a.input_scale,
                             seed=1000 * c + rnd, tokenizer=tok)
        runs = [("ours", lambda: run_ours(url, data, c, n, a.max_tokens, warmup, str(tmp), model=model, tokenizer=tok)),
                ("vllm", lambda: run_vllm(url, model, tok, data, c, n, a.max_tokens, warmup, tmp))]
        for who, run in runs if rnd % 2 == 0 else runs[::-1]:
            (ours_runs if who == "ours" else vllm_runs).append(run())
            print(json.dumps({"concurrency": c, "round": rnd, "harness": who,
                              **{k: v for k, v in (ours_runs if who == "ours" else vllm_runs)[-1].items()
                                 if k != "error"}}), flush=True)
    ours, theirs = median_of(ours_runs), median_of(vllm_runs)
    return {"concurrency": c, "requests": n, "warmup": warmup, "ours": ours, "vllm_bench": theirs,
            "ours_runs": ours_runs, "vllm_runs": vllm_runs, "ours_vs_vllm": agreement(ours, theirs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--levels", default="1,4,16")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--min-prompts", type=int, default=16, help="requests per level: max(this, 2 x concurrency)")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--input-scale", type=float, default=0.5)
    ap.add_argument("--warmup", type=int, default=4, help="warm-up requests (at most the concurrency)")
    ap.add_argument("--max-model-len", type=int, default=2048)
    ap.add_argument("--url", help="a running OpenAI-compatible server instead of starting vLLM")
    ap.add_argument("--model", help="with --url: the served model name")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results" / "vllm_client_compare.json"))
    a = ap.parse_args()
    if a.quick:
        a.levels, a.rounds, a.min_prompts, a.max_tokens, a.input_scale, a.warmup = "1,2", 2, 2, 8, 0.1, 1
    if a.url and not a.model:
        ap.error("--url needs --model (the name the server serves)")
    tok = tokenizer_folder()
    srv = None if a.url else start_vllm(a.max_model_len)
    url, model = (a.url, a.model) if a.url else (srv.base_url, srv.command.served_model_name)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for c in [int(x) for x in a.levels.split(",")]:
                rows.append(measure_level(url, model, tok, c, a, Path(tmp)))
    finally:
        if srv is not None:
            srv.stop()
    for r in rows:  # the raw files lived in the temporary folder
        for side in ("ours", "vllm_bench"):
            r[side].pop("result", None)
    table = [row_markdown(r["concurrency"], r["ours"], r["vllm_bench"], r["ours_vs_vllm"]) for r in rows]
    result = {"command": " ".join(["python", "benchmarks/vllm_client_compare.py", *sys.argv[1:]]),
              "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine_description(),
              "versions": package_versions(), "server": url if a.url else "local vLLM, recipe baseline, no prefix cache",
              "settings": {k: getattr(a, k) for k in ("levels", "rounds", "min_prompts", "max_tokens", "input_scale",
                                                      "warmup", "max_model_len")},
              "goal": "|ours / vLLM - 1| <= 2% for output throughput and TTFT p50 (from issue)",
              "rows": rows, "table": [TABLE_HEAD, *table]}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=1))
    print("\n" + TABLE_HEAD + "\n" + "\n".join(table) + f"\nwritten {a.out}")


if __name__ == "__main__":
    main()
