"""`tune`: the cheapest blended $ per 1M tokens that meets an SLO, over recipes x concurrency.

Branch and bound over the space of `tune_space`:
  1. every (candidate, concurrency) whose optimistic roofline bound misses the SLO, does not
     fit in memory, or cannot run on this host is pruned, with the reason;
  2. candidates are measured cheapest-bound first, each once over its remaining levels
     (one server start per recipe, through the one runner: `bench.run_spec`);
  3. after each measurement, a level whose bound costs at least the best measured
     SLO-meeting price so far is pruned ("cannot beat").
Since no measurement beats its bound, the winner is the one a full grid search of the same
space finds (`grid=True` measures everything, for the comparison). A level meets the SLO
when its percentiles do (bench/slo.py); its price is ANCHORS.md's blended formula fed the
level's TPOT p50:
    blended_usd_per_1M = (1 - discount) * instance_usd_per_hour
                         / ((1 / p50_tpot_s) * concurrency * 3600 / 1e6) / 4
"""

from __future__ import annotations

import html
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..bench.result import BenchResult
from ..bench.slo import SLO
from ..display import dict_rows_html, dict_rows_text
from ..errors import OptimizeError
from ..recipes import Recipe
from .tune_space import Candidate, SearchSpace, bound, host_problem, static_prune

# measure(recipe, concurrency levels) -> BenchResult with per-request samples
Measure = Callable[[Recipe, list[int]], BenchResult]


@dataclass
class TuneRow:
    """One (candidate, concurrency) of the search and what became of it."""

    candidate: str
    recipe: str
    concurrency: int
    status: str  # measured | pruned | failed
    reason: str = ""
    bound_usd_per_1M: float = math.nan
    usd_per_1M: float = math.nan
    slo_met: bool | None = None
    goodput_rps: float = math.nan
    request_rps: float = math.nan
    ttft_p50_s: float = math.nan
    tpot_p50_s: float = math.nan

    def table_row(self) -> dict[str, Any]:
        return {"candidate": self.candidate, "concurrency": self.concurrency, "status": self.status,
                "blended $/1M": self.usd_per_1M, "SLO met": self.slo_met, "goodput req/s": self.goodput_rps,
                "TTFT p50 ms": self.ttft_p50_s * 1e3, "TPOT p50 ms": self.tpot_p50_s * 1e3,
                "bound $/1M": self.bound_usd_per_1M, "reason": self.reason}


@dataclass
class TuneResult:
    """The ranked search (measured SLO-meeting rows first, cheapest first), the winner, its
    recipe (and where it was written), the measured results, and deployment sizing."""

    model: str
    instance: str
    slo: str
    rows: list[TuneRow]
    winner: TuneRow | None
    winner_recipe: Recipe | None
    results: dict[str, BenchResult] = field(default_factory=dict)
    recipe_path: str | None = None
    sizing: Any = None  # autoscale.sizing.Sizing, attached by the verb when --target-rps is given
    measured_levels: int = 0
    grid: bool = False
    path: str | None = None  # where save() wrote the search

    def ranked(self) -> list[TuneRow]:
        def key(r: TuneRow) -> tuple:
            cost = r.usd_per_1M if not math.isnan(r.usd_per_1M) else math.inf
            return ({True: 0, False: 1, None: 2}[r.slo_met] if r.status == "measured" else 3, cost,
                    r.bound_usd_per_1M)
        return sorted(self.rows, key=key)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "instance": self.instance, "slo": self.slo, "grid": self.grid,
                "measured_levels": self.measured_levels, "recipe_path": self.recipe_path,
                "winner": asdict(self.winner) if self.winner else None,
                "winner_recipe": self.winner_recipe.to_dict() if self.winner_recipe else None,
                "rows": [asdict(r) for r in self.ranked()],
                "results": {k: v.path for k, v in self.results.items()},
                "sizing": self.sizing.to_dict() if self.sizing is not None else None}

    def save(self, path: str | Path) -> Path:
        """Write the search as JSON atomically (the ranked rows, the winner, the sizing)."""
        import json

        from ..base.files import atomic_write_text

        p = atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=1, default=str))
        self.path = str(p)
        return p

    def _headline(self) -> str:
        w = self.winner
        pruned = sum(r.status == "pruned" for r in self.rows)
        what = (f"winner {w.candidate} at concurrency {w.concurrency}: ${w.usd_per_1M:.6g} per 1M tokens (blended)"
                if w else "no candidate met the SLO")
        saved = f"; recipe {self.recipe_path}" if self.recipe_path else ""
        return (f"tune {self.model} on {self.instance} under {self.slo}: {what}; measured {self.measured_levels} "
                f"of {len(self.rows)} levels, pruned {pruned}{saved}")

    def __str__(self) -> str:
        text = self._headline() + "\n" + dict_rows_text([r.table_row() for r in self.ranked()])
        return text + (f"\n{self.sizing}" if self.sizing is not None else "")

    def __repr__(self) -> str:
        return f"TuneResult(winner={self.winner.candidate if self.winner else None!r}, rows={len(self.rows)})"

    def _repr_html_(self) -> str:
        sizing = self.sizing._repr_html_() if self.sizing is not None else ""
        return (f"<div><b>{html.escape(self._headline())}</b>{dict_rows_html([r.table_row() for r in self.ranked()])}"
                f"{sizing}</div>")


def _measured_rows(c: Candidate, result: BenchResult, slo: SLO, bounds: dict[int, float]) -> list[TuneRow]:
    try:
        prices = {p.concurrency: p.blended_usd_per_1M for p in result.prices().rows}
    except OptimizeError:
        prices = {}
    out = []
    for lv in result.levels:
        ev = slo.evaluate_level(lv)
        m = lv.metrics
        failed = m.completed == 0
        out.append(TuneRow(c.label, c.recipe.name, lv.concurrency, "failed" if failed else "measured",
                           "no request completed" if failed else "", bounds.get(lv.concurrency, math.nan),
                           prices.get(lv.concurrency, math.nan), None if failed else ev["met"], ev["goodput_rps"],
                           m.request_throughput, m.ttft.p50, m.tpot.p50))
    return out


def tune(space: SearchSpace, slo: SLO | str, measure: Measure, *, instance: str = "local", discount: float = 0.0,
         max_tokens: int = 250, grid: bool = False, on_row: Callable[[TuneRow], None] | None = None) -> TuneResult:
    """Search `space` for the cheapest SLO-meeting (recipe, concurrency); see the module
    docstring. `grid=True` prunes nothing (the full grid search)."""
    slo = SLO.parse(slo)
    rows: list[TuneRow] = []
    todo: dict[str, tuple[Candidate, dict[int, float]]] = {}
    for c in space.candidates:
        why_not = None if grid else host_problem(c, instance)
        bounds = {n: bound(c, n, instance, discount).usd_per_1M for n in space.concurrency}
        keep = {}
        for n in space.concurrency:
            reason = why_not or (None if grid else static_prune(c, n, instance, slo, max_tokens))
            if reason:
                rows.append(TuneRow(c.label, c.recipe.name, n, "pruned", reason, bounds[n]))
            else:
                keep[n] = bounds[n]
        if keep:
            todo[c.label] = (c, keep)
    best: TuneRow | None = None
    results: dict[str, BenchResult] = {}
    measured = 0
    for label in sorted(todo, key=lambda k: min(todo[k][1].values())):
        c, keep = todo[label]
        levels = []
        for n, b in sorted(keep.items()):
            if not grid and best is not None and b >= best.usd_per_1M:
                rows.append(TuneRow(c.label, c.recipe.name, n, "pruned",
                                    f"cannot beat ${best.usd_per_1M:.6g} ({best.candidate} at {best.concurrency}): "
                                    f"its bound is ${b:.6g}", b))
            else:
                levels.append(n)
        if not levels:
            continue
        try:
            result = measure(c.recipe, levels)
        except OptimizeError as e:  # this recipe cannot be measured here: say why, search on
            rows += [TuneRow(c.label, c.recipe.name, n, "failed", f"{type(e).__name__}: {e}", keep[n]) for n in levels]
            continue
        results[label] = result
        measured += len(levels)
        for row in _measured_rows(c, result, slo, keep):
            rows.append(row)
            if on_row:
                on_row(row)
            if row.slo_met and not math.isnan(row.usd_per_1M) and (best is None or row.usd_per_1M < best.usd_per_1M):
                best = row
    winner_recipe = None
    if best is not None:
        winner_recipe = next(c.recipe for c in space.candidates if c.label == best.candidate)
    model = space.candidates[0].recipe.model
    return TuneResult(model, instance, str(slo), rows, best, winner_recipe, results, measured_levels=measured,
                      grid=grid)


def winner_recipe_file(result: TuneResult, path: str | Path) -> Path:
    """Write the winner's recipe as YAML (atomically), its description saying what won and why."""
    if result.winner is None or result.winner_recipe is None:
        raise OptimizeError(f"no candidate met the SLO {result.slo}; loosen the SLO, add recipes or "
                            "concurrency levels, or pick a faster instance")
    w = result.winner
    note = (f"tune winner under {result.slo} on {result.instance}: concurrency {w.concurrency}, "
            f"${w.usd_per_1M:.6g} per 1M tokens blended. ")
    rec = result.winner_recipe.model_copy(update={"description": note + result.winner_recipe.description})
    p = rec.save(path)
    result.recipe_path = str(p)
    return p


def bench_measure(spec_options: dict[str, Any] | None = None, progress: bool = True) -> Measure:
    """The real measure function: `bench.run_spec` of the recipe at the given levels with the
    SLO, workload and pricing options of `spec_options` (BenchSpec.of keywords)."""
    from ..bench import run_spec
    from ..bench.spec import BenchSpec

    opts = dict(spec_options or {})

    def measure(recipe: Recipe, levels: list[int]) -> BenchResult:
        spec = BenchSpec.of(recipe, **{**opts, "concurrency": list(levels)})
        return run_spec(spec, progress=progress)

    return measure


def best_of(rows: Sequence[TuneRow]) -> TuneRow | None:
    """The cheapest measured SLO-meeting row (what a grid search picks)."""
    ok = [r for r in rows if r.status == "measured" and r.slo_met and not math.isnan(r.usd_per_1M)]
    return min(ok, key=lambda r: r.usd_per_1M) if ok else None
