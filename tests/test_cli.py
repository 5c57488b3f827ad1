"""The command line: thin verbs over the core, named errors with exit code 2, nothing written
on bad input, deploy/autoscale verbs against a moto server."""

import json
import os
import subprocess
import sys

import boto3
import pytest

from conftest import ROOT
from jupyter_ext.faces.cli import main

pytest_plugins = ["aws_fixtures"]


def run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_price_from_figures_matches_the_hand_computed_example(capsys):
    # 10 $/h, p50 ITL 20 ms, concurrency 8 -> 400 tok/s -> 1.44 M tok/h -> 10 / 1.44 / 4
    code, out, _ = run(capsys, "price", "--usd-per-hour", "10", "--itl-ms", "20", "--concurrency", "8")
    assert code == 0 and "1.736" in out


def test_bad_input_is_a_named_error_and_writes_nothing(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nspeculative: {method: medusa}\n")
    code, _, err = run(capsys, "recipe", "validate", str(bad))
    assert code == 2 and err.startswith("error: invalid recipe") and "ngram, draft_model" in err
    code, _, err = run(capsys, "bench", str(bad), "--results-dir", str(tmp_path / "res"))
    assert code == 2 and not (tmp_path / "res").exists()
    code, _, err = run(capsys, "bench", "baseline", "--instance", "ml.zz9.huge", "--results-dir", str(tmp_path / "r"))
    assert code == 2 and "ml." in err and not (tmp_path / "r").exists()
    with pytest.raises(SystemExit):  # argparse: "expected whole numbers separated by commas"
        main(["bench", "baseline", "--concurrency", "1,x"])
    for bad_json in ("{not json", "[1, 2]"):
        with pytest.raises(SystemExit):
            main(["bench", "--url", "http://127.0.0.1:9", "--extra-body", bad_json])
        assert "JSON object" in capsys.readouterr().err


def test_bench_takes_a_dataset_file(capsys, tmp_path, schedule_server_factory):
    srv = schedule_server_factory(ttft_ms=1, itl_ms=1)
    data = tmp_path / "mine.jsonl"
    data.write_text("".join(f'{{"prompt": "question {i}", "max_tokens": 2}}\n' for i in range(5)))
    code, out, _ = run(capsys, "bench", "--url", srv.base_url, "--dataset", str(data), "--dataset-sample", "3",
                       "--seed", "7", "--concurrency", "1", "--prompts", "3", "--no-chart",
                       "--results-dir", str(tmp_path / "res"))
    assert code == 0 and "dataset mine (3 of 5 rows" in out
    [saved] = (tmp_path / "res").glob("*.json")
    ds = json.loads(saved.read_text())["workload"]["dataset"]
    assert (ds["rows"], ds["rows_used"], ds["seed"], ds["path"]) == (5, 3, 7, str(data))
    code, _, err = run(capsys, "bench", "--url", srv.base_url, "--dataset", str(tmp_path / "none.jsonl"))
    assert code == 2 and "DatasetError" not in err and "none.jsonl' not found" in err


def test_catalog_verbs(capsys):
    code, out, _ = run(capsys, "plan", "meta-textgeneration-llama-3-70b-instruct", "--precision", "awq-int4")
    assert code == 0 and "ml.g5.12xlarge" in out
    code, out, _ = run(capsys, "recipe", "list")
    assert code == 0 and "baseline" in out


def test_simulate_prints_detection_and_draws_the_timeline(capsys, tmp_path):
    png = tmp_path / "t.png"
    code, out, _ = run(capsys, "simulate", "--duration", "1200", "--ramp", "0:1,300:4", "--chart", str(png))
    assert code == 0 and "time to detect" in out and png.stat().st_size > 10_000
    code, _, err = run(capsys, "simulate", "--ramp", "fast")
    assert code == 2 and "time_s:req_per_s" in err


def test_sagemaker_dry_run_prints_requests_without_credentials():
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "AKIAFAKEFAKEFAKE", "AWS_SECRET_ACCESS_KEY": secret}
    out = subprocess.run([sys.executable, "-m", "jupyter_ext.faces.cli", "deploy", "recipes/ngram.yaml", "--target",
                          "sagemaker", "--dry-run", "--instance-type", "ml.g5.2xlarge", "--region", "us-east-1"],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    assert '"operation": "CreateEndpoint"' in out and "OPTION_SPECULATIVE_CONFIG" in out
    assert secret not in out and "AKIAFAKEFAKEFAKE" not in out


def test_autoscale_attach_show_detach_against_moto(capsys, moto_url):
    code, out, _ = run(capsys, "autoscale", "attach", "ep-cli", "--min", "1", "--max", "3", "--target-value", "4",
                       "--region", "us-east-1", "--endpoint-url", moto_url)
    assert code == 0, out
    aas = boto3.client("application-autoscaling", region_name="us-east-1", endpoint_url=moto_url)
    [target] = aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert (target["ResourceId"], target["MaxCapacity"]) == ("endpoint/ep-cli/variant/AllTraffic", 3)
    [pol] = aas.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    spec = pol["TargetTrackingScalingPolicyConfiguration"]
    assert spec["TargetValue"] == 4.0
    assert spec["PredefinedMetricSpecification"]["PredefinedMetricType"] == \
        "SageMakerVariantConcurrentRequestsPerModelHighResolution"
    code, out, _ = run(capsys, "autoscale", "show", "ep-cli", "--region", "us-east-1", "--endpoint-url", moto_url)
    assert code == 0 and "jo-ep-cli-AllTraffic-concurrency" in out
    code, _, _ = run(capsys, "autoscale", "detach", "ep-cli", "--region", "us-east-1", "--endpoint-url", moto_url)
    assert code == 0 and not aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    code, _, err = run(capsys, "autoscale", "attach", "ep-cli", "--min", "5", "--max", "2", "--region", "us-east-1",
                       "--endpoint-url", moto_url)
    assert code == 2 and "max_capacity" in err
