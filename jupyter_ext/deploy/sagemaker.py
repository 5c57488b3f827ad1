"""A recipe as a SageMaker real-time endpoint running the LMI (vLLM) container.

`plan_deployment` is pure: it validates the recipe for SageMaker and returns the exact boto3
requests (CreateModel, CreateEndpointConfig, CreateEndpoint, and CreateInferenceComponent when
asked for), which `dry_run` shows and `deploy` makes in order. `deploy` waits for InService
with a deadline and, if any step fails, deletes what it created in reverse order, so a failed
deploy leaves nothing behind that bills by the hour. `undeploy` finds everything an endpoint
uses through Describe calls and deletes it. `invoke` and `endpoint_stream_fn` (in sagemaker_invoke,
re-exported here) call a deployed endpoint.
"""

from __future__ import annotations

import html
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..catalog.specs import html_table
from ..errors import AwsPermissionError, DeployError, EndpointNotFoundError
from ..recipes import Recipe, check_stack
from .dryrun import DryRun
from .aws import ApiRequest, AwsClients, as_clients, is_not_found, redact, region_from_env
from .sagemaker_env import (container_environment, default_endpoint_name, deploy_tensor_parallel,
                            draft_hf_id, endpoint_config_request, ic_devices, inference_component_request,
                            lmi_image_uri, model_request, plan_warnings, resource_names, speculative_config,
                            validate_inputs)
from .sagemaker_invoke import (InvocationResult, chat_body, endpoint_stream_fn, invoke,
                               iter_stream_events, iter_stream_text, text_of)

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 3600.0  # large models take 10-20 min to download and load
# The execution role a plan names when planned without one (a dry run to look at); such a
# plan is never sent.
DRY_RUN_ROLE = "arn:aws:iam::123456789012:role/DRY-RUN"
DEFAULT_POLL_S = 15.0
_UNDO = {"CreateModel": ("DeleteModel", "ModelName"),
         "CreateEndpointConfig": ("DeleteEndpointConfig", "EndpointConfigName"),
         "CreateEndpoint": ("DeleteEndpoint", "EndpointName"),
         "CreateInferenceComponent": ("DeleteInferenceComponent", "InferenceComponentName")}


class _Shown:
    """Terminal and notebook views of a result, built from its `_title()`, `_rows()` and warnings."""

    warnings: list[str]

    def _title(self) -> str:
        raise NotImplementedError

    def _rows(self) -> list[tuple[str, Any]]:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __str__(self) -> str:
        lines = [self._title()] + [f"  {k}: {v}" for k, v in self._rows()]
        return "\n".join(lines + [f"  warning: {w}" for w in self.warnings])

    def _repr_html_(self) -> str:
        warn = "".join(f"<br>&#9888; {html.escape(w)}" for w in self.warnings)
        return html_table(["field", "value"], self._rows(), caption=self._title()) + warn


@dataclass
class DeploymentPlan(_Shown):
    """Everything a deploy will create, as the requests that create it (nothing sent yet)."""

    recipe_name: str
    region: str
    endpoint_name: str
    endpoint_config_name: str
    model_name: str
    inference_component_name: str | None
    instance_type: str
    instance_count: int
    image_uri: str
    requests: list[ApiRequest]
    usd_per_hour: float | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def fleet_usd_per_hour(self) -> float | None:
        """On-demand price of the fleet at its initial size (instance rate x instance count)."""
        return None if self.usd_per_hour is None else self.usd_per_hour * self.instance_count

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "requests"}
        d["requests"] = [r.to_dict() for r in self.requests]
        return d

    def _rows(self) -> list[tuple[str, Any]]:
        price = "unknown" if self.fleet_usd_per_hour is None else f"${self.fleet_usd_per_hour:.2f}/h"
        return [("recipe", self.recipe_name), ("region", self.region), ("endpoint", self.endpoint_name),
                ("instances", f"{self.instance_count} x {self.instance_type}"), ("on-demand price", price),
                ("image", self.image_uri), ("requests", " -> ".join(r.operation for r in self.requests))]

    def _title(self) -> str:
        return f"Deployment plan for {self.endpoint_name}"


def plan_deployment(recipe: Recipe, endpoint_name: str | None = None, *, role_arn: str,
                    region: str | None = None, instance_type: str | None = None, instance_count: int = 1,
                    routing: str = "LEAST_OUTSTANDING_REQUESTS", inference_component: bool = False,
                    model_data_s3: str | None = None, draft_model_s3: str | None = None,
                    image_uri: str | None = None, accept_eula: bool = False, copy_count: int = 1,
                    ic_min_memory_mb: int = 1024) -> DeploymentPlan:
    """The requests that deploy `recipe`; raises a named error for anything SageMaker would
    refuse later (a bad stack, a missing instance type, an unaccepted EULA, a malformed ARN)."""
    check_stack(recipe, "sagemaker")
    region = region or region_from_env()
    if not region:
        raise DeployError("no AWS region: pass region='us-east-1' (or set AWS_REGION)")
    instance_type = instance_type or recipe.instance_type
    model_spec, inst = validate_inputs(recipe, role_arn, instance_type, instance_count, routing,
                                       accept_eula, model_data_s3, copy_count)
    names = resource_names(endpoint_name or default_endpoint_name(recipe))
    accelerators = int(getattr(inst, "accelerator_count", 0) or 0)
    tp = deploy_tensor_parallel(recipe, instance_type, accelerators)
    env = container_environment(recipe, hf_id=model_spec.hf_id, model_data_s3=model_data_s3,
                                tensor_parallel=tp,
                                spec_config=speculative_config(recipe, draft_model_s3, draft_hf_id(recipe)))
    image = image_uri or lmi_image_uri(region)
    tags = [{"Key": "created-by", "Value": "jupyter-optimize"},
            {"Key": "jupyter-optimize:recipe", "Value": recipe.name}]
    requests = [model_request(names["model"], image, env, role_arn, model_data_s3, draft_model_s3,
                              accept_eula, tags)]
    requests.append(endpoint_config_request(names, instance_type, instance_count, routing,
                                             inference_component, role_arn, tags))
    requests.append(ApiRequest("sagemaker", "CreateEndpoint", {
        "EndpointName": names["endpoint"], "EndpointConfigName": names["config"], "Tags": tags},
        "starts the instances (billing starts here)"))
    if inference_component:
        requests.append(inference_component_request(names, ic_devices(recipe, tp, accelerators), ic_min_memory_mb, copy_count, tags))
    return DeploymentPlan(recipe.name, region, names["endpoint"], names["config"], names["model"],
                          names["ic"] if inference_component else None, instance_type, instance_count,
                          image, requests, getattr(inst, "usd_per_hour", None),
                          plan_warnings(recipe, model_spec, env, model_data_s3, image_uri))


def dry_run(plan: DeploymentPlan) -> DryRun:
    """The exact requests `deploy(plan)` will make (a DryRun: JSON text and the plan). Secret-
    looking environment values are redacted; no credentials are involved in building a plan,
    so none can appear."""
    doc = {"endpoint_name": plan.endpoint_name, "region": plan.region,
           "requests": [r.to_dict() for r in plan.requests],
           "then": "poll DescribeEndpoint until EndpointStatus is InService"
                   + (" (before CreateInferenceComponent), then DescribeInferenceComponent"
                      if plan.inference_component_name else ""),
           "on_failure": "delete what was created, in reverse order"}
    return DryRun(f"Requests to deploy {plan.endpoint_name}", json.dumps(redact(doc), indent=2, sort_keys=False), plan)


# -- making it --------------------------------------------------------------------------
@dataclass
class SageMakerDeployment(_Shown):
    """A deployed (or deploying) endpoint and what was created for it."""

    endpoint_name: str
    region: str
    status: str
    created: list[str]
    instance_type: str
    instance_count: int
    inference_component_name: str | None = None
    endpoint_arn: str | None = None
    elapsed_s: float = 0.0
    usd_per_hour: float | None = None
    warnings: list[str] = field(default_factory=list)

    def _title(self) -> str:
        return f"SageMaker endpoint {self.endpoint_name}"

    def _rows(self) -> list[tuple[str, Any]]:
        return [("status", self.status), ("region", self.region),
                ("instances", f"{self.instance_count} x {self.instance_type}"),
                ("created", ", ".join(self.created)), ("elapsed", f"{self.elapsed_s:.0f} s")]


def deploy(plan: DeploymentPlan, session: Any = None, wait: bool = True, progress: bool = True,
           timeout_s: float = DEFAULT_TIMEOUT_S, poll_s: float = DEFAULT_POLL_S,
           endpoint_url: str | None = None) -> SageMakerDeployment:
    """Make the plan's requests in order and (with wait) return once the endpoint serves.
    On any failure everything created so far is deleted in reverse order, then a DeployError
    names the failed step and what was rolled back."""
    if plan.requests[0].params.get("ExecutionRoleArn") == DRY_RUN_ROLE:
        raise DeployError("that plan was made without --role-arn, so it names a placeholder role; plan it "
                          "again with --role-arn (the endpoint's execution role), then deploy it")
    clients = as_clients(session, plan.region, endpoint_url)
    start, created, stage = time.monotonic(), [], plan.requests[0].operation
    deadline = start + timeout_s
    try:
        for req in plan.requests:
            if req.operation == "CreateInferenceComponent":
                stage = "waiting for the endpoint to be InService"
                _wait_endpoint(clients, plan.endpoint_name, deadline, poll_s, progress)
            stage = req.operation
            clients.send(req)
            created.append(req)
            log.info("created %s", _label(req))
        if wait:
            stage = f"waiting for the {'inference component' if plan.inference_component_name else 'endpoint'} to be InService"
            if plan.inference_component_name:
                _wait_component(clients, plan.inference_component_name, deadline, poll_s, progress)
            else:
                _wait_endpoint(clients, plan.endpoint_name, deadline, poll_s, progress)
    except KeyboardInterrupt:
        raise DeployError(f"interrupted ({stage}); what was created is kept and billed once InService: "
                          f"remove it with undeploy({plan.endpoint_name!r})") from None
    except Exception as err:
        log.info("deploying %s failed at %s; rolling back %d created resources", plan.endpoint_name, stage,
                 len(created))
        rolled, failed = _rollback(clients, created, deadline, poll_s)
        raise _failure(plan, stage, err, rolled, failed) from err
    status = clients.call("sagemaker", "DescribeEndpoint", EndpointName=plan.endpoint_name)
    return SageMakerDeployment(plan.endpoint_name, plan.region, status["EndpointStatus"],
                               [_label(r) for r in created], plan.instance_type, plan.instance_count,
                               plan.inference_component_name, status.get("EndpointArn"),
                               time.monotonic() - start, plan.usd_per_hour)


def _label(req: ApiRequest) -> str:
    op, key = _UNDO[req.operation]
    return f"{op.removeprefix('Delete')} {req.params[key]}"


def _failure(plan: DeploymentPlan, stage: str, err: Exception, rolled: list[str],
             failed: list[str]) -> DeployError:
    cls = AwsPermissionError if isinstance(err, AwsPermissionError) else DeployError
    msg = f"deploying {plan.endpoint_name} failed at {stage}: {err}. "
    msg += f"Rolled back: {', '.join(rolled)}." if rolled else "Nothing had been created."
    if failed:
        msg += (f" Could not delete {', '.join(failed)}: remove them with "
                f"undeploy({plan.endpoint_name!r}) or in the SageMaker console.")
    return cls(msg)


def _rollback(clients: AwsClients, created: list[ApiRequest], deadline: float,
              poll_s: float) -> tuple[list[str], list[str]]:
    rolled, failed = [], []
    for req in reversed(created):
        op, key = _UNDO[req.operation]
        try:
            clients.call("sagemaker", op, **{key: req.params[key]})
            if op == "DeleteInferenceComponent":  # the endpoint cannot go while it still hosts one
                _wait_gone(clients, req.params[key], max(deadline, time.monotonic() + 600), poll_s)
            rolled.append(_label(req))
        except Exception as err:  # keep rolling back the rest; report each failure
            if is_not_found(err):
                rolled.append(_label(req))
            else:
                failed.append(f"{_label(req)} ({err})")
    return rolled, failed


def _poll(describe: Callable[[], dict[str, Any]], key: str, what: str, deadline: float,
          poll_s: float, progress: bool) -> dict[str, Any]:
    """Poll until `key` is InService; Failed (with its FailureReason) or the deadline raise."""
    from tqdm.auto import tqdm

    start = time.monotonic()
    with tqdm(total=max(1, int(deadline - start)), unit="s", desc=what, disable=not progress,
              bar_format="{desc} [{elapsed}]") as bar:
        while True:
            desc = describe()
            status = desc.get(key, "?")
            bar.set_description_str(f"{what}: {status}")
            if status == "InService":
                return desc
            if status == "Failed":
                raise DeployError(f"{what} failed: {desc.get('FailureReason', 'no reason given')}")
            if time.monotonic() + poll_s > deadline:
                raise DeployError(f"{what} still {status} at the deadline; pass a larger timeout_s")
            time.sleep(poll_s)
            bar.update(int(time.monotonic() - start) - bar.n)


def _wait_endpoint(clients: AwsClients, name: str, deadline: float, poll_s: float, progress: bool) -> None:
    _poll(lambda: clients.call("sagemaker", "DescribeEndpoint", EndpointName=name),
          "EndpointStatus", f"endpoint {name}", deadline, poll_s, progress)


def _wait_component(clients: AwsClients, name: str, deadline: float, poll_s: float, progress: bool) -> None:
    _poll(lambda: clients.call("sagemaker", "DescribeInferenceComponent", InferenceComponentName=name),
          "InferenceComponentStatus", f"inference component {name}", deadline, poll_s, progress)


def _wait_gone(clients: AwsClients, component: str, deadline: float, poll_s: float) -> None:
    while time.monotonic() < deadline:
        try:
            clients.call("sagemaker", "DescribeInferenceComponent", InferenceComponentName=component)
        except Exception as err:
            if is_not_found(err):
                return
            raise
        time.sleep(poll_s)
    raise DeployError(f"inference component {component} was not deleted before the deadline")


# -- removing it ------------------------------------------------------------------------
@dataclass
class UndeployResult(_Shown):
    """What `undeploy` deleted (and what was already gone)."""

    endpoint_name: str
    deleted: list[str]
    missing: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def _title(self) -> str:
        return f"Undeployed {self.endpoint_name}"

    def _rows(self) -> list[tuple[str, Any]]:
        return [("deleted", ", ".join(self.deleted) or "nothing"), ("already gone", ", ".join(self.missing) or "-")]


def undeploy(endpoint_name: str, session: Any = None, region: str | None = None,
             endpoint_url: str | None = None, poll_s: float = DEFAULT_POLL_S,
             timeout_s: float = 1200.0) -> UndeployResult:
    """Delete the endpoint, its inference components, its endpoint config and its models,
    found through Describe calls so that endpoints made by hand are cleaned up just as well."""
    clients = as_clients(session, region, endpoint_url)
    try:
        endpoint = clients.call("sagemaker", "DescribeEndpoint", EndpointName=endpoint_name)
    except Exception as err:
        if is_not_found(err):
            raise EndpointNotFoundError(f"no SageMaker endpoint named {endpoint_name!r} in "
                                        f"{clients.region}; check the name and the region") from None
        raise
    config_name = endpoint["EndpointConfigName"]
    variants = _describe_or_none(clients, "DescribeEndpointConfig", EndpointConfigName=config_name)
    variants = (variants or {}).get("ProductionVariants", [])
    models = [v["ModelName"] for v in variants if v.get("ModelName")]
    result = UndeployResult(endpoint_name, [])
    # Without a model on a variant, the models live in inference components.
    components = _list_components(clients, endpoint_name) if any(not v.get("ModelName") for v in variants) else []
    _detach_autoscaling(clients, endpoint_name, [v["VariantName"] for v in variants], components, result)
    models += _delete_components(clients, components, result, time.monotonic() + timeout_s, poll_s)
    steps = [("DeleteEndpoint", {"EndpointName": endpoint_name}),
             ("DeleteEndpointConfig", {"EndpointConfigName": config_name})]
    steps += [("DeleteModel", {"ModelName": m}) for m in dict.fromkeys(models)]
    for op, params in steps:
        label = f"{op.removeprefix('Delete')} {next(iter(params.values()))}"
        try:
            clients.call("sagemaker", op, **params)
            result.deleted.append(label)
        except Exception as err:
            if not is_not_found(err):
                raise
            result.missing.append(label)
    return result


def _describe_or_none(clients: AwsClients, op: str, **params: Any) -> dict[str, Any] | None:
    try:
        return clients.call("sagemaker", op, **params)
    except Exception as err:
        if is_not_found(err):
            return None
        raise


def _list_components(clients: AwsClients, endpoint_name: str) -> list[str]:
    return [c["InferenceComponentName"]
            for page in clients.pages("sagemaker", "ListInferenceComponents", EndpointNameEquals=endpoint_name)
            for c in page.get("InferenceComponents", [])]


def _detach_autoscaling(clients: AwsClients, endpoint_name: str, variants: list[str],
                        components: list[str], result: UndeployResult) -> None:
    """Autoscaling outlives an endpoint otherwise: its scalable targets stay registered and
    our alarms keep evaluating a metric that no longer comes."""
    from ..autoscale.policy import detach  # late: autoscale builds on deploy.aws
    from ..errors import AutoscaleError

    scopes = [{"variant_name": v} for v in variants] + [{"inference_component": c} for c in components]
    for scope in scopes:
        try:
            state = detach(endpoint_name, session=clients, **scope)
        except AutoscaleError:  # detach's answer when nothing is attached to this scope
            continue
        except AwsPermissionError as err:  # do not block the delete; say what was not checked
            result.warnings.append(f"autoscaling of {endpoint_name} ({scope}) was not removed: {err}")
            continue
        result.deleted.append(f"Autoscaling {state.resource_id}")


def _delete_components(clients: AwsClients, names: list[str], result: UndeployResult,
                       deadline: float, poll_s: float) -> list[str]:
    """Delete the inference components (each must be gone before the endpoint can go);
    return the models they used."""
    models = []
    for name in names:
        desc = _describe_or_none(clients, "DescribeInferenceComponent", InferenceComponentName=name) or {}
        model = desc.get("Specification", {}).get("ModelName")
        models += [model] if model else []
        clients.call("sagemaker", "DeleteInferenceComponent", InferenceComponentName=name)
        _wait_gone(clients, name, deadline, poll_s)
        result.deleted.append(f"InferenceComponent {name}")
    return models


__all__ = ["DeploymentPlan", "SageMakerDeployment", "UndeployResult", "InvocationResult",
           "plan_deployment", "deploy", "undeploy", "dry_run", "invoke", "endpoint_stream_fn",
           "chat_body", "iter_stream_events", "iter_stream_text", "text_of"]
