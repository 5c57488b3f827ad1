"""Load modes: request rates (Poisson or constant arrivals) as levels, a sweep that finds the
saturation throughput and samples rates below it, warm-up and cool-down left out and
counted, multi-turn conversations that carry the actual replies, and a shared prefix."""

from __future__ import annotations

import json
import threading
import urllib.request

import pytest

from jupyter_ext.bench import BenchSpec, build_workload, run_benchmark
from jupyter_ext.bench.loops import arrival_gaps
from jupyter_ext.errors import BenchError
from jupyter_ext.faces.cli import main
from standin import running_app

pytestmark = pytest.mark.timeout(180)
TINY = dict(progress=False, max_tokens=4, input_scale=0.1)


def test_constant_arrivals_are_even_and_poisson_ones_exponential():
    assert arrival_gaps(4.0, "constant", 5, seed=0) == [0.25] * 5
    gaps = arrival_gaps(4.0, "poisson", 4000, seed=1)
    assert sum(gaps) / len(gaps) == pytest.approx(0.25, rel=0.06)
    var = sum((g - 0.25) ** 2 for g in gaps) / len(gaps)
    assert var == pytest.approx(0.25 ** 2, rel=0.15)  # exponential: std = mean
    assert arrival_gaps(4.0, "poisson", 10, seed=1) == gaps[:10]  # the seed fixes the schedule


def test_several_rates_are_the_levels_capped_by_the_top_concurrency(capsys, tmp_path, schedule_server_factory):
    srv = schedule_server_factory(ttft_ms=2, itl_ms=1)
    code = main(["bench", "--url", srv.base_url, "--rate", "20,40", "--arrival", "constant", "--concurrency", "3",
                 "--prompts", "6", "--max-tokens", "4", "--input-scale", "0.1", "--results-dir", str(tmp_path),
                 "--no-chart"])
    out = capsys.readouterr().out
    assert code == 0 and "rate req/s" in out
    (path,) = tmp_path.glob("*.json")
    saved = json.loads(path.read_text())
    assert [(lv["request_rate"], lv["arrival"], lv["kind"], lv["concurrency"]) for lv in saved["levels"]] == [
        (20.0, "constant", "rate", 3), (40.0, "constant", "rate", 3)]
    assert saved["load"]["arrival"] == "constant" and saved["load"]["cap"] == 3
    assert all(lv["metrics"]["completed"] == 6 for lv in saved["levels"])
    from matplotlib.figure import Figure

    from jupyter_ext import charts
    from jupyter_ext.bench import BenchResult

    ax = charts.throughput(BenchResult.load(path), ax=Figure().subplots())
    assert list(ax.lines[-1].get_xdata()) == [20.0, 40.0] and ax.get_xlabel() == "request rate (req/s)"


def test_one_rate_with_several_concurrencies_sweeps_the_cap(schedule_server_factory, tmp_path):
    srv = schedule_server_factory(ttft_ms=2, itl_ms=1)
    r = run_benchmark(url=srv.base_url, results_dir=tmp_path, concurrency=[1, 2], num_prompts=4,
                      request_rate=50.0, **TINY)
    assert [(lv.concurrency, lv.request_rate, lv.arrival) for lv in r.levels] == [(1, 50.0, "poisson"),
                                                                                (2, 50.0, "poisson")]


def test_sweep_measures_saturation_then_rates_up_to_it(schedule_server_factory, tmp_path):
    srv = schedule_server_factory(ttft_ms=5, itl_ms=2)
    r = run_benchmark(url=srv.base_url, results_dir=tmp_path, concurrency=[1, 4], num_prompts=8, sweep_rates=3,
                      **TINY)
    assert [lv.kind for lv in r.levels] == ["saturation", "rate", "rate", "rate"]
    sat = r.levels[0]
    assert sat.concurrency == 4 and sat.request_rate is None
    assert r.saturation["request_throughput"] == sat.metrics.request_throughput > 0
    want = [sat.metrics.request_throughput * k / 3 for k in (1, 2, 3)]
    assert [lv.request_rate for lv in r.levels[1:]] == pytest.approx(want)
    assert all(lv.concurrency == 4 for lv in r.levels[1:])
    saved = json.loads(open(r.path).read())
    assert saved["saturation"]["concurrency"] == 4 and saved["load"]["sweep_rates"] == 3
    assert "saturation" in str(r)


def test_warmup_and_cooldown_are_left_out_and_counted(schedule_server_factory, tmp_path):
    srv = schedule_server_factory(ttft_ms=2, itl_ms=1)
    r = run_benchmark(url=srv.base_url, results_dir=tmp_path, concurrency=[2], num_prompts=6, warmup=3,
                      cooldown=2, **TINY)
    lv = r.levels[0]
    assert (lv.warmup_requests, lv.warmup_failed, lv.cooldown_excluded) == (3, 0, 2)
    assert lv.metrics.completed == 4 and len(lv.samples) == 6
    tail = sorted(lv.samples, key=lambda s: s.finished_at)[-2:]
    assert all(s.cooldown for s in tail) and sum(s.cooldown for s in lv.samples) == 2
    saved = json.loads(open(r.path).read())["levels"][0]
    assert (saved["warmup_requests"], saved["cooldown_excluded"]) == (3, 2)
    with urllib.request.urlopen(srv.base_url + "/stats", timeout=10) as resp:
        assert json.load(resp)["received"] == 9  # warm-up + measured: all sent, all counted


@pytest.mark.parametrize("kw, words", [
    ({"arrival": "bursty"}, "poisson or constant"),
    ({"sweep_rates": 0}, ">= 1"),
    ({"sweep_rates": 2, "request_rate": 1.0}, "not both"),
    ({"cooldown": 4, "num_prompts": 4}, "leaves nothing to measure"),
    ({"request_rate": [1.0, 0.0]}, "> 0"),
    ({"workload_shape": "multi-turn", "request_rate": 2.0}, "closed loop"),
    ({"turns": 0}, "turns"),
    ({"shared_prefix": -1}, "shared prefix"),
    ({"ramp_up_s": -1.0}, "--ramp-up takes seconds >= 0"),
    ({"ramp_up_s": float("inf")}, "--ramp-up takes seconds >= 0"),
    ({"ramp_up_s": 2.0, "request_rate": [1.0, 2.0]}, "arrivals are already spread"),
    ({"workload_shape": "multi-turn", "dataset": "EXAMPLE"}, "dataset's rows are sent as they are"),
    ({"shared_prefix": 50, "dataset": "EXAMPLE"}, "dataset's rows are sent as they are"),
])
def test_bad_load_settings_are_named(kw, words):
    from jupyter_ext.bench.datasets import EXAMPLE_DATASET

    if kw.get("dataset") == "EXAMPLE":
        kw = {**kw, "dataset": str(EXAMPLE_DATASET)}
    with pytest.raises(BenchError, match=words):
        BenchSpec.of(url="http://127.0.0.1:9", **kw)


def echo_app(got: list, served: tuple[str, ...] = ("echo",)):
    """Streams `reply-N` to the N-th request and keeps every request body; /v1/models lists
    `served` (a LoRA server lists its adapters there too)."""
    from aiohttp import web

    lock = threading.Lock()

    async def chat(request):
        body = await request.json()
        with lock:
            got.append(body)
            n = len(got)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        event = {"choices": [{"index": 0, "delta": {"content": f"reply-{n}"}}]}
        await resp.write(b"data: " + json.dumps(event).encode() + b"\n\n")
        usage = {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 1}}
        await resp.write(b"data: " + json.dumps(usage).encode() + b"\n\ndata: [DONE]\n\n")
        return resp

    async def models(_request):
        return web.json_response({"data": [{"id": name} for name in served]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    return app


def test_multi_turn_conversations_carry_the_actual_replies(tmp_path):
    got: list = []
    with running_app(echo_app(got)) as url:
        r = run_benchmark(url=url, results_dir=tmp_path, concurrency=[2], num_prompts=6, warmup=0,
                          workload_shape="multi-turn", turns=3, **TINY)
    assert len(got) == 6 and sorted(s.turn for s in r.levels[0].samples) == [0, 0, 1, 1, 2, 2]
    replies = {json.dumps(b["messages"]): f"reply-{i}" for i, b in enumerate(got, 1)}
    assert sorted(len(b["messages"]) for b in got) == [2, 2, 4, 4, 6, 6]  # system + the turns so far
    for b in (b for b in got if len(b["messages"]) > 2):
        earlier, said = b["messages"][:-2], b["messages"][-2]
        assert said["role"] == "assistant" and said["content"] == replies[json.dumps(earlier)]
    assert r.workload["shape_turns"] == 3


def test_shared_prefix_starts_every_prompt(tmp_path):
    w = build_workload(8, 4, 0.1, seed=3, shared_prefix=100)
    plain = build_workload(8, 4, 0.1, seed=3)
    prefix = w.prompts[0].system
    assert all(p.system == prefix for p in w.prompts) and prefix.startswith("Reference material")
    assert 300 <= len(prefix) - len(plain.prompts[0].system) <= 460  # ~100 tokens at 4 characters each
    assert [p.user for p in w.prompts] == [p.user for p in plain.prompts]  # only the prefix differs
    assert [p.target_input_tokens for p in w.prompts] == [p.target_input_tokens + 100 for p in plain.prompts]
    got: list = []
    with running_app(echo_app(got)) as url:
        r = run_benchmark(url=url, results_dir=tmp_path, concurrency=[2], num_prompts=4, warmup=0,
                          shared_prefix=100, **TINY)
    assert len({b["messages"][0]["content"] for b in got}) == 1 and r.workload["shared_prefix_tokens"] == 100


def test_stopping_a_rate_level_counts_every_request_sent(schedule_server_factory, tmp_path):
    srv = schedule_server_factory(ttft_ms=50, itl_ms=10)
    stop = threading.Event()
    seen: list = []

    def count(sample) -> None:
        seen.append(sample)
        if len(seen) == 5:
            stop.set()

    r = run_benchmark(url=srv.base_url, results_dir=tmp_path, concurrency=[8], num_prompts=200,
                      request_rate=40.0, warmup=0, stop=stop, on_request=count, **TINY)
    with urllib.request.urlopen(srv.base_url + "/stats", timeout=10) as resp:
        received = json.load(resp)["received"]
    assert r.status == "interrupted" and 5 <= len(r.levels[0].samples) < 200
    assert len(r.levels[0].samples) == received == len(seen)  # in flight when stopped: waited for, counted


def test_rate_levels_compare_rate_by_rate(schedule_server_factory, tmp_path):
    from jupyter_ext.bench import Comparison

    fast = schedule_server_factory(ttft_ms=2, itl_ms=1)
    slow = schedule_server_factory(ttft_ms=2, itl_ms=4)
    kw = dict(results_dir=tmp_path, concurrency=[2], num_prompts=4, request_rate=[20.0, 40.0], warmup=0,
              progress=False, max_tokens=8, input_scale=0.1)
    c = Comparison.of(run_benchmark(url=fast.base_url, name="fast", **kw),
                      run_benchmark(url=slow.base_url, name="slow", **kw))
    assert [(r["concurrency"], r["rate req/s"]) for r in c.rows] == [(2, 20.0), (2, 40.0)]
    assert c.ratio("TPOT p50 ms", 2, rate=40.0) < 1  # the faster server's TPOT is the smaller
    with pytest.raises(KeyError, match="at 80.0 req/s"):
        c.ratio("TPOT p50 ms", 2, rate=80.0)


def test_sweep_with_repeats_sends_fresh_prompts_to_every_level_repeat_and_warmup(tmp_path):
    """Merge of i14a (rate levels, --sweep, cool-down) with i14b (repeats, fresh prompt blocks):
    the saturation level and each rate below it are repeated, each repeat on prompts of its own."""
    got: list = []
    with running_app(echo_app(got)) as url:
        r = run_benchmark(url=url, results_dir=tmp_path, concurrency=[2], num_prompts=4, warmup=1, cooldown=1,
                          sweep_rates=2, repeats=2, **TINY)
    assert [lv.kind for lv in r.levels] == ["saturation", "rate", "rate"]
    assert all(lv.repeats["n"] == 2 for lv in r.levels)
    assert all((lv.warmup_requests, lv.cooldown_excluded, len(lv.samples)) == (2, 2, 8) for lv in r.levels)
    assert all(lv.metrics.completed == 6 for lv in r.levels)  # 2 x (4 - 1 cool-down)
    assert len(got) == 3 * 2 * (1 + 4)
    assert len({json.dumps(b["messages"]) for b in got}) == len(got)  # no prompt was sent twice
    indices = [s.prompt_index for lv in r.levels for s in lv.samples]
    assert len(set(indices)) == len(indices) == 24


def test_ramp_up_starts_the_users_evenly_instead_of_at_once(schedule_server_factory, tmp_path):
    srv = schedule_server_factory(ttft_ms=800, itl_ms=1)  # longer than the ramp: each user sends one

    def first_sends(**kw) -> list[float]:
        r = run_benchmark(url=srv.base_url, results_dir=tmp_path, concurrency=[4], num_prompts=4, warmup=0,
                          **TINY, **kw)
        sent = sorted(s.sent_at for s in r.levels[0].samples)
        assert len(sent) == 4 and r.levels[0].metrics.completed == 4
        return [b - a for a, b in zip(sent, sent[1:])], r

    at_once, _ = first_sends()
    assert max(at_once) < 0.1
    ramped, r = first_sends(ramp_up_s=0.6)  # user k starts k * 0.15 s after the first
    assert all(0.12 <= gap < 0.6 for gap in ramped), ramped
    assert json.loads(open(r.path).read())["load"]["ramp_up_s"] == 0.6


def test_ramp_up_reaches_the_cli(schedule_server_factory, tmp_path, capsys):
    srv = schedule_server_factory(ttft_ms=2, itl_ms=1)
    rc = main(["bench", "--url", srv.base_url, "--concurrency", "2", "--prompts", "2", "--max-tokens", "4",
               "--ramp-up", "0.2", "--results-dir", str(tmp_path)])
    assert rc == 0
    saved = json.loads(next(tmp_path.glob("**/*.json")).read_text())
    assert saved["load"]["ramp_up_s"] == 0.2
