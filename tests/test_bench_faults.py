"""Faults a benchmark must survive, each with a deadline: the server killed mid-sweep, Ctrl-C
mid-level, and 256 streams for a minute with no request lost (every one counted ok, or
failed with a reason). Against the schedule stand-in; the 256-stream run also has a real
vLLM form (marked vllm and slow)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT, wait_until
from jupyter_ext.bench import BenchResult, run_benchmark


def saved_json(folder: Path) -> list[dict]:
    """Every result file in `folder`, parsed: a partial or corrupt file fails here."""
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


@pytest.mark.timeout(120)
def test_server_killed_mid_sweep_keeps_finished_levels_and_names_the_cause(schedule_server_factory, tmp_path):
    srv = schedule_server_factory(ttft_ms=5, itl_ms=1, die_after=8)  # the 9th request kills the process
    r = run_benchmark(url=srv.base_url, results_dir=tmp_path, progress=False, concurrency=[1, 2, 4],
                      num_prompts=8, max_tokens=5, warmup=0, input_scale=0.1)
    assert r.status == "failed" and r.concurrencies == [1, 2]  # the sweep stopped at the dead level
    assert r.level(1).metrics.completed == 8 and r.level(1).failure is None
    dead = r.level(2)
    assert dead.metrics.failed == 8 and dead.failed
    assert dead.failure["kind"] in ("connect", "disconnected") and dead.failure["count"] >= 4
    assert "cannot connect to 127.0.0.1" in dead.failure["error"] or "closed the connection" in dead.failure["error"]
    assert any("later levels were not run" in n for n in r.notes)
    (saved,) = saved_json(tmp_path)  # one whole file, no temporary left beside it
    assert [p.name for p in tmp_path.iterdir()] == [Path(r.path).name]
    assert saved["status"] == "failed" and [lv["status"] for lv in saved["levels"]] == ["ok", "failed"]
    assert BenchResult.load(r.path).level(2).failure == dead.failure


@pytest.mark.timeout(180)
def test_ctrl_c_mid_level_keeps_the_finished_levels(schedule_server_factory, tmp_path):
    srv = schedule_server_factory(ttft_ms=5, itl_ms=20)  # 50 tokens: about 1 s a request
    res = tmp_path / "res"
    proc = subprocess.Popen([sys.executable, "-m", "jupyter_ext.faces.cli", "bench", "--url", srv.base_url,
                             "--concurrency", "1,2,4", "--prompts", "4", "--max-tokens", "50", "--warmup", "0",
                             "--input-scale", "0.1", "--results-dir", str(res), "--no-chart"],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: res.exists() and any(len(d["levels"]) >= 1 for d in saved_json(res)), 120,
                   "the first level to be saved")
        proc.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal sends
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    (saved,) = saved_json(res)
    assert saved["status"] == "interrupted" and 1 <= len(saved["levels"]) < 3
    assert saved["levels"][0]["concurrency"] == 1 and saved["levels"][0]["metrics"]["completed"] == 4
    assert any("interrupted by the user" in n for n in saved["notes"])


def _received(base_url: str) -> int:
    with urllib.request.urlopen(base_url + "/stats", timeout=10) as r:
        return json.load(r)["received"]


def _none_lost(r: BenchResult, sent: int, seen: list) -> None:
    samples = r.levels[0].samples
    assert len(samples) == sent == len(seen)  # every request that reached the server is counted
    assert all(s.ok or (s.error and s.error_kind) for s in samples)  # ...ok, or failed with a reason
    assert not r.levels[0].failed


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_256_streams_for_60_s_lose_no_request(schedule_server_factory, tmp_path):
    srv = schedule_server_factory(ttft_ms=200, itl_ms=20, fail_every=97)  # HTTP 500 on every 97th request
    stop = threading.Event()
    timer = threading.Timer(60, stop.set)
    seen: list = []
    timer.start()
    try:
        r = run_benchmark(url=srv.base_url, results_dir=tmp_path, progress=False, concurrency=[256],
                          num_prompts=20000, max_tokens=20, warmup=0, input_scale=0.1, stop=stop,
                          on_request=seen.append)
    finally:
        timer.cancel()
    sent = _received(srv.base_url)
    _none_lost(r, sent, seen)
    samples = r.levels[0].samples
    assert sum(s.error_kind == "http_5xx" for s in samples) == sent // 97  # exactly the injected ones
    assert sent > 256  # the streams ran again and again, not once
    assert saved_json(tmp_path)[0]["levels"][0]["metrics"]["failed"] == r.levels[0].metrics.failed


@pytest.mark.vllm
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_256_streams_for_60_s_against_vllm_lose_no_request(vllm_server, tmp_path):
    def successes() -> float:
        with urllib.request.urlopen(vllm_server.base_url + "/metrics", timeout=30) as resp:
            text = resp.read().decode()
        return sum(float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines()
                   if ln.startswith("vllm:request_success_total"))

    before = successes()
    stop = threading.Event()
    timer = threading.Timer(60, stop.set)
    seen: list = []
    timer.start()
    try:
        r = run_benchmark(server=vllm_server, results_dir=tmp_path, progress=False, concurrency=[256],
                          num_prompts=4096, max_tokens=8, warmup=0, input_scale=0.05, stop=stop,
                          on_request=seen.append)
    finally:
        timer.cancel()
    samples = r.levels[0].samples
    assert len(samples) == len(seen) and samples
    assert all(s.ok or (s.error and s.error_kind) for s in samples)
    assert r.levels[0].metrics.completed == successes() - before  # vLLM finished exactly what we counted ok
