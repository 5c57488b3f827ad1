"""Benchmarks: built-in workloads or a user's dataset, a streaming client, metrics, sweeps and results.

A benchmark is described by the typed values of `spec.py` (Target, Load, Workload, Pricing,
gathered in a BenchSpec). `run_target` measures one target: it starts a local vLLM server
for a recipe (or reuses one, or uses a URL or endpoint you give), runs the concurrency sweep
with a progress bar, prices every level, saves the result after each level and returns it.
Baseline-then-recipe lives in one place, `BackgroundBenchmark` (`run_spec` runs it in this
thread). `run_benchmark(recipe, **options)` is the keyword form for scripts.
(`Workload` here is the built prompt set; the spec value is `WorkloadSpec`.)
"""

from __future__ import annotations

import threading
from typing import Callable

from ..recipes import Recipe
from .background import BackgroundBenchmark
from .client import Endpoint
from .compare import Comparison
from .metrics import LevelMetrics, Percentiles, RequestSample, compute_metrics
from .result import BenchResult, LevelResult
from .spec import BenchSpec, Load, Pricing, Target
from .spec import Workload as WorkloadSpec
from .runner import run_target, speculation_warning
from .sweep import SweepSpec
from .datasets import Dataset, load_dataset
from .workload import Workload, build_open_workload, build_workload, open_workload_messages

__all__ = ["run_benchmark", "run_comparison", "run_spec", "run_target", "BackgroundBenchmark", "BenchSpec", "Load",
           "Pricing", "Target", "WorkloadSpec", "speculation_warning", "BenchResult", "LevelResult", "Comparison", "Endpoint",
           "SweepSpec", "Workload", "build_workload", "build_open_workload", "open_workload_messages",
           "Dataset", "load_dataset", "compute_metrics", "LevelMetrics", "Percentiles",
           "RequestSample"]


def run_benchmark(recipe: Recipe | str | None = None, *, server=None, progress: bool = True,
                  stop: threading.Event | None = None,
                  on_level: Callable[[LevelResult], None] | None = None,
                  on_request: Callable[[RequestSample], None] | None = None, **options) -> BenchResult:
    """Benchmark one target: a recipe on a local vLLM server (a running one from `serve` is
    reused, else one is started and always stopped), an already running `server`
    (engine.LocalServer), any OpenAI-compatible `url`, a `sagemaker_endpoint`, or a client
    `endpoint`. `options` are the flat keywords of `BenchSpec.of` (concurrency, num_prompts,
    max_tokens, input_scale, workload ("copy" or "open"), dataset (a file's path), dataset_sample,
    dataset_column, request_rate (one rate or a list), arrival, sweep_rates, warmup, cooldown,
    ramp_up_s, max_failed_share, repeats, slo, workload_shape, turns, shared_prefix, instance, discount,
    results_dir, name, api, seed, tokenizer_path, ignore_eos, extra_body, sessions, ...); they are
    checked (a dataset file read and every row checked) before anything starts. An endpoint
    that cannot work raises its named error at the first request; a level over
    `max_failed_share` is marked failed in the result."""
    if server is not None and options.get("url") is None and recipe is None:
        options["url"] = server.base_url
    spec = BenchSpec.of(recipe, **options)
    if spec.baseline is not None:
        raise TypeError("run_benchmark measures one target; for a baseline use run_comparison or run_spec")
    return run_target(spec, spec.target, server=server, progress=progress, stop=stop, on_level=on_level,
                      on_request=on_request)


def run_spec(spec: BenchSpec, *, progress: bool = True) -> BenchResult | Comparison:
    """Run a spec here, in this thread: the baseline first when it has one, then the target
    (the same code `BackgroundBenchmark` runs on its thread). Returns a BenchResult, or a
    Comparison with a baseline; re-raises a failure or an interrupt after the finished
    levels were saved."""
    return BackgroundBenchmark(spec, progress=progress).run_here()


def run_comparison(recipe: Recipe | str, baseline: Recipe | str, **options) -> Comparison:
    """Benchmark the baseline, then the recipe, with the same workload and levels."""
    return run_spec(BenchSpec.of(recipe, baseline=baseline, **options))


