"""Before/after of the benchmark client's timing error, interleaved, against one stand-in.

A noisy machine moves both variants alike when they alternate level by level, so this is
the fair way to see whether a change to the client helps. Each variant is a checkout of
the package (e.g. an older commit exported with `git archive`); each level of each variant
runs in a process of its own with that checkout first on sys.path, against one lean
schedule server (benchmarks/harness_fidelity.py's, on CPU 1; clients on CPU 0).

    git archive 63f4e0c jupyter_ext | tar -x -C /tmp/base
    python benchmarks/harness_fidelity_ab.py --variant base=/tmp/base --variant new=. --rounds 2

One line per level and variant, in ms, p50/p99: the whole TTFT and ITL error, the client's
own part (TTFT, ITL, every token's read lateness) and the server's (reading the request
late, writing the first token late).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import harness_fidelity as hf  # noqa: E402

CHILD = """
import json, os, sys, tempfile
sys.path.insert(0, os.environ["AB_ROOT"]); sys.path.insert(1, os.environ["AB_BENCH"])
import jupyter_ext.bench  # this variant's package, before harness_fidelity puts its own first
assert jupyter_ext.bench.__file__.startswith(os.environ["AB_ROOT"]), jupyter_ext.bench.__file__
import harness_fidelity as hf
c, url, ttft, itl, tokens = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
with tempfile.TemporaryDirectory() as tmp:
    print(json.dumps(hf.ours(url, c, max(16, 2 * c), tokens, ttft, itl, tmp)))
"""


def line(name: str, c: int, o: dict) -> str:
    f = lambda d: f"{d['p50']:6.2f}/{d['p99']:7.2f}"  # noqa: E731
    cl, sv = o["of_which_client_ms"], o["of_which_server_ms"]
    return (f"{name:6} c={c:4} ttft {f(o['ttft_err_ms'])} itl {f(o['itl_err_ms'])} | client ttft {f(cl['ttft'])} "
            f"itl {f(cl['itl'])} late {f(cl['every_token_late'])} | server accept {f(sv['accept'])} "
            f"first {f(sv['first_token_late'])} | ok {o['completed']} failed {o['failed']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", action="append", required=True, help="NAME=PATH of a checkout (repeat)")
    ap.add_argument("--levels", default="1,64,256,512")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--ttft-ms", type=float, default=100.0)
    ap.add_argument("--itl-ms", type=float, default=20.0)
    ap.add_argument("--max-tokens", type=int, default=50)
    a = ap.parse_args()
    variants = [(v.split("=", 1)[0], str(Path(v.split("=", 1)[1]).resolve())) for v in a.variant]
    os.sched_setaffinity(0, {0})
    proc, url = hf.start_server(a.ttft_ms, a.itl_ms, cpu=1)
    try:
        for _ in range(a.rounds):
            for c in [int(x) for x in a.levels.split(",")]:
                for name, root in variants:
                    out = subprocess.run([sys.executable, "-c", CHILD, str(c), url, str(a.ttft_ms / 1e3),
                                          str(a.itl_ms / 1e3), str(a.max_tokens)], capture_output=True, text=True,
                                         env={**os.environ, "AB_ROOT": root, "AB_BENCH": str(HERE), "PYTHONPATH": root})
                    try:
                        print(line(name, c, json.loads(out.stdout.strip().splitlines()[-1])), flush=True)
                    except (IndexError, ValueError):
                        print(f"{name} c={c}: failed\n{out.stderr[-1500:]}", flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
