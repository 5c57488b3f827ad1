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


def _plot(ax, results: Sequence[BenchResult], column: str, ylabel: str, title: str):
    for r in results:
        rows = r.rows()
        ax.plot([x["concurrency"] for x in rows], [x[column] for x in rows], marker="o", label=r.name)
    ax.set_xlabel("concurrency")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.set_xscale("log", base=2)
    ax.grid(True, alpha=0.3)
    ax.legend()
    return ax


def throughput(results, ax=None):
    """Output tokens/s (whole run) against concurrency."""
    return _plot(_axes(ax), _as_list(results), "out tok/s", "output tokens/s", "Throughput")


def latency(results, ax=None, metric: str = "TTFT"):
    """p50 (solid) and p99 (dashed) TTFT or ITL in ms against concurrency."""
    ax = _axes(ax)
    for r in _as_list(results):
        rows = r.rows()
        xs = [x["concurrency"] for x in rows]
        line, = ax.plot(xs, [x[f"{metric} p50 ms"] for x in rows], marker="o", label=f"{r.name} p50")
        ax.plot(xs, [x[f"{metric} p99 ms"] for x in rows], marker="x", linestyle="--",
                color=line.get_color(), label=f"{r.name} p99")
    ax.set_xlabel("concurrency")
    ax.set_ylabel(f"{metric} (ms)")
    ax.set_title(f"{metric} percentiles")
    ax.set_xscale("log", base=2)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return ax


def blended_price(results, ax=None):
    """Blended $ per 1M tokens (3:1 input:output) against concurrency."""
    return _plot(_axes(ax), _as_list(results), "blended $/1M", "blended $ / 1M tokens", "Blended price")


def dashboard(results, path: str | Path | None = None):
    """Throughput, TTFT, ITL and blended price side by side; saved as PNG when `path` is given."""
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axs = plt.subplots(1, 4, figsize=(20, 4))
    throughput(results, axs[0])
    latency(results, axs[1], "TTFT")
    latency(results, axs[2], "ITL")
    blended_price(results, axs[3])
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
        plt.close(fig)
    return fig
