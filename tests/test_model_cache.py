"""The model conversion cache under two processes: the second one waits for the first and
uses its folder; it neither converts again nor removes a folder the first one handed out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

from conftest import ROOT, wait_until

# One "kernel": converts a fake GGUF with a stand-in converter that reports when it starts
# and then holds until the test says go, so the two processes overlap for certain.
CHILD = r"""
import json, logging, os, subprocess, sys, time
from pathlib import Path
from jupyter_ext.store import model_files

logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s %(message)s")
work = Path(sys.argv[1])

def stand_in_converter(cmd, **kw):
    out = Path(cmd[-1])
    (work / f"started-{os.getpid()}").touch()
    deadline = time.monotonic() + 60
    while not (work / "go").exists():
        if time.monotonic() > deadline:
            sys.exit("the test never said go")
        time.sleep(0.05)
    out.mkdir(parents=True)
    (out / "config.json").write_text(json.dumps({"converted_by": os.getpid()}))
    with open(work / "conversions", "a") as f:
        f.write(f"{os.getpid()}\n")
    return subprocess.CompletedProcess(cmd, 0, "", "")

model_files.subprocess.run = stand_in_converter
folder = model_files.gguf_to_hf_folder(work / "model.gguf", "m", dest_root=work / "cache")
print(json.dumps({"folder": str(folder), "config": json.loads((folder / "config.json").read_text())}))
"""


def _start(work):
    return subprocess.Popen([sys.executable, "-c", CHILD, str(work)], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_two_processes_converting_one_model_convert_it_once(tmp_path):
    (tmp_path / "model.gguf").write_bytes(b"GGUF not really")
    first = _start(tmp_path)
    second = None
    try:
        wait_until(lambda: list(tmp_path.glob("started-*")), 60, "the first conversion to start")
        second = _start(tmp_path)
        # the second process reaches the folder: with the lock it waits (and says so), without
        # one it would start a conversion of its own
        err = []
        reader = threading.Thread(target=lambda: err.extend(second.stderr), daemon=True)
        reader.start()
        wait_until(lambda: any("waiting for another process" in line for line in err)
                   or len(list(tmp_path.glob("started-*"))) > 1, 60, "the second process to reach the cache")
        (tmp_path / "go").touch()
        out1, err1 = first.communicate(timeout=60)
        second.wait(timeout=60)
        out2 = second.stdout.read()
        reader.join(timeout=10)
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    assert first.returncode == 0, err1
    assert second.returncode == 0, "".join(err)
    r1, r2 = json.loads(out1), json.loads(out2)
    assert r1 == r2  # the same folder, still holding what the first process converted
    assert r1["config"]["converted_by"] == first.pid
    assert (tmp_path / "conversions").read_text().split() == [str(first.pid)]
    # each says what it did, through logging (the child's handler prints it to stderr)
    assert "model cache miss: converting model.gguf" in err1
    assert "was converted by another process meanwhile" in "".join(err)
    assert [p.name for p in (tmp_path / "cache" / "models").iterdir() if ".partial-" in p.name] == []


def test_a_second_thread_waits_for_the_folder_lock(tmp_path, caplog):
    """Each call takes its own FileLock instance (as a second kernel thread would)."""
    import logging

    from jupyter_ext.base.files import folder_lock

    final = tmp_path / "artifact"
    order: list[str] = []
    release = threading.Event()

    def first():
        with folder_lock(final):
            order.append("first in")
            release.wait(60)
            order.append("first out")

    def second():
        with folder_lock(final):
            order.append("second in")

    caplog.set_level(logging.INFO, logger="jupyter_ext.base.files")
    t1 = threading.Thread(target=first)
    t1.start()
    wait_until(lambda: order == ["first in"], 30, "the first thread to hold the lock")
    t2 = threading.Thread(target=second)
    t2.start()
    wait_until(lambda: "waiting for another process" in caplog.text, 30, "the second thread to wait")
    assert order == ["first in"]
    release.set()
    t1.join(30)
    t2.join(30)
    assert order == ["first in", "first out", "second in"]


def test_the_gguf_conversion_asks_transformers_for_fp32_by_its_current_name(monkeypatch, tmp_path):
    """transformers 5 calls it `dtype` (`torch_dtype` is deprecated and warns on every
    conversion). The loaders are stood in for; the real conversion takes half a minute."""
    import torch
    import transformers

    from jupyter_ext.store import gguf_convert

    seen = {}

    class Model:
        config = type("Cfg", (), {})()

        def save_pretrained(self, out, **kw):
            seen["saved"] = out

    class Tok:
        def save_pretrained(self, out):
            pass

    def load_model(path, **kw):
        seen.update(kw)
        return Model()

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", load_model)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **kw: Tok())
    gguf_convert.convert(tmp_path / "m.gguf", tmp_path / "out")
    assert seen["dtype"] is torch.float32 and "torch_dtype" not in seen
    assert seen["gguf_file"] == "m.gguf" and seen["saved"] == str(tmp_path / "out")
