"""Fleet simulation: hand-computed small cases for service, queueing, alarms, cooldowns,
launch delays, zero capacity and scale-in, plus determinism, validation and the chart."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from jupyter_ext.autoscale import sim_traffic as traffic
from jupyter_ext.autoscale.policy import AutoscalingConfig
from jupyter_ext.autoscale.sim_policy import INVOCATIONS
from jupyter_ext.autoscale.simulate import (FleetConfig, ServiceCurve, StepAdjustment, StepPolicy,
                                            StepScaling, TargetTracking, simulate)
from jupyter_ext.errors import AutoscaleError, SimulationError

FLAT = ServiceCurve(points=[(1, 0.1, 0.01)])  # 0.1 s to first token, then 0.01 s per token


def fleet(**kw) -> FleetConfig:
    base = dict(curve=FLAT, min_capacity=1, max_capacity=1, max_num_seqs=8, metric_delay_s=0.0,
                provisioning_s=100.0, container_start_s=20.0, model_load_s=30.0,
                model_load_cached_s=10.0)
    base.update(kw)
    return FleetConfig(**base)


def trace(times, out=10, duration=None, change=None):
    return traffic.replay(times, output_tokens=out, input_tokens=100, duration_s=duration,
                          change_s=change)


def long_pair(duration=600.0):
    """Two requests at t=0 that stay in flight for 1000 s: concurrency 2 throughout."""
    return trace([0.0, 0.0], out=100_000, duration=duration, change=0.0)


def test_flat_curve_exact_times():
    res = simulate(trace([0.0, 0.05]), fleet())
    rq = res.requests
    assert rq.start.tolist() == pytest.approx([0.0, 0.05])
    assert rq.first_token.tolist() == pytest.approx([0.1, 0.15])
    assert rq.end.tolist() == pytest.approx([0.19, 0.24])  # 0.1 + 9 x 0.01 after start
    assert rq.ttft.tolist() == pytest.approx([0.1, 0.1])


def test_queueing_when_one_sequence_at_a_time():
    rq = simulate(trace([0.0, 0.05]), fleet(max_num_seqs=1)).requests
    assert rq.start.tolist() == pytest.approx([0.0, 0.19])
    assert rq.first_token.tolist() == pytest.approx([0.1, 0.29])
    assert rq.end.tolist() == pytest.approx([0.19, 0.38])


def test_progress_rate_follows_in_flight_count():
    # Alone: ttft 0.1, tpot 0.01; two in flight: ttft 0.2, tpot 0.02.
    # req0 prefills half alone (0-0.05), the rest at half speed: first token 0.15.
    # req1 prefills 0.05-0.25 shared: first token 0.25. req0 decodes 9 tokens shared: 0.33.
    # req1 decodes 4 tokens shared (0.25-0.33), then 5 alone at 0.01: ends 0.38.
    curve = ServiceCurve(points=[(1, 0.1, 0.01), (2, 0.2, 0.02)])
    rq = simulate(trace([0.0, 0.05]), fleet(curve=curve)).requests
    assert rq.first_token.tolist() == pytest.approx([0.15, 0.25])
    assert rq.end.tolist() == pytest.approx([0.33, 0.38])


def test_scale_out_alarm_fires_after_exactly_three_datapoints():
    policy = TargetTracking(target=1.0, period_s=10)
    res = simulate(long_pair(), fleet(max_capacity=3, policies=[policy]))
    first = [e for e in res.alarms if e.alarm == "scale-out" and e.state == "ALARM"][0]
    assert first.t == pytest.approx(30.0)  # datapoints at 10, 20, 30 s, each averaging 2 > 1
    assert res.time_to_detect_s == pytest.approx(30.0)
    delayed = simulate(long_pair(), fleet(max_capacity=3, policies=[policy], metric_delay_s=15.0))
    assert delayed.time_to_detect_s == pytest.approx(45.0)


def test_new_replica_serves_only_after_provisioning_start_and_load():
    policy = TargetTracking(target=1.0, period_s=10)
    times = [0.0, 0.0, 179.0, 181.0]
    res = simulate(trace(times, out=100_000, duration=600.0, change=0.0),
                   fleet(max_capacity=2, policies=[policy]))
    out = res.activities[0]
    assert (out.t, out.from_capacity, out.to_capacity) == (30.0, 1, 2)
    assert out.ready_s == pytest.approx(30.0 + 100 + 20 + 30)
    assert res.requests.replica.tolist() == [0, 0, 0, 1]  # 179 s is too early for replica 1
    assert res.time_to_new_capacity_s == pytest.approx(181.0)
    cached = simulate(trace(times, out=100_000, duration=600.0, change=0.0),
                      fleet(max_capacity=2, policies=[policy], compile_cache=True))
    assert cached.activities[0].ready_s == pytest.approx(30.0 + 100 + 20 + 10)


def _plus_one(cooldown: int) -> StepPolicy:
    """+1 instance when the largest in-flight count sampled in a 10 s period is >= 1."""
    return StepPolicy(StepScaling(threshold=1.0, steps=[StepAdjustment(0.0, None, 1)],
                                  statistic="Maximum", period_s=10, evaluation_periods=1,
                                  datapoints_to_alarm=1, cooldown_s=cooldown))


def test_cooldown_blocks_a_second_scale_out():
    slow = dict(max_capacity=10, provisioning_s=5000.0)  # new capacity never lowers the metric
    res = simulate(long_pair(), fleet(policies=[_plus_one(300)], **slow))
    # alarm at 10 s, re-invoked each minute; +1 again only once the cooldown ends at 310 s
    assert [a.t for a in res.activities] == [10.0, 310.0]
    assert [a.to_capacity for a in res.activities] == [2, 3]
    free = simulate(long_pair(), fleet(policies=[_plus_one(0)], **slow))
    assert [a.t for a in free.activities][:3] == [10.0, 70.0, 130.0]


def _from_zero(at_zero: str):
    """The policies autoscale.policy attaches for min_capacity 0, simulated: the from-zero step
    on NoCapacityInvocationFailures has a 30 s period and 1 of 1 datapoints."""
    config = AutoscalingConfig(min_capacity=0, max_capacity=1, target_value=5.0)
    tr = trace([5.0, 6.0, 300.0], duration=400.0, change=5.0)
    return simulate(tr, FleetConfig.from_autoscaling(
        config, FLAT, initial_capacity=0, at_zero=at_zero, metric_delay_s=0.0,
        provisioning_s=100.0, container_start_s=20.0, model_load_s=30.0))


def test_reject_at_zero_capacity():
    res = _from_zero("reject")
    assert res.requests.status.tolist() == [2, 2, 1]  # rejected, rejected, served
    assert (res.activities[0].t, res.activities[0].policy) == (30.0, "from zero")
    assert res.summary()["rejected"] == 2


def test_buffer_at_zero_capacity():
    res = _from_zero("buffer")
    ready = 30.0 + 150.0
    assert res.requests.status.tolist() == [1, 1, 1]
    assert res.requests.start[:2].tolist() == pytest.approx([ready, ready])
    assert res.requests.first_token[0] == pytest.approx(ready + 0.1)
    assert res.requests.ttft[0] == pytest.approx(ready + 0.1 - 5.0)


def _scale_in(mode: str):
    policy = TargetTracking(target=10.0, period_s=10, scale_in_hold_s=60.0)
    tr = trace([0.0, 0.0], out=10_000, duration=200.0)  # each request lasts 100.09 s
    return simulate(tr, fleet(min_capacity=1, max_capacity=2, initial_capacity=2,
                              scale_in_mode=mode, policies=[policy]))


def test_scale_in_drains_or_cuts():
    drained = _scale_in("drain")
    act = drained.activities[0]
    assert (act.t, act.direction, act.to_capacity) == (60.0, "in", 1)
    assert drained.requests.status.tolist() == [1, 1]
    assert drained.replicas[0]["ended_s"] == pytest.approx(0.1 + 9999 * 0.01)
    cut = _scale_in("cut")
    assert cut.requests.status.tolist() == [3, 1]
    assert cut.requests.end[0] == pytest.approx(60.0)


def test_scale_in_needs_every_policy_to_agree():
    tr = trace([0.0, 0.0], out=10_000, duration=90.0)  # both requests in flight throughout
    low = TargetTracking(target=10.0, scale_in_hold_s=60.0)
    busy = TargetTracking(target=0.5, scale_in_hold_s=60.0)  # 1 in flight per instance: not low
    res = simulate(tr, fleet(max_capacity=2, initial_capacity=2, policies=[low, busy]))
    assert [a.direction for a in res.activities] == []
    alone = simulate(tr, fleet(max_capacity=2, initial_capacity=2, policies=[low]))
    assert [a.direction for a in alone.activities] == ["in"]


def test_invocations_metric_per_instance_per_minute():
    policy = TargetTracking(target=1000.0, metric=INVOCATIONS, period_s=60)
    tr = trace(np.linspace(0.0, 59.0, 30), duration=120.0)
    res = simulate(tr, fleet(max_capacity=2, policies=[policy]))
    assert res.datapoints["InvocationsPerInstance@60s"]["value"][:2] == pytest.approx([30.0, 0.0])


def test_same_seed_same_result_and_cost():
    tr1 = traffic.ramp([(0, 2.0), (120, 6.0)], 600.0, seed=7)
    tr2 = traffic.ramp([(0, 2.0), (120, 6.0)], 600.0, seed=7)
    assert np.array_equal(tr1.arrivals, tr2.arrivals)
    cfg = dict(curve=ServiceCurve.estimate(30.0, 16.0), max_capacity=6, routing="random",
               usd_per_hour=1.5, policies=[TargetTracking(target=5.0)])
    a = simulate(tr1, FleetConfig(**cfg), seed=3)
    b = simulate(tr2, FleetConfig(**cfg), seed=3)
    assert np.array_equal(a.requests.end, b.requests.end, equal_nan=True)
    assert a.cost_usd == b.cost_usd > 0
    c = simulate(tr1, FleetConfig(**cfg), seed=4)
    assert not np.array_equal(a.requests.replica, c.requests.replica)
    assert traffic.ramp([(0, 2.0)], 600.0, seed=8).arrivals.size != tr1.arrivals.size or \
        not np.array_equal(traffic.ramp([(0, 2.0)], 600.0, seed=8).arrivals, tr1.arrivals)


@pytest.mark.parametrize("make", [
    lambda: traffic.poisson(-1.0, 60.0),
    lambda: traffic.ramp([(0, 1.0), (0, 2.0)], 60.0),
    lambda: traffic.replay([2.0, 1.0]),
    lambda: ServiceCurve(points=[]),
    lambda: ServiceCurve(points=[(0, 0.1, 0.01)]),
    lambda: TargetTracking(target=0).validate(),
    lambda: TargetTracking(target=5, period_s=15).validate(),
    lambda: TargetTracking(target=5, metric=INVOCATIONS, period_s=10).validate(),
    lambda: simulate(trace([0.0]), fleet(policies=[StepPolicy(StepScaling(
        threshold=1.0, steps=[StepAdjustment(0.0, None, 1)], statistic="Sum"))])),
    lambda: simulate(trace([0.0]), fleet(min_capacity=3, max_capacity=2)),
    lambda: simulate(trace([0.0]), fleet(routing="round_robin")),
    lambda: simulate(trace([0.0, 5.0]), fleet(), until_s=1.0),
    lambda: simulate(trace([0.0]), fleet(provisioning_s=-1.0)),
])
def test_invalid_inputs_raise_simulation_error(make):
    with pytest.raises(SimulationError):
        make()


def test_step_gaps_are_refused_by_the_shared_policy_schema():
    with pytest.raises(AutoscaleError):
        StepScaling(threshold=1.0,
                    steps=[StepAdjustment(0.0, 1.0, 1), StepAdjustment(2.0, None, 2)])


def test_service_curve_interpolates_and_extrapolates():
    curve = ServiceCurve(points=[(4, 0.2, 0.02), (8, 0.4, 0.03)])
    assert curve.at(1) == pytest.approx((0.2, 0.02))  # flat below the first point
    assert curve.at(6) == pytest.approx((0.3, 0.025))
    assert curve.at(12) == pytest.approx((0.6, 0.04))  # last slope continues
    level = SimpleNamespace(concurrency=2, metrics=SimpleNamespace(
        ttft=SimpleNamespace(p50=0.3), tpot=SimpleNamespace(p50=0.04)))
    assert ServiceCurve.from_result(SimpleNamespace(levels=[level])).points == ((2, 0.3, 0.04),)
    with pytest.raises(SimulationError):
        ServiceCurve.from_result(object())
    est = ServiceCurve.estimate(batch1_tok_s=50.0, saturation_concurrency=8.0)
    assert est.at(1)[1] == pytest.approx(0.02)
    assert est.at(64)[1] > est.at(8)[1] > est.at(1)[1]


def test_result_serialises_and_summarises():
    res = simulate(long_pair(120.0), fleet(max_capacity=2, usd_per_hour=3.6,
                                           policies=[TargetTracking(target=1.0)]),
                   ttft_slo_s=0.5)
    data = json.loads(json.dumps(res.to_dict(include_requests=True)))
    assert data["summary"]["requests"] == 2
    assert res.instance_hours == pytest.approx((120.0 + (120.0 - 30.0)) / 3600.0)
    assert res.cost_usd == pytest.approx(res.instance_hours * 3.6)
    assert "time to detect" in str(res) and "<table>" in res._repr_html_()


def test_timeline_chart_draws_traffic_capacity_and_alarms():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from jupyter_ext.autoscale.timeline import timeline_chart

    res = simulate(long_pair(), fleet(max_capacity=3, policies=[TargetTracking(target=1.0)]))
    ax = timeline_chart(res)
    labels = {line.get_label() for a in ax.figure.axes for line in a.get_lines()}
    assert {"arrivals (req/s)", "in flight (requests)", "InService", "InService + pending",
            "scale-out alarm"} <= labels
    import matplotlib.pyplot as plt

    plt.close(ax.figure)
