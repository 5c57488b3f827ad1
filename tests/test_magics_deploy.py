"""`%optimize` deploy, endpoints, undeploy, invoke, autoscale and simulate through a real
InteractiveShell: SageMaker calls on a moto server (checked with plain boto3 clients), local
endpoints with a stand-in server that looks like ours to the state file's checks (no vLLM),
simulations with their timeline chart, and mistakes as UsageError."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from IPython.core.error import UsageError

sys.path.insert(0, str(Path(__file__).parent))
pytest.register_assert_rewrite("aws_fixtures")
pytest_plugins = ["aws_fixtures"]
pytestmark = pytest.mark.usefixtures("fake_aws_env")
from aws_fixtures import FAKE_KEY_ID, FAKE_SECRET, REGION, ROLE_ARN, free_port, queue_moto_invoke_results  # noqa: E402
from conftest import ROOT, wait_until  # noqa: E402

from jupyter_ext.deploy import local  # noqa: E402
from jupyter_ext.deploy.local import LocalEndpoint  # noqa: E402
from jupyter_ext.verbs.results import DryRun, SimulationReport  # noqa: E402

MOTO_GPU = "ml.g4dn.xlarge"  # moto's CreateEndpointConfig refuses ml.g5/g6/p4d/p5
PLAN = f"--target sagemaker --instance-type ml.g5.xlarge --role-arn {ROLE_ARN} --region {REGION}"
# A stand-in for a local vLLM endpoint: /ping and /invocations, with the command-line words
# (`vllm.entrypoints.openai.api_server`, the port) by which local.py recognises its server.
STAND_IN = textwrap.dedent("""
    import json, sys
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class H(BaseHTTPRequestHandler):
        def _send(self, code, body=b""):
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self._send(200 if self.path == "/ping" else 404)

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            text = "echo: " + body["messages"][0]["content"]
            self._send(200, json.dumps({"choices": [{"message": {"content": text}}]}).encode())

        def log_message(self, *args):
            pass

    HTTPServer(("127.0.0.1", int(sys.argv[2])), H).serve_forever()
""")


def run(shell, line: str):
    return shell.run_line_magic("optimize", line)


@pytest.fixture
def on_moto(moto_url, monkeypatch):
    """Every AWS call of the toolkit goes to moto, as the notebook sets it up."""
    monkeypatch.setenv("JUPYTER_OPTIMIZE_AWS_ENDPOINT_URL", moto_url)
    return moto_url


def moto_instance(plan) -> None:
    """Ask moto for a GPU type it accepts (the real types are checked by the plan tests)."""
    for variant in plan.requests[1].params["ProductionVariants"]:
        variant["InstanceType"] = MOTO_GPU


@pytest.fixture
def stand_in_endpoint(tmp_path, monkeypatch):
    """A running 'local endpoint' named stand-in, recorded in a state file under tmp_path."""
    monkeypatch.setattr(local, "state_dir", lambda: tmp_path / "endpoints")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", STAND_IN, "vllm.entrypoints.openai.api_server", str(port)],
                            start_new_session=True)
    ep = LocalEndpoint(name="stand-in", pid=proc.pid, host="127.0.0.1", port=port, recipe={"name": "ngram"},
                       log=str(tmp_path / "log"), started="now")
    (tmp_path / "endpoints").mkdir()
    (tmp_path / "endpoints" / "stand-in.json").write_text(json.dumps(ep.to_dict()))
    wait_until(lambda: local.get_endpoint("stand-in").status == "running", 30, "the stand-in to answer /ping")
    yield ep
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


# -- the manual --------------------------------------------------------------------------
def test_manual_documents_the_deploy_verbs(ip):
    doc = ip.find_line_magic("optimize").__doc__
    for verb in ("deploy", "endpoints", "undeploy", "invoke", "autoscale attach", "simulate"):
        assert f"%optimize {verb}" in doc
    assert "deploy @dry" in doc and "--scale-in-cooldown" in doc


# -- SageMaker on moto ---------------------------------------------------------------------
def test_dry_run_is_an_object_with_the_exact_requests_and_no_credentials(ip):
    dry = run(ip, f"deploy ngram {PLAN} --name ep-dry --dry-run -o dry")
    assert ip.user_ns["dry"] is dry and isinstance(dry, DryRun)
    assert [r["operation"] for r in dry.requests] == ["CreateModel", "CreateEndpointConfig", "CreateEndpoint"]
    assert dry.plan.endpoint_name == "ep-dry" and dry.plan.instance_type == "ml.g5.xlarge"
    env = dry.requests[0]["params"]["PrimaryContainer"]["Environment"]
    assert env["HF_MODEL_ID"] == "HuggingFaceTB/SmolLM2-135M-Instruct" and "OPTION_SPECULATIVE_CONFIG" in env
    shown = dry._repr_html_() + str(dry) + repr(dry.to_dict())
    assert "CreateEndpointConfig" in dry._repr_html_() and "Nothing was sent" in dry._repr_html_()
    assert FAKE_SECRET not in shown and FAKE_KEY_ID not in shown


def test_deploy_invoke_autoscale_undeploy_on_moto(ip, on_moto, moto_boto):
    sm, aas = moto_boto("sagemaker"), moto_boto("application-autoscaling")
    dry = run(ip, f"deploy ngram {PLAN} --name ep-magic --dry-run -o dry")
    moto_instance(dry.plan)
    ep = run(ip, "deploy @dry --target sagemaker -o ep")  # exactly the reviewed plan
    assert ep.status == "InService" and ip.user_ns["ep"] is ep and "<table" in ep._repr_html_()
    assert sm.describe_endpoint(EndpointName="ep-magic")["EndpointStatus"] == "InService"
    config = sm.describe_endpoint_config(EndpointConfigName="ep-magic-config")
    assert config["ProductionVariants"][0]["InstanceType"] == MOTO_GPU

    queue_moto_invoke_results(on_moto, ['{"choices": [{"message": {"content": "hello from moto"}}]}'])
    reply = run(ip, 'invoke @ep "Say hello" --max-tokens 8')  # the target comes with the object
    assert reply.text == "hello from moto" and "hello from moto" in reply._repr_html_()

    plan = run(ip, "autoscale attach @ep --max 3 --target-value 4 --dry-run -o adry")
    assert isinstance(plan, DryRun) and plan.plan is None
    assert [r["operation"] for r in plan.requests] == ["RegisterScalableTarget", "PutScalingPolicy"]
    assert not aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    state = run(ip, "autoscale attach @ep --max 3 --target-value 4 --scale-out-cooldown 60")
    [target] = aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert (target["ResourceId"], target["MaxCapacity"]) == ("endpoint/ep-magic/variant/AllTraffic", 3)
    [policy] = aas.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    spec = policy["TargetTrackingScalingPolicyConfiguration"]
    assert spec["PredefinedMetricSpecification"]["PredefinedMetricType"] == \
        "SageMakerVariantConcurrentRequestsPerModelHighResolution"
    assert (spec["TargetValue"], spec["ScaleOutCooldown"]) == (4.0, 60) and state.attached
    shown = run(ip, "autoscale show ep-magic -o shown")
    assert shown.max_capacity == 3 and "concurrency" in shown._repr_html_()
    with pytest.raises(UsageError, match="not a deployment dry run"):
        run(ip, "deploy @adry --target sagemaker")
    run(ip, f"deploy ngram --target sagemaker --instance-type ml.g5.xlarge --region {REGION} --dry-run -o norole")
    with pytest.raises(UsageError, match="placeholder role"):
        run(ip, "deploy @norole --target sagemaker")
    assert not run(ip, "autoscale detach @ep").attached
    assert not aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]

    gone = run(ip, "undeploy @ep")
    assert "Endpoint ep-magic" in gone.deleted and "Model ep-magic-model" in gone.deleted
    with pytest.raises(ClientError):
        sm.describe_endpoint(EndpointName="ep-magic")


def test_deploy_from_a_recipe_on_moto_and_undeploy_by_name(ip, moto_url, moto_boto, monkeypatch):
    from jupyter_ext.deploy import sagemaker

    real = sagemaker.plan_deployment

    def for_moto(*args, **kwargs):
        plan = real(*args, **kwargs)
        moto_instance(plan)
        return plan

    monkeypatch.setattr(sagemaker, "plan_deployment", for_moto)
    ep = run(ip, f"deploy ngram {PLAN} --name ep-direct --endpoint-url {moto_url}")
    assert ep.endpoint_name == "ep-direct" and ep.status == "InService"
    gone = run(ip, f"undeploy ep-direct --target sagemaker --region {REGION} --endpoint-url {moto_url}")
    assert "Endpoint ep-direct" in gone.deleted
    assert not moto_boto("sagemaker").list_endpoints()["Endpoints"]


@pytest.mark.parametrize("line, message", [
    ("deploy ngram --dry-run", "a local deploy sends none"),
    (f"deploy ngram --target sagemaker --instance-type ml.g5.xlarge --region {REGION}", "needs --role-arn"),
    (f"deploy ngram {PLAN} --instance-type ml.zz.xlarge --dry-run", "UnknownInstanceError"),
    ("deploy no-such-recipe --target sagemaker --dry-run", "RecipeError"),
    ("autoscale attach ep --min 5 --max 2 --dry-run", "AutoscaleError: max_capacity"),
    ("autoscale attach ep --target-value 0 --dry-run", "AutoscaleError: target_value must be > 0"),
    ("autoscale resize ep", "invalid choice"),
    ("simulate --ramp fast", "time_s:req_per_s"),
    ("simulate --min 3 --max 2", "max_capacity"),
    ("undeploy nobody-here", "EndpointNotFoundError"),
    ("invoke nobody-here hi", "EndpointNotFoundError"),
])
def test_mistakes_raise_usage_error_with_the_named_error(ip, line, message):
    with pytest.raises(UsageError, match=message):
        run(ip, line)


def test_a_failing_deploy_verb_fails_the_cell(ip):
    result = ip.run_cell("%optimize autoscale attach ep --min 5 --max 2 --dry-run")
    assert not result.success and isinstance(result.error_in_exec, UsageError)


# -- local endpoints -----------------------------------------------------------------------
def test_local_endpoints_invoke_and_undeploy(ip, stand_in_endpoint):
    table = run(ip, "endpoints -o eps")
    assert [(e.name, e.status) for e in table] == [("stand-in", "running")] and ip.user_ns["eps"] is table
    assert "stand-in" in table._repr_html_()
    reply = run(ip, 'invoke stand-in "are you there?" --max-tokens 4')
    assert reply.text == "echo: are you there?" and reply.endpoint_name == "stand-in" and reply.latency_s > 0
    ip.user_ns["ep"] = table[0]
    stopped = run(ip, "undeploy @ep")  # a LocalEndpoint says it is local
    assert stopped.status == "stopped" and "stopped" in stopped._repr_html_()
    assert run(ip, "endpoints") == []


def test_local_deploy_calls_the_core_with_the_recipe(ip, monkeypatch, capsys):
    calls = []

    def fake_deploy(recipe, name=None, host="127.0.0.1", port=None):
        calls.append((recipe.name, name, host, port))
        return LocalEndpoint(name=name or recipe.name, pid=1, host=host, port=port or 1, recipe=recipe.to_dict(),
                             log="log", started="now")

    monkeypatch.setattr(local, "deploy", fake_deploy)
    ep = run(ip, "deploy ngram --name mine --port 8123 -o ep")
    assert calls == [("ngram", "mine", "127.0.0.1", 8123)] and ip.user_ns["ep"] is ep
    assert "starting vLLM for recipe ngram" in capsys.readouterr().out


# -- simulation -----------------------------------------------------------------------------
def test_simulate_returns_the_result_with_its_timeline(ip, tmp_path):
    report = run(ip, f"simulate --ramp 0:1,300:4 --duration 900 --max 6 --chart {tmp_path / 't.png'} -o sim")
    assert isinstance(report, SimulationReport) and ip.user_ns["sim"] is report
    summary = report.summary()
    assert summary["requests"] > 1000 and summary["time_to_detect_s"] is not None
    # a notebook shows the chart as an image output (not base64 inside HTML), with the summary
    # as its text; IPython's own formatter is what builds the cell's output
    data, _ = ip.display_formatter.format(report)
    assert data["image/png"][:8] == b"\x89PNG\r\n\x1a\n" and "Fleet simulation" in data["text/plain"]
    assert "text/html" not in data and not hasattr(report, "_repr_html_")
    assert "<table>" in report.result._repr_html_()  # the summary table is the result's
    assert report.png()[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / "t.png").stat().st_size > 10_000
    cheaper = run(ip, "simulate --ramp 0:1,300:4 --duration 900 --max 6 --target-value 10")
    assert cheaper.result.instance_hours < report.result.instance_hours


def test_simulate_reads_a_result_object_saved_or_not(ip):
    """The simulator takes the result object itself (issue 16: it used to demand a saved file)."""
    from types import SimpleNamespace

    from jupyter_ext.bench import BenchResult

    ip.user_ns["empty"] = BenchResult(name="unsaved", recipe=None, endpoint={}, workload={})
    with pytest.raises(UsageError, match="SimulationError: ServiceCurve needs at least one"):
        run(ip, "simulate --result @empty")  # no level measured: said so, not "save it first"
    level = SimpleNamespace(concurrency=2, metrics=SimpleNamespace(ttft=SimpleNamespace(p50=0.3),
                                                                   tpot=SimpleNamespace(p50=0.04)))
    ip.user_ns["res"] = SimpleNamespace(levels=[level], path=None)
    report = run(ip, "simulate --result @res --ramp 0:1,120:3 --duration 600")
    assert report.result.summary() and "Fleet simulation" in str(report)


def test_simulate_leaves_pyplot_alone():
    code = ("import sys\nfrom IPython.core.interactiveshell import InteractiveShell\n"
            "ip = InteractiveShell.instance(); ip.run_line_magic('load_ext', 'jupyter_ext')\n"
            "r = ip.run_line_magic('optimize', 'simulate --duration 600 --ramp 0:1,120:3')\n"
            "assert r._repr_mimebundle_()['image/png']\nprint('matplotlib.pyplot' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
