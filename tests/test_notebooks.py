"""The tutorial notebooks run top to bottom under nbmake (as `pytest --nbmake notebooks/`
would: a fresh kernel, the notebook's folder as working directory), with the small values
of their parameters cell. A magic that fails must fail its cell: proven on a tiny notebook,
and by the `raises-exception` cells of the tutorials, which must really raise."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from nbmake.nb_run import NotebookRun

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
TIMEOUT_S = 900  # per cell; a vLLM start is about a minute here


def _tiny(tmp_path: Path, line: str, tags: list[str] | None = None) -> Path:
    cell = new_code_cell(line)
    if tags:
        cell.metadata["tags"] = tags
    nb = new_notebook(cells=[new_code_cell("%load_ext jupyter_ext"), cell, new_code_cell("print('after')")])
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nb, path)
    return path


def test_a_failing_magic_fails_the_notebook(tmp_path):
    result = NotebookRun(_tiny(tmp_path, "%optimize plan no-such-model"), 120).execute()
    assert result.error is not None and result.error.failing_cell_index == 1
    assert "UsageError: UnknownModelError" in result.error.summary
    assert result.nb.cells[2].outputs == []  # the cell after it never ran


def test_raises_exception_tag_lets_the_failure_through(tmp_path):
    result = NotebookRun(_tiny(tmp_path, "%optimize plan no-such-model", ["raises-exception"]), 120).execute()
    assert result.error is None
    assert result.nb.cells[2].outputs[0]["text"] == "after\n"


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
def test_notebook_runs_under_nbmake(path):
    result = NotebookRun(path, TIMEOUT_S).execute()
    if result.error is not None:
        pytest.fail(f"{path.name}, cell {result.error.failing_cell_index}: {result.error.summary}\n"
                    f"{result.error.trace[-3000:]}")

    for cell in result.nb.cells:
        if "raises-exception" in cell.metadata.get("tags", []):
            errors = [o for o in cell.outputs if o.output_type == "error"]
            assert errors, f"the cell tagged raises-exception did not fail: {cell.source}"
