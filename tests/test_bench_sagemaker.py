"""Benchmarking a SageMaker endpoint: SigV4-signed requests, AWS event-stream responses,
the same metrics as a local stream, and no credentials in the saved result."""

import json

from aws_fixtures import FAKE_SECRET, event_stream_message
from jupyter_ext.bench import run_benchmark
from jupyter_ext.bench.sagemaker_stream import sagemaker_endpoint

pytest_plugins = ["aws_fixtures"]


def _sse(i: int) -> bytes:
    return b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": f" w{i}"}}]}).encode() + b"\n\n"


def test_signed_event_stream_benchmark(scripted_http, tmp_path):
    usage = b"data: " + json.dumps({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}}).encode()
    text = _sse(0) + _sse(1) + _sse(2) + usage + b"\n\ndata: [DONE]\n\n"
    # PayloadParts split lines (and a JSON object) at arbitrary byte offsets, as SageMaker may
    body = b"".join(event_stream_message("PayloadPart", text[i:i + 37]) for i in range(0, len(text), 37))
    for _ in range(4):  # warm-up off: 2 requests per level x 2 levels
        scripted_http.script.append((200, {"Content-Type": "application/vnd.amazon.eventstream"}, body))
    ep = sagemaker_endpoint("my-ep", region="us-east-1", endpoint_url=scripted_http.url)
    r = run_benchmark(endpoint=ep, concurrency=[1, 2], num_prompts=2, max_tokens=3, warmup=0, input_scale=0.05,
                      results_dir=tmp_path, progress=False)
    assert r.status == "complete"
    for lv in r.levels:
        assert (lv.metrics.completed, lv.metrics.failed, lv.metrics.output_tokens) == (2, 0, 6)
        assert all(s.text == " w0 w1 w2" for s in lv.samples)
    req = scripted_http.requests[0]
    assert req["path"] == "/endpoints/my-ep/invocations-response-stream"
    assert req["headers"]["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=")
    assert "/us-east-1/sagemaker/aws4_request" in req["headers"]["Authorization"]
    assert json.loads(req["body"])["stream"] is True
    saved = open(r.path).read()
    assert FAKE_SECRET not in saved and '"transport": "sagemaker"' in saved


def test_a_stream_error_is_a_failed_request(scripted_http, tmp_path):
    err = event_stream_message("ModelStreamError", b'{"Message": "boom"}').replace(b"event", b"exception", 1)
    scripted_http.script.append((200, {"Content-Type": "application/vnd.amazon.eventstream"}, err))
    scripted_http.script.append((403, {"Content-Type": "application/json"}, b'{"message": "denied"}'))
    ep = sagemaker_endpoint("my-ep", region="us-east-1", endpoint_url=scripted_http.url)
    r = run_benchmark(endpoint=ep, concurrency=[1], num_prompts=2, max_tokens=3, warmup=0, input_scale=0.05,
                      results_dir=tmp_path, progress=False)
    m = r.levels[0].metrics
    assert (m.completed, m.failed) == (0, 2)
    assert any("HTTP 403" in (s.error or "") for s in r.levels[0].samples)
