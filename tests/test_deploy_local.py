"""Local deploy: a recipe's server keeps running, answers the SageMaker contract, survives
the deploying process, is reported when it dies, and is stopped by its pid."""

import json
import os
import signal
import subprocess
import sys
import urllib.request

import psutil
import pytest

from conftest import ROOT, wait_until
from jupyter_ext.deploy import local
from jupyter_ext.errors import DeployError, EndpointNotFoundError
from jupyter_ext.recipes import load_recipe


def _in_new_process(code: str) -> str:
    """Run in a fresh interpreter: what a restarted kernel would see."""
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          check=True, env=os.environ).stdout


@pytest.mark.vllm
def test_local_endpoint_lifecycle(tmp_path, monkeypatch):
    # models stay in the shared cache: only the endpoint state goes to tmp
    monkeypatch.setattr(local, "state_dir", lambda: tmp_path / "endpoints")
    recipe = load_recipe("baseline")
    recipe.engine.max_model_len = 1024
    ep = local.deploy(recipe, name="t1")
    try:
        assert ep.status == "running" and ep.host == "127.0.0.1"
        with urllib.request.urlopen(ep.base_url + "/ping", timeout=10) as r:
            assert r.status == 200
        assert len(local.invoke("t1", "Say hello.", max_tokens=8)) > 0
        assert len(local.invoke("t1", "Say hello.", max_tokens=8, stream=True)) > 0
        with pytest.raises(DeployError, match="already running"):
            local.deploy(recipe, name="t1")
        # a new interpreter (a restarted kernel) finds the endpoint through its state file
        out = _in_new_process(
            "from pathlib import Path; from jupyter_ext.deploy import local; "
            f"local.state_dir = lambda: Path({str(tmp_path / 'endpoints')!r}); "
            "print([(e.name, e.status) for e in local.list_endpoints()])")
        assert "('t1', 'running')" in out
        # a server that dies is reported as dead, with its log
        os.killpg(ep.pid, signal.SIGKILL)
        wait_until(lambda: local.get_endpoint("t1").status == "dead", 30, "the endpoint to be seen dead")
        assert "server is gone" in str(local.get_endpoint("t1"))
    finally:
        if local._is_our_server(ep.pid, ep.port):
            os.killpg(ep.pid, signal.SIGKILL)
    assert local.undeploy("t1").status == "stopped"
    with pytest.raises(EndpointNotFoundError):
        local.undeploy("t1")
    assert json.loads("[]") == [e.to_dict() for e in local.list_endpoints()]


def test_undeploy_stops_a_running_server_by_pid(tmp_path, monkeypatch):
    """A stand-in process whose command line looks like our server on port 1234."""
    monkeypatch.setattr(local, "state_dir", lambda: tmp_path / "endpoints")
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)",
                             "vllm.entrypoints.openai.api_server", "1234"], start_new_session=True)
    # Popen can return before the child's exec has set its command line
    wait_until(lambda: "1234" in psutil.Process(proc.pid).cmdline(), 10, "the stand-in to exec")
    try:
        ep = local.LocalEndpoint(name="fake", pid=proc.pid, host="127.0.0.1", port=1234, recipe={"name": "r"},
                                 log=str(tmp_path / "log"), started="now")
        (tmp_path / "endpoints").mkdir()
        (tmp_path / "endpoints" / "fake.json").write_text(json.dumps(ep.to_dict()))
        assert local.get_endpoint("fake").status == "starting"  # alive, but no /ping answers
        assert local.undeploy("fake", grace_s=5).status == "stopped"
        assert proc.wait(timeout=10) is not None
        assert not (tmp_path / "endpoints" / "fake.json").exists()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_only_a_live_vllm_server_on_that_port_is_ours():
    """pids get reused: another program, another port, an exited (zombie) server or a pid
    that no longer exists is never taken for our server, so undeploy never signals it."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()",
                             "vllm.entrypoints.openai.api_server", "--port", "4321"], stdin=subprocess.PIPE)
    wait_until(lambda: "4321" in psutil.Process(proc.pid).cmdline(), 10, "the stand-in to exec")
    try:
        assert local._is_our_server(proc.pid, 4321)
        assert not local._is_our_server(proc.pid, 4322)
        assert not local._is_our_server(os.getpid(), 4321)  # alive, but not a vLLM server
        proc.stdin.close()  # the stand-in exits; it stays a zombie until we reap it
        wait_until(lambda: psutil.Process(proc.pid).status() == psutil.STATUS_ZOMBIE, 10, "the stand-in to exit")
        assert not local._is_our_server(proc.pid, 4321)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert not local._is_our_server(proc.pid, 4321)  # reaped: the pid is gone
