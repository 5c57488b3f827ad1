"""Metrics on synthetic timings, checked against values computed by hand."""

import math

import pytest

from jupyter_ext.bench.metrics import Percentiles, RequestSample, compute_metrics


def sample(i, chunks, out_tokens, in_tokens=100, ok=True, queue=0.0):
    return RequestSample(prompt_index=i, ok=ok, queue_s=queue, ttft_s=chunks[0] if ok else None,
                         e2el_s=chunks[-1] if ok else None, chunk_times_s=chunks,
                         input_tokens=in_tokens, output_tokens=out_tokens, usage_from_server=True)


def test_percentiles_interpolate_linearly_between_neighbours():
    """numpy's "linear" method (vLLM's reports use it): any other method ("nearest",
    "lower", "median_unbiased"...) gives other numbers for these four values."""
    p = Percentiles.of([4.0, 1.0, 3.0, 2.0, None])
    # position (n-1)*q = 3*0.5 = 1.5 -> 2 + 0.5*(3-2) = 2.5
    assert p.p50 == 2.5
    # 3*0.9 = 2.7 -> 3 + 0.7*(4-3) = 3.7;  3*0.99 = 2.97 -> 3.97
    assert p.p90 == pytest.approx(3.7) and p.p99 == pytest.approx(3.97)
    assert (p.mean, p.min, p.max, p.count) == (2.5, 1.0, 4.0, 4)
    assert all(type(x) is float for x in (p.p50, p.p90, p.p99))  # JSON-safe, not np.float64
    one = Percentiles.of([7.0])
    assert one.p50 == one.p99 == 7.0


def test_level_metrics_by_hand():
    # request A: chunks at 0.1, 0.3, 0.6 s, 3 tokens -> TTFT 0.1, ITLs 0.2 and 0.3, E2E 0.6,
    #            TPOT = (0.6 - 0.1) / (3 - 1) = 0.25
    # request B: chunks at 0.2, 0.4, 5 tokens (two tokens in one chunk) -> TTFT 0.2, ITL 0.2,
    #            E2E 0.4, TPOT = (0.4 - 0.2) / 4 = 0.05
    # request C failed.
    a = sample(0, [0.1, 0.3, 0.6], 3, in_tokens=100)
    b = sample(1, [0.2, 0.4], 5, in_tokens=50, queue=0.5)
    c = RequestSample(prompt_index=2, ok=False, error="HTTP 500")
    m = compute_metrics([a, b, c], duration_s=2.0)
    assert (m.completed, m.failed) == (2, 1)
    assert m.output_tokens == 8 and m.input_tokens == 150
    assert m.output_throughput == pytest.approx(8 / 2.0)
    assert m.total_token_throughput == pytest.approx(158 / 2.0)
    assert m.request_throughput == pytest.approx(1.0)
    assert m.ttft.mean == pytest.approx(0.15) and m.ttft.p50 == pytest.approx(0.15)
    assert sorted([0.2, 0.3, 0.2]) == pytest.approx(sorted(a.itls_s + b.itls_s))
    assert m.itl.p50 == pytest.approx(0.2) and m.itl.max == pytest.approx(0.3)
    assert a.tpot_s == pytest.approx(0.25) and b.tpot_s == pytest.approx(0.05)
    assert m.tpot.mean == pytest.approx(0.15)
    assert m.e2el.p50 == pytest.approx(0.5)
    # queue time covers every request, failed ones included: [0, 0.5, 0] -> mean 1/6
    assert m.queue.mean == pytest.approx(0.5 / 3)
    assert m.mean_output_tokens == 4.0 and m.usage_from_server


def test_single_token_requests_have_no_tpot_and_empty_levels_are_nan():
    one = sample(0, [0.1], 1)
    assert one.tpot_s is None
    m = compute_metrics([RequestSample(prompt_index=0, ok=False)], duration_s=1.0)
    assert m.completed == 0 and math.isnan(m.ttft.p50) and m.ttft.count == 0


def test_percentiles_round_trip():
    p = Percentiles.of([0.3, 0.1, 0.2])
    assert Percentiles(**p.to_dict()) == p and p.min == 0.1 and p.max == 0.3


def test_machine_label_is_the_same_in_every_process():
    """Results from different runs on one host must say so: the host label may not use
    Python's per-process randomized str hash."""
    import os
    import subprocess
    import sys

    code = "from jupyter_ext.bench.result import machine_description as m; print(m()['hostname_hash'])"
    seen = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip()
            for seed in ("1", "2")}
    assert len(seen) == 1 and len(seen.pop()) == 8


def _vllm_style_metrics(drafts_by_engine: dict[str, float]) -> str:
    """What a vLLM server serves: prometheus_client counters with labels, HELP/TYPE lines,
    their `_created` samples, and a per-position counter whose name shares the prefix."""
    from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

    reg = CollectorRegistry()
    drafts = Counter("vllm:spec_decode_num_drafts", "drafts", ["model_name", "engine"], registry=reg)
    tokens = Counter("vllm:spec_decode_num_draft_tokens", "tokens", ["model_name", "engine"], registry=reg)
    acc = Counter("vllm:spec_decode_num_accepted_tokens", "accepted", ["model_name", "engine"], registry=reg)
    per_pos = Counter("vllm:spec_decode_num_accepted_tokens_per_pos", "per pos",
                      ["model_name", "engine", "position"], registry=reg)
    Gauge("vllm:num_requests_running", "running", registry=reg).set(3)
    for engine, n in drafts_by_engine.items():
        drafts.labels("m", engine).inc(n)
        tokens.labels("m", engine).inc(3 * n)
        acc.labels("m", engine).inc(n)
        per_pos.labels("m", engine, "0").inc(1000)
    return generate_latest(reg).decode()


def test_spec_counters_sum_over_labels_of_the_exposition_format():
    from jupyter_ext.bench.spec_metrics import SpecCounters

    c = SpecCounters.parse(_vllm_style_metrics({"0": 10, "1": 30}))
    # drafts 10 + 30; draft tokens 3x; accepted 1x; `_created` and per-position samples ignored
    assert (c.drafts, c.draft_tokens, c.accepted_tokens) == (40.0, 120.0, 40.0)
    s = c.summary()
    assert s["acceptance_rate"] == pytest.approx(40 / 120) and s["mean_accepted_per_step"] == 2.0
    # a server without speculation exports none of the counters
    assert SpecCounters.parse("# HELP vllm:num_requests_running x\n# TYPE vllm:num_requests_running gauge\n"
                              "vllm:num_requests_running 0.0\n") is None
    with pytest.raises(ValueError):
        SpecCounters.parse("vllm:spec_decode_num_drafts_total{engine=\"0\" 5\n")


def test_a_non_prometheus_metrics_page_is_no_counters(tmp_path):
    """An endpoint whose /metrics is not Prometheus text (or absent) gives None, not a crash."""
    import http.server
    import threading

    from jupyter_ext.bench.spec_metrics import scrape_spec_counters

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"<html>{not metrics</html>\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        assert scrape_spec_counters(f"http://127.0.0.1:{srv.server_address[1]}") is None
    finally:
        srv.shutdown()
        srv.server_close()
