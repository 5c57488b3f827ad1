"""Fixtures for the AWS tests: fake credentials, a moto server, stubbed clients, a scripted
HTTP server (for what neither moto nor Stubber can show: retries on the wire, event streams).

Load with `pytest_plugins = ["aws_fixtures"]` in a test module (so one moto server serves the
whole session) and mark the module `pytest.mark.usefixtures("fake_aws_env")`. Nothing here
reaches AWS: every client points at 127.0.0.1 or is stubbed, and the credentials are fakes.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import urllib.request
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest
from botocore.stub import Stubber

from jupyter_ext.deploy.aws import AwsClients

REGION = "us-east-1"
FAKE_KEY_ID = "AKIAJOTESTFAKEKEY000"
FAKE_SECRET = "jo-test-secret-do-not-print-0123456789abcd"
ROLE_ARN = "arn:aws:iam::123456789012:role/SageMakerExecution"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def fake_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials only; no profile or config file of the machine is read."""
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "JUPYTER_OPTIMIZE_AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@contextmanager
def running_moto() -> Iterator[str]:
    """moto's own ThreadedMotoServer on 127.0.0.1 (on a free port the OS picks); its URL.
    It answers on a real socket, so subprocesses (the CLI) reach it too; stopped on exit."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()  # returns once the socket is bound and listening
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """One moto server for the whole session."""
    with running_moto() as url:
        yield url


@pytest.fixture
def moto_url(moto_server: str, fake_aws_env: None) -> str:
    """The moto server, emptied before each test."""
    urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")).read()
    return moto_server


@pytest.fixture
def moto_clients(moto_url: str) -> AwsClients:
    """Our clients, pointed at moto."""
    return AwsClients(region=REGION, endpoint_url=moto_url)


@pytest.fixture
def moto_boto(moto_url: str) -> Any:
    """Plain boto3 clients on moto, to check what our code created independently of it."""
    return lambda service: boto3.client(service, region_name=REGION, endpoint_url=moto_url)


def queue_moto_invoke_results(moto_url: str, bodies: list[str]) -> None:
    """Make moto's InvokeEndpoint answer with these bodies (its default is a canned 'body')."""
    data = {"account_id": "123456789012", "region": REGION,
            "results": [{"Body": b, "ContentType": "application/json"} for b in bodies]}
    req = urllib.request.Request(f"{moto_url}/moto-api/static/sagemaker/endpoint-results",
                                 data=json.dumps(data).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req).read()


@pytest.fixture
def boto_stub(fake_aws_env: None) -> Iterator[Any]:
    """stubbed(service) -> (client, Stubber): requests are checked against the real service model."""
    stubbers: list[Stubber] = []

    def make(service: str) -> tuple[Any, Stubber]:
        client = boto3.client(service, region_name=REGION)
        stub = Stubber(client)
        stub.activate()
        stubbers.append(stub)
        return client, stub

    yield make
    for s in stubbers:
        s.deactivate()


# -- a scripted HTTP server -------------------------------------------------------------
class ScriptedServer:
    """Answers each request with the next scripted (status, headers, body); records requests."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, str], bytes]] = []
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status, headers, payload = outer.script.pop(0) if outer.script else (500, {}, b"{}")
                self.send_response(status)
                for k, v in {**headers, "Content-Length": str(len(payload))}.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def scripted_http(fake_aws_env: None) -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    yield server
    server.close()


def _header(name: str, value: str) -> bytes:
    n, v = name.encode(), value.encode()
    return struct.pack("!B", len(n)) + n + struct.pack("!BH", 7, len(v)) + v  # 7 = string




__all__ = ["REGION", "FAKE_KEY_ID", "FAKE_SECRET", "ROLE_ARN", "fake_aws_env", "moto_server", "moto_url",
           "moto_clients", "moto_boto", "boto_stub", "scripted_http", "ScriptedServer",
           "queue_moto_invoke_results", "free_port", "running_moto"]
