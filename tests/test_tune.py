"""`tune` with a fake measure function (no vLLM): roofline pruning, the winner, equality
with a full grid search, the recipe file, deployment sizing, and the faces."""

import math
import random

import pytest

from jupyter_ext.bench.slo import SLO
from jupyter_ext.errors import OptimizeError
from jupyter_ext.planning.tune import best_of, tune, winner_recipe_file
from jupyter_ext.planning.tune_space import SearchSpace, bound, default_space, static_prune
from jupyter_ext.recipes import load_recipe
from synthetic_results import result

LLAMA = "meta-textgeneration-llama-3-8b-instruct"
GPU = "ml.g5.2xlarge"  # one A10G (24 GB, 600 GB/s)


class FakeBench:
    """Measured = the roofline bound times a slowdown per candidate and level (>= 1: no
    measurement beats its bound); TTFT grows with concurrency. Speculation streams its
    k+1 tokens a step in one chunk, as vLLM does."""

    def __init__(self, space, instance, slowdown, ttft_per_slot=0.05):
        self.by_name = {c.recipe.name: c for c in space.candidates}
        self.instance, self.slowdown, self.ttft = instance, slowdown, ttft_per_slot
        self.calls = []

    def __call__(self, recipe, levels):
        c = self.by_name[recipe.name]
        self.calls.append((c.label, list(levels)))
        if any((static_prune(c, n, self.instance, SLO.parse("e2e_p50=1000s"), 20) or "").startswith("memory")
               for n in levels):
            raise OptimizeError(f"{c.label} does not fit: the server runs out of memory")  # as a real one would
        pts = [(n, self.ttft * n, bound(c, n, self.instance).tpot_s * self.slowdown(c.label, n)) for n in levels]
        return result(c.label, pts, instance=self.instance, tokens_per_chunk=1 + c.draft_tokens)


def smooth(label, n):
    return {"baseline": 1.5, "ngram k=2": 2.5, "ngram k=4": 4.0, "suffix": 7.0, "awq int4": 1.8,
            "compile on": 1.4, "dtype float32": 1.2}[label] * (1 + n / 8)


def test_roofline_prunes_what_cannot_meet_the_slo():
    space = SearchSpace(default_space(LLAMA), (1, 2, 4, 8))
    fake = FakeBench(space, GPU, smooth)
    # 16 GB of fp16 weights at 600 GB/s: a step takes >= 26.8 ms; the SLO asks for TPOT <= 20 ms
    out = tune(space, "tpot_p50=20ms,ttft_p99=1s", fake, instance=GPU, max_tokens=20)
    measured = {label for label, _ in fake.calls}
    assert "baseline" not in measured and "compile on" not in measured
    base_rows = [r for r in out.rows if r.candidate == "baseline"]
    assert len(base_rows) == 4 and all(r.status == "pruned" and r.reason.startswith("roofline: TPOT") for r in base_rows)
    fp32 = [r for r in out.rows if r.candidate == "dtype float32"]
    assert all(r.status == "pruned" and "memory" in r.reason for r in fp32)  # 32 GB of weights > 24 GB
    assert "awq int4" in measured or any("cannot beat" in r.reason for r in out.rows if r.candidate == "awq int4")
    assert out.winner is not None and out.winner.slo_met


def test_winner_is_the_cheapest_slo_meeting_row_and_equals_the_grid():
    space = SearchSpace(default_space(LLAMA), (1, 2, 4, 8))
    slo = "tpot_p50=30ms,ttft_p99=0.25s"
    fast = tune(space, slo, FakeBench(space, GPU, smooth), instance=GPU, max_tokens=20)
    grid_fake = FakeBench(space, GPU, smooth)
    grid = tune(space, slo, grid_fake, instance=GPU, max_tokens=20, grid=True)
    assert grid.measured_levels == 6 * 4 and not any(r.status == "pruned" for r in grid.rows)
    assert {r.candidate for r in grid.rows if r.status == "failed"} == {"dtype float32"}
    assert fast.measured_levels < grid.measured_levels
    assert (fast.winner.candidate, fast.winner.concurrency) == (grid.winner.candidate, grid.winner.concurrency)
    assert fast.winner.usd_per_1M == pytest.approx(grid.winner.usd_per_1M)
    ok = [r for r in grid.rows if r.slo_met]
    assert grid.winner.usd_per_1M == min(r.usd_per_1M for r in ok)
    assert all(not r.slo_met for r in grid.rows if r.concurrency == 8)  # TTFT 0.4 s > 0.25 s
    assert fast.ranked()[0] is fast.winner and "winner" in str(fast)


@pytest.mark.parametrize("seed", range(12))
def test_tune_equals_a_full_grid_search_on_random_spaces(seed):
    rng = random.Random(seed)
    table = {(c.label, n): 1 + rng.random() * 6 for c in default_space(LLAMA) for n in (1, 2, 4, 8, 16)}
    space = SearchSpace(default_space(LLAMA), (1, 2, 4, 8, 16))
    slo = rng.choice(["tpot_p50=25ms,ttft_p99=0.5s", "tpot_p50=60ms", "e2e_p50=2s,ttft_p99=0.3s", "itl_p90=15ms"])
    slow = lambda label, n: table[(label, n)]  # noqa: E731
    fast = tune(space, slo, FakeBench(space, GPU, slow), instance=GPU, max_tokens=20)
    grid = tune(space, slo, FakeBench(space, GPU, slow), instance=GPU, max_tokens=20, grid=True)
    g = best_of(grid.rows)
    if g is None:
        assert fast.winner is None
    else:
        assert fast.winner.usd_per_1M == pytest.approx(g.usd_per_1M)
        assert fast.winner.usd_per_1M <= g.usd_per_1M + 1e-12


def test_the_winner_recipe_file_loads(tmp_path):
    space = SearchSpace(default_space(LLAMA), (1, 2, 4))
    out = tune(space, "tpot_p50=30ms", FakeBench(space, GPU, smooth), instance=GPU, max_tokens=20)
    path = winner_recipe_file(out, tmp_path / "tuned.yaml")
    rec = load_recipe(path)
    assert rec.name == out.winner_recipe.name and rec.techniques == out.winner_recipe.techniques
    assert "tune winner under tpot_p50=30ms" in rec.description and rec.model == LLAMA
    impossible = tune(space, "tpot_p50=1ms", FakeBench(space, GPU, smooth), instance=GPU, max_tokens=20)
    assert impossible.winner is None and all(r.status == "pruned" for r in impossible.rows)
    with pytest.raises(OptimizeError, match="no candidate met the SLO"):
        winner_recipe_file(impossible, tmp_path / "none.yaml")


def test_a_candidate_that_cannot_be_measured_is_marked_failed_and_the_search_goes_on():
    space = SearchSpace(default_space(LLAMA), (1, 2))
    fake = FakeBench(space, GPU, smooth)

    def measure(recipe, levels):
        if recipe.name == "tune-awq":
            raise OptimizeError("server did not start")
        return fake(recipe, levels)

    out = tune(space, "tpot_p50=30ms", measure, instance=GPU, max_tokens=20, grid=True)
    awq = [r for r in out.rows if r.candidate == "awq int4"]
    assert all(r.status == "failed" and "server did not start" in r.reason for r in awq)
    assert out.winner is not None and out.winner.candidate != "awq int4"


def test_sizing_from_the_knee_is_checked_in_the_fleet_simulator():
    from jupyter_ext.autoscale.sizing import size_deployment

    space = SearchSpace(default_space(LLAMA), (1, 2, 4, 8))
    out = tune(space, "tpot_p50=30ms,ttft_p99=1s", FakeBench(space, GPU, smooth), instance=GPU, max_tokens=20)
    w = out.winner
    s = size_deployment(out, target_rps=10 * w.request_rps, precision="awq-int4")
    assert s.copies_per_instance == 1 and s.instance_count == math.ceil(10 / 0.8)
    assert s.concurrent_requests_per_copy == max(1, math.floor(0.8 * w.concurrency))
    assert s.simulated_slo_attainment is not None and 0 <= s.simulated_slo_attainment <= 1
    assert "ConcurrentRequestsPerCopy" in str(s)
    multi = size_deployment(out, target_rps=1.0, precision="awq-int4", simulate_check=False)
    assert multi.instance_count == 1
    with pytest.raises(OptimizeError, match="target-rps"):
        size_deployment(out, target_rps=0)


def test_sizing_puts_one_copy_per_gpu_that_holds_the_model():
    from jupyter_ext.autoscale.sizing import accelerators_per_copy, size_deployment

    four = "ml.g5.12xlarge"  # 4 x A10G 24 GB
    assert accelerators_per_copy(LLAMA, "awq-int4", 8, four) == 1
    assert accelerators_per_copy(LLAMA, "fp32", 1, four) == 2  # 32 GB of weights: two GPUs a copy
    assert accelerators_per_copy(LLAMA, "fp16", 1, "local") == 0
    space = SearchSpace(default_space(LLAMA), (1, 2, 4))
    out = tune(space, "tpot_p50=30ms", FakeBench(space, four, smooth), instance=four, max_tokens=20)
    s = size_deployment(out, target_rps=8 * out.winner.request_rps, precision="awq-int4", simulate_check=False)
    assert s.copies_per_instance == 4 and s.instance_count == math.ceil(8 / (4 * 0.8))
    assert s.concurrent_requests_per_model == 4 * s.concurrent_requests_per_copy


def test_cpu_space_prunes_what_this_host_cannot_run(monkeypatch):
    from jupyter_ext.planning import tune_space

    space = SearchSpace.of(None, concurrency=(1, 2))
    monkeypatch.setattr(tune_space, "host_problem", lambda c, inst: "host: no int4 kernel" if "awq" in c.label else None)
    from jupyter_ext.planning import tune as tune_mod

    monkeypatch.setattr(tune_mod, "host_problem", tune_space.host_problem)
    fake = FakeBench(space, "local", smooth)
    out = tune(space, "tpot_p50=500ms", fake, instance="local", max_tokens=20)
    assert all(r.status == "pruned" and r.reason.startswith("host") for r in out.rows if r.candidate == "awq int4")
    assert out.winner is not None


def test_bad_input_names_the_fix():
    from jupyter_ext.verbs.tune import tune as verb

    with pytest.raises(OptimizeError, match="needs an SLO"):
        verb(slo=None)
    with pytest.raises(OptimizeError, match="form is"):
        verb(slo="fast please")
    with pytest.raises(OptimizeError):
        verb(slo="tpot_p50=1s", instance="ml.nope.xlarge")
    with pytest.raises(OptimizeError, match="concurrency"):
        SearchSpace(default_space(), (0,))
    assert SLO.parse("tpot_p50=1s")


def test_the_verb_writes_the_recipe_and_sizes(tmp_path):
    from jupyter_ext.verbs import FUNCTIONS

    space = SearchSpace(default_space(LLAMA), (1, 2, 4))
    fake = FakeBench(space, GPU, smooth)
    out = FUNCTIONS["tune"](model=LLAMA, slo="tpot_p50=30ms,ttft_p99=1s", instance=GPU, concurrency=[1, 2, 4],
                            max_tokens=20, output=str(tmp_path / "w.yaml"), target_rps=5.0, measure=fake,
                            results_dir=str(tmp_path / "res"))
    assert load_recipe(tmp_path / "w.yaml").name == out.winner_recipe.name
    import json

    saved = json.loads(open(out.path).read())
    assert out.path.startswith(str(tmp_path / "res")) and saved["winner"]["candidate"] == out.winner.candidate
    assert saved["sizing"]["instance_count"] == out.sizing.instance_count
    assert out.sizing is not None and out.sizing.instance_count >= 1
    assert out.to_dict()["winner"]["candidate"] == out.winner.candidate
