"""One self-contained HTML report of benchmark results: a run, or a comparison.

Everything is inline (CSS in a <style>, charts as PNG data: URIs), so the file can be mailed,
attached to an issue or opened offline; nothing is fetched. The page holds, per result, the
level table (with goodput and SLO columns when the run had an SLO), the charts against
concurrency (log2 axis, ticks 1, 2, 4, 8), the workload, package versions, machine, server
command and notes; for two or more results the recipe / baseline ratios (the first result
is the baseline); and a definitions section for every metric, formulas written out.
"""

from __future__ import annotations

import base64
import html
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..display import dict_rows_html
from .result import BenchResult

DEFINITIONS = (
    ("TTFT", "time to first token: first streamed event carrying content minus the time the request was "
             "written (client-side queueing is reported apart, never inside TTFT)."),
    ("ITL", "inter-token latency: every gap between consecutive content events of a request (per chunk: under "
            "speculative decoding one chunk may carry several tokens)."),
    ("TPOT", "time per output token of request i: TPOT_i = (E2EL_i - TTFT_i) / (output_tokens_i - 1), for "
             "answers longer than one token."),
    ("E2E", "end-to-end latency: last content event minus send time."),
    ("throughput", "output tok/s = sum of output tokens / wall time of the level; req/s = completed requests / "
                   "wall time; token counts are the server's (stream usage)."),
    ("goodput", "requests/s meeting every SLO term on their own values (vLLM bench --goodput): TTFT_i, TPOT_i and "
                "E2EL_i at most their thresholds, and the request's own p-th percentile of its ITL gaps at most "
                "the ITL threshold; failed requests are never good. 'SLO met': the level's percentiles meet "
                "every term."),
    ("blended $/1M", "total_throughput_tok_s = (1 / p50_inter_token_latency_s) * concurrency; "
                     "blended_usd_per_1M = (1 - discount) * instance_usd_per_hour / (total_throughput_tok_s * "
                     "3600 / 1e6) / 4 (input:output tokens 3:1; fed the level's TPOT p50)."),
    ("$/1M out", "(1 - discount) * instance_usd_per_hour / (output tok/s * 3600 / 1e6): the direct cost of output "
                 "tokens at the measured throughput."),
    ("prefix hit", "share of prompt tokens the server served from its prefix cache during the level "
                   "(delta vllm:prefix_cache_hits / delta vllm:prefix_cache_queries); every level sends fresh "
                   "prompts, so a high value means someone else warmed the cache."),
    ("±95%", "with --repeats N: half width of the Student t 95% confidence interval across repeats, "
             "t(0.975, N-1) * s / sqrt(N)."),
)

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;
color:#1b1f24;line-height:1.45;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.25rem;border-bottom:1px solid #d0d7de;padding-bottom:.2rem;
margin-top:2rem}h3{font-size:1.05rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.85rem}th,td{border:1px solid #d0d7de;padding:.25rem .5rem;
text-align:right}th{background:#f6f8fa}td:first-child,th:first-child{text-align:left}
caption{text-align:left;font-weight:600;padding:.2rem 0}
img.chart{max-width:100%;border:1px solid #d0d7de;margin:.5rem 0}
.meta{color:#57606a;font-size:.9rem}.note{color:#9a6700}dl dt{font-weight:600;margin-top:.5rem}
dl dd{margin-left:1.2rem}pre{background:#f6f8fa;padding:.5rem;overflow-x:auto;font-size:.8rem}
"""


@dataclass
class Report:
    """A written report: where it is, its title and what it holds."""

    path: Path
    title: str
    results: list[str]
    charts: int

    def __str__(self) -> str:
        return f"report: {self.path} ({len(self.results)} result(s), {self.charts} chart(s))"

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return f"<p>report written: <code>{html.escape(str(self.path))}</code> ({html.escape(self.title)})</p>"


def _png_data_uri(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _kv_table(caption: str, data: dict | None) -> str:
    if not data:
        return ""
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_text(v))}</td></tr>" for k, v in data.items())
    return f"<table><caption>{html.escape(caption)}</caption>{rows}</table>"


def _text(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, default=str)


def goodput_chart(results: Sequence[BenchResult]) -> Any:
    """Goodput and request throughput against concurrency, for results that had an SLO."""
    from matplotlib.figure import Figure

    from ..charts import concurrency_axis, level_xs, x_label

    fig = Figure(figsize=(5.5, 3.6))
    ax = fig.subplots()
    levels = []
    for r in results:
        rows = r.rows()
        xs = level_xs(rows)
        levels += xs
        line, = ax.plot(xs, [x.get("goodput req/s") for x in rows], marker="o", label=f"{r.name} goodput")
        ax.plot(xs, [x["req/s"] for x in rows], marker="x", linestyle="--", color=line.get_color(),
                label=f"{r.name} req/s")
    concurrency_axis(ax, levels, x_label(results))
    ax.set_ylabel("requests / s")
    ax.set_title("Goodput under the SLO")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def _result_section(r: BenchResult) -> str:
    notes = "".join(f"<li class='note'>{html.escape(n)}</li>" for n in r.notes)
    rec = (r.recipe or {}).get("name", r.endpoint.get("base_url", ""))
    head = {"recipe": rec, "model": r.endpoint.get("model"), "status": r.status, "instance": r.instance,
            "discount": r.discount, "SLO": r.slo or "none", "started": r.started, "finished": r.finished,
            "saved": r.path}
    server = {"argv": " ".join(r.server.get("argv", [])) if r.server else None} if r.server else None
    per = r.adapter_rows()
    return (f"<section class='result'><h2>{html.escape(r.name)}</h2>{_kv_table('run', head)}"
            f"<h3>Levels</h3>{dict_rows_html(r.rows())}"
            f"{'<h3>Per LoRA adapter</h3>' + dict_rows_html(per) if per else ''}"
            f"{'<h3>Notes</h3><ul>' + notes + '</ul>' if notes else ''}"
            f"<h3>Workload</h3>{_kv_table('workload', r.workload)}"
            f"<h3>Versions</h3>{_kv_table('versions', r.versions)}"
            f"<h3>Machine</h3>{_kv_table('machine', r.machine)}{_kv_table('server', server)}</section>")


def default_title(results: Sequence[BenchResult]) -> str:
    return "jupyter-optimize report: " + " vs ".join(r.name for r in reversed(results))


def render(results: Sequence[BenchResult], title: str | None = None) -> tuple[str, int]:
    """(the HTML page, number of charts) for `results`; the first is the baseline of a comparison."""
    from .. import charts
    from .compare import Comparison

    if not results:
        raise ValueError("render needs at least one result")
    title = title or default_title(results)
    figs = [("Throughput, latency and blended price against concurrency", charts.figure(list(results), "dashboard"))]
    if any(r.slo for r in results):
        figs.append(("Goodput", goodput_chart(results)))
    imgs = "".join(f"<figure><img class='chart' alt='{html.escape(cap)}' src='{_png_data_uri(f)}'/>"
                   f"<figcaption>{html.escape(cap)}</figcaption></figure>" for cap, f in figs)
    comparison = ""
    if len(results) >= 2:
        base = results[0]
        for other in results[1:]:
            c = Comparison.of(other, base)
            comparison += (f"<h3>{html.escape(other.name)} / {html.escape(base.name)}</h3>"
                           f"<p class='meta'>ratio = recipe / baseline; throughput: higher is better, latency and "
                           f"price: lower is better</p>{dict_rows_html(c.rows)}")
        comparison = f"<section><h2>Comparison</h2>{comparison}</section>"
    defs = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in DEFINITIONS)
    body = (f"<h1>{html.escape(title)}</h1><p class='meta'>generated {time.strftime('%Y-%m-%d %H:%M:%S %z')} by "
            f"jupyter-optimize; {len(results)} result(s)</p>{comparison}<section><h2>Charts</h2>{imgs}</section>"
            + "".join(_result_section(r) for r in results)
            + f"<section id='definitions'><h2>Definitions</h2><dl>{defs}</dl></section>")
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><style>{CSS}</style></head>"
            f"<body>{body}</body></html>")
    return page, len(figs)


def write_report(results: Sequence[BenchResult], path: str | Path, title: str | None = None) -> Report:
    """Render and write the page atomically; returns the Report."""
    from ..base.files import atomic_write_text

    page, n = render(results, title)
    p = atomic_write_text(Path(path), page)
    return Report(p, title or default_title(results), [r.name for r in results], n)
