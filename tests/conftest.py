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
