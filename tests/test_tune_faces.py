"""`tune` and `report` from the three faces (CLI, magic, panel), with the fake measure
function of test_tune (no vLLM): the same verb, options and result everywhere."""

import pytest

from jupyter_ext.planning import tune as tune_core
from jupyter_ext.planning.tune_space import SearchSpace, default_space
from jupyter_ext.recipes import load_recipe
from test_tune import GPU, LLAMA, FakeBench, smooth

SLO = "tpot_p50=30ms,ttft_p99=1s"


@pytest.fixture
def fake(monkeypatch):
    bench = FakeBench(SearchSpace(default_space(LLAMA), (1, 2, 4)), GPU, smooth)
    monkeypatch.setattr(tune_core, "bench_measure", lambda opts=None, progress=True: bench)
    return bench


def test_cli_tune_prints_the_ranked_table_and_writes_the_recipe(fake, tmp_path, capsys, monkeypatch):
    from jupyter_ext.faces.cli import main

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "t.yaml"
    rc = main(["tune", LLAMA, "--slo", SLO, "--instance", GPU, "--concurrency", "1,2,4", "--max-tokens", "20",
               "-o", str(out), "--target-rps", "4"])
    text = capsys.readouterr().out
    assert rc == 0 and "winner" in text and "pruned" in text and "ConcurrentRequestsPerModel" in text
    assert load_recipe(out).model == LLAMA and list((tmp_path / "results").glob("tune-*.json"))
    assert main(["tune", LLAMA, "--slo", "tpot_p50=1ms", "--instance", GPU, "-o", str(tmp_path / "n.yaml")]) == 1
    assert main(["tune", "--slo", "bogus"]) == 2 and "form is" in capsys.readouterr().err


def test_magic_tune_returns_the_result(fake, tmp_path, monkeypatch):
    from IPython.core.error import UsageError
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.chdir(tmp_path)
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "jupyter_ext")
    res = ip.run_line_magic("optimize", f"tune {LLAMA} --slo {SLO} --instance {GPU} --concurrency 1,2,4 "
                                        f"--max-tokens 20 -o tuned")
    assert ip.user_ns["tuned"] is res and res.winner is not None
    assert (tmp_path / "tuned.yaml").is_file() and "<table" in res._repr_html_()
    with pytest.raises(UsageError, match="needs an SLO"):
        ip.run_line_magic("optimize", "tune")


def test_panel_tune_tab(fake, tmp_path, monkeypatch):
    from widgets import OptimizePanel
    from widgets.tune_panel import TunePanel

    monkeypatch.chdir(tmp_path)
    assert "Tune" in OptimizePanel().titles
    panel = TunePanel(LLAMA, instance=GPU, measure=fake)
    panel.slo.value, panel.concurrency.value, panel.max_tokens.value = SLO, "1,2,4", 20
    panel.target_rps.value = 3.0
    panel.run.click()
    res = panel.wait(60)
    assert res.winner is not None and res.sizing is not None
    assert "done" in panel.status.value and "ConcurrentRequestsPerCopy" in panel.table.value
    assert (tmp_path / "tuned.yaml").is_file() and not panel.run.disabled
    panel.slo.value = "speed"
    panel.run.click()
    assert "form is" in panel.message.text


# -- tune --target sagemaker --dry-run: the same SLO as a SageMaker AI recommendation job ----
@pytest.fixture
def no_aws_calls(monkeypatch):
    from botocore.client import BaseClient

    def refuse(*args, **kwargs):
        raise AssertionError("a dry run must not call AWS")

    monkeypatch.setattr(BaseClient, "_make_api_call", refuse)


def test_cli_tune_dry_run_prints_the_recommendation_requests(no_aws_calls, capsys, tmp_path, monkeypatch):
    import json

    from jupyter_ext.deploy.optimization import validate_request
    from jupyter_ext.deploy.aws import ApiRequest
    from jupyter_ext.faces.cli import main

    monkeypatch.chdir(tmp_path)
    rc = main(["tune", LLAMA, "--slo", "ttft_p99=1.5s", "--target", "sagemaker", "--dry-run", "--instance", GPU,
               "--concurrency", "1,2,8", "--max-tokens", "64", "--region", "eu-west-1"])
    text = capsys.readouterr().out
    assert rc == 0
    doc = json.loads(text[text.index("{"):])
    workload, job = doc["requests"]
    assert (workload["operation"], job["operation"]) == ("CreateAIWorkloadConfig", "CreateAIRecommendationJob")
    assert job["params"]["PerformanceTarget"] == {"Constraints": [{"Metric": "ttft-ms"}]}
    assert job["params"]["ComputeSpec"] == {"InstanceTypes": [GPU]} and doc["region"] == "eu-west-1"
    assert {"Key": "jupyter-optimize:slo", "Value": "ttft.p99=1500ms"} in job["params"]["Tags"]
    spec = json.loads(workload["params"]["AIWorkloadConfigs"]["WorkloadSpec"]["Inline"])["parameters"]
    assert (spec["concurrency"], spec["output_tokens_mean"]) == (8, 64)
    for r in doc["requests"]:  # what is printed is what botocore's model accepts
        validate_request(ApiRequest(r["service"], r["operation"], r["params"]))
    assert not list(tmp_path.iterdir())  # no tuned.yaml, no results: nothing was measured


def test_tune_for_sagemaker_refuses_what_it_cannot_show(no_aws_calls, capsys):
    from jupyter_ext.faces.cli import main

    assert main(["tune", "--slo", "ttft_p99=2s", "--target", "sagemaker"]) == 2
    assert "add --dry-run" in capsys.readouterr().err
    assert main(["tune", "--slo", "ttft_p99=2s", "--dry-run"]) == 2
    assert "--target sagemaker" in capsys.readouterr().err
    assert main(["tune", "--slo", "ttft_p99=2s,tpot_p50=50ms", "--target", "sagemaker", "--dry-run"]) == 2
    assert "constrain only ttft-ms" in capsys.readouterr().err  # the API has no TPOT target: named, not dropped


def test_magic_tune_dry_run_returns_the_dry_run(no_aws_calls, tmp_path, monkeypatch):
    from IPython.core.error import UsageError
    from IPython.core.interactiveshell import InteractiveShell

    from jupyter_ext.deploy.dryrun import DryRun

    monkeypatch.chdir(tmp_path)
    ip = InteractiveShell.instance()
    ip.extension_manager.load_extension("jupyter_ext")
    res = ip.run_line_magic("optimize", f"tune {LLAMA} --slo ttft_p99=2s --target sagemaker --dry-run -o rec")
    assert isinstance(res, DryRun) and ip.user_ns["rec"] is res
    assert [r["operation"] for r in res.requests] == ["CreateAIWorkloadConfig", "CreateAIRecommendationJob"]
    assert "Nothing was sent" in res._repr_html_()
    with pytest.raises(UsageError, match="add --dry-run"):
        ip.run_line_magic("optimize", "tune --slo ttft_p99=2s --target sagemaker")
