"""Local endpoints: a vLLM server from a recipe that keeps running after this process ends.

The server answers the SageMaker hosting contract (`GET /ping`, `POST /invocations`, with
streaming) and the OpenAI API, so what runs here is what a SageMaker endpoint runs. Each
endpoint has a small state file (name, pid, port, recipe, log) under the cache root, so it
survives a kernel restart: `list_endpoints` finds it again and tells whether it is still
alive, and `undeploy` stops it by its pid (after checking the pid is still that server).
`serve` is the same deployment kept attached to this process (the engine's registry, not a
state file, tracks it), which is what a notebook's `%optimize serve` and the CLI's use.
"""

from __future__ import annotations

import html
import json
import logging
import os
import signal
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import psutil

from .. import defaults
from ..store.model_files import cache_root
from ..bench.sse import iter_sse
from ..engine import registry
from ..engine.server import LocalServer, http_ok, log_tail, server_for_recipe
from ..errors import DeployError, EndpointNotFoundError
from ..base.files import atomic_write_text
from ..recipes import Recipe, load_recipe


log = logging.getLogger(__name__)


def state_dir() -> Path:
    return cache_root() / "endpoints"


@dataclass
class LocalEndpoint:
    """A deployed local endpoint, as its state file records it."""

    name: str
    pid: int
    host: str
    port: int
    recipe: dict
    log: str
    started: str
    status: str = "running"  # running | dead | starting

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def refresh(self) -> "LocalEndpoint":
        """Re-check the process and /ping: a server that died is reported, not hidden."""
        if not _is_our_server(self.pid, self.port):
            self.status = "dead"
        else:
            self.status = "running" if http_ok(self.base_url + "/ping") else "starting"
        return self

    def to_dict(self) -> dict:
        return {**asdict(self), "base_url": self.base_url}

    def __str__(self) -> str:
        s = f"{self.name}: {self.status} at {self.base_url} (pid {self.pid}, recipe {self.recipe.get('name')})"
        if self.status == "dead":
            s += f"\nthe server is gone; last lines of {self.log}:\n{log_tail(Path(self.log), 10)}"
        return s

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(str(self))}</pre>"


class EndpointTable(list):
    """Local endpoints with their live status."""

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self) if self else "(no local endpoints)"

    def _repr_html_(self) -> str:
        if not self:
            return "<p>(no local endpoints)</p>"
        rows = "".join(f"<tr><td>{html.escape(e.name)}</td><td>{e.status}</td><td>{e.base_url}</td><td>{e.pid}</td>"
                       f"<td>{html.escape(str(e.recipe.get('name')))}</td></tr>" for e in self)
        return ("<table><thead><tr><th>name</th><th>status</th><th>url</th><th>pid</th><th>recipe</th></tr></thead>"
                f"<tbody>{rows}</tbody></table>")


def _is_our_server(pid: int, port: int) -> bool:
    """True when `pid` is alive and is still a vLLM server on `port` (pids get reused)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:  # exited, not yet reaped by its parent
            return False
        cmd = proc.cmdline()
    except psutil.Error:  # gone, or not ours to read
        return False
    return "vllm.entrypoints.openai.api_server" in cmd and str(port) in cmd


def _state_path(name: str) -> Path:
    return state_dir() / f"{name}.json"


def deploy(recipe: Recipe | str, name: str | None = None, host: str = "127.0.0.1", port: int | None = None,
           start_timeout_s: float = defaults.DEFAULT_START_TIMEOUT_S) -> LocalEndpoint:
    """Start a server for the recipe, wait until it is healthy, and leave it running."""
    recipe = load_recipe(recipe) if isinstance(recipe, (str, Path)) else recipe
    name = name or recipe.name
    existing = _state_path(name)
    if existing.exists():
        ep = _load(existing).refresh()
        if ep.status != "dead":
            raise DeployError(f"a local endpoint named {name!r} is already {ep.status} at {ep.base_url}; "
                              f"undeploy it first (`jupyter-optimize undeploy {name}`) or pick another --name")
    srv = server_for_recipe(recipe, host=host, port=port, start_timeout_s=start_timeout_s)
    srv.start()
    srv.detach()  # from here on the state file, not this process, owns the server
    ep = LocalEndpoint(name=name, pid=srv.pid, host=host, port=srv.port, recipe=recipe.to_dict(),
                       log=str(srv.log_path), started=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    atomic_write_text(_state_path(name), json.dumps(ep.to_dict(), indent=1))
    log.info("local endpoint %s deployed: pid %d at %s", name, ep.pid, ep.base_url)
    return ep


def _load(path: Path) -> LocalEndpoint:
    d = json.loads(path.read_text())
    d.pop("base_url", None)
    return LocalEndpoint(**d)


def serve(recipe: Recipe | str, host: str = "127.0.0.1", port: int | None = None,
          start_timeout_s: float = defaults.DEFAULT_START_TIMEOUT_S,
          on_start: "Callable[[Recipe], None] | None" = None) -> "LocalServer":
    """A local deployment kept attached to this process: the same server `deploy` starts, but
    it stays in the engine's registry instead of a state file, so a benchmark of the same
    recipe reuses it, `stop` ends it by pid, and it ends with this process. A kept server for
    the same recipe is returned as it is."""
    recipe = load_recipe(recipe) if isinstance(recipe, (str, Path)) else recipe
    running = registry.find(recipe)
    if running is not None:
        return running
    if on_start is not None:
        on_start(recipe)  # a face says what it waits for
    from .. import engine  # looked up now, so a test's stand-in engine is used

    srv = engine.server_for_recipe(recipe, host=host, port=port, start_timeout_s=start_timeout_s)
    srv.start()  # blocks until /health answers; an interrupt stops the server
    registry.keep(srv, recipe)
    return srv


def _attached() -> list[LocalEndpoint]:
    return [LocalEndpoint(name=e.recipe.name, pid=e.server.pid, host=e.server.host, port=e.server.port,
                          recipe=e.recipe.to_dict(), log=str(e.server.log_path), started="",
                          status="running (attached)") for e in registry.kept()]


def list_endpoints() -> EndpointTable:
    """Every local endpoint with a state file, re-checked now, then the servers `serve` keeps
    attached to this process."""
    return EndpointTable([*(_load(p).refresh() for p in sorted(state_dir().glob("*.json"))), *_attached()])


def get_endpoint(name: str) -> LocalEndpoint:
    p = _state_path(name)
    if not p.exists():
        known = ", ".join(e.name for e in list_endpoints()) or "none"
        raise EndpointNotFoundError(f"no local endpoint named {name!r} (known: {known})")
    return _load(p).refresh()


def undeploy(name: str, grace_s: float = 20.0) -> LocalEndpoint:
    """Stop the endpoint's server by its pid (whole process group) and forget it."""
    ep = get_endpoint(name)
    if ep.status != "dead":
        os.killpg(ep.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while _is_our_server(ep.pid, ep.port) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _is_our_server(ep.pid, ep.port):
            log.warning("local endpoint %s (pid %d) still running %.0f s after SIGTERM; sending SIGKILL",
                        name, ep.pid, grace_s)
            os.killpg(ep.pid, signal.SIGKILL)
    _state_path(name).unlink(missing_ok=True)
    log.info("local endpoint %s undeployed (it was %s)", name, ep.status)
    ep.status = "stopped"
    return ep


# SageMaker's LoRA header (model_hosting_container_standards), which vLLM's /invocations reads.
ADAPTER_HEADER = "X-Amzn-SageMaker-Adapter-Identifier"


def invoke(name: str, prompt: str, max_tokens: int = 64, stream: bool = False, adapter: str | None = None) -> str:
    """Send one chat request through the SageMaker contract (`POST /invocations`); with
    `adapter`, that LoRA adapter answers: vLLM's /invocations takes it from SageMaker's
    X-Amzn-SageMaker-Adapter-Identifier header (it overrides the body's model field)."""
    ep = get_endpoint(name)
    if ep.status != "running":
        raise DeployError(f"local endpoint {name!r} is {ep.status}; see `jupyter-optimize endpoints`")
    body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens, "stream": stream,
            "temperature": 0}
    headers = {"Content-Type": "application/json", **({ADAPTER_HEADER: adapter} if adapter else {})}
    req = urllib.request.Request(ep.base_url + "/invocations", data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            raw = r.read().decode()
    except urllib.error.HTTPError as e:
        raise DeployError(f"/invocations answered HTTP {e.code}: {e.read().decode()[:300]}") from None
    if not stream:
        return json.loads(raw)["choices"][0]["message"]["content"]
    parts = []
    for event in iter_sse([raw.encode()]):
        choices = event.get("choices") or [{}]
        parts.append(choices[0].get("delta", {}).get("content") or "")
    return "".join(parts)
