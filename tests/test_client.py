"""The streaming client and sweeps against fake servers with a known token schedule."""

import json
import threading

import pytest

from jupyter_ext.bench import BenchResult, Comparison, run_benchmark
from jupyter_ext.errors import BenchError


def bench(url, tmp_path, recipe=None, **kw):
    kw.setdefault("concurrency", [1, 4])
    kw.setdefault("num_prompts", 8)
    kw.setdefault("max_tokens", 20)
    kw.setdefault("warmup", 0)
    return run_benchmark(recipe, url=url, results_dir=tmp_path, progress=False, input_scale=0.1, **kw)


def test_ttft_and_itl_match_the_schedule(schedule_server_factory, tmp_path):
    srv = schedule_server_factory(ttft_ms=80, itl_ms=15)
    r = bench(srv.base_url, tmp_path)
    assert r.status == "complete" and r.concurrencies == [1, 4]
    for lv in r.levels:
        m = lv.metrics
        assert m.completed == 8 and m.failed == 0
        assert m.output_tokens == 8 * 20 and m.usage_from_server
        # loopback + parsing add well under 10 ms here; the schedule is 80 ms and 15 ms
        assert 0.080 <= m.ttft.p50 < 0.095, m.ttft
        assert 0.013 <= m.itl.p50 < 0.020, m.itl
        assert m.tpot.p50 == pytest.approx(0.015, abs=0.003)
        # E2E = TTFT + 19 gaps of 15 ms = 365 ms
        assert m.e2el.p50 == pytest.approx(0.365, abs=0.02)
    # concurrency 4 runs 8 requests in two waves: throughput ~4x concurrency 1's
    ratio = r.level(4).metrics.output_throughput / r.level(1).metrics.output_throughput
    assert 3.0 < ratio < 4.5


def test_the_clock_starts_when_the_request_is_written(schedule_server_factory, tmp_path):
    """64 streams at once on fresh connections: the event loop connects and writes them one
    after another. That wait is client-side queue time, not TTFT, and the clock never starts
    after the server's schedule did (TTFT below the schedule would mean a late stamp)."""
    srv = schedule_server_factory(ttft_ms=100, itl_ms=10)
    r = bench(srv.base_url, tmp_path, concurrency=[64], num_prompts=64, max_tokens=5)
    ok = [s for s in r.level(64).samples if s.ok]
    assert len(ok) == 64
    assert all(s.queue_s >= s.send_s >= 0 for s in ok) and max(s.send_s for s in ok) > 0
    assert min(s.ttft_s for s in ok) >= 0.100
    assert r.level(64).metrics.queue.p50 > 0  # reported apart, in the queue column


def test_requests_for_servers_other_than_vllm(schedule_server_factory, tmp_path):
    """No ignore_eos, a logit bias merged into every body, prompts sized by a real tokenizer."""
    from jupyter_ext.bench.client import Endpoint
    from jupyter_ext.bench.workload import build_workload

    prompt = build_workload(1, 8).prompts[0]
    body = Endpoint("http://x", "m", ignore_eos=False, extra_body={"logit_bias": {"2": -100}}).body(prompt, 8)
    assert "ignore_eos" not in body and body["logit_bias"] == {"2": -100} and body["stream"] is True
    srv = schedule_server_factory(ttft_ms=5, itl_ms=2)
    r = bench(srv.base_url, tmp_path, concurrency=[1], num_prompts=2, ignore_eos=False,
              extra_body={"logit_bias": {"2": -100}})
    assert r.status == "complete" and r.level(1).metrics.failed == 0
    assert r.endpoint["ignore_eos"] is False and r.endpoint["extra_body"] == {"logit_bias": {"2": -100}}
    assert r.workload["token_counts"].startswith("estimated")
    from jupyter_ext import defaults
    from jupyter_ext.engine import model_folder

    sized = bench(srv.base_url, tmp_path, concurrency=[1], num_prompts=2,
                  tokenizer_path=model_folder(defaults.DEFAULT_MODEL))
    assert sized.workload["token_counts"] == "model tokenizer"


def test_results_round_trip_and_compare(schedule_server_factory, tmp_path):
    fast = bench(schedule_server_factory(ttft_ms=20, itl_ms=5).base_url, tmp_path, name="fast")
    slow = bench(schedule_server_factory(ttft_ms=20, itl_ms=10).base_url, tmp_path, name="slow")
    loaded = BenchResult.load(fast.path)
    assert loaded.to_dict() == fast.to_dict()
    c = Comparison.of(fast, slow)
    assert c.ratio("out tok/s", 1) == pytest.approx(2.0, rel=0.25)
    assert c.ratio("blended $/1M", 1) == pytest.approx(0.5, rel=0.25)
    assert "<table>" in fast._repr_html_() and "blended $/1M" in str(fast)


def test_failed_requests_are_counted(schedule_server_factory, tmp_path):
    srv = schedule_server_factory(ttft_ms=5, itl_ms=1, fail_every=4)
    seen = []
    r = bench(srv.base_url, tmp_path, concurrency=[2], on_request=seen.append)
    m = r.level(2).metrics
    assert (m.completed, m.failed) == (6, 2)
    assert len(seen) == 8 and sum(not s.ok for s in seen) == 2  # every request reported as it ends
    assert all("HTTP 500" in s.error for s in r.level(2).samples if not s.ok)


def test_stop_event_keeps_finished_levels(schedule_server_factory, tmp_path):
    srv = schedule_server_factory(ttft_ms=5, itl_ms=2)
    stop = threading.Event()
    r = bench(srv.base_url, tmp_path, concurrency=[1, 2, 4], stop=stop,
              on_level=lambda lv: stop.set() if lv.concurrency == 1 else None)
    assert r.status == "interrupted" and r.concurrencies == [1]
    assert BenchResult.load(r.path).concurrencies == [1]


def test_request_rate_mode_records_queue_time(schedule_server_factory, tmp_path):
    srv = schedule_server_factory(ttft_ms=50, itl_ms=10)
    # 40 req/s offered to one slot whose requests take ~0.24 s: requests must wait
    r = bench(srv.base_url, tmp_path, concurrency=[1], num_prompts=6, request_rate=40.0, seed=1)
    q = r.level(1).metrics.queue
    assert q.max > 0.2 and r.level(1).request_rate == 40.0


@pytest.mark.parametrize("kw, words", [
    ({"concurrency": []}, "at least one"),
    ({"concurrency": [0]}, ">= 1"),
    ({"num_prompts": 0}, ">= 1"),
    ({"request_rate": -1.0}, "> 0"),
    ({"discount": 1.5}, "discount"),
])
def test_bad_sweep_settings(kw, words, tmp_path):
    with pytest.raises(BenchError, match=words):
        run_benchmark(url="http://127.0.0.1:9", model="m", results_dir=tmp_path, progress=False, **kw)
    assert not list(tmp_path.iterdir())  # nothing written on bad input


def test_speculation_that_cannot_be_verified_is_flagged(schedule_server_factory, tmp_path):
    from jupyter_ext.bench import LevelResult, speculation_warning
    from jupyter_ext.recipes import load_recipe

    ngram = load_recipe("ngram")
    srv = schedule_server_factory(ttft_ms=5, itl_ms=1)  # exports no vllm:spec_decode_* counters
    r = bench(srv.base_url, tmp_path, concurrency=[1], num_prompts=2, recipe=ngram)
    assert any("not verified" in n for n in r.notes)
    assert "not verified" in BenchResult.load(r.path).notes[0]
    lv = r.levels[0]
    idle = LevelResult(lv.concurrency, lv.metrics, speculative={"active": False, "draft_tokens": 0})
    assert "NOT active" in speculation_warning(ngram, idle)
    assert speculation_warning(ngram, LevelResult(1, lv.metrics, speculative={"active": True})) is None
    assert speculation_warning(load_recipe("baseline"), idle) is None
