"""The timing path of the benchmark client: chunks stamped as read and decoded afterwards,
the microsecond event loop, and the lean stand-in server harness_fidelity.py measures against."""

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from jupyter_ext.bench import run_benchmark
from jupyter_ext.bench.eventloop import PreciseSelector, precise_loop, run
from jupyter_ext.bench.sse import StampedStream, read_stamped
from jupyter_ext.engine import free_port
from jupyter_ext.engine.server import http_ok

ROOT = Path(__file__).resolve().parent.parent


async def _chunks(parts, gap_s=0.0):
    for p in parts:
        if gap_s:
            await asyncio.sleep(gap_s)
        yield p


def _read(parts, gap_s=0.0) -> StampedStream:
    return asyncio.run(read_stamped(_chunks(parts, gap_s), StampedStream()))


def test_each_event_is_timed_by_the_chunk_that_completed_its_line():
    ev = lambda i: b'data: {"choices": [{"delta": {"content": "t%d"}}]}\n\n' % i  # noqa: E731
    a, b = ev(0), ev(1)
    st = _read([a[:10], a[10:] + b[:5], b[5:], b"data: [DONE]\n\n"], gap_s=0.01)
    assert [e["choices"][0]["delta"]["content"] for _, e in st.events] == ["t0", "t1"]
    assert st.events[0][0] == st.times[1] and st.events[1][0] == st.times[2]
    assert st.times == sorted(st.times) and st.times[2] - st.times[1] >= 0.009
    assert st.done


def test_done_inside_a_reply_text_does_not_end_the_stream():
    text = b'data: {"choices": [{"delta": {"content": "say data: [DONE] now"}}]}\n\n'
    st = _read([text, b'data: {"choices": [{"delta": {"content": "more"}}]}\n\n', b"data: [DONE]\n\n",
                b'data: {"late": 1}\n\n'])
    assert [e["choices"][0]["delta"]["content"] for _, e in st.events] == ["say data: [DONE] now", "more"]
    assert st.done and len(st.chunks) == 3  # stopped reading at the real [DONE]


def test_done_split_over_two_chunks_still_stops_the_read():
    async def endless():
        yield b'data: {"choices": [{"text": "a"}]}\n\ndata: [DO'
        yield b"NE]\n\n"
        await asyncio.sleep(30)  # a server that keeps the stream open after [DONE]
        yield b""

    t = time.perf_counter()
    st = asyncio.run(asyncio.wait_for(read_stamped(endless(), StampedStream()), 5))
    assert st.done and time.perf_counter() - t < 5 and len(st.events) == 1


def test_done_cut_into_tiny_chunks_stops_the_read_without_decoding():
    async def endless():
        for part in (b'data: {"choices": [{"text": "a"}]}\n', b"\nd", b"ata", b": [D", b"ON", b"E]\n\n"):
            yield part
        await asyncio.sleep(30)  # a server that keeps the stream open after [DONE]
        yield b""

    st = asyncio.run(asyncio.wait_for(read_stamped(endless(), StampedStream(), decode=False), 5))
    assert len(st.chunks) == 6 and st.events == []  # stopped at the [DONE] line, nothing decoded yet
    assert [e["choices"][0]["text"] for _, e in st.parse(final=True)] == ["a"] and st.done


def test_a_stream_without_done_or_final_newline_is_read_to_its_end():
    st = _read([b'data: {"choices": [{"text": "a"}]}\n\n', b'data: {"choices": [{"text": "b"}]}'])
    assert [e["choices"][0]["text"] for _, e in st.events] == ["a", "b"] and not st.done


def test_a_line_that_is_no_json_raises_with_the_line():
    with pytest.raises(json.JSONDecodeError) as e:
        _read([b"<html>oops</html>\n"])
    assert "oops" in e.value.doc


def test_precise_selector_waits_in_microseconds_then_collects_without_waiting(monkeypatch):
    import select as select_mod

    waits = []
    real = select_mod.select
    monkeypatch.setattr(select_mod, "select", lambda r, w, x, t: (waits.append(t), real(r, w, x, 0))[1])
    sel = PreciseSelector()
    try:
        assert sel.select(0.0023) == [] and waits == [0.0023]  # epoll alone would wait 3 ms
        spinning = PreciseSelector(spin_s=0.001)
        assert spinning.select(0.0005) == [] and waits == [0.0023]  # within the spin: poll, no wait
        spinning.select(0.004)
        assert waits[-1] == pytest.approx(0.003)
        spinning.close()
    finally:
        sel.close()
    loop = precise_loop()
    try:
        assert isinstance(loop._selector, PreciseSelector)
    finally:
        loop.close()


def test_run_returns_the_coroutines_value():
    async def answer():
        await asyncio.sleep(0)
        return 42

    assert run(answer()) == 42


@pytest.fixture
def lean_server():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "jupyter_ext.bench.schedule_server_lean", "--port", str(port),
                             "--ttft-ms", "30", "--itl-ms", "5"], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not http_ok(url + "/health"):
        assert proc.poll() is None and time.monotonic() < deadline, "lean schedule server did not start"
        time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def test_the_lean_server_streams_the_schedule_with_its_stamps(lean_server, tmp_path):
    r = run_benchmark(url=lean_server, concurrency=[1, 8], num_prompts=8, max_tokens=6, warmup=0,
                      input_scale=0.1, results_dir=tmp_path, progress=False)
    assert r.status == "complete"
    for level in r.levels:
        assert level.metrics.completed == 8 and level.metrics.failed == 0 and level.metrics.usage_from_server
        for s in level.samples:
            stamps = re.findall(r" (\d+):([\d.]+):([\d.]+)", s.text)
            assert [int(i) for i, _, _ in stamps] == list(range(6)) and len(s.chunk_times_s) == 6
            t0, writes = float(stamps[0][1]), [float(w) for _, _, w in stamps]
            # one clock for both processes: written after the request was read, read after written
            assert s.sent_at <= t0 and writes[0] >= t0 + 0.030
            assert all(s.sent_at + c >= w for c, w in zip(s.chunk_times_s, writes))
    with urllib.request.urlopen(lean_server + "/lateness?reset=1") as resp:
        late = json.load(resp)
    assert late["count"] == 16 * 6 and late["p50_s"] >= 0
    with urllib.request.urlopen(lean_server + "/lateness") as resp:
        assert json.load(resp)["count"] == 0
