"""The HTML report in a real browser (Debian's Chromium through Playwright, no download):
the page opens from a file with the network cut off, and shows its title, the level table
and the charts (images that actually decoded)."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthetic_results import result

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@pytest.fixture
def browser_page(tmp_path):
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is needed: apt-get install -y chromium")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield browser.new_page(viewport={"width": 1300, "height": 900})
        finally:
            browser.close()


def test_report_opens_offline_and_shows_tables_and_charts(tmp_path, browser_page):
    from jupyter_ext.bench.report import write_report

    slo = "ttft_p99=100ms,tpot_p50=28ms"
    base = result("baseline", [(1, 0.05, 0.02), (2, 0.06, 0.022), (4, 0.08, 0.025)], slo=slo)
    rec = result("ngram", [(1, 0.05, 0.01), (2, 0.06, 0.011), (4, 0.08, 0.013)], slo=slo)
    rep = write_report([base, rec], tmp_path / "report.html")
    page = browser_page
    fetched = []
    page.route("**/*", lambda route: (fetched.append(route.request.url),
                                      route.continue_() if route.request.url.startswith(("file:", "data:"))
                                      else route.abort()))
    page.goto(rep.path.as_uri())
    assert page.title() == "jupyter-optimize report: ngram vs baseline"
    assert not [u for u in fetched if not u.startswith(("file:", "data:"))]
    # the baseline's level table: first row is concurrency 1 with 8 requests ok
    first = page.locator("section.result").first.locator("table").nth(1).locator("tbody tr").first
    cells = first.locator("td")
    assert cells.nth(0).inner_text() == "1" and cells.nth(1).inner_text() == "8"
    imgs = page.locator("img.chart")
    assert imgs.count() == 2
    for i in range(imgs.count()):
        assert imgs.nth(i).evaluate("img => img.complete && img.naturalWidth > 300")
    assert page.locator("#definitions dt", has_text="goodput").count() == 1
    assert page.locator("h2", has_text="Comparison").is_visible()
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert (tmp_path / "report.png").stat().st_size > 10_000
