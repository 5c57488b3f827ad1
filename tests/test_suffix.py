"""Suffix decoding, the technique added as one module (techniques/suffix.py): its recipe, the
server's and the endpoint's speculative config, the arctic-inference check, and a real run."""

from __future__ import annotations

import importlib.util
import json

import pytest

from conftest import greedy_completions
from jupyter_ext.engine import build_server_command, server_for_recipe
from jupyter_ext.errors import RecipeError, TechniqueUnavailableError
from jupyter_ext.recipes import load_recipe, recipe_from_dict
from jupyter_ext.techniques import check_host_support
from jupyter_ext.techniques import suffix as suffix_mod

SUFFIX_CONFIG = {"method": "suffix", "num_speculative_tokens": 8, "suffix_decoding_max_tree_depth": 24,
                 "suffix_decoding_max_cached_requests": 10000, "suffix_decoding_max_spec_factor": 1.0,
                 "suffix_decoding_min_token_prob": 0.1}


def test_the_shipped_suffix_recipe_loads_with_vllms_defaults():
    r = load_recipe("suffix")
    assert r.techniques == ["speculative:suffix"] and r.speculative.num_tokens == 8
    bare = recipe_from_dict({"name": "x", "speculative": {"method": "suffix"}}).speculative
    assert (bare.max_tree_depth, bare.max_cached_requests, bare.max_spec_factor, bare.min_token_prob) == \
        (24, 10000, 1.0, 0.1)


@pytest.mark.parametrize("options, words", [
    ({"min_token_prob": 1.5}, "speculative.min_token_prob"),
    ({"max_tree_depth": 0}, "speculative.max_tree_depth"),
    ({"max_cached_requests": -1}, "speculative.max_cached_requests"),
    ({"prompt_lookup_max": 4}, "speculative.prompt_lookup_max: unknown key"),
])
def test_bad_suffix_options_are_named(options, words):
    with pytest.raises(RecipeError) as e:
        recipe_from_dict({"name": "x", "speculative": {"method": "suffix", **options}})
    assert words in str(e.value)


def test_a_misspelt_method_lists_suffix_among_the_methods():
    with pytest.raises(RecipeError, match="suffix"):
        recipe_from_dict({"name": "x", "speculative": {"method": "sufix"}})


def test_the_server_gets_the_suffix_config():
    for platform in ("cpu", "cuda"):
        argv = build_server_command(load_recipe("suffix"), "/m", "127.0.0.1", 8000, platform=platform).argv
        assert json.loads(argv[argv.index("--speculative-config") + 1]) == SUFFIX_CONFIG
    bare = recipe_from_dict({"name": "x", "speculative": {"method": "suffix", "max_tree_depth": 12}})
    argv = build_server_command(bare, "/m", "127.0.0.1", 8000, platform="cpu").argv
    config = json.loads(argv[argv.index("--speculative-config") + 1])
    assert config["num_speculative_tokens"] == 12 == config["suffix_decoding_max_tree_depth"]  # vLLM's default


def test_the_endpoint_gets_the_suffix_config_through_lmi():
    from jupyter_ext.deploy import sagemaker as sm

    plan = sm.plan_deployment(load_recipe("suffix"), "jo-suffix", role_arn="arn:aws:iam::123456789012:role/x",
                              region="us-east-1", instance_type="ml.g5.2xlarge")
    env = plan.requests[0].params["PrimaryContainer"]["Environment"]
    assert json.loads(env["OPTION_SPECULATIVE_CONFIG"]) == SUFFIX_CONFIG
    assert "AdditionalModelDataSources" not in plan.requests[0].params["PrimaryContainer"]  # no draft model
    assert any("arctic-inference" in w for w in plan.warnings)


def test_a_host_without_arctic_inference_is_refused_with_the_install_command(monkeypatch):
    monkeypatch.setattr(suffix_mod, "arctic_inference_problem", lambda: "No module named 'arctic_inference'")
    r = load_recipe("suffix")
    for platform in ("cpu", "cuda"):
        with pytest.raises(TechniqueUnavailableError) as e:
            check_host_support(r, platform)
        assert "pip install arctic-inference==0.1.1" in str(e.value) and "method: ngram" in str(e.value)
    with pytest.raises(TechniqueUnavailableError, match="arctic-inference"):
        server_for_recipe(r)  # refused while preparing: no server was started
    monkeypatch.setattr(suffix_mod, "arctic_inference_problem", lambda: None)
    check_host_support(r, "cpu")


def test_the_arctic_inference_check_agrees_with_the_environment():
    installed = importlib.util.find_spec("arctic_inference") is not None
    assert (suffix_mod.arctic_inference_problem() is None) == installed


@pytest.mark.vllm
@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("arctic_inference") is None, reason="needs arctic-inference")
def test_suffix_decoding_is_active_and_lossless():
    """Greedy texts with suffix decoding equal the baseline's, and repeated prompts get drafts
    accepted (the global tree holds the earlier responses). fp32, as in test_techniques."""
    prompts = ["The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog. The quick",
               "def fibonacci(n):\n    if n < 2:\n        return n\n    return"] * 2

    def run(spec):
        data = {"name": "suffix-lossless", "engine": {"max_model_len": 1024, "enforce_eager": True,
                                                      "dtype": "float32"}}
        return greedy_completions({**data, **({"speculative": spec} if spec else {})}, prompts, 32)

    base, _ = run(None)
    texts, stats = run({"method": "suffix", "num_tokens": 8})
    assert stats and stats["active"] and stats["accepted_tokens"] > 0, stats
    assert texts == base
