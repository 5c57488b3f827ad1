"""Request arrivals for the fleet simulation: Poisson, step ramps and trace replay.

A `Traffic` is plain sorted arrays (arrival time, input tokens, output tokens), so the
simulator reads them without per-request objects and a 360k-request hour stays cheap.
Every generator takes a seed: the same seed gives the same requests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Union

import numpy as np

from jupyter_ext.errors import SimulationError

# A token count: a fixed int, an inclusive (low, high) range sampled uniformly, one value
# per request, or a function (rng, n) -> n counts for any other distribution.
TokenSpec = Union[int, tuple[int, int], Sequence[int], np.ndarray,
                  Callable[[np.random.Generator, int], np.ndarray]]

# The seed's workload (ANCHORS.md 1): OpenOrca-style prompts of 500-1000 tokens, 250 new tokens.
DEFAULT_INPUT_TOKENS: TokenSpec = (500, 1000)
DEFAULT_OUTPUT_TOKENS: TokenSpec = 250


@dataclass(frozen=True)
class Traffic:
    """Requests to replay: arrival times (s, sorted), input and output token counts.

    `change_s` is when the load changes (a ramp's first rise, a burst's start); the
    simulation measures time to detect and time to new capacity from it. Superposing keeps
    no sessions.
    """

    arrivals: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    duration_s: float
    change_s: float | None = None
    description: str = ""
    meta: dict = field(default_factory=dict)
    # The conversation each request belongs to (-1: none), for sticky routing and the
    # prefix-cache hit model (see sim_routing.conversations); None: no request has one.
    session: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.arrivals.size)

    def __add__(self, other: "Traffic") -> "Traffic":
        """Superpose two streams (e.g. a burst on top of a ramp); the earlier change wins."""
        order = np.argsort(np.concatenate([self.arrivals, other.arrivals]), kind="stable")
        changes = [c for c in (self.change_s, other.change_s) if c is not None]
        return Traffic(
            arrivals=np.concatenate([self.arrivals, other.arrivals])[order],
            input_tokens=np.concatenate([self.input_tokens, other.input_tokens])[order],
            output_tokens=np.concatenate([self.output_tokens, other.output_tokens])[order],
            duration_s=max(self.duration_s, other.duration_s),
            change_s=min(changes) if changes else None,
            description=f"{self.description} + {other.description}",
        )

    def to_dict(self) -> dict:
        """A summary (not the arrays): size, duration, change time and how it was made."""
        return {"requests": len(self), "duration_s": self.duration_s, "change_s": self.change_s,
                "description": self.description, **self.meta,
                "mean_input_tokens": float(self.input_tokens.mean()) if len(self) else 0.0,
                "mean_output_tokens": float(self.output_tokens.mean()) if len(self) else 0.0}


def _tokens(spec: TokenSpec, n: int, rng: np.random.Generator, what: str) -> np.ndarray:
    """Turn a TokenSpec into n counts >= 1, or say how to write one."""
    if callable(spec):
        out = np.asarray(spec(rng, n), dtype=np.int64)
    elif isinstance(spec, (int, np.integer)):
        out = np.full(n, int(spec), dtype=np.int64)
    elif isinstance(spec, tuple) and len(spec) == 2:
        low, high = int(spec[0]), int(spec[1])
        if low > high:
            raise SimulationError(f"{what}=({low}, {high}): the range is reversed; "
                                  f"write (low, high) with low <= high.")
        out = rng.integers(low, high + 1, size=n, dtype=np.int64)
    else:
        out = np.asarray(spec, dtype=np.int64)
    if out.shape != (n,):
        raise SimulationError(f"{what} gave {out.shape[0] if out.ndim else 'a scalar'} values "
                              f"for {n} requests; give an int, a (low, high) range, one value "
                              f"per request, or a function (rng, n) -> n values.")
    if n and out.min() < 1:
        raise SimulationError(f"{what} must be >= 1 token for every request (got {out.min()}).")
    return out


def _piecewise_poisson(steps: Sequence[tuple[float, float]], duration_s: float,
                       rng: np.random.Generator) -> np.ndarray:
    """Poisson arrivals with a rate that is constant between step starts.

    For each segment the count is Poisson(rate * length) and the times are uniform on the
    segment: that is exactly a Poisson process and needs no per-arrival Python loop.
    """
    starts = [float(t) for t, _ in steps] + [duration_s]
    chunks = []
    for (t0, rate), t1 in zip(steps, starts[1:]):
        length = max(0.0, min(t1, duration_s) - t0)
        count = rng.poisson(rate * length) if rate > 0 and length > 0 else 0
        chunks.append(np.sort(rng.uniform(t0, t0 + length, size=count)))
    return np.concatenate(chunks) if chunks else np.empty(0)


def _check_steps(steps: Sequence[tuple[float, float]], duration_s: float) -> list:
    if duration_s <= 0:
        raise SimulationError(f"duration_s={duration_s}: give a positive traffic length "
                              f"in seconds.")
    if not steps:
        raise SimulationError("no rate steps: give at least one (t_start_s, rate_per_s), "
                              "e.g. [(0, 1.0), (600, 4.0)].")
    clean = [(float(t), float(r)) for t, r in steps]
    for t, r in clean:
        if r < 0 or t < 0:
            raise SimulationError(f"step ({t}, {r}): start times and rates must be >= 0.")
    if any(b[0] <= a[0] for a, b in zip(clean, clean[1:])):
        raise SimulationError("step start times must increase strictly; sort the steps by time.")
    if clean[0][0] > 0:
        clean.insert(0, (0.0, 0.0))
    return clean


def _build(arrivals: np.ndarray, duration_s: float, input_tokens: TokenSpec,
           output_tokens: TokenSpec, rng: np.random.Generator, **kw) -> Traffic:
    n = arrivals.size
    return Traffic(arrivals=arrivals.astype(np.float64),
                   input_tokens=_tokens(input_tokens, n, rng, "input_tokens"),
                   output_tokens=_tokens(output_tokens, n, rng, "output_tokens"),
                   duration_s=float(duration_s), **kw)


def ramp(steps: Sequence[tuple[float, float]], duration_s: float, *,
         input_tokens: TokenSpec = DEFAULT_INPUT_TOKENS,
         output_tokens: TokenSpec = DEFAULT_OUTPUT_TOKENS, seed: int = 0) -> Traffic:
    """Poisson arrivals whose rate steps at given times: steps = [(t_start_s, req_per_s), ...].

    change_s is the first step that raises the rate: the moment the autoscaler should react to.
    """
    clean = _check_steps(steps, duration_s)
    rng = np.random.default_rng(seed)
    rises = [b[0] for a, b in zip(clean, clean[1:]) if b[1] > a[1] and b[0] < duration_s]
    desc = "ramp " + ", ".join(f"{r:g}/s@{t:g}s" for t, r in clean)
    return _build(_piecewise_poisson(clean, duration_s, rng), duration_s, input_tokens,
                  output_tokens, rng, change_s=rises[0] if rises else None, description=desc,
                  meta={"steps": clean, "seed": seed})


def poisson(rate: float, duration_s: float, *, input_tokens: TokenSpec = DEFAULT_INPUT_TOKENS,
            output_tokens: TokenSpec = DEFAULT_OUTPUT_TOKENS, seed: int = 0) -> Traffic:
    """Poisson arrivals at a constant rate (req/s) for duration_s seconds."""
    traffic = ramp([(0.0, rate)], duration_s, input_tokens=input_tokens,
                   output_tokens=output_tokens, seed=seed)
    return Traffic(traffic.arrivals, traffic.input_tokens, traffic.output_tokens,
                   traffic.duration_s, None, f"poisson {rate:g}/s", {"rate": rate, "seed": seed})




def replay(arrivals: Sequence[float] | np.ndarray, *, output_tokens: TokenSpec | None = None,
           input_tokens: TokenSpec = DEFAULT_INPUT_TOKENS, duration_s: float | None = None,
           change_s: float | None = None, seed: int = 0) -> Traffic:
    """Replay recorded arrival times (s from the trace start), with their output token counts
    where the trace has them; counts the trace lacks are sampled from the given spec."""
    times = np.asarray(arrivals, dtype=np.float64)
    if times.ndim != 1:
        raise SimulationError("arrivals must be a flat list of times in seconds.")
    if times.size and (times.min() < 0 or np.any(np.diff(times) < 0)):
        raise SimulationError("arrival times must be >= 0 and sorted; sort the trace first.")
    end = float(duration_s if duration_s is not None else (times[-1] if times.size else 0.0) + 1e-9)
    if times.size and end < times[-1]:
        raise SimulationError(f"duration_s={duration_s} ends before the last arrival "
                              f"({times[-1]:.3f} s); leave it out or make it longer.")
    rng = np.random.default_rng(seed)
    out = DEFAULT_OUTPUT_TOKENS if output_tokens is None else output_tokens
    return _build(times, max(end, 1e-9), input_tokens, out, rng, change_s=change_s,
                  description=f"replay of {times.size} arrivals", meta={"seed": seed})


# The ramp every face offers by default: 1 req/s, then 3 at 10 min, then 6 at 15 min, for an hour.
DEFAULT_RAMP = "0:1,600:3,900:6"
DEFAULT_DURATION_S = 3600.0


def parse_ramp(text: str) -> list[tuple[float, float]]:
    """'0:1,600:3' -> [(0.0, 1.0), (600.0, 3.0)]: time_s:req_per_s steps, as every face writes them."""
    try:
        return [(float(t), float(r)) for t, r in (step.split(":") for step in str(text).split(","))]
    except ValueError:
        raise SimulationError(f"--ramp takes time_s:req_per_s steps like 0:1,600:3 (got {text!r})") from None
