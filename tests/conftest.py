"""Shared fixtures: one real vLLM server per test session (eager mode, the default model),
and fake streaming servers with a known schedule. Servers bind 127.0.0.1 on free ports and
are stopped by their pid; readiness is polled with a deadline, never slept on."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("JUPYTER_OPTIMIZE_CACHE", str(ROOT / ".cache" / "jupyter-optimize"))
os.environ.setdefault("MPLBACKEND", "Agg")


def wait_until(predicate, timeout_s: float, what: str, interval_s: float = 0.1):
    """Poll `predicate` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


class ScheduleServer:
    """A `jupyter_ext.bench.schedule_server` subprocess."""

    def __init__(self, **opts):
        from jupyter_ext.engine import free_port
        from jupyter_ext.engine.server import http_ok

        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        args = [sys.executable, "-m", "jupyter_ext.bench.schedule_server", "--port", str(self.port)]
        for k, v in opts.items():
            args += [f"--{k.replace('_', '-')}", str(v)]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_until(lambda: http_ok(self.base_url + "/health") or self.proc.poll() is not None, 30, "schedule server")
        assert self.proc.poll() is None, self.proc.stderr.read().decode()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def schedule_server_factory():
    servers = []

    def make(**opts) -> ScheduleServer:
        s = ScheduleServer(**opts)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


@pytest.fixture(scope="module")
def vllm_server():
    """One real vLLM server (eager, default model) shared by the tests of a module. Module
    scope: it is stopped before later modules start servers of their own, so two never
    compete for this machine's two cores."""
    from jupyter_ext.engine import server_for_recipe
    from jupyter_ext.recipes import load_recipe

    recipe = load_recipe(ROOT / "recipes" / "baseline.yaml")
    recipe.engine.max_model_len = 1024
    srv = server_for_recipe(recipe, start_timeout_s=600)
    srv.start()
    yield srv
    srv.stop()


def greedy_texts(srv, prompts: list[str], max_tokens: int) -> list[str]:
    """Each prompt's greedy completion (temperature 0) from a started vLLM server."""
    import json
    import urllib.request

    texts = []
    for p in prompts:
        body = json.dumps({"model": srv.command.served_model_name, "prompt": p, "max_tokens": max_tokens,
                           "temperature": 0}).encode()
        req = urllib.request.Request(srv.base_url + "/v1/completions", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=300) as resp:
            texts.append(json.load(resp)["choices"][0]["text"])
    return texts


def greedy_completions(recipe_data: dict, prompts: list[str], max_tokens: int) -> tuple[list[str], dict | None]:
    """Start the recipe's real vLLM server, get each prompt's greedy completion (temperature 0)
    and the speculative counters' summary (None without speculation); the server is stopped."""
    from jupyter_ext.bench.spec_metrics import scrape_spec_counters
    from jupyter_ext.engine import server_for_recipe
    from jupyter_ext.recipes import recipe_from_dict

    srv = server_for_recipe(recipe_from_dict(recipe_data), start_timeout_s=600)
    with srv.start():
        texts = greedy_texts(srv, prompts, max_tokens)
        counters = scrape_spec_counters(srv.base_url)
    return texts, counters.summary() if counters else None


@pytest.fixture
def ip(tmp_path, monkeypatch):
    """An IPython shell with the extension loaded, cwd = tmp_path (test_magics has its own,
    which also points results at tmp_path and resets settings)."""
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.chdir(tmp_path)
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "jupyter_ext")
    return shell
