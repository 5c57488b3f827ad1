"""Benchmarking a SageMaker endpoint: the runtime URL botocore resolves (partition hosts and
configured overrides), SigV4-signed requests, AWS event-stream responses, the same metrics as
a local stream, and no credentials in the saved result."""

import json

import pytest

from aws_fixtures import FAKE_SECRET
from eventstream_frames import exception_frame, payload_part, stream_reply
from jupyter_ext.bench import run_benchmark
from jupyter_ext.bench.sagemaker_stream import sagemaker_endpoint

pytest_plugins = ["aws_fixtures"]
OVERRIDE_VARS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
                 "JUPYTER_OPTIMIZE_AWS_ENDPOINT_URL")


@pytest.fixture
def no_endpoint_override(fake_aws_env, monkeypatch):
    for var in OVERRIDE_VARS:
        monkeypatch.delenv(var, raising=False)


def _sse(i: int) -> bytes:
    return b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": f" w{i}"}}]}).encode() + b"\n\n"


def _reply() -> tuple[int, dict[str, str], bytes]:
    usage = b"data: " + json.dumps({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}}).encode()
    text = _sse(0) + _sse(1) + _sse(2) + usage + b"\n\ndata: [DONE]\n\n"
    # PayloadParts split lines (and a JSON object) at arbitrary byte offsets, as SageMaker may
    return stream_reply(*(payload_part(text[i:i + 37]) for i in range(0, len(text), 37)))


def _bench(ep, tmp_path, concurrency=(1,), num_prompts=2):
    return run_benchmark(endpoint=ep, concurrency=list(concurrency), num_prompts=num_prompts, max_tokens=3,
                         warmup=0, input_scale=0.05, results_dir=tmp_path, progress=False)


def test_signed_event_stream_benchmark(scripted_http, tmp_path):
    scripted_http.script += [_reply()] * 4  # warm-up off: 2 requests per level x 2 levels
    ep = sagemaker_endpoint("my-ep", region="us-east-1", endpoint_url=scripted_http.url)
    r = _bench(ep, tmp_path, concurrency=[1, 2])
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


@pytest.mark.parametrize("region, host", [
    ("us-east-1", "https://runtime.sagemaker.us-east-1.amazonaws.com"),
    ("cn-north-1", "https://runtime.sagemaker.cn-north-1.amazonaws.com.cn"),
    ("cn-northwest-1", "https://runtime.sagemaker.cn-northwest-1.amazonaws.com.cn"),
])
def test_the_runtime_host_is_the_partitions(no_endpoint_override, region, host):
    ep = sagemaker_endpoint("my-ep", region=region)
    assert ep.transport.url == f"{host}/endpoints/my-ep/invocations-response-stream"
    _, headers = ep.prepare(b"{}")
    assert f"/{region}/sagemaker/aws4_request" in headers["Authorization"]


@pytest.mark.parametrize("where", ["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "AWS_ENDPOINT_URL", "config file",
                                   "JUPYTER_OPTIMIZE_AWS_ENDPOINT_URL"])
def test_a_configured_endpoint_url_carries_the_benchmark(no_endpoint_override, scripted_http, tmp_path,
                                                         monkeypatch, where):
    """The override a boto3 client would honour is the one the benchmark's requests go to."""
    if where == "config file":
        config = tmp_path / "aws-config"
        config.write_text(f"[default]\nservices = local\n\n[services local]\nsagemaker_runtime =\n"
                          f"  endpoint_url = {scripted_http.url}\n")
        monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    else:
        monkeypatch.setenv(where, scripted_http.url)
    ep = sagemaker_endpoint("my-ep", region="us-east-1")
    assert ep.transport.url.startswith(scripted_http.url + "/endpoints/my-ep/")
    scripted_http.script += [_reply()] * 2
    r = _bench(ep, tmp_path / "results")
    assert (r.levels[0].metrics.completed, r.levels[0].metrics.failed) == (2, 0)
    assert len(scripted_http.requests) == 2


def test_the_endpoint_url_argument_wins_over_the_environment(no_endpoint_override, scripted_http, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "http://127.0.0.1:9")
    ep = sagemaker_endpoint("my-ep", region="us-east-1", endpoint_url=scripted_http.url)
    assert ep.transport.url == f"{scripted_http.url}/endpoints/my-ep/invocations-response-stream"


def test_a_stream_error_is_a_failed_request(scripted_http, tmp_path):
    first = payload_part(_sse(0))
    scripted_http.script.append(_reply())  # once one request worked, later failures are counted, not fatal
    scripted_http.script.append(stream_reply(first, exception_frame("ModelStreamError", "boom", "424")))
    scripted_http.script.append((403, {"Content-Type": "application/json"}, b'{"message": "denied"}'))
    ep = sagemaker_endpoint("my-ep", region="us-east-1", endpoint_url=scripted_http.url)
    r = _bench(ep, tmp_path, num_prompts=3)
    m = r.levels[0].metrics
    assert (m.completed, m.failed) == (1, 2)
    assert r.levels[0].failed and r.status == "failed"  # 2 of 3 failed: over the default share
    errors = sorted(s.error for s in r.levels[0].samples if not s.ok)
    assert "HTTP 403: denied" in errors[1]
    assert errors[0] == "BenchError: the endpoint's stream failed (ModelStreamError, ErrorCode 424): boom"


def test_a_refused_first_request_fails_the_run_with_the_servers_message(scripted_http, tmp_path):
    from jupyter_ext.errors import EndpointRejectedError

    scripted_http.script.append((403, {"Content-Type": "application/json"}, b'{"message": "denied"}'))
    ep = sagemaker_endpoint("my-ep", region="us-east-1", endpoint_url=scripted_http.url)
    with pytest.raises(EndpointRejectedError, match="invocations-response-stream rejected .*HTTP 403: denied"):
        _bench(ep, tmp_path)
    assert not list(tmp_path.iterdir())


# -- bench --sessions: each multi-turn conversation in a sticky session ---------------------
def _session_reply(**headers):
    import io

    from botocore.response import StreamingBody

    return {"Body": StreamingBody(io.BytesIO(b""), 0), "ContentType": "application/json", **headers}


def _session_params(body, session_id):
    return {"EndpointName": "my-ep", "Body": json.dumps(body), "ContentType": "application/json",
            "Accept": "application/json", "SessionId": session_id}


def _sessions_bench(ep, tmp_path, **extra):
    return run_benchmark(endpoint=ep, sessions=True, concurrency=[1], num_prompts=4, max_tokens=3, warmup=0,
                         input_scale=0.05, results_dir=tmp_path, progress=False, workload_shape="multi-turn",
                         turns=2, **extra)


def test_each_conversation_opens_reuses_and_closes_a_session(scripted_http, tmp_path):
    """Stubber checks the open and close InvokeEndpoints against the sagemaker-runtime model;
    the turns go over the signed stream with the session's id in the model's SessionId header."""
    from botocore.stub import Stubber

    from jupyter_ext.bench.sagemaker_sessions import DEFAULT_CLOSE_BODY, DEFAULT_OPEN_BODY
    from jupyter_ext.bench.result import BenchResult

    ep = sagemaker_endpoint("my-ep", region="us-east-1", endpoint_url=scripted_http.url, sessions=True)
    stub = Stubber(ep.sessions.client)
    for sid in ("s-1", "s-2"):  # concurrency 1: the two conversations one after the other
        stub.add_response("invoke_endpoint", _session_reply(NewSessionId=f"{sid}; Expires=2026-12-03T18:00:00Z"),
                          _session_params(DEFAULT_OPEN_BODY, "NEW_SESSION"))
        stub.add_response("invoke_endpoint", _session_reply(ClosedSessionId=sid), _session_params(DEFAULT_CLOSE_BODY, sid))
    scripted_http.script += [_reply()] * 4  # 2 conversations x 2 turns
    with stub:
        r = _sessions_bench(ep, tmp_path)
    stub.assert_no_pending_responses()
    lv = r.levels[0]
    assert (lv.metrics.completed, lv.metrics.failed) == (4, 0)
    assert lv.sessions == {"used": True, "opened": 2, "closed": 2, "open_failed": 0, "close_failed": 0}
    sent = [req["headers"].get("X-Amzn-SageMaker-Session-Id") for req in scripted_http.requests]
    assert sent == ["s-1", "s-1", "s-2", "s-2"]
    turns = [len(json.loads(req["body"])["messages"]) for req in scripted_http.requests]
    assert turns == [2, 4, 2, 4]  # each session carries one conversation: its first turn, then the follow-up
    again = BenchResult.load(r.path)
    assert again.levels[0].sessions == lv.sessions and again.endpoint["sessions"] is True
    assert FAKE_SECRET not in open(r.path).read()


def test_session_counts_add_up_over_repeats_and_failures_are_noted():
    from jupyter_ext.bench.metrics import compute_metrics
    from jupyter_ext.bench.integrity import merge_repeats
    from jupyter_ext.bench.result import LevelResult
    from jupyter_ext.bench.runner import session_warning
    from jupyter_ext.bench.sagemaker_sessions import level_sessions

    zero = {"opened": 0, "closed": 0, "open_failed": 0, "close_failed": 0}
    one = level_sessions(zero, {"opened": 2, "closed": 1, "open_failed": 0, "close_failed": 1})
    two = level_sessions(zero, {"opened": 3, "closed": 3, "open_failed": 1, "close_failed": 0})
    levels = [LevelResult(concurrency=1, metrics=compute_metrics([], 1.0), sessions=s) for s in (one, two)]
    merged = merge_repeats(levels)
    assert merged.sessions == {"used": True, "opened": 5, "closed": 4, "open_failed": 1, "close_failed": 1}
    assert "1 session(s) failed to open and 1 to close (of 5 opened)" in session_warning(merged)
    assert session_warning(LevelResult(concurrency=1, metrics=compute_metrics([], 1.0),
                                       sessions=level_sessions(zero, {**zero, "opened": 1, "closed": 1}))) is None


def test_a_container_that_opens_no_session_fails_the_run_by_name(scripted_http, tmp_path):
    from botocore.stub import Stubber

    from jupyter_ext.bench.sagemaker_sessions import DEFAULT_OPEN_BODY
    from jupyter_ext.errors import SessionError

    ep = sagemaker_endpoint("my-ep", region="us-east-1", endpoint_url=scripted_http.url, sessions=True)
    stub = Stubber(ep.sessions.client)
    stub.add_response("invoke_endpoint", _session_reply(), _session_params(DEFAULT_OPEN_BODY, "NEW_SESSION"))
    with stub, pytest.raises(SessionError, match="SAGEMAKER_ENABLE_STATEFUL_SESSIONS"):
        _sessions_bench(ep, tmp_path)
    assert scripted_http.requests == []  # no turn was sent outside a session
    assert ep.sessions.counts()["open_failed"] == 1


@pytest.mark.parametrize("options, words", [
    ({"sagemaker_endpoint": "ep", "region": "us-east-1"}, "--workload-shape multi-turn"),
    ({"sagemaker_endpoint": "ep", "region": "us-east-1", "workload_shape": "multi-turn", "turns": 1},
     "--workload-shape multi-turn"),
    ({"url": "http://127.0.0.1:9", "workload_shape": "multi-turn"}, "--sagemaker-endpoint"),
    ({"workload_shape": "multi-turn"}, "local server"),
])
def test_sessions_where_they_mean_nothing_are_refused_before_anything_runs(options, words):
    from jupyter_ext.bench import BenchSpec
    from jupyter_ext.errors import BenchError, SessionError

    with pytest.raises(SessionError, match=words) as e:
        BenchSpec.of("baseline" if "url" not in options and "sagemaker_endpoint" not in options else None,
                     sessions=True, **options)
    assert isinstance(e.value, BenchError)


def test_both_faces_parse_sessions_into_the_target():
    from jupyter_ext.bench import BenchSpec
    from jupyter_ext.verbs.table import bench_options, build_parser

    line = ["bench", "--sagemaker-endpoint", "ep", "--region", "us-east-1", "--sessions",
            "--workload-shape", "multi-turn", "--turns", "3"]
    for face in ("cli", "magic"):
        spec = BenchSpec.of(None, **bench_options(build_parser(face).parse_args(line), face))
        assert spec.target.sessions and spec.workload.turns_per_user == 3
        assert not BenchSpec.of(None, **bench_options(build_parser(face).parse_args(line[:5]), face)).target.sessions
