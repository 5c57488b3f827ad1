"""Start, health-check and stop one local vLLM OpenAI server for a recipe.

The server binds 127.0.0.1 on a free port unless asked otherwise, logs to a file, and is
waited on through `GET /health` with a deadline. It runs in its own process group so that
stopping it (by its pid, never by name) also ends the engine's worker processes. A server
is always stopped: on leaving the context manager, on KeyboardInterrupt, and at interpreter
exit for any server still running (`registry` tracks them).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import warnings
from collections import deque
from pathlib import Path
from typing import Callable

from .. import defaults
from ..base.host import bf16_is_emulated_here, engine_platform
from ..errors import EngineStartError, SlowOnThisHostWarning
from ..recipes import Recipe
from ..store.model_files import cache_root
from . import registry
from .args import ServerCommand, build_server_command

logger = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        with open(path, "r", errors="replace") as f:
            return "".join(deque(f, maxlen=lines))
    except OSError:
        return "(no log)"


# vLLM's API server ends a failed start with its own "Engine core initialization failed. See
# root cause above", and the cause (the engine process's exception) is often more than 30 lines
# higher, above the API server's traceback. These lines are the exceptions, minus that wrapper.
_EXCEPTION_LINE = re.compile(r"^(?:\([^)]*\)\s*)?((?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception)): (.+)$")
_WRAPPERS = ("Engine core initialization failed", "Engine process failed to start")


def log_root_cause(path: Path) -> str | None:
    """The last exception line in a server log that is not vLLM's start-failed wrapper, as
    'TypeName: message' (the engine process's prefix such as '(EngineCore pid=1)' removed)."""
    try:
        with open(path, "r", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        m = _EXCEPTION_LINE.match(line.strip())
        if m and not any(w in m.group(2) for w in _WRAPPERS):
            return f"{m.group(1)}: {m.group(2)}"
    return None


def _start_failure(what: str, log_path: Path) -> EngineStartError:
    cause = log_root_cause(log_path)
    cause_line = f"Cause, from the log: {cause}\n" if cause else ""
    return EngineStartError(f"{what}\n{cause_line}Last lines of {log_path}:\n{log_tail(log_path)}")


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


class LocalServer:
    """One vLLM server process. Use as a context manager, or call start()/stop().
    `health_path` is polled for readiness (vLLM's /health; another OpenAI-compatible server
    may only have /v1/models)."""

    def __init__(self, command: ServerCommand, host: str, port: int, log_path: Path,
                 start_timeout_s: float = defaults.DEFAULT_START_TIMEOUT_S, health_path: str = "/health"):
        self.command = command
        self.health_path = health_path
        self.host, self.port = host, port
        self.log_path = log_path
        self.start_timeout_s = start_timeout_s
        self.process: subprocess.Popen | None = None
        self.started_at: float | None = None
        self.ready_after_s: float | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, on_wait: Callable[[float], None] | None = None) -> "LocalServer":
        """Launch the server and block until /health answers, or raise EngineStartError."""
        _exit_cleanly_on_sigterm()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.command.env}
        log = open(self.log_path, "ab")
        try:
            self.process = subprocess.Popen(self.command.argv, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        finally:
            log.close()
        self.started_at = time.monotonic()
        registry.register(self)
        logger.info("started vLLM server pid %d on %s (log %s)", self.process.pid, self.base_url, self.log_path)
        try:
            self._wait_healthy(on_wait)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self, on_wait: Callable[[float], None] | None) -> None:
        deadline = self.started_at + self.start_timeout_s
        while True:
            if self.process.poll() is not None:
                raise _start_failure(
                    f"the server exited with code {self.process.returncode} before it was ready.", self.log_path)
            if http_ok(f"{self.base_url}{self.health_path}"):
                self.ready_after_s = time.monotonic() - self.started_at
                logger.info("vLLM server pid %d ready after %.1f s", self.process.pid, self.ready_after_s)
                return
            if time.monotonic() > deadline:
                raise _start_failure(
                    f"the server was not healthy after {self.start_timeout_s:.0f} s (raise "
                    f"start_timeout_s if the host is slow).", self.log_path)
            if on_wait:
                on_wait(time.monotonic() - self.started_at)
            time.sleep(0.5)

    def stop(self, grace_s: float = 20.0) -> None:
        """Stop the server's process group by its pid: SIGTERM, then SIGKILL after `grace_s`."""
        proc = self.process
        if proc is None:
            return
        registry.forget(proc.pid)
        if proc.poll() is None:
            logger.info("stopping vLLM server pid %d (SIGTERM to its process group)", proc.pid)
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                logger.warning("vLLM server pid %d still running %.0f s after SIGTERM; sending SIGKILL",
                            proc.pid, grace_s)
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        # Workers left behind by a crashed parent are in the same group.
        _signal_group(proc.pid, signal.SIGKILL)

    def detach(self) -> None:
        """Leave the server running after this process exits (a deployed local endpoint)."""
        if self.process is not None:
            registry.forget(self.process.pid)

    def __enter__(self) -> "LocalServer":
        if self.process is None:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.alive() else "stopped"
        return f"LocalServer({self.base_url}, pid={self.pid}, {state})"


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # the group id is the server's own pid (start_new_session)
    except (ProcessLookupError, PermissionError):
        pass


def _exit_cleanly_on_sigterm() -> None:
    """Make SIGTERM raise SystemExit in the main thread, so `with` blocks and atexit stop our
    servers. Python's default for SIGTERM ends the process at once and would orphan them.
    A handler someone else installed (a notebook kernel's, say) is left alone."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _raise_system_exit)


def _raise_system_exit(signum: int, _frame) -> None:
    raise SystemExit(128 + signum)


def run_dir(name: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return cache_root() / "runs" / f"{name}-{stamp}-{os.getpid()}"


def server_for_recipe(recipe: Recipe, host: str = "127.0.0.1", port: int | None = None,
                      start_timeout_s: float = defaults.DEFAULT_START_TIMEOUT_S, model_path: str | None = None) -> LocalServer:
    """A LocalServer (not started yet) for a recipe; prepares its model folder first."""
    from ..techniques import prepare_artifacts

    artifacts = prepare_artifacts(recipe, model_path=model_path)
    port = port or free_port(host)
    platform = engine_platform()
    if bf16_is_emulated_here(recipe, platform):
        warnings.warn(f"recipe '{recipe.name}' runs in bf16 (engine.dtype: {recipe.engine.dtype}) but this CPU has "
                      "no AVX512_BF16 or AMX, so vLLM emulates bf16 and runs slower than fp32: set "
                      "engine.dtype: float32 for this host", SlowOnThisHostWarning, stacklevel=2)
    cmd = build_server_command(recipe, artifacts.model_path, host, port, platform=platform, artifacts=artifacts)
    log = run_dir(recipe.name) / "server.log"
    return LocalServer(cmd, host, port, log, start_timeout_s=start_timeout_s)
