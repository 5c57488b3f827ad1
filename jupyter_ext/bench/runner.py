"""Measure one benchmark target: find or start its server, run the sweep, price and save.

`run_target` is the single place a target becomes a running sweep; the baseline-then-recipe
order lives in `background.BackgroundBenchmark`, above it.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable

from .. import defaults
from ..errors import AdapterNotServedError, BenchError, EndpointRejectedError, EndpointUnreachableError
from ..recipes import Recipe
from ..techniques.speculative import trained_elsewhere_note
from .client import Endpoint
from .failures import server_message
from .integrity import integrity_warnings
from .metrics import RequestSample
from .result import BenchResult, LevelResult
from .spec import BenchSpec, Target
from .sweep import run_sweep, run_sweep_in_thread
from .workload import assign_adapters


def _model_ids(url: str) -> list[str]:
    """The ids a server's /v1/models lists. Nothing listening is an EndpointUnreachableError;
    an HTTP error (urllib's HTTPError) or a reply that is no model list (ValueError, KeyError,
    IndexError, TypeError) is the caller's to judge."""
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return [m["id"] for m in json.load(r)["data"]]
    except urllib.error.HTTPError:
        raise
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        where = urllib.parse.urlsplit(url)
        why = "connection refused" if isinstance(reason, ConnectionRefusedError) else str(reason)
        raise EndpointUnreachableError(f"cannot connect to {where.hostname}:{where.port or 80} ({why}) for {url}: "
                                       f"is the server running, and at this address?") from None


def served_model(base_url: str, model: str | None = None) -> str:
    """The model to ask `base_url` for, checked against its /v1/models before any request:
    the first one listed when `model` is None. Nothing listening is an
    EndpointUnreachableError; a model the server does not list, an EndpointRejectedError
    naming the ones it does. A server without /v1/models is taken at its word for `model`."""
    url = base_url.rstrip("/") + "/v1/models"
    try:
        ids = _model_ids(url)
    except urllib.error.HTTPError as e:
        if model is not None:
            return model
        raise EndpointRejectedError(f"{url} answered HTTP {e.code}: {server_message(e.read().decode('utf-8', 'replace'))}; "
                                    f"pass the served model name with --model") from None
    except (ValueError, KeyError, IndexError, TypeError):
        if model is not None:
            return model
        raise BenchError(f"{url} did not answer with a model list; pass the model name explicitly (--model)") from None
    if not ids and model is None:
        raise BenchError(f"{url} lists no models; pass the model name explicitly (--model)")
    if model is None:
        return ids[0]
    if model not in ids:
        raise EndpointRejectedError(f"model {model!r} is not served at {base_url} (its /v1/models lists "
                                    f"{', '.join(ids) or 'none'}); pass one of them with --model, or leave --model out")
    return model


def check_adapters_served(base_url: str, names: list[str]) -> None:
    """Before a benchmark with --adapters sends anything: every adapter it names must be in
    the server's /v1/models (vLLM lists each --lora-modules name there), or an
    AdapterNotServedError lists what the server serves. A server without a model list is
    taken at its word, as for --model."""
    url = base_url.rstrip("/") + "/v1/models"
    try:
        ids = _model_ids(url)
    except (urllib.error.HTTPError, ValueError, KeyError, IndexError, TypeError):
        return
    missing = [n for n in names if n not in ids]
    if missing:
        raise AdapterNotServedError(
            f"--adapters sends requests to LoRA adapter{'s' if len(missing) > 1 else ''} {', '.join(missing)}, but "
            f"{base_url} does not serve {'them' if len(missing) > 1 else 'it'} (its /v1/models lists "
            f"{', '.join(ids) or 'none'}); serve the recipe's adapters (deploy or serve the recipe, which passes "
            f"--enable-lora --lora-modules), or lower --adapters to the ones it serves")


def _result_path(results_dir: str | Path, name: str) -> Path:
    return Path(results_dir) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"


def run_target(spec: BenchSpec, target: Target, *, server=None, progress: bool = True,
               stop: threading.Event | None = None, on_level: Callable[[LevelResult], None] | None = None,
               on_request: Callable[[RequestSample], None] | None = None) -> BenchResult:
    """Measure `target` with the spec's load, workload and pricing; the result is saved after
    every level (so an interrupt or a failure keeps the finished ones)."""
    recipe, load, wl, price = target.recipe, spec.load, spec.workload, spec.pricing
    sweep = load.sweep(seed=wl.seed, rows=wl.rows)
    name = spec.name or target.name
    save_path = _result_path(spec.results_dir or defaults.results_dir(), name)
    runner = run_sweep_in_thread if _loop_running() else run_sweep
    client = target.client()

    def run(base_url: str, served: str, model_path: str | None, server_info: dict | None,
            alive: Callable[[], bool] | None) -> BenchResult:
        # every level, repeat and warm-up gets prompts of its own (prefix-cache hygiene); a
        # dataset with fewer rows than that cycles through them
        if wl.adapters:
            check_adapters_served(base_url, wl.adapter_names(recipe))
        workload = wl.build(sweep.prompts_needed(), tokenizer_path=model_path or target.tokenizer_path)
        if wl.adapters:  # each request's model field names its adapter (a conversation keeps one)
            workload = assign_adapters(workload, wl.adapter_names(recipe), wl.adapter_skew, wl.seed)
        ep = client or Endpoint(base_url, served, api=target.api, ignore_eos=target.ignore_eos,
                                extra_body=dict(target.extra_body or {}))
        result = BenchResult(name=name, recipe=recipe.to_dict() if recipe else None, endpoint=ep.to_dict(),
                             workload={**workload.summary(), "prompts_per_level": {str(c): sweep.requests_at(c) for c in
                                                                                     sweep.concurrency},
                                       "repeats": sweep.repeats, "fresh_prompts_per_level": True},
                             server=server_info, instance=price.instance,
                             discount=price.discount, slo=str(spec.slo) if spec.slo else None)
        note = trained_elsewhere_note(recipe, wl.dataset)
        if note:
            result.notes.append(note)
        if recipe is not None and recipe.engine.weights == "dummy":
            from ..store.dummy_model import DUMMY_NOTE

            result.notes.append(DUMMY_NOTE)

        def level_done(level: LevelResult) -> None:
            for note in [speculation_warning(recipe, level), *integrity_warnings(level), session_warning(level)]:
                if note:
                    result.notes.append(note)
            if on_level:
                on_level(level)

        return runner(ep, workload, sweep, result, save_path=str(save_path), progress=progress,
                      server_alive=alive, on_level=level_done, stop=stop, on_request=on_request)

    if client is not None:
        return run(client.base_url, client.model, None, None, None)
    if target.url is not None and server is None:
        return run(target.url, served_model(target.url, target.model), None, None, None)
    if server is None:
        from ..engine import registry

        server = registry.find(recipe)  # a server kept by `serve` for the same recipe
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


def session_warning(level: LevelResult) -> str | None:
    """A note when a level's sticky sessions did not all open or close (a session left open
    holds its instance's KV cache until it expires)."""
    s = level.sessions
    if not s or not (s.get("open_failed") or s.get("close_failed")):
        return None
    return (f"WARNING: at {level.label}, {s['open_failed']} session(s) failed to open and {s['close_failed']} to "
            f"close (of {s['opened']} opened); see the log for the endpoint's replies")


def _model_arg(argv: list[str]) -> str | None:
    return argv[argv.index("--model") + 1] if "--model" in argv else None


def _loop_running() -> bool:
    import asyncio

    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False
