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


def test_every_queue_entry_names_an_arm_its_script_has(monkeypatch, tmp_path):
    # a misspelt --only runs nothing on the GPU host and costs the sitting's device time
    import re

    monkeypatch.setenv("JUPYTER_OPTIMIZE_CACHE", str(tmp_path))
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import gpu_bench
    import gpu_draft
    from jupyter_ext.techniques.speculative import DraftTraining

    names = {"gpu_bench.py": {spec["name"] for g in ("stacks", "llama", "llama-awq") for spec, _ in gpu_bench.runs(g)},
             "gpu_draft.py": {spec["name"] for spec, _ in gpu_draft.arms(3, DraftTraining().model_dump(), None)}}
    queue = (ROOT / "benchmarks" / "gpu_queue.sh").read_text()
    entries = re.findall(r'\[(\w+)\]="benchmarks/(gpu_\w+\.py) ([^"]*)"', queue)
    assert {e for e, _, _ in entries} >= {"bf16", "marlin", "fp8", "atomic", "w4a8", "w4a8i", "plain", "suffix"}
    for entry, script, argv in entries:
        only = re.search(r"--only (\S+)", argv)
        if only:
            assert only.group(1) in names[script], (entry, only.group(1))
    sys.modules.pop("gpu_draft", None)
    sys.modules.pop("gpu_bench", None)


def test_a_failed_gpu_run_keeps_the_engines_cause_ahead_of_a_long_traceback(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import gpu_bench
    from jupyter_ext.errors import EngineStartError

    e = EngineStartError("the server exited with code 1 before it was ready.\n"
                         "Cause, from the log: ValueError: Marlin W4A8-FP8 only support SM89 or SM12x device\n"
                         + "(APIServer pid=845)   File \"x.py\", line 1, in f\n" * 200)
    row = gpu_bench.failed_run("w4a8", e)
    assert row["name"] == "w4a8" and len(row["error"]) < 1600
    assert "Marlin W4A8-FP8 only support SM89" in row["error"]
    assert "FAILED w4a8" in capsys.readouterr().out
    sys.modules.pop("gpu_bench", None)
