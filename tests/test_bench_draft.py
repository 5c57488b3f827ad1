"""`bench recipes/draft.yaml --baseline recipes/baseline.yaml --dataset F`: the benchmarked
dataset is what a `model: trained` draft learns from (CLI, magic and run_benchmark all build
one BenchSpec), an explicit `speculative.train.dataset` in the recipe wins and the result says
so, and the comparison shows the draft's acceptance beside its speed-up. No server here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthetic_results import result
from jupyter_ext.bench.compare import Comparison
from jupyter_ext.bench.spec import BenchSpec
from jupyter_ext.recipes import load_recipe, recipe_from_dict
from jupyter_ext.techniques.speculative import trained_elsewhere_note
from jupyter_ext.verbs.table import bench_options, build_parser

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def chats(tmp_path) -> Path:
    path = tmp_path / "chats.jsonl"
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"Explain idea {i}."}]}) + "\n"
                            for i in range(4)))
    return path


def _trained_on(recipe) -> str | None:
    return recipe.speculative.training().dataset


@pytest.mark.parametrize("face", ["cli", "magic"])
def test_bench_dataset_is_what_the_trained_draft_learns_from_on_both_faces(face, chats):
    line = ["bench", str(ROOT / "recipes/draft.yaml"), "--baseline", str(ROOT / "recipes/baseline.yaml"),
            "--dataset", str(chats)]
    args = build_parser(face).parse_args(line)
    opts = bench_options(args, face)
    spec = BenchSpec.of(args.recipe, **opts)
    assert _trained_on(spec.target.recipe) == str(chats.resolve())
    assert spec.baseline.speculative is None  # the baseline is served as it is
    assert [t.recipe.name for t in spec.runs()] == ["baseline", spec.target.recipe.name]
    assert _trained_on(spec.runs()[1].recipe) == str(chats.resolve())


def test_without_a_dataset_the_draft_keeps_the_builtin_training_text():
    spec = BenchSpec.of("draft", baseline="baseline")
    assert _trained_on(spec.target.recipe) is None


def test_a_recipe_without_a_trained_draft_is_benchmarked_on_a_dataset_unchanged(chats):
    spec = BenchSpec.of("ngram", dataset=str(chats))
    assert spec.target.recipe == load_recipe("ngram")


def test_an_explicit_train_dataset_in_the_recipe_wins_and_the_result_says_so(tmp_path, chats):
    other = tmp_path / "other.jsonl"
    other.write_text(chats.read_text())
    draft = load_recipe("draft").to_dict()
    draft["speculative"]["train"] = {**(draft["speculative"].get("train") or {}), "dataset": str(other)}
    recipe = recipe_from_dict(draft)
    spec = BenchSpec.of(recipe, dataset=str(chats))
    assert _trained_on(spec.target.recipe) == str(other)
    note = trained_elsewhere_note(spec.target.recipe, spec.workload.dataset)
    assert note and str(other.resolve()) in note and str(chats.resolve()) in note
    assert trained_elsewhere_note(spec.target.recipe, str(other)) is None  # trained on what is benchmarked


def test_an_eagle_head_learns_from_the_benchmarked_dataset_too(chats):
    spec = BenchSpec.of(str(ROOT / "recipes/eagle.yaml"), baseline="baseline", dataset=str(chats))
    assert spec.target.recipe.speculative.train.dataset == str(chats.resolve())
    assert spec.target.recipe.speculative.train.steps == load_recipe("eagle").speculative.train.steps  # rest kept
    assert BenchSpec.of("eagle").target.recipe.speculative.train.dataset is None


def test_prepare_dataset_reaches_the_eagle_head_and_a_recipe_that_trains_nothing_is_refused(chats, tmp_path):
    from jupyter_ext.errors import DatasetError, RecipeError
    from jupyter_ext.techniques.speculative import with_training_dataset

    assert with_training_dataset(load_recipe("eagle"), str(chats)).speculative.train.dataset == str(chats.resolve())
    with pytest.raises(RecipeError, match="eagle_head"):
        with_training_dataset(load_recipe("ngram"), str(chats))
    with pytest.raises(DatasetError):
        with_training_dataset(load_recipe("eagle"), str(tmp_path / "missing.jsonl"))


def test_the_comparison_shows_the_drafts_acceptance_beside_its_speed_up():
    base = result("baseline", [(1, 0.1, 0.02)])
    draft = result("draft", [(1, 0.1, 0.01)])
    draft.levels[0].speculative = {"acceptance_rate": 0.62, "mean_accepted_per_step": 2.4, "active": True}
    rows = Comparison.of(draft, base).rows
    assert rows[0]["spec accept"] == pytest.approx(0.62)
    assert rows[0]["out tok/s ratio"] > 1.5
    assert "spec accept" in str(Comparison.of(draft, base))
