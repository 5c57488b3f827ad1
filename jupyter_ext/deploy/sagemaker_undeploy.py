"""Removing a SageMaker endpoint and everything it uses, and what deploy and undeploy share.

`undeploy` finds the endpoint's config, models, inference components (adapter components
first, then the base components they sit on) and autoscaling through Describe calls and
deletes them, so endpoints made by hand are cleaned up just as well. `_Shown` gives every
deploy result its terminal and notebook views; `_wait_gone` waits out a component's delete
(a deploy's rollback needs it too).
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field
from typing import Any

from ..catalog.specs import html_table
from ..errors import AwsPermissionError, DeployError, EndpointNotFoundError
from .aws import AwsClients, as_clients, is_not_found

DEFAULT_POLL_S = 15.0


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
    """Delete the inference components (each must be gone before the endpoint can go), the
    adapter components before the base components they sit on; return the models they used."""
    models, specs = [], {}
    for name in names:
        desc = _describe_or_none(clients, "DescribeInferenceComponent", InferenceComponentName=name) or {}
        specs[name] = desc.get("Specification", {})
    for name in sorted(names, key=lambda n: not specs[n].get("BaseInferenceComponentName")):
        model = specs[name].get("ModelName")
        models += [model] if model else []
        clients.call("sagemaker", "DeleteInferenceComponent", InferenceComponentName=name)
        _wait_gone(clients, name, deadline, poll_s)
        result.deleted.append(f"InferenceComponent {name}")
    return models


