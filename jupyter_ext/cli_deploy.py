"""CLI verbs for deployment and autoscaling: deploy, endpoints, undeploy, invoke, autoscale,
simulate. Each parses its options and calls one core function (deploy/, autoscale/)."""

from __future__ import annotations

import argparse
from typing import Any

from .errors import OptimizeError


def _aws_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--region", default=None, help="AWS region (default: the session's)")
    p.add_argument("--endpoint-url", default=None, help="AWS endpoint URL (tests: a moto server)")


def add_deploy_verbs(sub) -> None:
    p = sub.add_parser("deploy", help="deploy a recipe locally (vLLM) or to a SageMaker endpoint")
    p.add_argument("recipe")
    p.add_argument("--target", choices=["local", "sagemaker"], default="local")
    p.add_argument("--name", default=None, help="endpoint name (default: the recipe's name)")
    p.add_argument("--host", default="127.0.0.1", help="local: address to bind")
    p.add_argument("--port", type=int, default=None, help="local: port (default: a free one)")
    p.add_argument("--role-arn", default=None, help="sagemaker: execution role ARN")
    p.add_argument("--instance-type", default=None, help="sagemaker: e.g. ml.g5.2xlarge (default: the recipe's)")
    p.add_argument("--instance-count", type=int, default=1)
    p.add_argument("--routing", default="LEAST_OUTSTANDING_REQUESTS", choices=["LEAST_OUTSTANDING_REQUESTS", "RANDOM"])
    p.add_argument("--inference-component", action="store_true", help="sagemaker: deploy as an inference component")
    p.add_argument("--model-data-s3", default=None)
    p.add_argument("--draft-model-s3", default=None)
    p.add_argument("--accept-eula", action="store_true")
    p.add_argument("--dry-run", action="store_true", help="sagemaker: print the exact requests, create nothing")
    _aws_options(p)
    sub.add_parser("endpoints", help="local endpoints and whether they are alive")
    p = sub.add_parser("undeploy", help="stop a local endpoint (by pid) or delete a SageMaker one")
    p.add_argument("name")
    p.add_argument("--target", choices=["local", "sagemaker"], default="local")
    _aws_options(p)
    p = sub.add_parser("invoke", help="send one prompt to an endpoint")
    p.add_argument("name")
    p.add_argument("prompt")
    p.add_argument("--target", choices=["local", "sagemaker"], default="local")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--stream", action="store_true")
    p.add_argument("--inference-component", default=None, help="sagemaker: the component to invoke")
    _aws_options(p)
    p = sub.add_parser("autoscale", help="attach, show or detach concurrency-based autoscaling")
    p.add_argument("action", choices=["attach", "show", "detach"])
    p.add_argument("endpoint")
    p.add_argument("--variant", default="AllTraffic")
    p.add_argument("--inference-component", default=None)
    p.add_argument("--min", dest="min_capacity", type=int, default=1)
    p.add_argument("--max", dest="max_capacity", type=int, default=4)
    p.add_argument("--target-value", type=float, default=5.0, help="concurrent requests per instance/copy")
    p.add_argument("--metric", choices=["concurrency", "invocations"], default="concurrency")
    p.add_argument("--scale-in-cooldown", type=int, default=300)
    p.add_argument("--scale-out-cooldown", type=int, default=300)
    p.add_argument("--guard-invocations", type=float, default=None, help="invocations/min guard policy")
    p.add_argument("--dry-run", action="store_true")
    _aws_options(p)
    p = sub.add_parser("simulate", help="simulate an autoscaling policy under a traffic ramp before paying")
    p.add_argument("--result", default=None, help="bench result JSON whose TTFT/TPOT curve drives replicas")
    p.add_argument("--batch1-tok-s", type=float, default=30.0, help="without --result: per-user tok/s at batch 1")
    p.add_argument("--saturation", type=float, default=16.0, help="without --result: concurrency where decode slows")
    p.add_argument("--ramp", default="0:1,600:3,900:6", help="time_s:req_per_s steps")
    p.add_argument("--duration", type=float, default=3600.0)
    p.add_argument("--min", dest="min_capacity", type=int, default=1)
    p.add_argument("--max", dest="max_capacity", type=int, default=20)
    p.add_argument("--target-value", type=float, default=5.0)
    p.add_argument("--metric", choices=["concurrency", "invocations"], default="concurrency")
    p.add_argument("--scale-in-cooldown", type=int, default=300)
    p.add_argument("--scale-out-cooldown", type=int, default=300)
    p.add_argument("--usd-per-hour", type=float, default=1.515)
    p.add_argument("--compile-cache", action="store_true", help="model load uses the compiled-artifact cache")
    p.add_argument("--ttft-slo", type=float, default=2.0, help="seconds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chart", default=None, help="PNG path for the timeline")


DRY_RUN_ROLE = "arn:aws:iam::123456789012:role/DRY-RUN"


def plan_from_args(a, recipe) -> Any:
    """The SageMaker plan for `deploy RECIPE --target sagemaker [options]`: one mapping of
    the options for the CLI and the magic."""
    from .deploy import sagemaker
    from .errors import DeployError

    if not a.role_arn and not a.dry_run:
        raise DeployError("deploy --target sagemaker needs --role-arn (the endpoint's execution role); "
                          "--dry-run shows the requests without one")
    return sagemaker.plan_deployment(
        recipe, a.name, role_arn=a.role_arn or DRY_RUN_ROLE, region=a.region,
        instance_type=a.instance_type, instance_count=a.instance_count, routing=a.routing,
        inference_component=a.inference_component, model_data_s3=a.model_data_s3,
        draft_model_s3=a.draft_model_s3, accept_eula=a.accept_eula)


def _deploy(a) -> Any:
    from .recipes import load_recipe

    if a.target == "local":
        from .deploy import local

        if a.dry_run:
            raise OptimizeError("--dry-run shows the AWS requests of a SageMaker deploy; a local deploy sends "
                                "none. Add --target sagemaker, or drop --dry-run")
        return local.deploy(a.recipe, name=a.name, host=a.host, port=a.port)
    from .deploy import sagemaker

    plan = plan_from_args(a, load_recipe(a.recipe))
    if a.dry_run:
        return sagemaker.dry_run(plan)
    return sagemaker.deploy(plan, endpoint_url=a.endpoint_url)


def _autoscale(a) -> Any:
    from .autoscale import policy

    where = dict(variant_name=a.variant, inference_component=a.inference_component)
    if a.action == "attach":
        cfg = policy.AutoscalingConfig(min_capacity=a.min_capacity, max_capacity=a.max_capacity,
                                       target_value=a.target_value, metric=a.metric,
                                       scale_in_cooldown_s=a.scale_in_cooldown,
                                       scale_out_cooldown_s=a.scale_out_cooldown,
                                       guard_invocations_target=a.guard_invocations)
        if a.dry_run:
            return policy.dry_run(a.endpoint, cfg, **where)
        return policy.attach(a.endpoint, cfg, region=a.region, endpoint_url=a.endpoint_url, **where)
    fn = policy.show if a.action == "show" else policy.detach
    return fn(a.endpoint, region=a.region, endpoint_url=a.endpoint_url, **where)


def parse_ramp(text: str) -> list[tuple[float, float]]:
    try:
        return [(float(t), float(r)) for t, r in (step.split(":") for step in text.split(","))]
    except ValueError:
        raise OptimizeError(f"--ramp takes time_s:req_per_s steps like 0:1,600:3 (got {text!r})") from None


def _simulate(a) -> Any:
    from .autoscale import policy, sim_traffic
    from .autoscale.simulate import FleetConfig, ServiceCurve, simulate

    if a.result:
        from .bench import BenchResult

        curve = ServiceCurve.from_result(BenchResult.load(a.result))
    else:
        curve = ServiceCurve.estimate(a.batch1_tok_s, a.saturation)
    cfg = policy.AutoscalingConfig(min_capacity=a.min_capacity, max_capacity=a.max_capacity,
                                   target_value=a.target_value, metric=a.metric,
                                   scale_in_cooldown_s=a.scale_in_cooldown, scale_out_cooldown_s=a.scale_out_cooldown)
    fleet = FleetConfig.from_autoscaling(cfg, curve, usd_per_hour=a.usd_per_hour, compile_cache=a.compile_cache)
    res = simulate(sim_traffic.ramp(parse_ramp(a.ramp), a.duration, seed=a.seed), fleet, seed=a.seed,
                   ttft_slo_s=a.ttft_slo)
    if a.chart:
        from .autoscale.timeline import timeline_chart

        ax = timeline_chart(res)
        ax.figure.savefig(a.chart, dpi=100)
    return res


def _endpoint_verb(a) -> Any:
    if a.verb == "endpoints":
        from .deploy import local

        return local.list_endpoints()
    if a.target == "local":
        from .deploy import local

        if a.verb == "undeploy":
            return f"stopped {local.undeploy(a.name).name}"
        return local.invoke(a.name, a.prompt, a.max_tokens, a.stream)
    from .deploy import sagemaker

    if a.verb == "undeploy":
        return sagemaker.undeploy(a.name, region=a.region, endpoint_url=a.endpoint_url)
    out = sagemaker.invoke(a.name, a.prompt, a.max_tokens, stream=a.stream, region=a.region,
                           endpoint_url=a.endpoint_url, inference_component=a.inference_component)
    return out if not a.stream else "".join(out)


DEPLOY_VERBS = {"deploy": _deploy, "endpoints": _endpoint_verb, "undeploy": _endpoint_verb,
                "invoke": _endpoint_verb, "autoscale": _autoscale, "simulate": _simulate}
