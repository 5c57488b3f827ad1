"""`report`: one self-contained HTML page (no network), for a run or a comparison, from the
core, the CLI and the magic; and the charts' plain concurrency ticks."""

import re

import pytest

from jupyter_ext.bench.report import DEFINITIONS, render, write_report
from synthetic_results import result


def _pair(tmp_path):
    base = result("baseline", [(1, 0.05, 0.02), (2, 0.06, 0.022), (4, 0.08, 0.025), (8, 0.12, 0.03)],
                  slo="ttft_p99=100ms,tpot_p50=28ms")
    rec = result("ngram", [(1, 0.05, 0.01), (2, 0.06, 0.011), (4, 0.08, 0.013), (8, 0.12, 0.016)],
                 slo="ttft_p99=100ms,tpot_p50=28ms")
    base.save(tmp_path / "baseline.json")
    rec.save(tmp_path / "ngram.json")
    return base, rec


def test_the_page_is_self_contained_and_says_everything(tmp_path):
    base, rec = _pair(tmp_path)
    page, charts = render([base, rec])
    assert charts == 2  # the dashboard and goodput (the runs had an SLO)
    assert page.startswith("<!DOCTYPE html>") and "<title>jupyter-optimize report: ngram vs baseline</title>" in page
    # nothing to fetch: no external script, stylesheet, image or font
    assert not re.search(r"""(src|href)\s*=\s*['"]?(https?:)?//""", page)
    assert "<script" not in page and "@import" not in page
    assert page.count("src='data:image/png;base64,") == 2
    for name, _ in DEFINITIONS:
        assert f"<dt>{name}</dt>" in page
    assert "blended_usd_per_1M = (1 - discount) * instance_usd_per_hour" in page
    assert "<h2>Comparison</h2>" in page and "out tok/s ratio" in page
    for section in ("Workload", "Versions", "Machine", "Levels"):
        assert f"<h3>{section}</h3>" in page
    assert "goodput req/s" in page and "SLO met" in page


def test_one_run_has_no_comparison(tmp_path):
    base, _ = _pair(tmp_path)
    rep = write_report([base], tmp_path / "one.html", title="My <run>")
    page = rep.path.read_text()
    assert "<title>My &lt;run&gt;</title>" in page and "<h2>Comparison</h2>" not in page
    assert rep.charts == 2 and "one.html" in str(rep)


def test_cli_writes_the_report(tmp_path, capsys):
    from jupyter_ext.faces.cli import main

    _pair(tmp_path)
    out = tmp_path / "r.html"
    assert main(["report", str(tmp_path / "baseline.json"), str(tmp_path / "ngram.json"), "-o", str(out)]) == 0
    assert out.is_file() and "ngram vs baseline" in out.read_text()
    assert str(out) in capsys.readouterr().out
    assert main(["report", str(tmp_path / "missing.json"), "-o", str(out)]) == 2
    assert "not found" in capsys.readouterr().err


def test_magic_writes_the_report(tmp_path):
    from IPython.core.error import UsageError
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "jupyter_ext")
    base, rec = _pair(tmp_path)
    ip.user_ns.update(b=base, r=rec)
    out = tmp_path / "m.html"
    rep = ip.run_line_magic("optimize", f"report @b @r --output {out} -o rep")
    assert rep.path == out and ip.user_ns["rep"] is rep and out.is_file()
    with pytest.raises(UsageError):
        ip.run_line_magic("optimize", "report")


def test_chart_ticks_read_1_2_4_8():
    from jupyter_ext import charts

    base = result("b", [(1, 0.05, 0.02), (2, 0.06, 0.022), (4, 0.08, 0.025), (8, 0.12, 0.03)])
    fig = charts.figure([base], "throughput")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["1", "2", "4", "8"]
    assert ax.get_xscale() == "log"
