"""The tutorial notebooks run top to bottom (as `pytest --nbmake notebooks/` would: a fresh
kernel, the notebook's folder as working directory), with the small values of their
parameters cell. A magic that fails must fail its cell: proven on a tiny notebook, and by
the `raises-exception` cells of the tutorials, which must really raise.

They are run by nbclient's NotebookClient, the library nbmake itself drives: a cell tagged
`raises-exception` may fail, any other error stops the run at that cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError
from nbformat.v4 import new_code_cell, new_notebook

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
TIMEOUT_S = 900  # per cell; a vLLM start is about a minute here


@dataclass
class Failure:
    failing_cell_index: int
    summary: str
    trace: str


@dataclass
class Run:
    nb: nbformat.NotebookNode
    error: Failure | None


def run_notebook(path: Path, timeout_s: int) -> Run:
    """Execute a copy of the notebook in a fresh kernel with its folder as working directory;
    the first cell that fails (other than one tagged raises-exception) ends the run."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout_s, resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError) as err:
        index = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"
                      and "raises-exception" not in c.metadata.get("tags", [])
                      and (any(o.output_type == "error" for o in c.outputs)
                           or "shell.execute_reply" not in c.metadata.get("execution", {}))), -1)
        summary = (f"{err.ename}: {err.evalue}" if isinstance(err, CellExecutionError)
                   else str(err).splitlines()[0])
        return Run(nb, Failure(index, summary, str(err)))
    return Run(nb, None)


def _tiny(tmp_path: Path, line: str, tags: list[str] | None = None) -> Path:
    cell = new_code_cell(line)
    if tags:
        cell.metadata["tags"] = tags
    nb = new_notebook(cells=[new_code_cell("%load_ext jupyter_ext"), cell, new_code_cell("print('after')")])
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nb, path)
    return path


def test_a_failing_magic_fails_the_notebook(tmp_path):
    result = run_notebook(_tiny(tmp_path, "%optimize plan no-such-model"), 120)
    assert result.error is not None and result.error.failing_cell_index == 1
    assert "UsageError: UnknownModelError" in result.error.summary
    assert result.nb.cells[2].outputs == []  # the cell after it never ran


def test_raises_exception_tag_lets_the_failure_through(tmp_path):
    result = run_notebook(_tiny(tmp_path, "%optimize plan no-such-model", ["raises-exception"]), 120)
    assert result.error is None
    assert result.nb.cells[2].outputs[0]["text"] == "after\n"


def test_a_cell_past_its_timeout_fails_the_notebook(tmp_path):
    result = run_notebook(_tiny(tmp_path, "import time\ntime.sleep(60)"), 3)
    assert result.error is not None and result.error.failing_cell_index == 1
    assert "timed out" in result.error.summary.lower()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_a_parameterised_tutorial(path):
    nb = nbformat.read(path, as_version=4)
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert "parameters" in first_code.metadata.get("tags", []), "first code cell must be tagged `parameters`"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit notebooks without outputs"


@pytest.mark.vllm
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path):
    result = run_notebook(path, TIMEOUT_S)
    if result.error is not None:
        pytest.fail(f"{path.name}, cell {result.error.failing_cell_index}: {result.error.summary}\n"
                    f"{result.error.trace[-3000:]}")

    for cell in result.nb.cells:
        if "raises-exception" in cell.metadata.get("tags", []):
            errors = [o for o in cell.outputs if o.output_type == "error"]
            assert errors, f"the cell tagged raises-exception did not fail: {cell.source}"
