"""Benchmark a SageMaker endpoint with the same streaming client as a local one.

Requests go to `InvokeEndpointWithResponseStream` over HTTPS, signed with SigV4 from the
boto3 session's credentials (signed before the request's clock starts, and never stored:
results keep only the endpoint's name and region). The URL is the one botocore resolves for
a `sagemaker-runtime` client: the partition's host (amazonaws.com.cn in the China regions),
or an endpoint URL the user configured (the argument, AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME,
AWS_ENDPOINT_URL, or `endpoint_url` in the AWS config file). The response is AWS's binary
event stream; each PayloadPart carries bytes of the container's own Server-Sent Events,
which the client reads and times exactly like a local vLLM stream (bench.sse).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, AsyncIterator

from .. import defaults
from ..errors import BenchError
from .client import Endpoint

SERVICE = "sagemaker-runtime"


@dataclass
class SageMakerTransport:
    """Signs requests for one endpoint and takes the SSE bytes out of its event stream.

    `endpoint_url` is the runtime's base URL as botocore resolved it (see the module
    docstring); `signing_name` is the service's SigV4 name ("sagemaker")."""

    endpoint_name: str
    region: str
    credentials: Any  # botocore Credentials (refreshable); never serialized
    endpoint_url: str
    inference_component: str | None = None
    signing_name: str = "sagemaker"
    session_header: str = "X-Amzn-SageMaker-Session-Id"  # read from botocore's model in sagemaker_endpoint

    @property
    def url(self) -> str:
        return f"{self.endpoint_url.rstrip('/')}/endpoints/{self.endpoint_name}/invocations-response-stream"

    def prepare(self, payload: bytes, session_id: str | None = None) -> tuple[str, dict[str, str]]:
        """URL and SigV4-signed headers for one request body (in a sticky session, with its id)."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        headers = {"Content-Type": "application/json", "Accept": "application/vnd.amazon.eventstream"}
        if self.inference_component:
            headers["X-Amzn-SageMaker-Inference-Component"] = self.inference_component
        if session_id:
            headers[self.session_header] = session_id
        req = AWSRequest(method="POST", url=self.url, data=payload, headers=headers)
        SigV4Auth(self.credentials.get_frozen_credentials(), self.signing_name, self.region).add_auth(req)
        return self.url, dict(req.headers.items())

    async def chunks(self, resp) -> AsyncIterator[bytes]:
        """The container's SSE bytes, PayloadPart by PayloadPart, out of the binary event
        stream; an exception event (ModelStreamError, InternalStreamFailure) raises."""
        from botocore.eventstream import EventStreamBuffer

        frames = EventStreamBuffer()
        async for data in resp.content.iter_any():
            frames.add_data(data)
            for msg in frames:
                kind = msg.headers.get(":message-type")
                if kind != "event":
                    raise BenchError(_stream_failure(msg.headers, msg.payload))
                if msg.headers.get(":event-type") == "PayloadPart":
                    yield msg.payload

    def describe(self) -> dict:
        return {"transport": "sagemaker", "endpoint_name": self.endpoint_name, "region": self.region,
                "inference_component": self.inference_component}


def _stream_failure(headers: dict[str, Any], payload: bytes) -> str:
    """What an exception message of the event stream says: its type (ModelStreamError,
    InternalStreamFailure) and its JSON payload's Message and ErrorCode."""
    kind = headers.get(":exception-type") or headers.get(":error-code") or headers.get(":message-type")
    try:
        body = json.loads(payload)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {"Message": headers.get(":error-message") or payload[:300].decode("utf-8", "replace")}
    code = f", ErrorCode {body['ErrorCode']}" if body.get("ErrorCode") else ""
    return f"the endpoint's stream failed ({kind}{code}): {body.get('Message') or body.get('message')}"


def sagemaker_endpoint(endpoint_name: str, region: str | None = None, session: Any = None,
                       endpoint_url: str | None = None, inference_component: str | None = None,
                       model: str = "sagemaker", sessions: bool = False) -> Endpoint:
    """An Endpoint whose requests are signed and sent to a SageMaker endpoint.

    `endpoint_url` (else $JUPYTER_OPTIMIZE_AWS_ENDPOINT_URL, as for the deploy clients)
    overrides the runtime's URL, as it does for a boto3 client; without either, botocore's
    resolution applies, configured overrides included. With `sessions`, each multi-turn
    conversation runs in a sticky session of its own (`Endpoint.sessions`, opened and closed
    with InvokeEndpoint by the same runtime client; bench.sagemaker_sessions)."""
    import boto3

    from ..base.aws_config import retry_config
    from .sagemaker_sessions import EndpointSessions

    session = session or boto3.Session()
    region = region or session.region_name
    if not region:
        raise BenchError("no AWS region: pass --region (or set AWS_REGION) to benchmark a SageMaker endpoint")
    creds = session.get_credentials()
    if creds is None:
        raise BenchError("no AWS credentials found; configure them (aws configure, a role, or env vars) "
                         "to benchmark a SageMaker endpoint")
    endpoint_url = endpoint_url or os.environ.get(defaults.AWS_ENDPOINT_URL_ENV) or None
    client = session.client(SERVICE, region_name=region, endpoint_url=endpoint_url, config=retry_config())
    meta = client.meta
    stream_op = meta.service_model.operation_model("InvokeEndpointWithResponseStream")
    transport = SageMakerTransport(endpoint_name, meta.region_name, creds, meta.endpoint_url,
                                   inference_component, meta.service_model.signing_name,
                                   stream_op.input_shape.members["SessionId"].serialization["name"])
    # LMI's vLLM speaks the OpenAI chat schema through /invocations; ignore_eos is vLLM's too
    return Endpoint(base_url=transport.url, model=model, api="chat", transport=transport,
                    sessions=EndpointSessions(client, endpoint_name, inference_component) if sessions else None)
