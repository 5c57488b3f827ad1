"""The GPU sitting's scripts, checked on the CPU machine (they run on the GPU host, where a
mistake costs device time)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_queue_refuses_an_unknown_entry_before_it_copies_or_starts_anything(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path)}
    r = subprocess.run(["bash", "benchmarks/gpu_queue.sh", "start", "plain", "sufix"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "unknown queue entry: sufix" in r.stdout
    assert not (tmp_path / "repo").exists() and not (tmp_path / "res").exists()


def test_collect_on_a_machine_without_a_queue_fails_at_once_instead_of_waiting(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path), "OUT": str(tmp_path / "out")}
    r = subprocess.run(["bash", "benchmarks/gpu_queue.sh", "collect", "540"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 3
    assert "no queue on this machine" in r.stdout


def test_every_gpu_draft_arm_is_a_valid_recipe_and_suffix_uses_the_shipped_settings(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import gpu_draft
    from jupyter_ext.recipes import load_recipe, recipe_from_dict
    from jupyter_ext.techniques.speculative import DraftTraining

    arms = gpu_draft.arms(3, DraftTraining().model_dump(), None)
    recipes = {spec["name"]: recipe_from_dict(spec) for spec, _ in arms}
    assert list(recipes) == ["smol-compiled", "smol-ngram-compiled", "smol-draft-trained-compiled",
                             "smol-suffix-compiled"]
    assert recipes["smol-suffix-compiled"].speculative == load_recipe("suffix").speculative
    assert recipes["smol-suffix-compiled"].compile.enabled
    assert recipes["smol-compiled"].speculative is None
    sys.modules.pop("gpu_draft", None)


def test_the_gpu_suffix_build_uses_the_arctic_inference_pin_of_the_cpu_machine():
    from jupyter_ext.techniques.suffix import ARCTIC_INFERENCE_PIN

    script = (ROOT / "benchmarks" / "gpu_suffix.sh").read_text()
    version = next(line.split("=", 1)[1].split()[0] for line in script.splitlines() if line.startswith("VERSION="))
    assert ARCTIC_INFERENCE_PIN == f"arctic-inference=={version}"
    assert f'"arctic-inference=={version}"' in (ROOT / "setup.sh").read_text()
