"""Techniques turn a recipe's sections into engine settings and prepared artifacts.

`prepare_artifacts` is the one entry the engine calls before starting a server: it resolves
the model folder (converted GGUF, or a config-only folder for dummy-weight speed runs), and
builds what each technique needs ahead of time (draft model, AWQ checkpoint, compile cache).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from ..errors import TechniqueUnavailableError
from ..recipes import Recipe


@dataclass
class Artifacts:
    """Paths a server for a recipe is started with."""

    model_path: str
    draft_path: str | None = None
    compile_cache_dir: str | None = None

    def to_dict(self) -> dict:
        return {"model_path": self.model_path, "draft_path": self.draft_path,
                "compile_cache_dir": self.compile_cache_dir}


def recipe_key(recipe: Recipe, *extra: str) -> str:
    """A short stable hash of what changes an artifact: the recipe's engine-relevant parts."""
    payload = json.dumps([recipe.model, recipe.engine.model_dump(mode="json"),
                          recipe.quantize.model_dump(mode="json") if recipe.quantize else None, *extra],
                         sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def prepare_artifacts(recipe: Recipe, model_path: str | None = None) -> Artifacts:
    """Build (or find in the cache) everything the recipe's server needs."""
    from ..engine.model_files import model_folder

    if recipe.quantize is not None and recipe.quantize.method == "awq":
        raise TechniqueUnavailableError(
            "AWQ int4 is not available in this version of jupyter-optimize yet; drop the quantize "
            "section, or use quantize: {method: fp8} on a GPU host")
    if recipe.speculative is not None and recipe.speculative.method == "draft_model":
        raise TechniqueUnavailableError(
            "draft-model speculation is not available in this version yet; use speculative: {method: ngram}")
    if model_path is None:
        if recipe.engine.weights == "dummy":
            from ..engine.dummy_model import dummy_model_folder

            model_path = str(dummy_model_folder(recipe.model))
        else:
            model_path = str(model_folder(recipe.model))
    return Artifacts(model_path=model_path)
