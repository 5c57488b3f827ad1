"""The pieces that put vLLM's own client beside ours (benchmarks/vllm_client.py): the stand-in
answers what vLLM's chat client sends, vLLM's parser accepts our command line, and the
agreement is ours / vLLM's - 1 with the 2% goal on throughput and like-for-like TTFT."""

from __future__ import annotations

import json
import sys
import urllib.request

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
from vllm_client import agreement, row_markdown, vllm_argv, write_prompts  # noqa: E402


def test_the_standin_answers_vllm_chat_requests(schedule_server_factory):
    srv = schedule_server_factory(ttft_ms=1, itl_ms=1)
    body = {"model": "schedule", "messages": [{"role": "user", "content": [{"type": "text", "text": "hello " * 40}]}],
            "max_completion_tokens": 7, "stream": True, "stream_options": {"include_usage": True}, "ignore_eos": True}
    req = urllib.request.Request(srv.base_url + "/v1/chat/completions", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        events = [json.loads(line[6:]) for line in r.read().decode().splitlines()
                  if line.startswith("data: {")]
    assert sum(1 for e in events if e["choices"]) == 7  # max_completion_tokens, not the old default 16
    assert events[-1]["usage"] == {"prompt_tokens": 60, "completion_tokens": 7, "total_tokens": 67}


def test_vllm_parses_our_command_line(tmp_path):
    pytest.importorskip("vllm.benchmarks.serve")
    from vllm.benchmarks.serve import add_cli_args
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    data = write_prompts(tmp_path / "p.jsonl", 3, 5, 0.1, seed=1, tokenizer=None)
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    assert len(rows) == 3 and all(set(r) == {"prompt"} and r["prompt"] for r in rows)
    argv = vllm_argv("http://127.0.0.1:1", "m", tmp_path, data, 4, 3, 5, 2, tmp_path, "out.json")
    p = FlexibleArgumentParser()
    add_cli_args(p)
    a = p.parse_args(argv[argv.index("--backend"):])
    assert (a.max_concurrency, a.num_prompts, a.custom_output_len, a.num_warmups) == (4, 3, 5, 2)
    assert a.ignore_eos and a.skip_chat_template and a.temperature == 0 and a.dataset_name == "custom"


def test_agreement_is_ours_over_theirs_minus_one():
    ours = {"output_throughput": 101.5, "ttft_ms_p50": 99.0, "ttft_from_issue_ms_p50": 100.5}
    theirs = {"output_throughput": 100.0, "ttft_ms_p50": 100.0, "ttft_from_issue_ms_p50": 100.0}
    a = agreement(ours, theirs)
    assert a["output_throughput_rel"] == pytest.approx(0.015) and a["ttft_p50_rel"] == pytest.approx(-0.01)
    assert a["within_2pct"]
    worse = agreement({**ours, "ttft_from_issue_ms_p50": 103.0}, theirs)
    assert not worse["within_2pct"] and "+3.0%" in row_markdown(4, {**ours, "ttft_from_issue_ms_p50": 103.0},
                                                                theirs, worse)
    assert agreement({"error": "boom"}, theirs) == {"error": "boom"}
