"""The built wheel works outside the source tree: shipped recipes and the catalog come with it.

The wheel is built from this checkout and installed (without dependencies) into a fresh
virtual environment; that environment borrows the test environment's third-party packages
through a plain path entry (a .pth line, so the editable install's own hook is not loaded),
and runs from an empty folder, so nothing of the checkout can be found by accident.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Without the checkout on PYTHONPATH (a dev shell may set it): pip would take the checkout for
# the installed distribution, and python would import it instead of the wheel.
CLEAN_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp / "dist")], check=True, capture_output=True, text=True, timeout=600)
    wheel = next((tmp / "dist").glob("jupyter_optimize-*.whl"))
    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True, env=CLEAN_ENV).stdout.strip())
    (site / "borrowed-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True, text=True, timeout=600, env=CLEAN_ENV)
    work = tmp / "elsewhere"
    work.mkdir()
    return env_dir, work


def _run(installed, *args: str) -> str:
    env_dir, work = installed
    out = subprocess.run([str(env_dir / "bin" / "jupyter-optimize"), *args], cwd=work, capture_output=True,
                         text=True, timeout=300, env={"PATH": "/usr/bin:/bin", "HOME": str(work)})
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_the_package_runs_from_the_wheel_not_the_checkout(installed):
    env_dir, work = installed
    where = subprocess.run([str(env_dir / "bin" / "python"), "-c", "import jupyter_ext; print(jupyter_ext.__file__)"],
                           cwd=work, capture_output=True, text=True, check=True, env=CLEAN_ENV).stdout
    assert str(env_dir) in where and str(ROOT) not in where


def test_recipe_list_models_and_show_from_the_wheel(installed):
    listed = _run(installed, "recipe", "list")
    assert "Recipe 'baseline'" in listed and "Recipe 'ngram'" in listed
    assert "smollm2" in _run(installed, "models").lower()
    assert "name: baseline" in _run(installed, "recipe", "show", "baseline")


def test_a_user_recipe_folder_wins_over_the_shipped_one(installed):
    env_dir, work = installed
    mine = work / "recipes"
    mine.mkdir(exist_ok=True)
    (mine / "baseline.yaml").write_text("name: baseline\ndescription: my own baseline\n")
    try:
        assert "my own baseline" in _run(installed, "recipe", "show", "baseline")
    finally:
        (mine / "baseline.yaml").unlink()


def test_the_example_dataset_ships_in_the_wheel(installed):
    env_dir, work = installed
    code = ("from jupyter_ext.bench.datasets import EXAMPLE_DATASET, load_dataset\n"
            "print(EXAMPLE_DATASET, len(load_dataset(EXAMPLE_DATASET).rows))")
    out = subprocess.run([str(env_dir / "bin" / "python"), "-c", code], cwd=work, capture_output=True, text=True,
                         check=True).stdout
    assert str(env_dir) in out and out.strip().endswith(" 3")
