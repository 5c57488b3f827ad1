"""This machine's memory bandwidth, measured once and cached: the roofline figure of `local`.

The catalog knows each accelerator's bandwidth but not this host's, so a CPU bound had to
assume a generous constant and pruned little. The probe copies a large array (far larger
than any cache) with one thread per usable core, best of a few tries, and counts the bytes
read plus the bytes written:

    bandwidth GB/s = 2 * array bytes / best copy time / 1e9

The answer is cached per machine (host name, CPU model, usable cores) in a JSON file the
caller names (the toolkit's cache folder), so the probe runs once per machine, not per
call. JUPYTER_OPTIMIZE_LOCAL_BANDWIDTH_GBS overrides it (a figure from a quiet run).
"""

from __future__ import annotations

import json
import os
import platform
import threading
import time
from pathlib import Path
from typing import Callable

from ..errors import PlanError
from .files import atomic_write_text
from .host import cpu_model

BANDWIDTH_ENV = "JUPYTER_OPTIMIZE_LOCAL_BANDWIDTH_GBS"
PROBE_MIB = 256  # per array; two arrays (source, destination)
PROBE_TRIES = 4


def machine_key() -> str:
    """What identifies the machine a measured figure belongs to."""
    return f"{platform.node()}|{cpu_model()}|{len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()}"


def copy_bandwidth_gbs(mib: int = PROBE_MIB, tries: int = PROBE_TRIES, threads: int | None = None) -> float:
    """Measured copy bandwidth (read + write bytes per second, in GB/s): the best of `tries`
    copies of a `mib` MiB float64 array, split over `threads` threads (default: the usable
    cores; numpy releases the GIL while it copies)."""
    import numpy as np

    threads = threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    src = np.ones(mib * 2**20 // 8)
    dst = np.empty_like(src)
    parts = np.array_split(np.arange(src.size), threads)
    bounds = [(p[0], p[-1] + 1) for p in parts if p.size]

    def copy(lo: int, hi: int) -> None:
        np.copyto(dst[lo:hi], src[lo:hi])

    np.copyto(dst, src)  # touch every page once, so the first try times no page faults
    best = float("inf")
    for _ in range(tries):
        workers = [threading.Thread(target=copy, args=b) for b in bounds]
        t0 = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        best = min(best, time.perf_counter() - t0)
    return 2 * src.nbytes / best / 1e9


def memory_bandwidth_gbs(cache_file: Path, probe: Callable[[], float] | None = None) -> dict:
    """This machine's bandwidth: {"gbs", "source", "machine"}. From the override variable,
    else this machine's entry of `cache_file`, else measured by `probe` and cached there."""
    key = machine_key()
    if os.environ.get(BANDWIDTH_ENV):
        text = os.environ[BANDWIDTH_ENV]
        try:
            gbs = float(text)
        except ValueError:
            gbs = -1.0
        if not gbs > 0:
            raise PlanError(f"{BANDWIDTH_ENV} must be this machine's memory bandwidth in GB/s, a number > 0 "
                            f"(got {text!r}); unset it to have it measured")
        return {"gbs": gbs, "source": BANDWIDTH_ENV, "machine": key}
    cache_file = Path(cache_file)
    try:
        known = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        known = {}
    if not isinstance(known, dict):
        known = {}
    entry = known.get(key)
    if isinstance(entry, dict) and isinstance(entry.get("gbs"), (int, float)) and entry["gbs"] > 0:
        return {"gbs": float(entry["gbs"]), "source": f"measured {entry.get('date', '')} (cached)", "machine": key}
    gbs = float((probe or copy_bandwidth_gbs)())
    date = time.strftime("%Y-%m-%d %H:%M")
    known[key] = {"gbs": gbs, "date": date, "method": f"numpy copy, {PROBE_MIB} MiB, best of {PROBE_TRIES}, "
                                                      "read + write bytes"}
    atomic_write_text(cache_file, json.dumps(known, indent=1))
    return {"gbs": gbs, "source": f"measured {date}", "machine": key}
