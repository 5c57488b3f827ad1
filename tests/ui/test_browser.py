"""The panel in a real browser: JupyterLab (started here on 127.0.0.1 with a token) driven by
Playwright with Debian's Chromium (no browser download). Runs the panel notebook, picks a
model, builds a recipe (first an impossible one: its error shows and Run is disabled), runs a
small benchmark against the fake streaming server and waits for the table and the chart.
Screenshots go to test-output/. JupyterLab and its kernels are stopped by the server's pid."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from conftest import ROOT, wait_until
from jupyter_ext.catalog import get_model

CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "test-output"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Quiet JupyterLab: no news or update checks (they would reach outside and pop up toasts),
# and start the notebook's kernel without asking which one.
LAB_SETTINGS = {"@jupyterlab/apputils-extension/notification.jupyterlab-settings":
                {"checkForUpdates": False, "fetchNews": "false", "doNotDisturbMode": True},
                "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"autoStartDefaultKernel": True}}


def _lab_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture
def lab(tmp_path):
    """JupyterLab serving a copy of notebooks/ (so running cells never rewrites the repo's)."""
    from jupyter_ext.engine import free_port

    root = tmp_path / "root"
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    settings = tmp_path / "settings"
    for name, value in LAB_SETTINGS.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
           "--LabApp.extension_manager=readonly",  # no package index lookups
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}"]
    log = open(tmp_path / "lab.log", "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _lab_ready(f"{base}/api/status?token={token}") or proc.poll() is not None,
                   120, "JupyterLab")
        assert proc.poll() is None, (tmp_path / "lab.log").read_text()[-3000:]
        yield {"base": base, "token": token, "root": root}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the group of the server and its kernels
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


@pytest.fixture
def page(tmp_path):
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is needed: apt-get install chromium"
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=ARGS,
            viewport={"width": 1400, "height": 1000})
        try:
            yield ctx.pages[0] if ctx.pages else ctx.new_page()
        finally:
            ctx.close()


def _code_cells_up_to_panel(path: Path) -> int:
    """How many code cells to run, in order, to show the panel (the panel cell included)."""
    cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    return next(i for i, c in enumerate(cells) if "%optimize panel" in c.source) + 1


def _run_cell(page, k: int) -> None:
    """Run the k-th code cell with the toolbar's Run button and wait for its execution count.
    A run asked for before the kernel's connection is up is dropped by JupyterLab without a
    word, so a cell that did not start within a few seconds is asked again."""
    run = page.locator(".jp-NotebookPanel-toolbar [data-command='notebook:run-cell-and-select-next']")
    prompt = page.locator(".jp-Notebook .jp-CodeCell").nth(k).locator(".jp-InputArea-prompt")
    for _ in range(12):
        prompt.click()
        run.click()
        try:
            page.wait_for_function("(el) => /\\[(\\*|\\d+)\\]/.test(el.textContent)",
                                   arg=prompt.element_handle(), timeout=5_000)
            break
        except PlaywrightTimeout:
            continue
    page.wait_for_function("(el) => /\\[\\d+\\]/.test(el.textContent)", arg=prompt.element_handle(),
                           timeout=120_000)


def _shot(page, name: str) -> Path:
    SHOTS.mkdir(exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_panel_in_jupyterlab(lab, page, schedule_server_factory):
    srv = schedule_server_factory(ttft_ms=5, itl_ms=5)
    try:
        _drive_panel(page, lab, srv.base_url)
    except Exception:
        _shot(page, "browser-panel-failure")  # what the page showed when it went wrong
        (SHOTS / "browser-panel-failure.html").write_text(page.content())
        raise


def _drive_panel(page, lab, url: str) -> None:
    """The steps a person takes, in order; each waits for what the page shows."""
    page.set_default_timeout(60_000)
    page.goto(f"{lab['base']}/lab/tree/notebooks/panel.ipynb?token={lab['token']}")
    page.wait_for_selector(".jp-Notebook .jp-Cell")
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
    if page.locator(".jp-Dialog").is_visible():  # "Select Kernel", should the setting be ignored
        page.locator(".jp-Dialog .jp-mod-accept").click()
    for k in range(_code_cells_up_to_panel(lab["root"] / "notebooks" / "panel.ipynb")):
        _run_cell(page, k)
    panel = page.locator(".jo-optimize-panel")
    panel.wait_for(timeout=120_000)

    # Model tab: pick a model; its instance-fit table follows.
    mistral = get_model("huggingface-llm-mistral-7b-instruct")
    panel.locator(".jo-model select").select_option(f"{mistral.display_name} ({mistral.id})")  # option = label
    page.wait_for_function("document.querySelector('.jo-plan caption')?.textContent.includes('mistral')")

    # Recipe tab: an impossible stack shows its reason, and Run is disabled with it.
    panel.locator(".lm-TabBar-tab", has_text="Recipe").click()
    assert panel.locator(".jo-recipe-model input").input_value() == "huggingface-llm-mistral-7b-instruct"
    panel.locator(".jo-compile input[type=checkbox]").check()
    panel.locator(".jo-recipe-builder .jo-error", has_text="StackError").wait_for()
    panel.locator(".lm-TabBar-tab", has_text="Benchmark").click()
    assert panel.locator("button.jo-run").is_disabled()
    assert "enforce_eager" in panel.locator(".jo-run-reason").inner_text()
    _shot(page, "browser-panel-invalid-stack")

    # A valid recipe: no compilation, n-gram speculation.
    panel.locator(".lm-TabBar-tab", has_text="Recipe").click()
    panel.locator(".jo-compile input[type=checkbox]").uncheck()
    panel.locator(".jo-speculative select").select_option("ngram")
    page.wait_for_function("document.querySelector('.jo-recipe-yaml')?.textContent.includes('ngram')")

    # Benchmark tab: a small run against the fake server; the table and the chart appear.
    panel.locator(".lm-TabBar-tab", has_text="Benchmark").click()
    panel.locator(".jo-url input").fill(url)
    panel.locator(".jo-concurrency input").fill("1,2")
    panel.locator(".jo-url input").press("Enter")
    run = panel.locator("button.jo-run")
    assert run.is_enabled()
    run.click()
    panel.locator(".jo-chart img").wait_for(timeout=120_000)
    rows = panel.locator(".jo-table tbody tr")
    assert rows.count() == 2 and rows.first.locator("td").first.inner_text() == "1"
    assert "done" in panel.locator(".jo-status").inner_text()
    shot = _shot(page, "browser-panel-benchmark")
    assert shot.stat().st_size > 10_000
