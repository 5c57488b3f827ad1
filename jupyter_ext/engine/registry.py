"""The one registry of the vLLM servers this process started.

Every `LocalServer` is entered here when it starts and removed when it stops or is
detached (a deployed local endpoint outlives this process; its state file under the cache
root, kept by `deploy.local`, then tracks it). At interpreter exit every server still
registered is stopped by its pid. A server started by `serve` is registered as *kept*, with
its recipe: `find(recipe)` returns it, so a benchmark of the same recipe reuses it instead of
starting another; `stop()` ends kept servers, by pid. Faces hold no server tables of their own.
"""

from __future__ import annotations

import atexit
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import EndpointNotFoundError

if TYPE_CHECKING:
    from ..recipes import Recipe
    from .server import LocalServer


@dataclass
class Entry:
    server: "LocalServer"
    recipe: "Recipe | None" = None
    kept: bool = False  # started by `serve`: reusable, and listed by `kept()`


_LOCK = threading.Lock()
_ENTRIES: dict[int, Entry] = {}


def register(server: "LocalServer", recipe: "Recipe | None" = None, kept: bool = False) -> None:
    with _LOCK:
        _ENTRIES[server.pid] = Entry(server, recipe, kept)


def keep(server: "LocalServer", recipe: "Recipe") -> None:
    """Mark a started server as kept for `recipe` (what `serve` does)."""
    register(server, recipe, kept=True)


def forget(pid: int | None) -> None:
    with _LOCK:
        _ENTRIES.pop(pid, None)


def running() -> list["LocalServer"]:
    with _LOCK:
        return [e.server for e in _ENTRIES.values()]


def kept() -> list[Entry]:
    """Kept servers that are still alive, oldest first."""
    with _LOCK:
        entries = [e for e in _ENTRIES.values() if e.kept]
    return [e for e in entries if e.server.alive()]


def find(recipe: "Recipe | None") -> "LocalServer | None":
    """A kept, alive server for the same recipe (compared by content), if any."""
    if recipe is None:
        return None
    want = recipe.to_dict()
    for e in kept():
        if e.recipe is not None and e.recipe.to_dict() == want:
            return e.server
    return None


def stop(pids: list[int] | None = None) -> list[Any]:
    """Stop kept servers by pid (all of them when `pids` is None); returns those stopped.
    An unknown pid raises EndpointNotFoundError naming the running ones, before any stops."""
    with _LOCK:
        table = {pid: e for pid, e in _ENTRIES.items() if e.kept}
    if pids is not None:
        unknown = [p for p in pids if p not in table]
        if unknown:
            known = ", ".join(str(p) for p in table) or "none"
            raise EndpointNotFoundError(f"no server with pid {unknown[0]} was started here (running: {known})")
    stopped = []
    for pid in (table if pids is None else pids):
        table[pid].server.stop()
        forget(pid)
        stopped.append(table[pid].server)
    return stopped


@atexit.register
def _stop_all() -> None:
    for server in running():
        server.stop(grace_s=5)
