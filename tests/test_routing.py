"""Routing: the recipe's deploy.routing as the variant's RoutingConfig (the enum read from the
installed botocore model), sticky sessions on invoke (Stubber checks SessionId and the reply's
session headers against the sagemaker-runtime model), and the fleet simulator's routers."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import botocore.session
import pytest

sys.path.insert(0, str(Path(__file__).parent))
pytest.register_assert_rewrite("aws_fixtures")
pytest_plugins = ["aws_fixtures"]
from aws_fixtures import REGION, ROLE_ARN  # noqa: E402

from jupyter_ext.errors import DeployError, RecipeError, SimulationError  # noqa: E402
from jupyter_ext.recipes import ROUTING_STRATEGIES, recipe_from_dict  # noqa: E402


def _model(service):
    return botocore.session.get_session().get_service_model(service)


def test_the_recipe_accepts_exactly_the_apis_routing_enum():
    variant = _model("sagemaker").operation_model("CreateEndpointConfig").input_shape.members["ProductionVariants"].member
    enum = variant.members["RoutingConfig"].members["RoutingStrategy"].enum
    assert [r.upper() for r in ROUTING_STRATEGIES] == list(enum)


def test_a_routing_value_outside_the_enum_is_refused_when_the_recipe_loads():
    with pytest.raises(RecipeError) as e:
        recipe_from_dict({"name": "x", "deploy": {"routing": "round_robin"}})
    assert "deploy.routing" in str(e.value) and "least_outstanding_requests" in str(e.value)


@pytest.mark.parametrize("routing, strategy", [("random", "RANDOM"), ("least_outstanding_requests",
                                                                      "LEAST_OUTSTANDING_REQUESTS"), (None, "LEAST_OUTSTANDING_REQUESTS")])
def test_deploy_routing_becomes_the_variants_routing_config(routing, strategy):
    from jupyter_ext.deploy import sagemaker as sm

    data = {"name": "x", "model": "huggingface-llm-mistral-7b-instruct"}
    if routing:
        data["deploy"] = {"routing": routing}
    p = sm.plan_deployment(recipe_from_dict(data), "jo-r", role_arn=ROLE_ARN, region=REGION,
                           instance_type="ml.g5.2xlarge")
    variant = p.requests[1].params["ProductionVariants"][0]
    assert variant["RoutingConfig"] == {"RoutingStrategy": strategy} and p.routing == strategy
    assert ("routing", strategy) in p._rows()
    # the command line's --routing overrides the recipe's, in either case
    from jupyter_ext.verbs.deploy import deploy

    dry = deploy(recipe_from_dict(data), target="sagemaker", dry_run=True, region=REGION,
                 instance_type="ml.g5.2xlarge", routing="random", name="jo-r")
    assert '"RoutingStrategy": "RANDOM"' in dry.requests_json
    with pytest.raises(DeployError, match="RoutingStrategy"):
        sm.plan_deployment(recipe_from_dict(data), "jo-r", role_arn=ROLE_ARN, region=REGION,
                           instance_type="ml.g5.2xlarge", routing="ROUND_ROBIN")
    lower = sm.plan_deployment(recipe_from_dict(data), "jo-r", role_arn=ROLE_ARN, region=REGION,
                               instance_type="ml.g5.2xlarge", routing="random")  # the recipe's spelling
    assert lower.routing == "RANDOM"


def test_the_cli_offers_the_enum_for_routing():
    from jupyter_ext.verbs.table import build_parser

    ap = build_parser("cli")
    args = ap.parse_args(["deploy", "x", "--target", "sagemaker", "--routing", "random"])
    assert args.routing == "random"
    with pytest.raises(SystemExit):
        ap.parse_args(["deploy", "x", "--routing", "sticky"])


# -- sessions -------------------------------------------------------------------------------
def test_the_runtime_model_has_session_fields_and_no_close_session_operation():
    runtime = _model("sagemaker-runtime")
    assert "CloseSession" not in runtime.operation_names  # closing is an InvokeEndpoint (see sagemaker_invoke)
    inv = runtime.operation_model("InvokeEndpoint")
    assert "SessionId" in inv.input_shape.members
    assert {"NewSessionId", "ClosedSessionId"} <= set(inv.output_shape.members)


def _reply(text, **headers):
    from botocore.response import StreamingBody

    raw = json.dumps({"choices": [{"message": {"content": text}}]}).encode()
    return {"Body": StreamingBody(io.BytesIO(raw), len(raw)), "ContentType": "application/json", **headers}


def _invoke_params(body, session_id):
    return {"EndpointName": "ep", "Body": body, "ContentType": "application/json", "Accept": "application/json",
            "SessionId": session_id}


def test_a_session_is_opened_reused_and_closed(boto_stub):
    from jupyter_ext.deploy import sagemaker as sm
    from jupyter_ext.deploy.aws import AwsClients
    from jupyter_ext.deploy.sagemaker_invoke import DEFAULT_CLOSE_BODY, DEFAULT_OPEN_BODY, chat_body

    client, stub = boto_stub("sagemaker-runtime")
    clients = AwsClients.from_clients({"sagemaker-runtime": client})
    stub.add_response("invoke_endpoint", _reply("", NewSessionId="s-123; Expires=2026-12-03T15:00:00Z"),
                      _invoke_params(json.dumps(DEFAULT_OPEN_BODY), "NEW_SESSION"))
    stub.add_response("invoke_endpoint", _reply("hello"), _invoke_params(json.dumps(chat_body("hi", 8, False)), "s-123"))
    stub.add_response("invoke_endpoint", _reply("again"), _invoke_params(json.dumps(chat_body("more", 8, False)), "s-123"))
    stub.add_response("invoke_endpoint", _reply("", ClosedSessionId="s-123"),
                      _invoke_params(json.dumps(DEFAULT_CLOSE_BODY), "s-123"))
    one = sm.invoke("ep", "hi", 8, session=clients, session_id=sm.NEW_SESSION)
    assert one.session_id == "s-123" and one.text == "hello" and "session s-123" in str(one)
    two = sm.invoke("ep", "more", 8, session=clients, session_id=one.session_id)
    assert two.session_id == "s-123" and two.text == "again"
    assert sm.close_session("ep", two.session_id, session=clients) == "s-123"
    stub.assert_no_pending_responses()


def test_a_container_that_opens_no_session_is_a_named_error(boto_stub):
    from jupyter_ext.deploy import sagemaker as sm
    from jupyter_ext.deploy.aws import AwsClients
    from jupyter_ext.deploy.sagemaker_invoke import DEFAULT_CLOSE_BODY, DEFAULT_OPEN_BODY

    client, stub = boto_stub("sagemaker-runtime")
    clients = AwsClients.from_clients({"sagemaker-runtime": client})
    stub.add_response("invoke_endpoint", _reply("hello"), _invoke_params(json.dumps(DEFAULT_OPEN_BODY), "NEW_SESSION"))
    stub.add_response("invoke_endpoint", _reply("?"), _invoke_params(json.dumps(DEFAULT_CLOSE_BODY), "s-1"))
    with pytest.raises(DeployError, match="SAGEMAKER_ENABLE_STATEFUL_SESSIONS"):
        sm.invoke("ep", "hi", 8, session=clients, session_id=sm.NEW_SESSION)  # no chat request is sent
    with pytest.raises(DeployError, match="ClosedSessionId"):
        sm.close_session("ep", "s-1", session=clients)
    stub.assert_no_pending_responses()


def test_deploy_sessions_turns_the_containers_sessions_on():
    from jupyter_ext.deploy import sagemaker as sm
    from jupyter_ext.engine import build_server_command

    r = recipe_from_dict({"name": "x", "model": "huggingface-llm-mistral-7b-instruct",
                          "deploy": {"routing": "random", "sessions": True}})
    p = sm.plan_deployment(r, "jo-s", role_arn=ROLE_ARN, region=REGION, instance_type="ml.g5.2xlarge")
    assert p.requests[0].params["PrimaryContainer"]["Environment"]["SAGEMAKER_ENABLE_STATEFUL_SESSIONS"] == "true"
    assert build_server_command(r, "/m", "127.0.0.1", 8000, platform="cpu").env["SAGEMAKER_ENABLE_STATEFUL_SESSIONS"] == "true"
    plain = sm.plan_deployment(recipe_from_dict({"name": "x", "model": "huggingface-llm-mistral-7b-instruct"}), "jo-s",
                               role_arn=ROLE_ARN, region=REGION, instance_type="ml.g5.2xlarge")
    assert "SAGEMAKER_ENABLE_STATEFUL_SESSIONS" not in plain.requests[0].params["PrimaryContainer"]["Environment"]


def test_the_invoke_verb_refuses_sessions_on_a_local_endpoint():
    from jupyter_ext.verbs.deploy import invoke

    with pytest.raises(DeployError, match="--target sagemaker"):
        invoke("some-local", "hi", session="new")
    with pytest.raises(DeployError, match="needs --session"):
        invoke("ep", "hi", target="sagemaker", close_session=True)


# -- the simulator's routers -------------------------------------------------------------------
def test_routers_compare_on_one_traffic_and_state_their_assumptions():
    from jupyter_ext.autoscale.sim_routing import compare_routing

    cmp = compare_routing(["random", "least_outstanding", "sticky"], replicas=4, duration_s=300, seed=1)
    rows = {r.routing: r for r in cmp.rows}
    assert set(rows) == {"random", "least_outstanding", "sticky"}
    assert all(r.requests == rows["random"].requests > 100 for r in rows.values())  # the same traffic
    # load-aware routing beats random on heavy-tailed outputs; sticky sessions hit the prefix cache
    assert rows["least_outstanding"].e2e_p50_s < rows["random"].e2e_p50_s
    assert rows["sticky"].prefix_hit_rate > 0.9 > rows["random"].prefix_hit_rate
    assert rows["sticky"].ttft_p50_s < rows["least_outstanding"].ttft_p50_s
    text = str(cmp)
    assert "20%" in text and "assumption" in text.lower() and "prefix-cache hit" in text
    assert cmp.to_dict()["rows"][0]["routing"] == "random"


def test_bad_router_settings_are_named():
    from jupyter_ext.autoscale.sim_routing import compare_routing

    with pytest.raises(SimulationError, match="routing"):
        compare_routing(["round_robin"])
    with pytest.raises(SimulationError, match="prefix_hit_factor"):
        compare_routing(["sticky"], prefix_hit_factor=1.5)


def test_simulate_routing_from_the_command_line(capsys):
    from jupyter_ext.faces.cli import main

    assert main(["simulate", "--routing", "random,least_outstanding", "--duration", "120", "--replicas", "2"]) == 0
    out = capsys.readouterr().out
    assert "least_outstanding" in out and "seed claims" in out
