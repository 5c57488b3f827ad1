"""Recipe schema: shipped recipes validate; every kind of bad field gets a named error."""

from pathlib import Path

import pytest

from jupyter_ext.errors import RecipeError, StackError, UnknownInstanceError, UnknownModelError
from jupyter_ext.recipes import check_stack, list_recipes, load_recipe, recipe_from_dict, recipe_from_yaml

ROOT = Path(__file__).resolve().parent.parent


def test_shipped_recipes_are_valid_and_named_like_their_files():
    recipes = list_recipes()
    names = {r.name for r in recipes}
    assert "baseline" in names
    for p in (ROOT / "recipes").glob("*.yaml"):
        assert load_recipe(p).name == p.stem


def test_baseline_is_eager_without_techniques():
    r = load_recipe("baseline")
    assert r.techniques == [] and r.engine.enforce_eager


@pytest.mark.parametrize("data, error, words", [
    ({"name": "x", "colour": "red"}, RecipeError, "colour: unknown key"),
    ({"name": "x", "engine": {"max_num_seqs": "many"}}, RecipeError, "engine.max_num_seqs"),
    ({"name": "x", "engine": {"max_num_seqs": 0}}, RecipeError, "greater than 0"),
    ({"name": "x", "model": "llama-3-8b-typo"}, UnknownModelError, "llama-3-8b"),
    ({"name": "x", "instance_type": "g5.2xlarge"}, UnknownInstanceError, "ml."),
    ({"name": "x", "instance_type": "ml.m9.2xlarge"}, UnknownInstanceError, "g5"),
    ({"name": "x", "speculative": {"method": "medusa"}}, RecipeError, "ngram, draft_model"),
    ({"name": "x", "speculative": {"method": "ngram", "num_tokens": 0}}, RecipeError, "num_tokens"),
    ({"name": "bad name!"}, RecipeError, "name"),
    (["not", "a", "mapping"], RecipeError, "mapping"),
])
def test_invalid_fields_are_named(data, error, words):
    with pytest.raises(error) as e:
        recipe_from_dict(data)
    assert words in str(e.value)


def test_bad_yaml_and_missing_file():
    with pytest.raises(RecipeError, match="not valid YAML"):
        recipe_from_yaml("name: [unclosed")
    with pytest.raises(RecipeError, match="not found"):
        load_recipe("no-such-recipe")


def test_stack_rules_name_both_techniques():
    r = recipe_from_dict({"name": "s", "compile": {"enabled": True},
                          "speculative": {"method": "ngram"}})
    check_stack(r, "local")  # vLLM runs compiled speculation locally
    with pytest.raises(StackError) as e:
        check_stack(r, "sagemaker")
    assert "compile" in str(e.value) and "speculative:ngram" in str(e.value)
    with pytest.raises(StackError, match="enforce_eager"):
        recipe_from_dict({"name": "s", "compile": {"enabled": True}, "engine": {"enforce_eager": True}})


def test_save_load_round_trip_is_atomic(tmp_path):
    r = recipe_from_dict({"name": "rt", "speculative": {"method": "ngram", "num_tokens": 3}})
    p = r.save(tmp_path / "rt.yaml")
    assert load_recipe(p) == r
    assert [x.name for x in tmp_path.iterdir()] == ["rt.yaml"]  # no temporary file left
    assert "speculative:ngram" in str(r) and "<pre>" in r._repr_html_()
