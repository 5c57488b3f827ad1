"""The verbs that deploy and autoscale: deploy, endpoints, undeploy, invoke, autoscale, simulate.

One typed core function per verb, returning objects that show themselves: a LocalEndpoint
or SageMakerDeployment, a DryRun (the exact requests, with the plan they came from, so that
deploying the DryRun makes exactly what was reviewed), an InvocationResult, an
AutoscalingState, a SimulationReport. Arguments may be objects a notebook passes (`@ep`,
`@dry`, `@res`) or names typed on a line.
"""

from __future__ import annotations

import time
from typing import Any

from ..errors import DeployError
from .results import InvocationResult, as_recipe, endpoint_of, given_plan


def deploy(recipe: Any, target: str = "local", name: str | None = None, host: str = "127.0.0.1",
           port: int | None = None, role_arn: str | None = None, instance_type: str | None = None,
           instance_count: int = 1, routing: str | None = None, inference_component: bool = False,
           model_data_s3: str | None = None, draft_model_s3: str | None = None, accept_eula: bool = False,
           dry_run: bool = False, region: str | None = None, endpoint_url: str | None = None,
           adapters_s3: str | None = None) -> Any:
    """Local: start vLLM for the recipe and leave it running (a LocalEndpoint). SageMaker:
    plan, then return the DryRun (`dry_run`) or make it; a plan or a deploy DryRun given as
    `recipe` is made as it is. `routing` (any case) overrides the recipe's deploy.routing."""
    from ..deploy import local, sagemaker

    plan = given_plan(recipe)
    if plan is None and target == "local":
        if dry_run:
            raise DeployError("--dry-run shows the AWS requests of a SageMaker deploy; a local deploy "
                              "sends none. Add --target sagemaker, or drop --dry-run")
        return local.deploy(as_recipe(recipe), name=name, host=host, port=port)
    if plan is None:
        if not role_arn and not dry_run:
            raise DeployError("deploy --target sagemaker needs --role-arn (the endpoint's execution role); "
                              "--dry-run shows the requests without one")
        plan = sagemaker.plan_deployment(
            as_recipe(recipe), name, role_arn=role_arn or sagemaker.DRY_RUN_ROLE, region=region,
            instance_type=instance_type, instance_count=instance_count, routing=routing.upper() if routing else None,
            inference_component=inference_component, model_data_s3=model_data_s3,
            draft_model_s3=draft_model_s3, accept_eula=accept_eula, adapters_s3=adapters_s3)
    if dry_run:
        return sagemaker.dry_run(plan)
    return sagemaker.deploy(plan, endpoint_url=endpoint_url)


def endpoints() -> Any:
    """Local endpoints (state files) and the servers `serve` keeps attached, re-checked now."""
    from ..deploy import local

    return local.list_endpoints()


def undeploy(name: Any, target: str = "local", region: str | None = None, endpoint_url: str | None = None) -> Any:
    """Local: stop the server by its pid (the stopped LocalEndpoint). SageMaker: delete the
    endpoint, its config, models and autoscaling (what was deleted). A deployed endpoint
    object says its own target."""
    target, name = endpoint_of(name, target)
    if target == "local":
        from ..deploy import local

        return local.undeploy(name)
    from ..deploy import sagemaker

    return sagemaker.undeploy(name, region=region, endpoint_url=endpoint_url)


def invoke(name: Any, prompt: str, target: str = "local", max_tokens: int = 64, stream: bool = False,
           inference_component: str | None = None, region: str | None = None,
           endpoint_url: str | None = None, session: str | None = None,
           close_session: bool = False, adapter: str | None = None) -> InvocationResult:
    """One prompt; the reply as an InvocationResult (text, latency) for both targets. SageMaker:
    `session` 'new' opens a sticky session (the result's session_id names it), an id continues
    one; `close_session` closes it after this reply. `adapter` picks a LoRA adapter: the
    request's model field locally, its inference component (`<endpoint>-lora-<adapter>`,
    as deploy names it) on SageMaker."""
    target, name = endpoint_of(name, target)
    start = time.perf_counter()
    if (session or close_session) and target == "local":
        raise DeployError("--session and --close-session route SageMaker requests to one instance; a local "
                          "endpoint is one server. Add --target sagemaker, or drop them")
    if close_session and not session:
        raise DeployError("--close-session needs --session (new, or the id an earlier invoke returned)")
    if target == "local":
        from ..deploy import local

        text = local.invoke(name, prompt, max_tokens, stream, adapter=adapter)
        return InvocationResult(name, text, time.perf_counter() - start, None, None)
    from ..deploy import sagemaker

    session_id = sagemaker.NEW_SESSION if session and session.lower() == "new" else session
    if adapter and not inference_component:
        inference_component = sagemaker.adapter_component_name(name, adapter)
    out = sagemaker.invoke(name, prompt, max_tokens, stream=stream, region=region, endpoint_url=endpoint_url,
                           inference_component=inference_component, session_id=session_id)
    if stream:
        out = InvocationResult(name, "".join(out), time.perf_counter() - start, None, None, session_id)
    if close_session:
        sagemaker.close_session(name, out.session_id, region=region, endpoint_url=endpoint_url,
                                inference_component=inference_component)
    return out


def autoscaling_config(min_capacity: int, max_capacity: int, target_value: float, metric: str,
                       scale_in_cooldown: int, scale_out_cooldown: int, guard_invocations: float | None = None) -> Any:
    """The AutoscalingConfig of the option table's autoscaling options (checked)."""
    from ..autoscale.policy import AutoscalingConfig

    return AutoscalingConfig(min_capacity=min_capacity, max_capacity=max_capacity, target_value=target_value,
                             metric=metric, scale_in_cooldown_s=scale_in_cooldown,
                             scale_out_cooldown_s=scale_out_cooldown, guard_invocations_target=guard_invocations)


def autoscale(action: str, endpoint: Any, variant: str = "AllTraffic", inference_component: str | None = None,
              min_capacity: int = 1, max_capacity: int = 4, target_value: float = 5.0, metric: str = "concurrency",
              scale_in_cooldown: int = 300, scale_out_cooldown: int = 300, guard_invocations: float | None = None,
              dry_run: bool = False, region: str | None = None, endpoint_url: str | None = None) -> Any:
    """attach / show / detach (an AutoscalingState), or attach with `dry_run` (a DryRun). A
    deployed inference component passed as `endpoint` names its component itself."""
    from ..autoscale import policy

    component = inference_component or getattr(endpoint, "inference_component_name", None)
    _, name = endpoint_of(endpoint, "sagemaker")
    where = dict(variant_name=variant, inference_component=component)
    if action == "attach":
        cfg = autoscaling_config(min_capacity, max_capacity, target_value, metric, scale_in_cooldown,
                                 scale_out_cooldown, guard_invocations)
        if dry_run:
            return policy.dry_run(name, cfg, **where)
        return policy.attach(name, cfg, region=region, endpoint_url=endpoint_url, **where)
    fn = policy.show if action == "show" else policy.detach
    return fn(name, region=region, endpoint_url=endpoint_url, **where)


def simulate(result: Any = None, batch1_tok_s: float | None = None, saturation: float | None = None,
             ramp: str | None = None, duration: float | None = None, min_capacity: int = 1,
             max_capacity: int | None = None, target_value: float = 5.0, metric: str = "concurrency",
             scale_in_cooldown: int = 300, scale_out_cooldown: int = 300, usd_per_hour: float | None = None,
             compile_cache: bool = False, ttft_slo: float = 2.0, seed: int = 0, chart: str | None = None,
             routing: str | None = None, replicas: int = 4, prefix_hit_factor: float = 0.2) -> Any:
    """The policy under a traffic ramp, before paying: a SimulationReport (summary and
    timeline; saved as PNG too with `chart`). `result` may be a BenchResult object, saved or
    not, or the path of one. With `routing` (routers, comma-separated): those routers on a
    fixed fleet of `replicas` under multi-turn traffic instead, a RoutingComparison with its
    assumptions and the seed's claims."""
    from ..autoscale import scenario as sc

    if routing:
        return _compare_routing(routing, result, batch1_tok_s, saturation, duration, replicas, prefix_hit_factor, seed)
    cfg = autoscaling_config(min_capacity, sc.DEFAULT_MAX_CAPACITY if max_capacity is None else max_capacity,
                             target_value, metric, scale_in_cooldown, scale_out_cooldown)
    if result is not None and not isinstance(result, str) and not hasattr(result, "levels"):
        from .results import as_result

        result = as_result(result)  # a background benchmark or a Comparison: its result
    given = {k: v for k, v in dict(batch1_tok_s=batch1_tok_s, saturation=saturation, ramp=ramp, duration_s=duration,
                                   usd_per_hour=usd_per_hour).items() if v is not None}
    report = sc.run(sc.Scenario(config=cfg, result=result, compile_cache=compile_cache, ttft_slo_s=ttft_slo,
                                seed=seed, **given))
    if chart:
        report.save(chart)
    return report


def _compare_routing(routing: str, result: Any, batch1_tok_s: float | None, saturation: float | None,
                     duration: float | None, replicas: int, prefix_hit_factor: float, seed: int) -> Any:
    from ..autoscale import scenario as sc
    from ..autoscale.sim_routing import compare_routing

    curve = None
    if result is not None:
        from .results import as_result

        curve = sc.Scenario(result=result if isinstance(result, str) else as_result(result)).curve()
    given = {k: v for k, v in dict(batch1_tok_s=batch1_tok_s, saturation=saturation, duration_s=duration).items()
             if v is not None}
    return compare_routing([r.strip() for r in routing.split(",") if r.strip()], replicas=replicas,
                           prefix_hit_factor=prefix_hit_factor, curve=curve, seed=seed, **given)
