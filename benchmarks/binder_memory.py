"""Memory of the Binder tutorial's runtime: a vLLM CPU server of the default model, and a
kernel that has loaded the extension.

Does the Binder image fit public mybinder.org (about 2 GB of RAM per user)? The server is
started as the notebooks start it (the baseline recipe), with a KV budget of --kv-cache-gb,
one chat request is answered, and the memory of the server's whole process tree is sampled
every 0.5 s from launch to after that request:
    rss_mib = sum of the processes' resident sets (counts pages shared between them twice)
    pss_mib = sum of their proportional set sizes (shared pages split among the sharers):
              the closer figure to what a container's memory limit charges
and beside it the RSS of a fresh Python that imported jupyter_ext's magic and widgets (what
a notebook kernel adds). Jupyter's own server process is not measured.

    python benchmarks/binder_memory.py [--kv-cache-gb 2] [--max-model-len 1024]
JSON goes to benchmarks/results/binder_memory.json (--out); a markdown line is printed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from jupyter_ext.bench.result import machine_description, package_versions  # noqa: E402
from jupyter_ext.engine import server_for_recipe  # noqa: E402
from jupyter_ext.recipes import load_recipe  # noqa: E402

MIB = 2**20


def tree_memory(pid: int) -> dict[str, float]:
    """RSS and PSS (MiB) summed over a process and all its descendants."""
    rss = pss = 0
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return {"rss_mib": 0.0, "pss_mib": 0.0, "processes": 0}
    for p in procs:
        try:
            info = p.memory_full_info()
        except psutil.Error:
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
    return {"rss_mib": rss / MIB, "pss_mib": pss / MIB, "processes": len(procs)}


class Sampler(threading.Thread):
    """Keeps the peak of `tree_memory(pid())` until stopped."""

    def __init__(self, pid) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, {"rss_mib": 0.0, "pss_mib": 0.0}, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.5):
            pid = self.pid()
            if pid:
                now = tree_memory(pid)
                for k in ("rss_mib", "pss_mib"):
                    self.peak[k] = max(self.peak[k], now[k])


def kernel_rss_mib() -> float:
    code = ("import resource, jupyter_ext.faces.magics, widgets; "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=HERE.parent)
    return int(out.stdout.split()[-1]) / 1024  # ru_maxrss is in KiB on Linux


def measure(kv_cache_gb: float, max_model_len: int) -> dict:
    recipe = load_recipe("baseline")
    recipe.engine.kv_cache_gb, recipe.engine.max_model_len = kv_cache_gb, max_model_len
    srv = server_for_recipe(recipe)
    sampler = Sampler(lambda: srv.pid)
    sampler.start()
    try:
        srv.start()
        idle = tree_memory(srv.pid)
        body = {"model": srv.command.served_model_name, "max_tokens": 32,
                "messages": [{"role": "user", "content": "Name three prime numbers."}]}
        req = urllib.request.Request(srv.base_url + "/v1/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=300) as r:
            r.read()
        after = tree_memory(srv.pid)
    finally:
        sampler.done.set()
        srv.stop()
    sampler.join(timeout=5)
    return {"kv_cache_gb": kv_cache_gb, "max_model_len": max_model_len, "server_ready": idle,
            "server_after_request": after, "server_peak": sampler.peak, "kernel_rss_mib": kernel_rss_mib()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kv-cache-gb", type=float, default=2.0)
    ap.add_argument("--max-model-len", type=int, default=1024)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "binder_memory.json")
    a = ap.parse_args()
    res = measure(a.kv_cache_gb, a.max_model_len)
    res.update(machine=machine_description(), versions=package_versions(), date=time.strftime("%Y-%m-%d"))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=1))
    peak, k = res["server_peak"], res["kernel_rss_mib"]
    print(f"| vLLM server (kv {a.kv_cache_gb:g} GiB, max_model_len {a.max_model_len}) | peak RSS "
          f"{peak['rss_mib']:.0f} MiB, PSS {peak['pss_mib']:.0f} MiB | kernel with the extension {k:.0f} MiB |")


if __name__ == "__main__":
    main()
