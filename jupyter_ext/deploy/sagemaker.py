"""A recipe as a SageMaker real-time endpoint running the LMI (vLLM) container.

`plan_deployment` is pure: it validates the recipe for SageMaker and returns the exact boto3
requests (CreateModel, CreateEndpointConfig, CreateEndpoint, and CreateInferenceComponent when
asked for), which `dry_run` shows and `deploy` makes in order. `deploy` waits for InService
with a deadline and, if any step fails, deletes what it created in reverse order, so a failed
deploy leaves nothing behind that bills by the hour. `undeploy` (in sagemaker_undeploy,
re-exported here) finds everything an endpoint uses through Describe calls and deletes it.
A recipe with LoRA adapters deploys as a base inference component and one adapter component
per adapter (BaseInferenceComponentName + the adapter's tarball as ArtifactUrl). `invoke` and `endpoint_stream_fn` (in sagemaker_invoke,
re-exported here) call a deployed endpoint.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import AwsPermissionError, DeployError
from ..recipes import Recipe, check_stack
from .dryrun import DryRun
from .aws import ApiRequest, AwsClients, as_clients, is_not_found, redact, region_from_env
from .sagemaker_env import (adapter_component_name, adapter_component_names, adapter_component_requests,
                            container_environment, default_endpoint_name, deploy_tensor_parallel, draft_hf_id,
                            endpoint_config_request, ic_devices, inference_component_request, lmi_image_uri,
                            model_request, plan_warnings, resource_names, speculative_config,
                            validate_inputs)
from .sagemaker_undeploy import DEFAULT_POLL_S, UndeployResult, _Shown, _wait_gone, undeploy
from .sagemaker_invoke import (NEW_SESSION, InvocationResult, chat_body, close_session, endpoint_stream_fn, invoke,
                               open_session,
                               iter_stream_events, iter_stream_text, text_of)

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 3600.0  # large models take 10-20 min to download and load
# The execution role a plan names when planned without one (a dry run to look at); such a
# plan is never sent.
DRY_RUN_ROLE = "arn:aws:iam::123456789012:role/DRY-RUN"
_UNDO = {"CreateModel": ("DeleteModel", "ModelName"),
         "CreateEndpointConfig": ("DeleteEndpointConfig", "EndpointConfigName"),
         "CreateEndpoint": ("DeleteEndpoint", "EndpointName"),
         "CreateInferenceComponent": ("DeleteInferenceComponent", "InferenceComponentName")}


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
    adapter_components: dict[str, str] = field(default_factory=dict)  # LoRA adapter -> its component
    routing: str = "LEAST_OUTSTANDING_REQUESTS"

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
                ("routing", self.routing), ("image", self.image_uri)] + [
                (f"adapter {a}", f"inference component {ic}") for a, ic in self.adapter_components.items()] + [
                ("requests", " -> ".join(r.operation for r in self.requests))]

    def _title(self) -> str:
        return f"Deployment plan for {self.endpoint_name}"


def plan_deployment(recipe: Recipe, endpoint_name: str | None = None, *, role_arn: str,
                    region: str | None = None, instance_type: str | None = None, instance_count: int = 1,
                    routing: str | None = None, inference_component: bool = False,
                    model_data_s3: str | None = None, draft_model_s3: str | None = None,
                    image_uri: str | None = None, accept_eula: bool = False, copy_count: int = 1,
                    ic_min_memory_mb: int = 1024, adapters_s3: str | None = None) -> DeploymentPlan:
    """The requests that deploy `recipe`; raises a named error for anything SageMaker would
    refuse later (a bad stack, a missing instance type, an unaccepted EULA, a malformed ARN).
    `routing` defaults to the recipe's deploy.routing. A recipe with LoRA adapters deploys as
    a base inference component plus one adapter component each (tarballs under `adapters_s3`)."""
    check_stack(recipe, "sagemaker")
    region = region or region_from_env()
    if not region:
        raise DeployError("no AWS region: pass region='us-east-1' (or set AWS_REGION)")
    instance_type = instance_type or recipe.instance_type
    routing = (routing or recipe.routing_strategy).upper()
    inference_component = inference_component or recipe.adapters is not None  # adapters live in components
    model_spec, inst = validate_inputs(recipe, role_arn, instance_type, instance_count, routing,
                                       accept_eula, model_data_s3, copy_count, adapters_s3)
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
        requests.append(inference_component_request(names, ic_devices(recipe, tp, accelerators), ic_min_memory_mb,
                                                    copy_count, tags))
    if recipe.adapters is not None:
        requests += adapter_component_requests(recipe, names, adapters_s3, tags)
    return DeploymentPlan(recipe.name, region, names["endpoint"], names["config"], names["model"],
                          names["ic"] if inference_component else None, instance_type, instance_count,
                          image, requests, getattr(inst, "usd_per_hour", None),
                          plan_warnings(recipe, model_spec, env, model_data_s3, image_uri),
                          adapter_component_names(recipe, names), routing)


def dry_run(plan: DeploymentPlan) -> DryRun:
    """The exact requests `deploy(plan)` will make (a DryRun: JSON text and the plan). Secret-
    looking environment values are redacted; no credentials are involved in building a plan,
    so none can appear."""
    doc = {"endpoint_name": plan.endpoint_name, "region": plan.region,
           "requests": [r.to_dict() for r in plan.requests],
           "routing": plan.routing,
           "then": "poll DescribeEndpoint until EndpointStatus is InService"
                   + (" (before CreateInferenceComponent), then DescribeInferenceComponent"
                      if plan.inference_component_name else "")
                   + (" (the base component InService before its adapter components)"
                      if plan.adapter_components else ""),
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
    waited: set[str] = set()  # what is known to be InService
    try:
        for req in plan.requests:
            if req.operation == "CreateInferenceComponent":
                # A component needs its endpoint InService; an adapter component, its base component.
                base = req.params["Specification"].get("BaseInferenceComponentName")
                stage = f"waiting for {'inference component ' + base if base else 'the endpoint'} to be InService"
                if base and base not in waited:
                    _wait_component(clients, base, deadline, poll_s, progress)
                elif not base and plan.endpoint_name not in waited:
                    _wait_endpoint(clients, plan.endpoint_name, deadline, poll_s, progress)
                waited.add(base or plan.endpoint_name)
            stage = req.operation
            clients.send(req)
            created.append(req)
            log.info("created %s", _label(req))
        if wait:
            stage = f"waiting for the {'inference component' if plan.inference_component_name else 'endpoint'} to be InService"
            if plan.inference_component_name:
                for ic in [plan.inference_component_name, *plan.adapter_components.values()]:
                    if ic not in waited:
                        _wait_component(clients, ic, deadline, poll_s, progress)
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


__all__ = ["DeploymentPlan", "SageMakerDeployment", "UndeployResult", "InvocationResult",
           "plan_deployment", "deploy", "undeploy", "dry_run", "invoke", "open_session", "close_session", "NEW_SESSION",
           "endpoint_stream_fn",
           "chat_body", "iter_stream_events", "iter_stream_text", "text_of"]
