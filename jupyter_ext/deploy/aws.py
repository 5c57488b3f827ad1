"""boto3 plumbing shared by deploy/ and autoscale/: clients, retries, errors, dry runs.

Every AWS call of the toolkit goes through `AwsClients.call` so that three things hold
everywhere: throttling is retried by botocore with backoff (a `Config` with retry mode
"adaptive"), a refused permission becomes an `AwsPermissionError` naming the IAM action to
grant, and tests can point all services at one emulator (`endpoint_url`, or the environment
variable JUPYTER_OPTIMIZE_AWS_ENDPOINT_URL) or hand in stubbed clients.
"""

from __future__ import annotations

import copy
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import boto3
from botocore.client import BaseClient
from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError
from botocore import xform_name

from .. import defaults
from ..base.aws_config import DEFAULT_MAX_ATTEMPTS, DEFAULT_POOL, DEFAULT_RETRY_MODE, retry_config
from ..errors import AwsPermissionError, DeployError

ENDPOINT_URL_ENV = defaults.AWS_ENDPOINT_URL_ENV
log = logging.getLogger(__name__)

# Error codes AWS services use for "you may not do this" (SageMaker and Application Auto
# Scaling say AccessDeniedException, CloudWatch AccessDenied, EC2-style APIs
# UnauthorizedOperation) and for "these credentials are not valid".
PERMISSION_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})
BAD_CREDENTIAL_CODES = frozenset({"UnrecognizedClientException", "InvalidClientTokenId",
                                  "ExpiredToken", "ExpiredTokenException", "InvalidSignatureException"})
# IAM prefixes that differ from the signing name botocore knows the service by.
_IAM_PREFIX = {"monitoring": "cloudwatch"}
_ACTION_IN_MESSAGE = re.compile(r"perform:\s*([A-Za-z0-9-]+:[A-Za-z0-9*]+)")
# Keys whose values must never be shown (dry runs, results): tokens and secrets users may
# put into a container environment.
SECRET_KEY_RE = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|ACCESS_KEY|API_KEY|PRIVATE)", re.I)
REDACTED = "***redacted***"


@dataclass
class ApiRequest:
    """One AWS request exactly as boto3 will send it: what a dry run shows and deploy makes."""

    service: str
    operation: str
    params: dict[str, Any]
    purpose: str = ""

    def to_dict(self, redact_secrets: bool = True) -> dict[str, Any]:
        params = redact(self.params) if redact_secrets else copy.deepcopy(self.params)
        return {"service": self.service, "operation": self.operation, "params": params,
                "purpose": self.purpose}

    def __str__(self) -> str:
        return f"{self.service}.{self.operation}" + (f" ({self.purpose})" if self.purpose else "")


def redact(obj: Any) -> Any:
    """A deep copy of `obj` with the values of secret-looking keys replaced, so that a dry run
    or a result can be shown or saved without leaking a token a user put in an environment."""
    if isinstance(obj, Mapping):
        return {k: (REDACTED if isinstance(k, str) and SECRET_KEY_RE.search(k) and isinstance(v, str)
                    else redact(v)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact(v) for v in obj]
    return obj


def iam_action(client: BaseClient, operation: str) -> str:
    """The IAM action an operation needs, e.g. ("sagemaker", CreateEndpoint) -> sagemaker:CreateEndpoint."""
    signing = client.meta.service_model.signing_name
    return f"{_IAM_PREFIX.get(signing, signing)}:{operation}"


def translate_error(err: Exception, client: BaseClient, operation: str) -> Exception:
    """The user-facing error for a failed call; other errors come back unchanged."""
    if isinstance(err, NoCredentialsError):
        return AwsPermissionError(
            f"no AWS credentials were found for {iam_action(client, operation)}: configure them "
            "(aws configure, aws sso login, AWS_PROFILE, or an instance role) and try again")
    if not isinstance(err, ClientError):
        return err
    code = err.response.get("Error", {}).get("Code", "")
    message = err.response.get("Error", {}).get("Message", "")
    if code in PERMISSION_CODES:
        named = _ACTION_IN_MESSAGE.search(message)
        action = named.group(1) if named else iam_action(client, operation)
        return AwsPermissionError(
            f"AWS refused {action} ({code}): grant the IAM action {action!r} to the role or user "
            f"you run as, then try again. AWS said: {message}")
    if code in BAD_CREDENTIAL_CODES:
        return AwsPermissionError(
            f"AWS did not accept the credentials for {iam_action(client, operation)} ({code}): "
            "refresh them (aws sso login, new keys, or the right AWS_PROFILE). "
            f"AWS said: {message}")
    return err


def error_code(err: BaseException) -> str:
    return err.response.get("Error", {}).get("Code", "") if isinstance(err, ClientError) else ""


def is_not_found(err: BaseException) -> bool:
    """SageMaker reports a missing resource as ValidationException 'Could not find ...'."""
    code = error_code(err)
    if code in ("ResourceNotFound", "ResourceNotFoundException", "ObjectNotFoundException"):
        return True
    msg = err.response.get("Error", {}).get("Message", "").lower() if isinstance(err, ClientError) else ""
    return code == "ValidationException" and ("could not find" in msg or "does not exist" in msg)


class AwsClients:
    """One boto3 client per service, sharing a session, a region, an endpoint and retries.

    Pass a `boto3.Session` (or nothing, for the default credential chain). Tests pass
    `endpoint_url` (or set JUPYTER_OPTIMIZE_AWS_ENDPOINT_URL) to reach an emulator, or build
    one with `AwsClients.from_clients` around stubbed clients.
    """

    def __init__(self, session: boto3.Session | None = None, region: str | None = None,
                 endpoint_url: str | None = None, max_attempts: int = DEFAULT_MAX_ATTEMPTS,
                 retry_mode: str = DEFAULT_RETRY_MODE, max_pool_connections: int = DEFAULT_POOL) -> None:
        self.session = session or boto3.Session()
        self.region = region or self.session.region_name or region_from_env()
        self.endpoint_url = endpoint_url or os.environ.get(ENDPOINT_URL_ENV) or None
        self.config = retry_config(max_attempts, retry_mode, max_pool_connections)
        self._clients: dict[str, BaseClient] = {}

    @classmethod
    def from_clients(cls, clients: Mapping[str, BaseClient], region: str | None = None) -> "AwsClients":
        """Wrap ready-made clients (e.g. under botocore's Stubber); other services are created."""
        first = next(iter(clients.values()), None)
        obj = cls(region=region or (first.meta.region_name if first is not None else None))
        obj._clients.update(clients)
        return obj

    def get(self, service: str) -> BaseClient:
        if service not in self._clients:
            if not self.region:
                raise DeployError("no AWS region is set: pass region=..., or set AWS_REGION "
                                  "(or a region in your AWS profile)")
            try:
                self._clients[service] = self.session.client(
                    service, region_name=self.region, endpoint_url=self.endpoint_url, config=self.config)
            except NoRegionError:  # pragma: no cover - region is checked above
                raise DeployError("no AWS region is set: pass region=... or set AWS_REGION") from None
        return self._clients[service]

    def call(self, service: str, operation: str, **params: Any) -> dict[str, Any]:
        """Make one request by its API name (CreateEndpoint); map permission errors."""
        client = self.get(service)
        try:
            response = getattr(client, xform_name(operation))(**params)
        except (ClientError, NoCredentialsError) as err:
            log.debug("%s.%s failed: %s", service, operation, err)
            mapped = translate_error(err, client, operation)
            if mapped is err:
                raise
            raise mapped from err
        retried = response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
        if retried:
            log.info("%s.%s succeeded after %d retries (throttled or a 5xx)", service, operation, retried)
        else:
            log.debug("%s.%s", service, operation)
        return response

    def pages(self, service: str, operation: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every page of a listing by its API name (ListInferenceComponents), through boto3's
        paginator (it follows NextToken); permission errors are mapped as in `call`."""
        client = self.get(service)
        try:
            yield from client.get_paginator(xform_name(operation)).paginate(**params)
        except (ClientError, NoCredentialsError) as err:
            mapped = translate_error(err, client, operation)
            if mapped is err:
                raise
            raise mapped from err

    def send(self, request: ApiRequest) -> dict[str, Any]:
        return self.call(request.service, request.operation, **request.params)


def as_clients(session: "boto3.Session | AwsClients | None" = None, region: str | None = None,
               endpoint_url: str | None = None) -> AwsClients:
    """Accept what users have (a boto3 Session, nothing) or what tests build (AwsClients)."""
    if isinstance(session, AwsClients):
        return session
    return AwsClients(session=session, region=region, endpoint_url=endpoint_url)


def region_from_env() -> str | None:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


@dataclass
class RequestRecorder:
    """Records the requests boto3 clients are asked to make, optionally without sending them.

    Attached to a client it sees each call's parameters as the caller gave them (before
    serialization and signing, so no credentials are ever in what it records). With
    `intercept=True` each call returns `responses.get(operation, {})` and nothing reaches AWS:
    that is how a --dry-run of code that needs answers (e.g. a policy ARN) can still run.
    """

    intercept: bool = False
    responses: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[ApiRequest] = field(default_factory=list)

    def attach(self, client: BaseClient) -> BaseClient:
        client.meta.events.register("before-parameter-build", self._record)
        if self.intercept:
            client.meta.events.register("before-call", self._short_circuit)
        return client

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        service = model.service_model.service_name
        self.requests.append(ApiRequest(service, model.name, copy.deepcopy(params)))

    def _short_circuit(self, model: Any, **_: Any) -> tuple[Any, dict[str, Any]]:
        response = copy.deepcopy(self.responses.get(model.name, {}))
        response.setdefault("ResponseMetadata", {"HTTPStatusCode": 200, "RetryAttempts": 0})
        return _FakeHttpResponse(), response

    def to_dict(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self.requests]


class _FakeHttpResponse:
    """What botocore expects beside a short-circuited parsed response."""

    status_code = 200
    headers: dict[str, str] = {}
    content = b""
    raw = None
