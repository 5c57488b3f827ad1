"""What the notebook face costs: `%load_ext jupyter_ext` time, and a benchmark's wall time
through `%optimize bench` in a Jupyter kernel against `jupyter-optimize bench` on the CLI.

    python benchmarks/notebook_overhead.py               # all of it (starts vLLM twice)
    python benchmarks/notebook_overhead.py --skip-vllm   # load_ext + the fake server only

Two targets for the overhead ratio (notebook wall / CLI wall, same options):
  * the fake streaming server (`bench.schedule_server`): a fixed schedule, so the ratio shows
    the faces' own costs (thread hand-off, progress widgets, display updates; the CLI pays
    for starting Python and importing the toolkit, a warm kernel does not);
  * a real recipe on vLLM (each path starts and stops its own server, one at a time).
Results go to benchmarks/results/notebook_overhead.json with the machine and the command.
Run it on a quiet machine: these are wall times.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "notebook_overhead.json"
CLI = str(Path(sys.executable).with_name("jupyter-optimize"))
HEAVY = ("torch", "vllm", "matplotlib", "aiohttp", "ipywidgets", "transformers")


class Kernel:
    """A fresh IPython kernel; `run` returns the wall time from request to idle."""

    def __init__(self, cwd: Path) -> None:
        from jupyter_client.manager import start_new_kernel

        self.km, self.kc = start_new_kernel(kernel_name="python3", cwd=str(cwd))

    def run(self, code: str, timeout: float = 3600) -> tuple[float, list[str]]:
        out: list[str] = []

        def hook(msg: dict) -> None:
            c = msg["content"]
            if msg["msg_type"] == "stream":
                out.append(c["text"])
            elif msg["msg_type"] in ("execute_result", "display_data"):
                out.append(c["data"].get("text/plain", ""))
            elif msg["msg_type"] == "error":
                out.append(f"{c['ename']}: {c['evalue']}")

        t0 = time.perf_counter()
        reply = self.kc.execute_interactive(code, timeout=timeout, output_hook=hook)
        wall = time.perf_counter() - t0
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"{code!r} failed in the kernel: {''.join(out)[-2000:]}")
        return wall, out

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def load_ext_times(repeats: int, cwd: Path) -> dict:
    """`%load_ext jupyter_ext` in fresh kernels, and which heavy modules it pulled in."""
    walls, heavy = [], []
    for _ in range(repeats):
        k = Kernel(cwd)
        try:
            wall, _ = k.run("%load_ext jupyter_ext")
            _, out = k.run(f"import sys; print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
        finally:
            k.close()
        walls.append(wall)
        heavy = out[-1].strip()
    return {"repeats": repeats, "median_s": statistics.median(walls), "max_s": max(walls),
            "all_s": walls, "heavy_modules_after_load": heavy,
            "what": "wall time of the cell `%load_ext jupyter_ext` in a fresh kernel, request to idle"}


def bench_args(a: argparse.Namespace, results: Path) -> list[str]:
    return ["--concurrency", a.concurrency, "--prompts", str(a.prompts), "--max-tokens", str(a.max_tokens),
            "--input-scale", str(a.input_scale), "--results-dir", str(results)]


def cli_wall(target: list[str], a: argparse.Namespace, results: Path) -> float:
    t0 = time.perf_counter()
    done = subprocess.run([CLI, "bench", *target, *bench_args(a, results), "--no-chart"],
                          capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"CLI bench failed: {done.stderr[-2000:]}")
    return wall


def compare_paths(target: list[str], a: argparse.Namespace, repeats: int, cwd: Path) -> dict:
    """Alternate CLI and notebook runs (so drift hits both) and report medians and the ratio."""
    results = cwd / "results"
    k = Kernel(cwd)
    try:
        k.run("%load_ext jupyter_ext")
        line = "%optimize bench " + " ".join([*target, *bench_args(a, results)])
        cli, nb = [], []
        for _ in range(repeats):
            cli.append(cli_wall(target, a, results))
            nb.append(k.run(line)[0])
    finally:
        k.close()
    return {"target": " ".join(target), "repeats": repeats, "cli_median_s": statistics.median(cli),
            "notebook_median_s": statistics.median(nb), "cli_s": cli, "notebook_s": nb,
            "ratio_notebook_over_cli": statistics.median(nb) / statistics.median(cli)}


def schedule_server() -> tuple[subprocess.Popen, str]:
    from jupyter_ext.engine import free_port
    from jupyter_ext.engine.server import http_ok

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "jupyter_ext.bench.schedule_server", "--port", str(port),
                             "--ttft-ms", "50", "--itl-ms", "10"], stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not http_ok(url + "/health"):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("the fake server did not start")
        time.sleep(0.1)
    return proc, url


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5, help="fresh kernels for load_ext; runs per path on the fake server")
    ap.add_argument("--vllm-repeats", type=int, default=1, help="runs per path on vLLM (each starts a server)")
    ap.add_argument("--skip-vllm", action="store_true")
    ap.add_argument("--recipe", default="baseline")
    ap.add_argument("--concurrency", default="1,2")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--input-scale", type=float, default=0.25)
    a = ap.parse_args()
    report: dict = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
                    "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "machine": {"platform": platform.platform(), "cores": os.cpu_count(),
                                "python": platform.python_version()},
                    "options": vars(a)}
    with tempfile.TemporaryDirectory(prefix="jo-overhead-") as tmp:
        cwd = Path(tmp)
        report["load_ext"] = load_ext_times(a.repeats, cwd)
        print("load_ext:", json.dumps(report["load_ext"]), flush=True)
        proc, url = schedule_server()
        try:
            report["fake_server"] = compare_paths(["--url", url], a, a.repeats, cwd)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        print("fake server:", json.dumps(report["fake_server"]), flush=True)
        if not a.skip_vllm:
            report["vllm"] = compare_paths([a.recipe], a, a.vllm_repeats, cwd)
            print("vllm:", json.dumps(report["vllm"]), flush=True)
    from jupyter_ext.recipes import atomic_write_text

    atomic_write_text(OUT, json.dumps(report, indent=1) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
