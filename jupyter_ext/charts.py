"""Charts of benchmark results against concurrency. Each function takes results (one or
several, e.g. baseline and recipe) and returns the matplotlib Axes it drew on, so it works
in a notebook, a script, or the CLI (which saves the figure as PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .bench.result import BenchResult


def _axes(ax):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=(5, 3.5))
    return ax


def _as_list(results) -> list[BenchResult]:
    return [results] if isinstance(results, BenchResult) else list(results)


def level_xs(rows: list[dict]) -> list[float]:
    """Where each level sits: its request rate for a rate level (several share one
    concurrency cap), else its concurrency."""
    return [x["rate req/s"] if x.get("rate req/s") is not None else x["concurrency"] for x in rows]


def x_label(results: Sequence[BenchResult]) -> str:
    rated = [lv.request_rate is not None for r in results for lv in r.levels]
    if rated and all(rated):
        return "request rate (req/s)"
    return "concurrency (rate levels: req/s)" if any(rated) else "concurrency"


def concurrency_axis(ax, levels: Sequence[float], label: str = "concurrency") -> None:
    """A log2 concurrency axis whose ticks are the measured levels written plainly (1, 2, 4,
    8, not 2^0, 2^1): matplotlib's log formatter would print powers of the base. Rate
    levels sit at their rates on the same kind of axis (`label` says so)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    ax.set_xscale("log", base=2)
    ticks = sorted({float(c) for c in levels if c and c > 0})
    if ticks:
        ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x:g}" if x == int(x) else f"{x:.3g}"))
    ax.set_xlabel(label)


def _plot(ax, results: Sequence[BenchResult], column: str, ylabel: str, title: str):
    levels = []
    for r in results:
        rows = r.rows()
        xs = level_xs(rows)
        levels += xs
        ax.plot(xs, [x[column] for x in rows], marker="o", label=r.name)
    concurrency_axis(ax, levels, x_label(results))
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    return ax


def throughput(results, ax=None):
    """Output tokens/s (whole run) against concurrency."""
    return _plot(_axes(ax), _as_list(results), "out tok/s", "output tokens/s", "Throughput")


def latency(results, ax=None, metric: str = "TTFT"):
    """p50 (solid) and p99 (dashed) TTFT or ITL in ms against concurrency."""
    ax = _axes(ax)
    levels = []
    for r in _as_list(results):
        rows = r.rows()
        xs = level_xs(rows)
        levels += xs
        line, = ax.plot(xs, [x[f"{metric} p50 ms"] for x in rows], marker="o", label=f"{r.name} p50")
        ax.plot(xs, [x[f"{metric} p99 ms"] for x in rows], marker="x", linestyle="--",
                color=line.get_color(), label=f"{r.name} p99")
    concurrency_axis(ax, levels, x_label(_as_list(results)))
    ax.set_ylabel(f"{metric} (ms)")
    ax.set_title(f"{metric} percentiles")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return ax


def blended_price(results, ax=None):
    """Blended $ per 1M tokens (3:1 input:output) against concurrency."""
    return _plot(_axes(ax), _as_list(results), "blended $/1M", "blended $ / 1M tokens", "Blended price")


KINDS = ("dashboard", "throughput", "ttft", "itl", "price")


def figure(results, kind: str = "dashboard", fig=None):
    """Draw `kind` (one panel, or all four for 'dashboard') on a matplotlib Figure that
    pyplot does not track: no backend is switched, and a notebook shows it once (as the
    returned value) while a script or the CLI saves it."""
    from matplotlib.figure import Figure

    panels = {"throughput": [throughput], "price": [blended_price],
              "ttft": [lambda r, ax: latency(r, ax, "TTFT")], "itl": [lambda r, ax: latency(r, ax, "ITL")]}
    panels["dashboard"] = [*panels["throughput"], *panels["ttft"], *panels["itl"], *panels["price"]]
    if kind not in panels:
        from .errors import OptimizeError

        raise OptimizeError(f"unknown chart kind {kind!r}; choose one of {', '.join(KINDS)}")
    fns = panels[kind]
    fig = fig or Figure(figsize=(5 * len(fns), 3.8))
    for fn, ax in zip(fns, fig.subplots(1, len(fns), squeeze=False)[0]):
        fn(results, ax=ax)
    fig.tight_layout()
    return fig


def save(results, path: str | Path, kind: str = "dashboard"):
    """Draw `kind` and write it as PNG at `path`; returns the Figure."""
    fig = figure(results, kind)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return fig
