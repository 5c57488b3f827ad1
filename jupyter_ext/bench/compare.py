"""Side-by-side comparison of a recipe's result with a baseline's, level by level."""

from __future__ import annotations

import html
from dataclasses import dataclass, field

from .result import BenchResult, format_table, html_table

# (column, how to read it from a row of BenchResult.rows(), higher is better?)
COMPARED = [
    ("out tok/s", True), ("TTFT p50 ms", False), ("ITL p50 ms", False), ("TPOT p50 ms", False),
    ("E2E p50 s", False), ("blended $/1M", False),
]


@dataclass
class Comparison:
    """recipe / baseline ratios at each level both results measured (the same concurrency, and
    the same request rate for rate levels)."""

    recipe: BenchResult
    baseline: BenchResult
    rows: list[dict] = field(default_factory=list)

    @classmethod
    def of(cls, recipe: BenchResult, baseline: BenchResult) -> "Comparison":
        base = {(r["concurrency"], r.get("rate req/s")): r for r in baseline.rows()}
        rows = []
        for r in recipe.rows():
            b = base.get((r["concurrency"], r.get("rate req/s")))
            if b is None:
                continue
            row = {"concurrency": r["concurrency"]}
            if r.get("rate req/s") is not None:
                row["rate req/s"] = r["rate req/s"]
            for col, _ in COMPARED:
                row[f"{col} ratio"] = r[col] / b[col] if b[col] else float("nan")
            if "spec accept" in r:  # the recipe's draft acceptance (server counters) beside its speed-up
                row["spec accept"] = r["spec accept"]
            rows.append(row)
        return cls(recipe, baseline, rows)

    def ratio(self, column: str, concurrency: int, rate: float | None = None) -> float:
        for r in self.rows:
            if r["concurrency"] == concurrency and r.get("rate req/s") == rate:
                return r[f"{column} ratio"]
        at = f" at {rate} req/s" if rate is not None else ""
        raise KeyError(f"concurrency {concurrency}{at} was not measured by both results")

    def to_dict(self) -> dict:
        return {"recipe": self.recipe.name, "baseline": self.baseline.name, "rows": self.rows,
                "recipe_path": self.recipe.path, "baseline_path": self.baseline.path}

    def __str__(self) -> str:
        head = f"{self.recipe.name} vs baseline {self.baseline.name} (ratio = recipe / baseline)"
        return f"{head}\n{format_table(self.rows)}\n\n{self.recipe}\n\n{self.baseline}"

    def _repr_html_(self) -> str:
        head = html.escape(f"{self.recipe.name} vs baseline {self.baseline.name}")
        return (f"<div><b>{head}</b> (ratio = recipe / baseline; throughput: higher is better, "
                f"latency and price: lower is better){html_table(self.rows)}"
                f"{self.recipe._repr_html_()}{self.baseline._repr_html_()}</div>")
