"""The deploy and autoscale panels: construct them, set values, click buttons, assert on their
state. SageMaker and Application Auto Scaling calls go to a moto server; the local endpoint is
the stand-in server of test_magics_deploy (no vLLM)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
pytest.register_assert_rewrite("aws_fixtures")
pytest_plugins = ["aws_fixtures"]
pytestmark = pytest.mark.usefixtures("fake_aws_env")
from aws_fixtures import FAKE_SECRET, REGION, ROLE_ARN  # noqa: E402
from test_magics_deploy import moto_instance, on_moto, stand_in_endpoint  # noqa: E402,F401 - fixtures

from jupyter_ext.deploy import local  # noqa: E402
from jupyter_ext.deploy.local import LocalEndpoint  # noqa: E402
from jupyter_ext.verbs.results import DryRun  # noqa: E402
from widgets import OptimizePanel  # noqa: E402
from widgets.autoscale_panel import AutoscalePanel  # noqa: E402
from widgets.deploy_panel import DeployPanel  # noqa: E402


def sagemaker_panel(panel: DeployPanel, name: str = "ep-panel") -> DeployPanel:
    panel.target.value = "sagemaker"
    panel.recipe.value = "ngram"
    panel.name.value = name
    panel.region.value = REGION
    return panel


@pytest.fixture
def moto_plans(monkeypatch):
    """Plans whose GPU type moto accepts (the real types are checked by the plan tests)."""
    from jupyter_ext.deploy import sagemaker

    real = sagemaker.plan_deployment

    def for_moto(*args, **kwargs):
        plan = real(*args, **kwargs)
        moto_instance(plan)
        return plan

    monkeypatch.setattr(sagemaker, "plan_deployment", for_moto)


# -- the panel's tabs ---------------------------------------------------------------------
def test_optimize_panel_has_deploy_and_autoscale_tabs():
    panel = OptimizePanel()
    assert panel.titles[3:5] == ("Deploy", "Autoscale")
    assert panel.children[3] is panel.deploy and panel.children[4] is panel.autoscale
    panel.deploy.endpoint_name = "just-deployed"  # what a SageMaker deploy sets
    assert panel.autoscale.endpoint.value == "just-deployed"


# -- deploy -------------------------------------------------------------------------------
def test_dry_run_shows_the_requests_without_credentials():
    panel = DeployPanel()
    assert panel.dry_run.disabled and "no AWS requests" in panel.dry_run.tooltip  # target local
    sagemaker_panel(panel)
    assert not panel.dry_run.disabled and panel.sagemaker_box.layout.display is None
    panel.dry_run.click()
    assert panel.message.text == "" and isinstance(panel.result, DryRun)
    assert panel.result.plan.endpoint_name == "ep-panel" and panel.result.plan.instance_type == "ml.g5.xlarge"
    assert "CreateEndpointConfig" in panel.output.value and FAKE_SECRET not in panel.output.value


def test_deploy_mistakes_appear_in_the_panel():
    panel = sagemaker_panel(DeployPanel())
    panel.deploy.click()  # no role ARN
    assert "DeployError" in panel.message.text and "role ARN" in panel.message.text
    assert "jo-error" in panel.message.value and panel.result is None
    panel.recipe.value = "no-such-recipe"
    panel.dry_run.click()
    assert "RecipeError" in panel.message.text
    panel.undeploy.click()
    assert "no endpoint is selected" in panel.message.text


def test_an_impossible_recipe_tab_disables_deploy_with_the_reason():
    panel = OptimizePanel()
    deploy = panel.deploy
    assert not deploy.deploy.disabled
    panel.builder.compile.value = True  # eager + compile: the core refuses the stack
    assert deploy.deploy.disabled and "StackError" in deploy.reason.value
    deploy.recipe.value = "ngram"  # a shipped recipe does not depend on the Recipe tab
    assert not deploy.deploy.disabled and deploy.reason.value == ""


def test_deploy_and_undeploy_on_moto(on_moto, moto_boto, moto_plans):
    panel = sagemaker_panel(DeployPanel(), "ep-widget")
    panel.role_arn.value = ROLE_ARN
    panel.deploy.click()
    deployed = panel.wait(60)
    assert panel.message.text == "" and deployed.status == "InService" and panel.endpoint_name == "ep-widget"
    assert moto_boto("sagemaker").describe_endpoint(EndpointName="ep-widget")["EndpointStatus"] == "InService"
    assert ("sagemaker: ep-widget", ("sagemaker", "ep-widget")) in panel.pick.options
    assert "ep-widget" in panel.endpoints.value and not panel.deploy.disabled
    panel.pick.value = ("sagemaker", "ep-widget")
    panel.undeploy.click()
    gone = panel.wait(60)
    assert panel.message.text == "" and "Endpoint ep-widget" in gone.deleted
    assert not moto_boto("sagemaker").list_endpoints()["Endpoints"]
    assert ("sagemaker", "ep-widget") not in [v for _, v in panel.pick.options]


def test_local_endpoints_are_listed_and_undeployed(stand_in_endpoint):
    panel = DeployPanel()
    assert panel.pick.options == (("local: stand-in", ("local", "stand-in")),)
    assert "running" in panel.endpoints.value
    panel.undeploy.click()
    stopped = panel.wait(30)
    assert panel.message.text == "" and stopped.status == "stopped"
    assert panel.pick.options == () and list(local.list_endpoints()) == []


def test_local_deploy_runs_the_core_off_the_kernel_thread(monkeypatch, tmp_path):
    import threading

    monkeypatch.setattr(local, "state_dir", lambda: tmp_path / "endpoints")
    threads = []

    def fake_deploy(recipe, name=None):
        threads.append(threading.current_thread().name)
        return LocalEndpoint(name=name or recipe.name, pid=1, host="127.0.0.1", port=1, recipe=recipe.to_dict(),
                             log="log", started="now")

    monkeypatch.setattr(local, "deploy", fake_deploy)
    panel = DeployPanel()
    panel.recipe.value = "ngram"
    panel.deploy.click()
    ep = panel.wait(30)
    assert threads == ["jupyter-optimize-deploy"] and ep.name == "ngram" and panel.endpoint_name == ""
    assert not panel.busy and not panel.deploy.disabled and panel.status.value == ""


def test_a_failing_deploy_in_the_background_is_shown(monkeypatch):
    from jupyter_ext.errors import EngineStartError

    def refuse(recipe, name=None):
        raise EngineStartError("the server exited during start; see its log")

    monkeypatch.setattr(local, "deploy", refuse)
    panel = DeployPanel()
    panel.recipe.value = "ngram"
    panel.deploy.click()
    panel.wait(30)
    assert panel.message.text == "EngineStartError: the server exited during start; see its log"
    assert not panel.deploy.disabled


# -- autoscale ----------------------------------------------------------------------------
def test_invalid_policy_shows_the_error_and_disables_attach():
    panel = AutoscalePanel("ep")
    assert panel.error == "" and panel.config.max_capacity == 4 and not panel.attach.disabled
    panel.min_capacity.value = 6
    assert panel.error.startswith("AutoscaleError: max_capacity (4)") and panel.config is None
    assert panel.attach.disabled and panel.simulate.disabled and "max_capacity" in panel.attach.tooltip
    assert "max_capacity" in panel.reason.value and "AutoscaleError" in panel.message.text
    panel.max_capacity.value = 8
    assert panel.error == "" and not panel.attach.disabled and panel.reason.value == ""
    panel.target_value.value = 0
    assert "target_value must be > 0" in panel.error and panel.attach.disabled
    panel.attach.click()  # code can click a disabled button: nothing may be sent then
    assert panel.result is None and panel.message.text.startswith("AutoscaleError: the policy is invalid")


def test_simulate_shows_the_summary_and_timeline():
    panel = AutoscalePanel()
    panel.ramp.value, panel.duration.value = "0:1,300:4", 900
    panel.simulate.click()
    assert panel.message.text == "" and panel.report is not None
    assert "Fleet simulation" in panel.simulation.value and "<img" not in panel.simulation.value
    assert panel.timeline.value[:8] == b"\x89PNG\r\n\x1a\n" and panel.timeline.layout.display is None
    five = panel.report.result
    panel.scale_out_cooldown.value = 60  # the cooldowns reach the simulated policy
    panel.simulate.click()
    assert panel.report.result.config["policies"][0]["scale_out_cooldown_s"] == 60
    assert five.config["policies"][0]["scale_out_cooldown_s"] == 300
    panel.ramp.value = "fast"
    panel.simulate.click()
    assert "time_s:req_per_s" in panel.message.text and panel.simulation.value == ""
    assert panel.timeline.layout.display == "none"  # no chart of an earlier run under the error


def test_attach_dry_run_then_attach_show_detach_on_moto(on_moto, moto_boto):
    aas = moto_boto("application-autoscaling")
    panel = AutoscalePanel()
    panel.attach.click()
    assert "fill in the endpoint" in panel.message.text
    panel.endpoint.value = "ep-auto"
    panel.max_capacity.value, panel.target_value.value = 3, 4.0
    assert panel.attach_dry_run.value  # the safe default: show the requests only
    panel.attach.click()
    assert isinstance(panel.result, DryRun) and "PutScalingPolicy" in panel.output.value
    assert not aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    panel.attach_dry_run.value = False
    panel.attach.click()
    assert panel.message.text == "" and panel.result.attached
    [target] = aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert (target["ResourceId"], target["MaxCapacity"]) == ("endpoint/ep-auto/variant/AllTraffic", 3)
    panel.show.click()
    assert panel.result.max_capacity == 3 and "concurrency" in panel.output.value
    panel.detach.click()
    assert not panel.result.attached
    assert not aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    panel.detach.click()
    assert "AutoscaleError: no autoscaling is attached" in panel.message.text
