"""The event loop behind `simulate()`: replicas, routing, metrics, alarms and launches.

Events live in one heap as (time, seq, kind, a, b). A replica's next completion is pushed
again whenever its in-flight count changes; the old entry is left in the heap and skipped
by its version number (lazy deletion), which keeps each change O(log events). Arrivals
are read in order from the traffic arrays and never enter the heap. On equal times heap
events go first, so a metric period [t - P, t) does not see an arrival at t and a
completion at t frees its slot before the next arrival is routed.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections import deque
from operator import attrgetter
from typing import TYPE_CHECKING

from jupyter_ext.autoscale.sim_policy import (CONCURRENCY, INVOCATIONS, Autoscaler,
                                              ScalingActivity)
from jupyter_ext.autoscale.sim_result import CUT, DONE, REJECTED, UNSERVED

if TYPE_CHECKING:
    from jupyter_ext.autoscale.simulate import FleetConfig
    from jupyter_ext.autoscale.sim_traffic import Traffic

TICK_S = 10  # every CloudWatch period the simulation supports is a multiple of 10 s
_STEP, _TICK, _EVAL, _READY = 0, 1, 2, 3
_OUT = attrgetter("out")
_INF = math.inf


class Replica:
    """One instance: its running batch (two virtual clocks + heaps) and its waiting queue."""

    __slots__ = ("idx", "state", "run", "out", "queue", "vp", "vd", "t", "pheap", "dheap",
                 "ver", "launched", "ready", "ended", "first_start", "served")

    def __init__(self, idx: int, t: float) -> None:
        self.idx, self.state, self.run, self.out, self.queue = idx, "pending", 0, 0, deque()
        self.vp = self.vd = 0.0  # prompts prefilled / tokens decoded by one request so far
        self.t, self.pheap, self.dheap, self.ver = t, [], [], 0
        self.launched, self.ready, self.ended, self.first_start = t, None, None, None
        self.served = 0


class Engine:
    """Runs one simulation; `run()` fills the per-request lists and the logs read by the result."""

    def __init__(self, traffic: "Traffic", fleet: "FleetConfig", until_s: float, seed: int) -> None:
        self.fleet, self.until = fleet, until_s
        self.max_seqs = fleet.max_num_seqs
        self.ttft, self.tpot = fleet.curve.table(self.max_seqs)
        self.inv_ttft = [1.0 / x for x in self.ttft]
        self.inv_tpot = [1.0 / x for x in self.tpot]
        n = len(traffic)
        self.arr = traffic.arrivals.tolist()
        ref = fleet.curve.input_tokens
        self.work = (traffic.input_tokens / ref).tolist() if ref else [1.0] * n
        self.dec = (traffic.output_tokens - 1).tolist()
        # Sessions: the replica that served a conversation's last turn holds its prefix in cache;
        # a turn served there again prefills only prefix_hit_factor of its prompt.
        self.sess = traffic.session.tolist() if traffic.session is not None else None
        self.home: dict[int, Replica] = {}
        self.follow_ups = self.hits = 0
        self.start, self.first, self.end = [math.nan] * n, [math.nan] * n, [math.nan] * n
        self.rep, self.status = [-1] * n, [0] * n
        self.heap: list = []
        self.seq = itertools.count()
        self.rng = random.Random(seed)
        self.replicas: list[Replica] = []
        self.routable: list[Replica] = []
        self.buffer: deque[int] = deque()
        self.n_in = self.n_pending = self.n_draining = 0
        self.tot_out, self.T = 0, 0.0
        self.area_out = self.area_inst = self.area_bill = 0.0
        self.invocations = self.nocap = self.arrivals_seen = 0
        self.autoscaler = Autoscaler(list(fleet.policies), fleet.min_capacity, fleet.max_capacity)
        # the two SageMaker metrics are always recorded for the result; others when a policy
        # watches them
        self.alarm_keys = set(self.autoscaler.keys)
        self.series_keys = sorted(self.alarm_keys | {(CONCURRENCY, 10, "Average"),
                                                     (INVOCATIONS, 60, "Sum")})
        self.datapoints: dict[tuple, list] = {k: [] for k in self.series_keys}
        self.datapoint_t: dict[tuple, list] = {k: [] for k in self.series_keys}
        self.samples: list[tuple[int, int] | None] = []  # (max, min) in flight per instance
        self.snaps = {k: (0.0, 0.0, 0, 0) for k in self.series_keys}
        self.window = {k: max((a.n for s in self.autoscaler.states for a in s.alarms
                                if a.key == k), default=1) for k in self.series_keys}
        self.initial_count = 0
        self.rows: list[tuple] = []
        self.row_snap = (0.0, 0)
        self.capacity: list[tuple[float, int, int, int]] = []
        self.activities: list[ScalingActivity] = []

    # -- bookkeeping -------------------------------------------------------------------
    def advance(self, t: float) -> None:
        """Integrate in-flight requests, metric instances and billed instances up to t."""
        dt = t - self.T
        if dt > 0:
            self.area_out += self.tot_out * dt
            self.area_inst += (self.n_in + self.n_draining) * dt
            billed = min(t, self.until) - min(self.T, self.until)
            self.area_bill += (self.n_in + self.n_pending + self.n_draining) * billed
            self.T = t

    def log_capacity(self, t: float) -> None:
        self.capacity.append((t, self.n_in, self.n_pending, self.n_draining))

    def push(self, t: float, kind: int, a: object = None, b: object = None) -> None:
        heapq.heappush(self.heap, (t, next(self.seq), kind, a, b))

    # -- replicas ----------------------------------------------------------------------
    def sync(self, r: Replica, t: float) -> None:
        """Move a replica's virtual clocks to t at the rates of its current batch size."""
        dt = t - r.t
        if dt > 0 and r.run:
            r.vp += dt * self.inv_ttft[r.run]
            r.vd += dt * self.inv_tpot[r.run]
        r.t = t

    def schedule(self, r: Replica) -> None:
        """Push the replica's next prefill or decode completion at its current rates."""
        r.ver += 1
        n = r.run
        if not n:
            return
        nxt = _INF
        if r.pheap:
            nxt = r.t + (r.pheap[0][0] - r.vp) * self.ttft[n]
        if r.dheap:
            nxt = min(nxt, r.t + (r.dheap[0][0] - r.vd) * self.tpot[n])
        heapq.heappush(self.heap, (max(nxt, r.t), next(self.seq), _STEP, r, r.ver))

    def admit(self, r: Replica, i: int, t: float) -> None:
        self.start[i] = t
        r.run += 1
        heapq.heappush(r.pheap, (r.vp + self.work[i], i))
        if r.first_start is None:
            r.first_start = t

    def dispatch(self, r: Replica, i: int, t: float) -> None:
        if self.sess is not None and self.sess[i] >= 0:
            home = self.home.get(self.sess[i])
            if home is not None:
                self.follow_ups += 1
                if home is r:
                    self.hits += 1
                    self.work[i] *= self.fleet.prefix_hit_factor
            self.home[self.sess[i]] = r
        self.advance(t)
        self.tot_out += 1
        self.invocations += 1
        r.out += 1
        self.rep[i] = r.idx
        if r.run < self.max_seqs:
            self.sync(r, t)
            self.admit(r, i, t)
            self.schedule(r)
        else:
            r.queue.append(i)

    def route(self, i: int) -> Replica:
        """SageMaker LEAST_OUTSTANDING_REQUESTS (ties: the oldest replica) or RANDOM; sticky:
        a conversation's turn goes where its last turn went while that replica serves, else
        (first turns, a replica gone) least outstanding requests."""
        if self.fleet.routing == "random":
            return self.routable[self.rng.randrange(len(self.routable))]
        if self.fleet.routing == "sticky" and self.sess is not None and self.sess[i] >= 0:
            home = self.home.get(self.sess[i])
            if home is not None and home.state == "in_service":
                return home
        return min(self.routable, key=_OUT)

    def arrive(self, i: int, t: float) -> None:
        self.arrivals_seen += 1
        if self.routable:
            self.dispatch(self.route(i), i, t)
            return
        self.nocap += 1  # NoCapacityInvocationFailures: rejected or (buffer mode) held
        if self.fleet.at_zero == "reject":
            self.status[i] = REJECTED
        else:
            self.buffer.append(i)

    def step(self, r: Replica, t: float) -> None:
        """Complete every prefill and decode due at t, then refill the batch from the queue."""
        self.advance(t)
        self.sync(r, t)
        ph, dh = r.pheap, r.dheap
        vp_due, vd_due = r.vp + 1e-9 * (1.0 + r.vp), r.vd + 1e-9 * (1.0 + r.vd)
        if not ((ph and ph[0][0] <= vp_due) or (dh and dh[0][0] <= vd_due)):
            # rounding left the item this event was scheduled for a hair short: complete it
            tp = (ph[0][0] - r.vp) * self.ttft[r.run] if ph else _INF
            td = (dh[0][0] - r.vd) * self.tpot[r.run] if dh else _INF
            if tp <= td:
                vp_due = ph[0][0]
            else:
                vd_due = dh[0][0]
        while ph and ph[0][0] <= vp_due:
            i = heapq.heappop(ph)[1]
            self.first[i] = t
            if self.dec[i] > 0:
                heapq.heappush(dh, (r.vd + self.dec[i], i))
            else:
                self.finish(r, i, t)
        while dh and dh[0][0] <= vd_due:
            self.finish(r, heapq.heappop(dh)[1], t)
        while r.queue and r.run < self.max_seqs:
            self.admit(r, r.queue.popleft(), t)
        if r.state == "draining" and not r.out:
            self.retire(r, t)
        else:
            self.schedule(r)

    def finish(self, r: Replica, i: int, t: float) -> None:
        self.end[i] = t
        self.status[i] = DONE
        r.run -= 1
        r.out -= 1
        r.served += 1
        self.tot_out -= 1

    # -- capacity ----------------------------------------------------------------------
    def launch(self, t: float, in_service: bool = False) -> None:
        r = Replica(len(self.replicas), t)
        self.replicas.append(r)
        if in_service:
            r.state, r.ready = "in_service", t
            self.n_in += 1
            self.routable.append(r)
        else:
            self.n_pending += 1
            self.push(t + self.fleet.launch_delay_s, _READY, r)

    def become_ready(self, r: Replica, t: float) -> None:
        if r.state != "pending":
            return  # cancelled by a scale-in while it was starting
        self.advance(t)
        r.state, r.ready, r.t = "in_service", t, t
        self.n_pending -= 1
        self.n_in += 1
        self.routable.append(r)
        self.log_capacity(t)
        while self.buffer:
            j = self.buffer.popleft()
            self.dispatch(self.route(j), j, t)

    def retire(self, r: Replica, t: float) -> None:
        self.advance(t)
        if r.state == "draining":
            self.n_draining -= 1
        elif r.state == "in_service":
            self.n_in -= 1
        r.state, r.ended = "gone", t
        r.ver += 1
        self.log_capacity(t)

    def remove_one(self, t: float) -> None:
        """Scale-in by one: cancel the newest pending launch, else the least-loaded replica."""
        pending = [r for r in self.replicas if r.state == "pending"]
        if pending:
            self.advance(t)
            r = pending[-1]
            r.state, r.ended = "gone", t
            self.n_pending -= 1
            return
        r = min(self.routable, key=_OUT)
        self.routable.remove(r)
        if self.fleet.scale_in_mode == "cut":
            self.cut(r, t)
        elif r.out:
            self.advance(t)
            r.state = "draining"
            self.n_in -= 1
            self.n_draining += 1
        else:
            self.retire(r, t)

    def cut(self, r: Replica, t: float) -> None:
        """Scale-in without draining: every request on the replica fails now."""
        self.advance(t)
        victims = [i for _, i in r.pheap] + [i for _, i in r.dheap] + list(r.queue)
        for i in victims:
            self.status[i], self.end[i] = CUT, t
        self.tot_out -= r.out
        r.out = r.run = 0
        r.pheap, r.dheap, r.queue = [], [], deque()
        self.retire(r, t)

    def apply(self, t: float, label: str, direction: str, to: int) -> None:
        current = self.n_in + self.n_pending
        ready = None
        if to > current:
            for _ in range(to - current):
                self.launch(t)
            ready = t + self.fleet.launch_delay_s
        else:
            for _ in range(current - to):
                self.remove_one(t)
        self.activities.append(ScalingActivity(t, label, direction, current, to, ready))
        self.log_capacity(t)

    # -- metrics and alarms ------------------------------------------------------------
    def tick(self, k: int) -> None:
        """Every 10 s: a row for the timeline, and the datapoints whose period ends now."""
        t = k * TICK_S
        self.advance(t)
        a_out, seen = self.row_snap
        self.rows.append((t, (self.arrivals_seen - seen) / TICK_S, (self.area_out - a_out) / TICK_S,
                          self.n_in, self.n_pending, self.n_draining, len(self.buffer)))
        self.row_snap = (self.area_out, self.arrivals_seen)
        outs = [r.out for r in self.replicas if r.state in ("in_service", "draining")]
        self.samples.append((max(outs), min(outs)) if outs else None)
        for key in self.series_keys:
            if t % key[1] == 0:
                self.datapoints[key].append(self.datapoint(key))
                self.datapoint_t[key].append(t)
                if key in self.alarm_keys:
                    delay = self.fleet.delay_for(key[0])
                    self.push(t + delay, _EVAL, key, len(self.datapoints[key]))
        if t + TICK_S <= self.until + 1e-9:
            self.push(t + TICK_S, _TICK, k + 1)

    def datapoint(self, key: tuple[str, int, str]) -> float | None:
        """The metric over the period just ended; None (missing) when no instance served."""
        out0, inst0, inv0, nocap0 = self.snaps[key]
        d_out, d_inst = self.area_out - out0, self.area_inst - inst0
        d_inv, d_nocap = self.invocations - inv0, self.nocap - nocap0
        self.snaps[key] = (self.area_out, self.area_inst, self.invocations, self.nocap)
        metric, period, statistic = key
        if metric == CONCURRENCY and statistic != "Average":
            got = [s for s in self.samples[-(period // TICK_S):] if s is not None]
            if not got:
                return None
            if statistic == "Maximum":
                return float(max(s[0] for s in got))
            return float(min(s[1] for s in got))
        if metric == CONCURRENCY:
            return d_out / d_inst if d_inst > 0 else None
        if metric == INVOCATIONS:
            return d_inv / (d_inst / period) if d_inst > 0 else None
        return float(d_nocap)

    def evaluate(self, t: float, key: tuple[str, int, str], count: int) -> None:
        if t > self.until + 1e-9:
            return
        values = self.datapoints[key][max(0, count - self.window[key]):count]
        desired = self.n_in + self.n_pending
        for label, direction, _, to in self.autoscaler.evaluate(t, key, values, self.n_in, desired):
            self.apply(t, label, direction, to)

    # -- main loop ---------------------------------------------------------------------
    def run(self) -> None:
        start = self.fleet.min_capacity if self.fleet.initial_capacity is None \
            else self.fleet.initial_capacity
        self.initial_count = start
        for _ in range(start):
            self.launch(0.0, in_service=True)
        self.log_capacity(0.0)
        self.push(TICK_S, _TICK, 1)
        arr, n, i, heap = self.arr, len(self.arr), 0, self.heap
        pop = heapq.heappop
        while True:
            nxt = arr[i] if i < n else _INF
            if heap and heap[0][0] <= nxt:
                t, _, kind, a, b = pop(heap)
                if kind == _STEP:
                    if b == a.ver:
                        self.step(a, t)
                elif kind == _TICK:
                    self.tick(a)
                elif kind == _EVAL:
                    self.evaluate(t, a, b)
                else:
                    self.become_ready(a, t)
            elif i < n:
                self.arrive(i, nxt)
                i += 1
            else:
                break
        self.advance(max(self.T, self.until))
        for j in self.buffer:
            self.status[j] = UNSERVED
