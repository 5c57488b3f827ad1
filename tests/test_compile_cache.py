"""Compiled mode with a kept cache: the first start fills the cache folder, the second start
reuses it without compiling again (no new artifacts, no failed AOT reload)."""

from __future__ import annotations

import pytest

from jupyter_ext.recipes import load_recipe
from jupyter_ext.techniques import prepare_artifacts
from jupyter_ext.techniques.compile import cache_state
from jupyter_ext.engine.prepare import timed_start


@pytest.mark.vllm
@pytest.mark.slow
def test_the_second_start_reuses_the_compile_cache(tmp_path):
    recipe = load_recipe("compiled")
    recipe.engine.max_model_len = 1024
    artifacts = prepare_artifacts(recipe)
    artifacts.compile_cache_dir = str(tmp_path)  # empty: this test's first start compiles
    first = timed_start(recipe, artifacts, start_timeout_s=900)
    filled = cache_state(tmp_path)
    assert filled["files"] > 10 and filled["bytes"] > 100_000, filled  # compiled graphs + C++ kernels
    second = timed_start(recipe, artifacts, start_timeout_s=900)
    assert cache_state(tmp_path) == filled, "the second start wrote new artifacts: it compiled again"
    assert first["aot_load_failures"] == second["aot_load_failures"] == 0
    log = open(second["log"]).read()
    assert "Warming up model for the compilation" in log and "enforce_eager=False" in log
    assert str(tmp_path) in log  # vLLM used the kept folder, not ~/.cache/vllm
