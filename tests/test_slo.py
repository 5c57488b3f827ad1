"""SLOs and goodput (bench/slo.py) and the integrity checks (bench/integrity.py): parsed from
text, evaluated per request as vLLM's --goodput does, and run end to end against the
schedule server (a known TTFT/ITL), which can also export prefix-cache counters and give
short answers."""

import json
import math
from pathlib import Path

import pytest

from jupyter_ext.bench import run_benchmark
from jupyter_ext.bench.integrity import t_interval
from jupyter_ext.bench.metrics import RequestSample
from jupyter_ext.bench.slo import SLO
from jupyter_ext.errors import BenchError


def sample(ttft, gap, tokens=5, ok=True):
    chunks = [ttft + i * gap for i in range(tokens)]
    return RequestSample(0, ok, ttft_s=ttft, e2el_s=chunks[-1], chunk_times_s=chunks, output_tokens=tokens,
                         usage_from_server=True)


def test_parse_units_and_text_round_trip():
    slo = SLO.parse("ttft_p99=2s, tpot_p50=50ms,itl_p90=30ms,e2e_p50=3s")
    assert [(t.metric, t.percentile, t.threshold_s) for t in slo.terms] == [
        ("ttft", 99, 2.0), ("tpot", 50, 0.05), ("itl", 90, 0.03), ("e2e", 50, 3.0)]
    assert SLO.parse(str(slo)) == slo
    assert slo.threshold("tpot") == 0.05 and slo.threshold("ttft") == 2.0


@pytest.mark.parametrize("text, words", [
    ("ttft=2s", "cannot read"), ("latency_p50=2s", "unknown SLO metric"), ("ttft_p75=2s", "p75"),
    ("ttft_p99=2", "cannot read"), ("ttft_p99=2s,ttft_p99=1s", "twice"), ("", "at least one"),
    ("ttft_p99=0ms", "> 0")])
def test_bad_text_names_the_accepted_form(text, words):
    with pytest.raises(BenchError) as e:
        SLO.parse(text)
    assert words in str(e.value)
    if words != "twice":
        assert "ttft_p99=2s,tpot_p50=50ms" in str(e.value)


def test_goodput_counts_requests_meeting_every_term_on_their_own_values():
    slo = SLO.parse("ttft_p99=100ms,tpot_p50=20ms")
    samples = [sample(0.05, 0.01), sample(0.05, 0.01),  # good
               sample(0.20, 0.01),                       # TTFT too slow
               sample(0.05, 0.03),                       # TPOT too slow
               sample(0.05, 0.01, ok=False)]             # failed: never good
    ev = slo.evaluate(samples, duration_s=2.0)
    assert ev["good_requests"] == 2 and ev["goodput_rps"] == pytest.approx(1.0)
    # the level: TTFT p99 of [.05,.05,.2,.05] is above 100 ms -> not met; TPOT p50 is 10 ms -> met
    assert not ev["terms"]["ttft_p99"]["met"] and ev["terms"]["tpot_p50"]["met"]
    assert ev["met"] is False
    assert SLO.parse("ttft_p50=100ms").evaluate(samples, 2.0)["met"] is True


def test_itl_term_uses_the_requests_own_gaps():
    slo = SLO.parse("itl_p50=15ms")
    assert slo.request_ok(sample(0.05, 0.01)) and not slo.request_ok(sample(0.05, 0.02))


def test_t_interval_matches_the_textbook():
    ci = t_interval([10.0, 12.0, 14.0])  # mean 12, s = 2, t(0.975, 2) = 4.303
    assert ci["mean"] == 12 and ci["half_width"] == pytest.approx(4.303 * 2 / math.sqrt(3), rel=1e-6)
    assert math.isnan(t_interval([5.0])["half_width"])


def _bench(url, tmp_path, **kw):
    kw.setdefault("warmup", 1)
    kw.setdefault("input_scale", 0.1)
    return run_benchmark(None, url=url, results_dir=tmp_path, progress=False, max_tokens=10, num_prompts=6, **kw)


def test_bench_slo_adds_goodput_and_pass_fail_to_table_and_json(schedule_server_factory, tmp_path):
    srv = schedule_server_factory(ttft_ms=60, itl_ms=5)
    r = _bench(srv.base_url, tmp_path, concurrency=[1, 2], slo="ttft_p50=1s,tpot_p50=50ms")
    row = r.rows()[0]
    assert row["SLO met"] is True and row["goodput req/s"] == pytest.approx(row["req/s"], rel=1e-6)
    strict = _bench(srv.base_url, tmp_path, concurrency=[1], slo="ttft_p50=10ms")  # TTFT is 60 ms
    assert strict.rows()[0]["SLO met"] is False and strict.rows()[0]["goodput req/s"] == 0
    saved = json.loads(open(r.path).read())
    assert saved["slo"] == "ttft_p50=1s,tpot_p50=50ms"
    assert saved["levels"][0]["slo"]["good_requests"] == 6 and saved["levels"][1]["slo"]["met"] is True
    assert "goodput req/s" in str(r) and "SLO ttft_p50=1s" in str(r)


def test_fresh_prompts_per_level_and_a_high_prefix_hit_rate_warns(schedule_server_factory, tmp_path):
    srv = schedule_server_factory(ttft_ms=5, itl_ms=1, prefix_hit_rate=0.9)
    r = _bench(srv.base_url, tmp_path, concurrency=[1, 2], input_scale=0.5)  # ~310-token prompts
    seen = [{s.prompt_index for s in lv.samples} for lv in r.levels]
    assert r.workload["num_prompts"] == (1 + 6) * 2  # warm-ups and levels never share prompts
    assert seen == [set(range(0, 6)), set(range(7, 13))]  # measured first, then the warm-ups
    assert r.levels[0].integrity["prefix_cache_hit_rate"] == pytest.approx(0.9)
    assert any("prefix-cache hit rate was 90%" in n for n in r.notes)
    assert r.rows()[0]["prefix hit"] == pytest.approx(0.9)
    # the shared system prompt (~58 tokens with the template) is expected: ~19% of ~310 tokens
    assert 0.1 < r.levels[0].integrity["expected_shared_share"] < 0.3
    quiet = schedule_server_factory(ttft_ms=5, itl_ms=1, prefix_hit_rate=0.3)
    assert not any("prefix-cache" in n for n in _bench(quiet.base_url, tmp_path, concurrency=[1],
                                                         input_scale=0.5).notes)


def test_short_answers_under_ignore_eos_warn(schedule_server_factory, tmp_path):
    srv = schedule_server_factory(ttft_ms=5, itl_ms=1, short_every=3)
    r = _bench(srv.base_url, tmp_path, concurrency=[1], warmup=0)
    tok = r.levels[0].integrity["tokens"]
    assert tok["length_mismatches"] == 2 and tok["checked"] == 6 and tok["min_output_tokens"] == 5
    assert any("2 of 6 answers" in n and "ignore_eos" in n for n in r.notes)


def test_repeats_give_95_percent_intervals(schedule_server_factory, tmp_path):
    srv = schedule_server_factory(ttft_ms=20, itl_ms=2)
    r = _bench(srv.base_url, tmp_path, concurrency=[1, 2], repeats=3, warmup=0)
    lv = r.levels[0]
    assert lv.repeats["n"] == 3 and len(lv.repeats["runs"]) == 3 and lv.metrics.completed == 18
    ci = lv.repeats["ci95"]["ttft_p50_s"]
    assert ci["low"] <= ci["mean"] <= ci["high"] and 0.02 <= ci["mean"] < 0.05
    assert "TTFT p50 ms ±95%" in r.rows()[0]
    assert r.workload["num_prompts"] == 3 * (6 + 6)
    loaded = type(r).load(r.path)
    assert loaded.levels[1].repeats["ci95"]["output_throughput"]["n"] == 3
    with pytest.raises(BenchError, match="repeats"):
        _bench(srv.base_url, tmp_path, repeats=0)


def test_panel_slo_and_repeats_then_the_report_button(schedule_server_factory, tmp_path):
    from conftest import wait_until
    from widgets import BenchmarkPanel

    srv = schedule_server_factory(ttft_ms=30, itl_ms=2)
    panel = BenchmarkPanel(results_dir=str(tmp_path))
    panel.url.value, panel.concurrency.value, panel.prompts.value = srv.base_url, "1,2", 4
    panel.max_tokens.value, panel.input_scale.value = 8, 0.1
    panel.slo.value, panel.repeats.value = "ttft_p50=1s", 2
    assert panel.report.disabled
    panel.run.click()
    res = panel.wait(60)
    wait_until(lambda: not panel.report.disabled, 10, "the report button")
    assert res.slo == "ttft_p50=1s" and res.levels[0].repeats["n"] == 2
    assert "goodput req/s" in panel.table.value and "SLO met" in panel.table.value
    panel.report.click()
    html_path = Path(res.path).with_suffix(".html")
    assert html_path.is_file() and "report written" in panel.message.text
    panel.slo.value = "quick"
    panel.run.click()
    assert "form is" in panel.message.text


def test_magic_bench_slo(schedule_server_factory, tmp_path, monkeypatch):
    from IPython.core.error import UsageError
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.chdir(tmp_path)
    srv = schedule_server_factory(ttft_ms=30, itl_ms=2)
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "jupyter_ext")
    line = (f"bench --url {srv.base_url} --concurrency 1 --prompts 4 --max-tokens 8 --input-scale 0.1 "
            f"--results-dir {tmp_path} --slo ttft_p50=10ms")
    res = ip.run_line_magic("optimize", line)
    assert res.rows()[0]["SLO met"] is False and res.levels[0].slo["good_requests"] == 0
    with pytest.raises(UsageError, match="form is"):
        ip.run_line_magic("optimize", line.replace("ttft_p50=10ms", "ttft<10ms"))


@pytest.mark.vllm
def test_real_vllm_reports_prefix_hits_goodput_and_exact_lengths(vllm_server, tmp_path):
    """vLLM's own counters: fresh prompts keep the prefix-cache hit rate low (the shared
    system prompt only), and ignore_eos gives every answer exactly max_tokens."""
    r = run_benchmark(server=vllm_server, concurrency=[1, 2], num_prompts=3, max_tokens=12, input_scale=0.2,
                      results_dir=tmp_path, progress=False, slo="ttft_p99=60s,tpot_p50=5s", warmup=1)
    assert r.status == "complete"
    for lv in r.levels:
        rate = lv.integrity["prefix_cache_hit_rate"]
        assert rate is not None and 0 <= rate < 0.25, lv.integrity
        assert lv.integrity["tokens"]["length_mismatches"] == 0 and lv.integrity["tokens"]["checked"] == 3
        assert lv.slo["met"] and lv.slo["good_requests"] == 3
    assert not [n for n in r.notes if "prefix-cache" in n or "ignore_eos" in n]
