"""The measured memory bandwidth of `local` (base/bandwidth.py): measured once per machine and
cached, overridable, and used by tune's roofline bound so its pruning is real there. The probe
is stubbed (no timing is asserted); one test runs the real probe for its shape only."""

from __future__ import annotations

import json

import pytest

from jupyter_ext.base import bandwidth
from jupyter_ext.bench.slo import SLO
from jupyter_ext.errors import PlanError
from jupyter_ext.planning import roofline
from jupyter_ext.planning.planner import weight_bytes
from jupyter_ext.planning.tune_space import (CPU_BANDWIDTH_BOUND_GBS, LOCAL_BANDWIDTH_HEADROOM, bound, candidate,
                                             static_prune)


class Probe:
    def __init__(self, gbs: float) -> None:
        self.gbs, self.calls = gbs, 0

    def __call__(self) -> float:
        self.calls += 1
        return self.gbs


@pytest.fixture(autouse=True)
def no_override(monkeypatch, tmp_path):
    monkeypatch.delenv(bandwidth.BANDWIDTH_ENV, raising=False)
    monkeypatch.setenv("JUPYTER_OPTIMIZE_CACHE", str(tmp_path / "cache"))


def test_measured_once_per_machine_then_cached(tmp_path, monkeypatch):
    cache, probe = tmp_path / "bw.json", Probe(12.5)
    first = bandwidth.memory_bandwidth_gbs(cache, probe)
    again = bandwidth.memory_bandwidth_gbs(cache, Probe(99.0))  # a second probe is never asked
    assert (first["gbs"], again["gbs"], probe.calls) == (12.5, 12.5, 1)
    assert first["source"].startswith("measured") and again["source"].endswith("(cached)")
    saved = json.loads(cache.read_text())
    assert list(saved) == [bandwidth.machine_key()] and saved[bandwidth.machine_key()]["gbs"] == 12.5
    monkeypatch.setattr(bandwidth, "machine_key", lambda: "other-host|other cpu|8")
    assert bandwidth.memory_bandwidth_gbs(cache, Probe(40.0))["gbs"] == 40.0  # another machine: its own figure
    assert len(json.loads(cache.read_text())) == 2


def test_a_corrupt_cache_is_measured_again_and_rewritten(tmp_path):
    cache = tmp_path / "bw.json"
    cache.write_text("{not json")
    assert bandwidth.memory_bandwidth_gbs(cache, Probe(7.0))["gbs"] == 7.0
    assert json.loads(cache.read_text())[bandwidth.machine_key()]["gbs"] == 7.0


def test_the_override_wins_and_a_bad_one_is_named(tmp_path, monkeypatch):
    cache, probe = tmp_path / "bw.json", Probe(7.0)
    monkeypatch.setenv(bandwidth.BANDWIDTH_ENV, "31.5")
    assert bandwidth.memory_bandwidth_gbs(cache, probe)["gbs"] == 31.5 and probe.calls == 0
    for bad in ("fast", "0", "-3"):
        monkeypatch.setenv(bandwidth.BANDWIDTH_ENV, bad)
        with pytest.raises(PlanError, match="GB/s, a number > 0"):
            bandwidth.memory_bandwidth_gbs(cache, probe)
    assert not cache.exists()


def test_local_bound_uses_the_measured_bandwidth_and_prunes(monkeypatch):
    monkeypatch.setattr(bandwidth, "copy_bandwidth_gbs", Probe(1.0))  # a slow machine: 1 GB/s
    c = candidate("baseline")
    wb = weight_bytes(c.recipe.model, c.precision).total_bytes
    b = bound(c, 1, "local")
    assert b.step_s == pytest.approx(wb / (LOCAL_BANDWIDTH_HEADROOM * 1e9))
    assert "measured" in b.basis and roofline.local_bandwidth_gbs()["gbs"] == 1.0
    # the default model's ~270 MB of bf16 weights at <= 2 GB/s: >= 100 ms a token, so a 50 ms
    # TPOT SLO is out of reach; the old constant (200 GB/s) could not have said so
    assert wb / (CPU_BANDWIDTH_BOUND_GBS * 1e9) < 0.05 < b.tpot_s
    why = static_prune(c, 1, "local", SLO.parse("tpot_p50=50ms"), 20)
    assert why is not None and why.startswith("roofline: TPOT")
    assert static_prune(c, 1, "local", SLO.parse("tpot_p50=2s"), 20) is None


def test_the_real_probe_returns_a_positive_figure():
    assert bandwidth.copy_bandwidth_gbs(mib=16, tries=2, threads=2) > 0
