"""Benchmark a SageMaker endpoint with the same streaming client as a local one.

Requests go to `InvokeEndpointWithResponseStream` over HTTPS, signed with SigV4 from the
boto3 session's credentials (signed before the request's clock starts, and never stored:
results keep only the endpoint's name and region). The response is AWS's binary event
stream; each PayloadPart carries bytes of the container's own Server-Sent Events, which
are split into lines and timed exactly like a local vLLM stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, AsyncIterator

from ..errors import BenchError
from .client import Endpoint


@dataclass
class SageMakerTransport:
    endpoint_name: str
    region: str
    credentials: Any  # botocore Credentials (refreshable); never serialized
    endpoint_url: str | None = None
    inference_component: str | None = None

    @property
    def url(self) -> str:
        base = self.endpoint_url or f"https://runtime.sagemaker.{self.region}.amazonaws.com"
        return f"{base.rstrip('/')}/endpoints/{self.endpoint_name}/invocations-response-stream"

    def prepare(self, payload: bytes) -> tuple[str, dict[str, str]]:
        """URL and SigV4-signed headers for one request body."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        headers = {"Content-Type": "application/json", "Accept": "application/vnd.amazon.eventstream"}
        if self.inference_component:
            headers["X-Amzn-SageMaker-Inference-Component"] = self.inference_component
        req = AWSRequest(method="POST", url=self.url, data=payload, headers=headers)
        SigV4Auth(self.credentials.get_frozen_credentials(), "sagemaker", self.region).add_auth(req)
        return self.url, dict(req.headers.items())

    async def lines(self, resp) -> AsyncIterator[bytes]:
        """Lines of the container's SSE text, taken out of the binary event stream."""
        from botocore.eventstream import EventStreamBuffer

        frames, pending = EventStreamBuffer(), b""
        async for chunk in resp.content.iter_any():
            frames.add_data(chunk)
            for msg in frames:
                kind = msg.headers.get(":message-type")
                if kind != "event":
                    raise RuntimeError(f"endpoint stream {msg.headers.get(':exception-type', kind)}: "
                                       f"{msg.payload[:300].decode('utf-8', 'replace')}")
                if msg.headers.get(":event-type") == "PayloadPart":
                    pending += msg.payload
                    *done, pending = pending.split(b"\n")
                    for line in done:
                        yield line
        if pending:
            yield pending

    def describe(self) -> dict:
        return {"transport": "sagemaker", "endpoint_name": self.endpoint_name, "region": self.region,
                "inference_component": self.inference_component}


def sagemaker_endpoint(endpoint_name: str, region: str | None = None, session: Any = None,
                       endpoint_url: str | None = None, inference_component: str | None = None,
                       model: str = "sagemaker") -> Endpoint:
    """An Endpoint whose requests are signed and sent to a SageMaker endpoint."""
    import boto3

    session = session or boto3.Session()
    region = region or session.region_name
    if not region:
        raise BenchError("no AWS region: pass --region (or set AWS_REGION) to benchmark a SageMaker endpoint")
    creds = session.get_credentials()
    if creds is None:
        raise BenchError("no AWS credentials found; configure them (aws configure, a role, or env vars) "
                         "to benchmark a SageMaker endpoint")
    transport = SageMakerTransport(endpoint_name, region, creds, endpoint_url, inference_component)
    # LMI's vLLM speaks the OpenAI chat schema through /invocations; ignore_eos is vLLM's too
    return Endpoint(base_url=transport.url, model=model, api="chat", transport=transport)

