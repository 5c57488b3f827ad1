"""A benchmark that cannot work says why at once: nothing listening, a wrong model, an HTTP
4xx, a reply that is not a stream. A level where too many requests failed is marked failed
in the table and the JSON (its most common error and count), and the exit code says so.
Stand-in servers: the schedule server, or small aiohttp apps written here."""

from __future__ import annotations

import json

import pytest

from jupyter_ext.bench import BenchResult, Endpoint, SweepSpec, build_workload
from jupyter_ext.bench.sweep import run_sweep
from jupyter_ext.engine import free_port
from jupyter_ext.errors import EndpointRejectedError, EndpointUnreachableError, NotStreamingError
from jupyter_ext.faces.cli import main
from standin import running_app

SMALL = ["--concurrency", "1,2", "--prompts", "4", "--max-tokens", "4", "--input-scale", "0.1", "--no-chart"]
pytestmark = pytest.mark.timeout(120)


def cli(capsys, tmp_path, *args):
    code = main(["bench", *args, "--results-dir", str(tmp_path / "res"), *SMALL])
    out = capsys.readouterr()
    return code, out.out, out.err


def written(tmp_path):
    res = tmp_path / "res"
    return sorted(p.name for p in res.iterdir()) if res.exists() else []


def app_answering(status: int, body: dict, counter: list, models: bool = False):
    """An app whose completion routes answer `body` with `status` (a JSON body, not a stream)
    and count the requests; /v1/models is absent unless `models`."""
    from aiohttp import web

    async def completions(request):
        counter.append(await request.json())
        return web.json_response(body, status=status)

    async def model_list(_request):
        return web.json_response({"data": [{"id": "m"}]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    app.router.add_post("/v1/completions", completions)
    if models:
        app.router.add_get("/v1/models", model_list)
    return app


def test_a_dead_port_fails_at_once_with_the_address(capsys, tmp_path):
    port = free_port()
    code, out, err = cli(capsys, tmp_path, "--url", f"http://127.0.0.1:{port}")
    assert code == 2
    assert f"cannot connect to 127.0.0.1:{port} (connection refused)" in err and "is the server running" in err
    assert written(tmp_path) == [] and "failed" not in out  # no table of failed rows, no result file


def test_a_dead_port_stops_the_sweep_at_its_first_requests(tmp_path):
    """The sweep's own guard (what a --model given without /v1/models relies on)."""
    port = free_port()
    seen = []
    result = BenchResult(name="dead", recipe=None, endpoint={}, workload={})
    spec = SweepSpec(concurrency=[2, 4], num_prompts=50, warmup=0)
    with pytest.raises(EndpointUnreachableError, match=f"127.0.0.1:{port} \\(connection refused\\)"):
        run_sweep(Endpoint(f"http://127.0.0.1:{port}", "m"), build_workload(50, 4, 0.1), spec, result,
                  save_path=str(tmp_path / "r.json"), progress=False, on_request=seen.append)
    assert 1 <= len(seen) <= 2  # the first requests in flight, not the 50 + 50 of the sweep
    assert result.status == "failed" and not (tmp_path / "r.json").exists()


def test_a_model_the_server_does_not_list(capsys, tmp_path, schedule_server_factory):
    srv = schedule_server_factory(ttft_ms=1, itl_ms=1)
    code, _, err = cli(capsys, tmp_path, "--url", srv.base_url, "--model", "nope")
    assert code == 2 and "EndpointRejected" not in err  # the message, not the class, on the CLI
    assert "model 'nope' is not served at" in err and "lists schedule" in err
    assert written(tmp_path) == []


def test_a_wrong_model_in_the_completion_call_carries_the_servers_message(tmp_path):
    from jupyter_ext.bench import run_benchmark

    got: list = []
    msg = "The model `nope` does not exist."
    with running_app(app_answering(404, {"error": {"message": msg, "type": "NotFoundError"}}, got)) as url:
        with pytest.raises(EndpointRejectedError) as e:
            run_benchmark(url=url, model="nope", results_dir=tmp_path, progress=False, concurrency=[1, 4],
                          num_prompts=40, max_tokens=4, input_scale=0.1)
    assert f"HTTP 404: {msg}" in str(e.value) and url in str(e.value) and "--model" in str(e.value)
    assert len(got) == 1  # one warm-up request told it all
    assert not list(tmp_path.iterdir())


def test_an_http_400_fails_the_run_with_the_servers_words(tmp_path):
    from jupyter_ext.bench import run_benchmark

    got: list = []
    msg = "This model's maximum context length is 1024 tokens."
    with running_app(app_answering(400, {"error": {"message": msg}}, got, models=True)) as url:
        with pytest.raises(EndpointRejectedError, match="HTTP 400: This model's maximum context length"):
            run_benchmark(url=url, results_dir=tmp_path, progress=False, concurrency=[2], num_prompts=30,
                          max_tokens=4, input_scale=0.1, warmup=0)
    assert 1 <= len(got) <= 2


def test_a_reply_that_is_not_a_stream(tmp_path):
    from jupyter_ext.bench import run_benchmark

    got: list = []
    reply = {"object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}]}
    with running_app(app_answering(200, reply, got, models=True)) as url:
        with pytest.raises(NotStreamingError, match="application/json, not text/event-stream"):
            run_benchmark(url=url, results_dir=tmp_path, progress=False, concurrency=[1], num_prompts=20,
                          max_tokens=4, input_scale=0.1)
    assert len(got) == 1 and got[0]["stream"] is True


def test_a_web_page_instead_of_a_stream(tmp_path):
    from aiohttp import web

    from jupyter_ext.bench import run_benchmark

    async def page(_request):
        return web.Response(text="<html><body>Welcome</body></html>\n", content_type="text/html")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", page)
    with running_app(app) as url:
        with pytest.raises(NotStreamingError, match="not a stream of JSON events .*<html><body>Welcome"):
            run_benchmark(url=url, model="m", results_dir=tmp_path, progress=False, concurrency=[1],
                          num_prompts=20, max_tokens=4, input_scale=0.1)


def test_a_level_with_too_many_failures_is_marked_failed(capsys, tmp_path, schedule_server_factory):
    srv = schedule_server_factory(ttft_ms=1, itl_ms=1, fail_every=2)  # every second request: HTTP 500
    code, out, err = cli(capsys, tmp_path, "--url", srv.base_url, "--max-failed-share", "0.25", "--warmup", "0")
    assert code == 1
    assert "FAILED: 2x HTTP 500: injected failure" in out
    assert "concurrency 1: 2/4 requests failed" in err and "HTTP 500: injected failure" in err
    (name,) = written(tmp_path)
    saved = json.loads((tmp_path / "res" / name).read_text())
    assert saved["status"] == "failed" and [lv["status"] for lv in saved["levels"]] == ["failed", "failed"]
    f = saved["levels"][0]["failure"]
    assert (f["error"], f["count"], f["failed"], f["requests"]) == ("HTTP 500: injected failure", 2, 2, 4)
    assert f["kind"] == "http_5xx" and f["share"] == 0.5


def test_failures_under_the_share_pass(capsys, tmp_path, schedule_server_factory):
    srv = schedule_server_factory(ttft_ms=1, itl_ms=1, fail_every=2)
    code, out, _ = cli(capsys, tmp_path, "--url", srv.base_url, "--warmup", "0")  # default share 0.5: 50% passes
    assert code == 0 and "FAILED" not in out
    saved = json.loads((tmp_path / "res" / written(tmp_path)[0]).read_text())
    assert saved["status"] == "complete" and saved["levels"][0]["failure"] is None


@pytest.mark.parametrize("share", [-0.1, 1.5])
def test_a_bad_failure_share_is_refused(share, tmp_path):
    from jupyter_ext.bench import BenchSpec
    from jupyter_ext.errors import BenchError

    with pytest.raises(BenchError, match="max failed share"):
        BenchSpec.of(url="http://127.0.0.1:9", max_failed_share=share)
