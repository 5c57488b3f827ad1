"""The tutorial notebooks run top to bottom (as `pytest --nbmake notebooks/` would: a fresh
kernel, the notebook's folder as working directory), with the small values of their
parameters cell. A magic that fails must fail its cell: proven on a tiny notebook, and by
the `raises-exception` cells of the tutorials, which must really raise.

They are run by nbclient's NotebookClient, the library nbmake itself drives: a cell tagged
`raises-exception` may fail, any other error stops the run at that cell.
"""

from __future__ import annotations

import os
import re
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
    leaked = credentials_in_outputs(result.nb)
    assert not leaked, f"{path.name} shows credentials in its outputs: {leaked}"


# Credentials a notebook sets (e.g. moto's fake ones) and any AWS access key id.
_SET_CREDENTIAL = re.compile(r"(AWS_SECRET_ACCESS_KEY|AWS_ACCESS_KEY_ID|AWS_SESSION_TOKEN)\s*=\s*[\"']([^\"']+)[\"']")
_ACCESS_KEY_ID = re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")


def _output_text(nb: nbformat.NotebookNode) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(str(out.get("text", "")))
            parts += [str(v) for v in out.get("data", {}).values()]
            parts += [out.get("evalue", ""), "\n".join(out.get("traceback", []))]
    return "\n".join(parts)


def credentials_in_outputs(nb: nbformat.NotebookNode) -> list[str]:
    """The credentials the notebook's code sets, the environment's, and any access key id that
    appear in what its cells printed or displayed (an empty list: none)."""
    secrets = {m.group(2) for c in nb.cells if c.cell_type == "code" for m in _SET_CREDENTIAL.finditer(c.source)}
    secrets |= {os.environ[v] for v in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN") if os.environ.get(v)}
    text = _output_text(nb)
    return sorted({s for s in secrets if s in text} | {m.group(0) for m in _ACCESS_KEY_ID.finditer(text)})


def test_the_credential_check_finds_a_printed_secret():
    """The check above can fail: a notebook that prints what it set is caught."""
    from nbformat.v4 import new_output

    nb = new_notebook(cells=[new_code_cell('os.environ.update(AWS_SECRET_ACCESS_KEY="s3cr3t-value")')])
    assert credentials_in_outputs(nb) == []
    nb.cells[0].outputs = [new_output("stream", name="stdout", text="key s3cr3t-value and AKIAABCDEFGHIJKLMNOP")]
    assert credentials_in_outputs(nb) == ["AKIAABCDEFGHIJKLMNOP", "s3cr3t-value"]
