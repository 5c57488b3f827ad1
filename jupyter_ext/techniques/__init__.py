"""Techniques turn a recipe's sections into engine settings and prepared artifacts.

Each technique is one object in `registry` (its section schema, checks, engine arguments,
LMI environment and prepare step), defined by a module of this package. Importing the
package imports every such module, so a new technique is found without being listed.

`prepare_artifacts` is the one entry the engine calls before starting a server: it checks the
techniques' options and what this host can run (so a refused stack fails before a server
starts), resolves the model folder (converted GGUF, or a config-only folder for dummy-weight
speed runs), and runs each technique's prepare step: the draft model, the AWQ checkpoint,
the compile cache folder. Each artifact is cached and built with write-then-rename (see
`store/artifacts.py`). `engine.prepare.prepare` adds the one warm start that fills the compile
cache, for building everything ahead of deployment.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import pkgutil
from pathlib import Path
from typing import TYPE_CHECKING

from .registry import (Artifacts, EngineArgs, LmiTarget, SpeculativeMethod, Technique, active, all_techniques,
                       register, section_methods, section_schemas, technique_names)

if TYPE_CHECKING:
    from ..recipes import Recipe

__all__ = ["Artifacts", "EngineArgs", "LmiTarget", "SpeculativeMethod", "Technique", "active", "all_techniques",
           "register", "section_methods", "section_schemas", "technique_names", "recipe_key",
           "validate_techniques", "check_host_support", "prepare_artifacts"]


def recipe_key(recipe: Recipe, *extra: str) -> str:
    """A short stable hash of what changes an artifact: the model, the engine settings and
    the weight format the techniques make (the quantize section), plus `extra`."""
    weights = [k for k in (t.artifact_key(recipe) for t in active(recipe)) if k is not None]
    # `or [None]`: a recipe without a weight format hashes as it did before the registry,
    # so compile caches kept under the old keys stay valid.
    payload = json.dumps([recipe.model, recipe.engine.model_dump(mode="json"), *(weights or [None]), *extra],
                         sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def validate_techniques(recipe: Recipe) -> None:
    """Option checks that need no artifact and no engine: run when a recipe is loaded.
    Raises RecipeError naming the field (bad group size, missing calibration file, bad draft)."""
    for t in active(recipe):
        t.validate(recipe)


def check_host_support(recipe: Recipe, platform: str | None = None) -> None:
    """Refuse, before a server starts, a technique this host's engine cannot run
    (TechniqueUnavailableError with the reason and the alternatives)."""
    from ..base.host import engine_platform

    platform = platform or engine_platform()
    for t in active(recipe):
        t.check_host(recipe, platform)


def prepare_artifacts(recipe: Recipe, model_path: str | None = None, check_host: bool = True) -> Artifacts:
    """Build (or find in the cache) everything the recipe's server needs.

    `check_host=False` builds artifacts even where this host cannot serve them (e.g. an AWQ
    checkpoint on an AVX2-only CPU, for its quality report or to deploy elsewhere)."""
    from ..store.model_files import cache_root, model_folder

    validate_techniques(recipe)
    if check_host:
        check_host_support(recipe)
    if model_path is None:
        if recipe.engine.weights == "dummy":
            from ..store.dummy_model import dummy_model_folder

            model_path = str(dummy_model_folder(recipe.model))
        else:
            model_path = str(model_folder(recipe.model))
    artifacts, source, root = Artifacts(model_path=model_path), Path(model_path), cache_root()
    for t in active(recipe):
        artifacts = t.prepare(recipe, artifacts, source, root)
    return artifacts


# Modules of this package that define no technique: the registry itself, the AWQ child-process
# entry, the AWQ quality evaluation, the LoRA fine-tune behind made adapters, the draft
# training (data and loop) speculative.py calls and the EAGLE head training eagle_head.py
# calls. (The `prepare` verb's warm start, which starts a server, is engine/prepare.py.)
_NOT_TECHNIQUE_MODULES = frozenset({"registry", "awq_run", "quantize_eval", "adapter_train", "draft_data", "draft_train",
                                    "eagle_train"})


def _discover() -> None:
    """Import every technique module of this package; each registers its techniques."""
    for info in pkgutil.iter_modules(__path__):
        if info.name not in _NOT_TECHNIQUE_MODULES and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


_discover()
