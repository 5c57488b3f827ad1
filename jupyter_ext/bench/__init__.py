"""Benchmarks: a seed-shaped workload, a streaming client, metrics, sweeps and results.

`run_benchmark` is the one call behind `jupyter-optimize bench` and `%optimize bench`: it
starts a local vLLM server for a recipe (or uses a URL you give), runs the concurrency sweep
with a progress bar, prices every level, saves the result after each level and returns it.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path
from typing import Callable, Sequence

from .. import defaults
from ..errors import BenchError
from ..recipes import Recipe, load_recipe
from .client import Endpoint
from .compare import Comparison
from .metrics import LevelMetrics, Percentiles, RequestSample, compute_metrics
from .result import BenchResult, LevelResult
from .sweep import SweepSpec, run_sweep, run_sweep_in_thread
from .workload import Workload, build_workload

__all__ = ["run_benchmark", "run_comparison", "speculation_warning", "BenchResult", "LevelResult", "Comparison", "Endpoint",
           "SweepSpec", "Workload", "build_workload", "compute_metrics", "LevelMetrics", "Percentiles",
           "RequestSample"]


def _served_model(base_url: str) -> str:
    try:
        with urllib.request.urlopen(base_url.rstrip("/") + "/v1/models", timeout=10) as r:
            return json.load(r)["data"][0]["id"]
    except Exception as e:  # noqa: BLE001 - turned into a named error with the fix
        raise BenchError(f"could not read the served model from {base_url}/v1/models ({e}); "
                         f"pass the model name explicitly (--model)") from None


def _result_path(results_dir: str | Path, name: str) -> Path:
    return Path(results_dir) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"


def run_benchmark(recipe: Recipe | str | None = None, *, url: str | None = None, model: str | None = None,
                  concurrency: Sequence[int] = defaults.DEFAULT_CONCURRENCY, num_prompts: int | None = None,
                  max_tokens: int = defaults.DEFAULT_MAX_TOKENS, input_scale: float = 1.0,
                  request_rate: float | None = None, warmup: int | None = None,
                  instance: str = defaults.DEFAULT_INSTANCE, discount: float = 0.0,
                  results_dir: str | Path | None = None, name: str | None = None, api: str = "chat",
                  server=None, endpoint: Endpoint | None = None, progress: bool = True,
                  stop: threading.Event | None = None,
                  on_level: Callable[[LevelResult], None] | None = None,
                  on_request: Callable[[RequestSample], None] | None = None, seed: int = 0,
                  tokenizer_path: str | Path | None = None, ignore_eos: bool = True,
                  extra_body: dict | None = None) -> BenchResult:
    """Benchmark a recipe on a local vLLM server it starts (and always stops), an already
    running `server` (engine.LocalServer), any OpenAI-compatible `url`, or an `endpoint`
    (e.g. bench.sagemaker_stream.sagemaker_endpoint(...) for a SageMaker endpoint).
    `tokenizer_path` (a model folder) sizes the prompts in real tokens when the served
    model's own folder is unknown (a URL or endpoint); otherwise 4 characters make a token."""
    from ..catalog import get_instance

    if recipe is None and url is None and server is None and endpoint is None:
        raise BenchError("give a recipe (e.g. recipes/baseline.yaml) or an endpoint URL to benchmark")
    if isinstance(recipe, (str, Path)):
        recipe = load_recipe(recipe)
    get_instance(instance)  # fail before any server starts
    if not 0 <= discount < 1:
        raise BenchError(f"discount must be in [0, 1) (got {discount})")
    spec = SweepSpec(concurrency=list(concurrency), num_prompts=num_prompts, warmup=warmup,
                     request_rate=request_rate, seed=seed)
    name = name or (recipe.name if recipe else "endpoint")
    save_path = _result_path(results_dir or defaults.results_dir(), name)
    runner = run_sweep_in_thread if _loop_running() else run_sweep

    def run(base_url: str, served: str, model_path: str | None, server_info: dict | None,
            alive: Callable[[], bool] | None) -> BenchResult:
        workload = build_workload(max(spec.requests_at(c) for c in spec.concurrency), max_tokens,
                                  input_scale, seed, tokenizer_path=model_path or tokenizer_path)
        ep = endpoint or Endpoint(base_url, served, api=api, ignore_eos=ignore_eos, extra_body=dict(extra_body or {}))
        result = BenchResult(name=name, recipe=recipe.to_dict() if recipe else None, endpoint=ep.to_dict(),
                             workload=workload.summary(), server=server_info, instance=instance, discount=discount)
        if recipe is not None and recipe.engine.weights == "dummy":
            from ..store.dummy_model import DUMMY_NOTE

            result.notes.append(DUMMY_NOTE)

        def level_done(level: LevelResult) -> None:
            note = speculation_warning(recipe, level)
            if note:
                result.notes.append(note)
            if on_level:
                on_level(level)

        return runner(ep, workload, spec, result, save_path=str(save_path), progress=progress,
                      server_alive=alive, on_level=level_done, stop=stop, on_request=on_request)

    if endpoint is not None:
        return run(endpoint.base_url, endpoint.model, None, None, None)
    if url is not None:
        return run(url, model or _served_model(url), None, None, None)
    if server is not None:
        return run(server.base_url, server.command.served_model_name, _model_arg(server.command.argv),
                   server.command.to_dict(), server.alive)
    from ..engine import server_for_recipe

    srv = server_for_recipe(recipe, start_timeout_s=defaults.DEFAULT_START_TIMEOUT_S)
    with srv.start():
        info = {**srv.command.to_dict(), "pid": srv.pid, "ready_after_s": srv.ready_after_s, "log": str(srv.log_path)}
        return run(srv.base_url, srv.command.served_model_name, _model_arg(srv.command.argv), info, srv.alive)


def speculation_warning(recipe: Recipe | None, level: LevelResult) -> str | None:
    """A note when a recipe asks for speculation but the server proposed no draft tokens:
    speculation staged but never active must not pass for a measured speed-up."""
    if recipe is None or recipe.speculative is None:
        return None
    stats = level.speculative
    if stats is None:
        return (f"WARNING: speculative decoding ({recipe.speculative.method}) was configured but the server "
                f"exported no vllm:spec_decode_* metrics at concurrency {level.concurrency}: it is not verified")
    if not stats.get("active"):
        return (f"WARNING: speculative decoding ({recipe.speculative.method}) was configured but proposed no "
                f"draft tokens at concurrency {level.concurrency}: it is NOT active")
    return None


def run_comparison(recipe: Recipe | str, baseline: Recipe | str, **kwargs) -> Comparison:
    """Benchmark the baseline, then the recipe, with the same workload and levels."""
    base = run_benchmark(baseline, **kwargs)
    rec = run_benchmark(recipe, **kwargs)
    return Comparison.of(rec, base)


def _model_arg(argv: list[str]) -> str | None:
    return argv[argv.index("--model") + 1] if "--model" in argv else None


def _loop_running() -> bool:
    import asyncio

    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False
