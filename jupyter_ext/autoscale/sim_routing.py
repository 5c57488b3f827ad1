"""Routers compared before paying: random, least outstanding requests, sticky sessions.

`compare_routing` replays one multi-turn conversation traffic against a fixed fleet (no
autoscaling, so only the router differs) once per router, with the same heapq simulator
(sim_engine), and reports TTFT and end-to-end latency per router next to the seed's claims
(load-aware routing about 20% lower latency; sticky sessions 5.39 s -> about 1 s for
follow-up requests). The figures are a model's, not a measurement: `assumptions` lists what
the model takes for granted, and the report prints them with the numbers.

The traffic: conversations start as a Poisson process; each has `turns` turns separated by
exponential think times; a turn's prompt is the conversation so far (the previous prompt and
reply) plus a new question, so later turns have long prompts. Output lengths are heavy-tailed
(lognormal), which is where load-aware routing pays: a random router keeps sending work to a
replica stuck with long generations. The prefix-cache hit model: the replica that served a
conversation's last turn still holds its prefix in its KV cache, so a turn routed there
prefills only `prefix_hit_factor` of its prompt (vLLM's automatic prefix caching); elsewhere
it prefills all of it. Caches are never evicted between turns (an optimistic bound).
"""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from ..errors import SimulationError
from .sim_traffic import Traffic

# ANCHORS.md 1: the seed's routing claims.
SEED_CLAIMS = ("load-aware routing (LEAST_OUTSTANDING_REQUESTS): latency about 20% lower than random",
               "session-sticky routing: follow-up requests 5.39 s -> about 1 s")
DEFAULT_TURNS = 4
DEFAULT_THINK_S = 20.0
DEFAULT_REPLICAS = 4
DEFAULT_LOAD = 0.7  # offered load as a fraction of the fleet's estimated capacity
OUTPUT_MEDIAN, OUTPUT_SIGMA, OUTPUT_RANGE = 150, 1.0, (16, 2000)
FIRST_PROMPT, NEW_QUESTION = (500, 1000), 100


def conversations(rate_req_s: float, duration_s: float, *, turns: int = DEFAULT_TURNS,
                  think_s: float = DEFAULT_THINK_S, seed: int = 0) -> Traffic:
    """Multi-turn traffic at about `rate_req_s` requests per second (see the module docstring)."""
    if not rate_req_s > 0 or not duration_s > 0 or turns < 1 or think_s < 0:
        raise SimulationError("conversations need rate_req_s > 0, duration_s > 0, turns >= 1 and think_s >= 0")
    rng = np.random.default_rng(seed)
    n_conv = rng.poisson(rate_req_s / turns * duration_s)
    starts = rng.uniform(0, duration_s, n_conv)
    times, inputs, outputs, session = [], [], [], []
    for c, t in enumerate(starts):
        prompt = int(rng.integers(FIRST_PROMPT[0], FIRST_PROMPT[1] + 1))
        for _ in range(turns):
            if t >= duration_s:
                break
            out = int(np.clip(rng.lognormal(np.log(OUTPUT_MEDIAN), OUTPUT_SIGMA), *OUTPUT_RANGE))
            times.append(t), inputs.append(prompt), outputs.append(out), session.append(c)
            prompt += out + NEW_QUESTION
            t += rng.exponential(think_s) if think_s else 0.0
    order = np.argsort(np.asarray(times), kind="stable")
    pick = lambda xs, kind: np.asarray(xs, dtype=kind)[order]  # noqa: E731
    return Traffic(pick(times, np.float64), pick(inputs, np.int64), pick(outputs, np.int64), float(duration_s),
                   None, f"{n_conv} conversations of <= {turns} turns", {"turns": turns, "think_s": think_s,
                                                                         "seed": seed}, pick(session, np.int64))


@dataclass
class RouterRow:
    """One router's latencies over the served requests (seconds) and its prefix-cache hit rate."""

    routing: str
    requests: int
    ttft_p50_s: float
    ttft_p99_s: float
    e2e_p50_s: float
    e2e_p99_s: float
    follow_up_ttft_p50_s: float
    prefix_hit_rate: float


@dataclass
class RoutingComparison:
    """Each router on the same traffic and fleet, with the model's assumptions and the seed's claims."""

    rows: list[RouterRow]
    assumptions: list[str]
    claims: tuple[str, ...] = SEED_CLAIMS
    settings: dict[str, Any] = field(default_factory=dict)

    def row(self, routing: str) -> RouterRow:
        return next(r for r in self.rows if r.routing == routing)

    def change_vs_random(self, routing: str, metric: str = "e2e_p50_s") -> float | None:
        """Relative change of `metric` against random (-0.2 = 20% lower); None without random."""
        if not any(r.routing == "random" for r in self.rows):
            return None
        base = getattr(self.row("random"), metric)
        return getattr(self.row(routing), metric) / base - 1.0 if base > 0 else None

    def to_dict(self) -> dict[str, Any]:
        return {"rows": [asdict(r) for r in self.rows], "assumptions": self.assumptions,
                "claims": list(self.claims), "settings": self.settings}

    def _lines(self) -> list[tuple[str, str]]:
        out = []
        for r in self.rows:
            vs = self.change_vs_random(r.routing)
            rel = "" if vs is None or r.routing == "random" else f"  ({vs:+.0%} p50 e2e vs random)"
            out.append((r.routing, f"TTFT p50 {r.ttft_p50_s:.2f} s p99 {r.ttft_p99_s:.2f} s | e2e p50 "
                                   f"{r.e2e_p50_s:.2f} s p99 {r.e2e_p99_s:.2f} s | follow-up TTFT p50 "
                                   f"{r.follow_up_ttft_p50_s:.2f} s | prefix-cache hits {r.prefix_hit_rate:.0%}{rel}"))
        return out

    def __str__(self) -> str:
        lines = [f"Routing on {self.settings.get('replicas')} replicas, {self.rows[0].requests} requests (simulated)"]
        lines += [f"  {name:>17}: {text}" for name, text in self._lines()]
        lines += ["  seed claims: " + "; ".join(self.claims)]
        lines += ["  assumptions:"] + [f"    - {a}" for a in self.assumptions]
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td>{html.escape(n)}</td><td>{html.escape(t)}</td></tr>" for n, t in self._lines())
        items = "".join(f"<li>{html.escape(a)}</li>" for a in self.assumptions)
        return (f"<b>Routing compared (simulated)</b><table>{rows}</table>"
                f"<p>Seed claims: {html.escape('; '.join(self.claims))}</p><p>Assumptions:</p><ul>{items}</ul>")


def _p(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if values.size else float("nan")


def compare_routing(routers: Sequence[str] = ("random", "least_outstanding", "sticky"), *,
                    replicas: int = DEFAULT_REPLICAS, duration_s: float = 1800.0, rate_req_s: float | None = None,
                    turns: int = DEFAULT_TURNS, think_s: float = DEFAULT_THINK_S, prefix_hit_factor: float = 0.2,
                    curve: Any = None, batch1_tok_s: float = 30.0, saturation: float = 16.0,
                    max_num_seqs: int = 32, seed: int = 0) -> RoutingComparison:
    """Simulate each router on one traffic and fleet (see the module docstring)."""
    from .simulate import ROUTERS, FleetConfig, ServiceCurve, simulate

    # The recipe's and the API's spellings name the same routers.
    routers = [{"least_outstanding_requests": "least_outstanding"}.get(r.lower(), r.lower()) for r in routers]
    bad = [r for r in routers if r not in ROUTERS]
    if bad or not routers:
        raise SimulationError(f"routing {', '.join(bad) or '(none)'}: use one or more of {', '.join(ROUTERS)}")
    if replicas < 1:
        raise SimulationError(f"replicas={replicas}: a fleet has at least one replica")
    ref_tokens = float(np.mean(FIRST_PROMPT))
    curve = curve or ServiceCurve.estimate(batch1_tok_s, saturation, input_tokens=ref_tokens)
    if curve.input_tokens is None:  # a measured curve: its prompts were the seed's, about this long
        curve = ServiceCurve(curve.points, ref_tokens, curve.source)
    mean_out = float(np.exp(np.log(OUTPUT_MEDIAN) + OUTPUT_SIGMA ** 2 / 2))
    ttft, tpot = curve.at(max_num_seqs)
    capacity = replicas * max_num_seqs / (ttft + (mean_out - 1) * tpot)
    rate = rate_req_s if rate_req_s is not None else DEFAULT_LOAD * capacity
    traffic = conversations(rate, duration_s, turns=turns, think_s=think_s, seed=seed)
    rows = []
    for routing in routers:
        fleet = FleetConfig(curve=curve, min_capacity=replicas, max_capacity=replicas, max_num_seqs=max_num_seqs,
                            routing=routing, prefix_hit_factor=prefix_hit_factor)
        result = simulate(traffic, fleet, seed=seed)
        rec, ok = result.requests, result.requests.served
        follow = ok & _follow_ups(traffic.session)
        rows.append(RouterRow(routing, len(rec), _p(rec.ttft[ok], 50), _p(rec.ttft[ok], 99), _p(rec.e2e[ok], 50),
                              _p(rec.e2e[ok], 99), _p(rec.ttft[follow], 50), result.prefix_hits))
    assumptions = [
        f"{replicas} replicas, fixed (no autoscaling): only the router differs; each serves <= {max_num_seqs} at once",
        f"replica speed: {curve.source} (TTFT and TPOT grow with requests in flight)",
        f"offered load {rate:.2f} req/s = {rate / capacity:.0%} of the fleet's estimated capacity",
        f"conversations of {turns} turns, {think_s:g} s mean think time; a turn's prompt is the conversation "
        f"so far plus {NEW_QUESTION} tokens (first prompt {FIRST_PROMPT[0]}-{FIRST_PROMPT[1]} tokens)",
        f"output tokens lognormal (median {OUTPUT_MEDIAN}, sigma {OUTPUT_SIGMA}, clipped to {OUTPUT_RANGE}): "
        "heavy-tailed, as chat traffic is",
        f"prefix-cache hit model: a turn on the replica that served its conversation's last turn prefills "
        f"{prefix_hit_factor:g} of its prompt (its prefix is cached); caches are never evicted (optimistic)",
        "the seed's figures were measured on real endpoints and models; these are a model's, for comparing routers",
    ]
    return RoutingComparison(rows, assumptions, settings={"replicas": replicas, "rate_req_s": rate,
                                                          "duration_s": duration_s, "seed": seed})


def _follow_ups(session: np.ndarray) -> np.ndarray:
    """True for every turn after a conversation's first (arrival order)."""
    seen: set[int] = set()
    out = np.zeros(session.size, dtype=bool)
    for i, s in enumerate(session.tolist()):
        out[i] = s in seen
        seen.add(s)
    return out
