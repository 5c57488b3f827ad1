"""Roofline ESTIMATE of decode speed, for instances we have not benchmarked.

Each decode step reads the weights it touches once and the KV cache of every sequence in
the batch, and does 2 FLOPs per active matmul parameter per sequence. So:

    memory-bound tok/s  = batch * bandwidth * eff_bw  / (weight bytes read + KV bytes read)
    compute-bound tok/s = FLOP/s * eff_compute / (2 * active matmul params)
    predicted tok/s     = min(memory-bound, compute-bound) * eff_tp (when TP > 1)

Decode at small batch is memory-bound (reading the weights dominates); batching amortises
that read until compute binds. The efficiencies are assumptions, not measurements: the
numbers here are an ESTIMATE to rank options; bench/ measures the real thing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..base.bandwidth import memory_bandwidth_gbs
from ..catalog import get_accelerator, get_instance, get_model
from ..catalog.specs import GB, AcceleratorSpec, InstanceSpec, ModelSpec, html_table, text_table
from ..errors import PlanError
from ..pricing import BlendedPrice, blended_price
from .planner import Precision, get_precision, kv_element_bytes, weight_bytes

# Fraction of peak HBM bandwidth decode kernels reach (typically 70-85% on recent GPUs).
BANDWIDTH_EFFICIENCY = 0.80
# Fraction of peak dense tensor FLOP/s reached by decode-shaped GEMMs.
COMPUTE_EFFICIENCY = 0.50
# Throughput kept under tensor parallelism (all-reduce per layer costs the rest).
TP_EFFICIENCY = 0.90
# The instance that is this machine: its bandwidth is measured here (base/bandwidth.py).
LOCAL_INSTANCE = "local"
# Mean KV length during decode of the seed workload: 622 prompt + 250/2 generated.
DEFAULT_CONTEXT_TOKENS = 622 + 250 // 2


@dataclass
class RooflineEstimate:
    """Predicted decode throughput and which bound applies (an ESTIMATE, not a measurement)."""

    model: str
    precision: str
    batch: int
    accelerator: str
    num_accelerators: int
    context_tokens: int
    weight_bytes_read: float
    kv_bytes_read: float
    memory_bound_tok_s: float
    compute_bound_tok_s: float
    tokens_per_s: float  # all sequences together
    per_sequence_tok_s: float
    inter_token_latency_s: float  # 1 / per_sequence_tok_s
    bound: str  # "memory" or "compute"
    assumptions: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    label: str = "ESTIMATE"
    estimate: bool = True

    @property
    def bytes_per_step(self) -> float:
        return self.weight_bytes_read + self.kv_bytes_read

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "bytes_per_step": self.bytes_per_step}

    def _rows(self) -> list[tuple[str, Any]]:
        keys = ("model", "precision", "batch", "accelerator", "num_accelerators", "context_tokens",
                "memory_bound_tok_s", "compute_bound_tok_s", "tokens_per_s", "per_sequence_tok_s",
                "inter_token_latency_s", "bound")
        rows = [(k, getattr(self, k)) for k in keys]
        rows.append(("bytes_per_step (GB)", self.bytes_per_step / GB))
        return rows + [(f"assume {k}", v) for k, v in self.assumptions.items()] + \
            [("note", n) for n in self.notes]

    def _title(self) -> str:
        return (f"ESTIMATE (roofline): {self.tokens_per_s:,.0f} tok/s total, "
                f"{self.per_sequence_tok_s:,.1f} tok/s per sequence, {self.bound}-bound")

    def __str__(self) -> str:
        return self._title() + "\n" + text_table(["field", "value"], self._rows())

    def _repr_html_(self) -> str:
        return html_table(["field", "value"], self._rows(), caption=self._title())


def _resolve_target(target: str | InstanceSpec | AcceleratorSpec,
                    num_accelerators: int | None) -> tuple[AcceleratorSpec, int, str | None]:
    """(accelerator, how many, instance name or None) for an instance or accelerator name."""
    if isinstance(target, AcceleratorSpec):
        acc, default_n, inst = target, 1, None
    elif isinstance(target, InstanceSpec) or str(target).strip().lower().startswith(("ml.", "local")):
        spec = get_instance(target)
        if spec.accelerator is None:
            raise PlanError(
                f"{spec.name} has no accelerator, so there is no roofline to draw; measure it "
                "with a benchmark instead."
            )
        acc, default_n, inst = get_accelerator(spec.accelerator), spec.accelerator_count, spec.name
    else:
        acc, default_n, inst = get_accelerator(str(target)), 1, None
    n = default_n if num_accelerators is None else num_accelerators
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise PlanError(f"num_accelerators must be an integer >= 1, got {num_accelerators!r}.")
    return acc, n, inst


def _peak_tflops(acc: AcceleratorSpec, prec: Precision, notes: list[str]) -> float:
    """Dense peak for the precision's matmuls; falls back to bf16 where the path is missing."""
    peak = {"bf16": acc.bf16_tflops, "fp8": acc.fp8_tflops, "int8": acc.int8_tops,
            "fp32": acc.fp32_tflops}[prec.compute]
    if peak is None:
        notes.append(f"{acc.name} has no {prec.compute} tensor path: bf16 peak used "
                     "(weights dequantized to 16-bit)")
        return acc.bf16_tflops
    return peak


def _weight_bytes_read(model: ModelSpec, prec: Precision, batch: int) -> float:
    """Weight bytes one decode step reads: MoE reads only the experts the batch routes to.

    With uniform routing, the expected experts touched per layer by `batch` tokens choosing
    k of E is E * (1 - (1 - k/E) ** batch). An untied input embedding is a row lookup.
    """
    p = model.param_breakdown()
    e, k = model.num_experts, model.experts_per_token
    touched = e * (1 - (1 - k / e) ** batch) if model.is_moe else 1.0
    experts = model.num_layers * p.expert_one * touched
    head = p.lm_head if p.lm_head else p.embedding  # tied: the embedding is the LM head
    lookup = batch * model.hidden_size if p.lm_head else 0
    return (p.attention + experts) * prec.linear_bytes + (head + lookup + p.norms + p.router) * prec.other_bytes


def _active_matmul_params(model: ModelSpec) -> float:
    """Params multiplied per token: attention, k experts, router and the LM head (not the lookup)."""
    p = model.param_breakdown()
    experts = model.num_layers * p.expert_one * model.experts_per_token
    return p.attention + experts + p.router + (p.lm_head or p.embedding)


def predict_decode(
    model: str | ModelSpec,
    precision: str,
    batch: int,
    instance_or_accelerator: str | InstanceSpec | AcceleratorSpec,
    num_accelerators: int | None = None,
    *,
    context_tokens: int = DEFAULT_CONTEXT_TOKENS,
    bandwidth_efficiency: float = BANDWIDTH_EFFICIENCY,
    compute_efficiency: float = COMPUTE_EFFICIENCY,
    tp_efficiency: float = TP_EFFICIENCY,
    kv_cache_dtype: str = "auto",
) -> RooflineEstimate:
    """ESTIMATE decode tokens/s of `batch` sequences with `context_tokens` of KV each.

    On a multi-accelerator instance all its accelerators are assumed to run tensor parallel
    (override with num_accelerators), at `tp_efficiency` of the ideal sum. `kv_cache_dtype`
    (vLLM's --kv-cache-dtype, e.g. fp8) sets the KV bytes read per step.
    """
    spec, prec = get_model(model), get_precision(precision)
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise PlanError(f"batch must be an integer >= 1, got {batch!r}.")
    if not isinstance(context_tokens, int) or context_tokens < 0:
        raise PlanError(f"context_tokens must be an integer >= 0, got {context_tokens!r}.")
    for name, eff in (("bandwidth_efficiency", bandwidth_efficiency),
                      ("compute_efficiency", compute_efficiency), ("tp_efficiency", tp_efficiency)):
        if not 0 < eff <= 1:
            raise PlanError(f"{name} must be in (0, 1], got {eff!r}.")
    acc, n, inst = _resolve_target(instance_or_accelerator, num_accelerators)
    notes: list[str] = []
    tp = tp_efficiency if n > 1 else 1.0
    weights = _weight_bytes_read(spec, prec, batch)
    kv = spec.kv_bytes_per_token(kv_element_bytes(prec, kv_cache_dtype)) * context_tokens * batch
    memory_bound = batch * n * acc.memory_bandwidth_gbs * GB * bandwidth_efficiency * tp / (weights + kv)
    flops = n * _peak_tflops(acc, prec, notes) * 1e12 * compute_efficiency * tp
    compute_bound = flops / (2 * _active_matmul_params(spec))
    total = min(memory_bound, compute_bound)
    _fit_note(spec, prec, acc, n, kv, notes)
    return RooflineEstimate(
        model=spec.id, precision=prec.name, batch=batch,
        accelerator=f"{inst} ({acc.name})" if inst else acc.name, num_accelerators=n,
        context_tokens=context_tokens, weight_bytes_read=weights, kv_bytes_read=kv,
        memory_bound_tok_s=memory_bound, compute_bound_tok_s=compute_bound, tokens_per_s=total,
        per_sequence_tok_s=total / batch, inter_token_latency_s=batch / total,
        bound="memory" if memory_bound <= compute_bound else "compute",
        assumptions={"bandwidth_efficiency": bandwidth_efficiency,
                     "compute_efficiency": compute_efficiency,
                     "tp_efficiency": tp, "attention_flops": "ignored (small next to the matmuls)",
                     "moe_routing": "uniform over experts", "kv_cache_dtype": kv_cache_dtype},
        notes=notes,
    )


def _fit_note(spec: ModelSpec, prec: Precision, acc: AcceleratorSpec, n: int, kv: float,
              notes: list[str]) -> None:
    need = weight_bytes(spec, prec.name).total_bytes + kv
    if need > n * acc.memory_gb * GB:
        notes.append(f"needs {need / GB:.1f} GB but {n} x {acc.name} hold "
                     f"{n * acc.memory_gb:g} GB: it does not fit; see plan()")


def estimate_blended_price(
    model: str | ModelSpec,
    precision: str,
    instance: str | InstanceSpec,
    concurrency: int,
    discount: float = 0.0,
) -> BlendedPrice:
    """Blended $/1M tokens from the roofline ESTIMATE (BlendedPrice with estimate=True).

    The estimate's per-sequence inter-token latency stands in for the measured p50.
    """
    spec = get_instance(instance)
    est = predict_decode(model, precision, concurrency, spec)
    return blended_price(spec.usd_per_hour, est.inter_token_latency_s, concurrency, discount,
                         estimate=True, instance=spec.name)


def local_bandwidth_gbs() -> dict:
    """The memory bandwidth of `local` (this machine): measured once per machine by a copy
    probe and cached in the toolkit's cache folder ({"gbs", "source", "machine"})."""
    from ..store.model_files import cache_root

    return memory_bandwidth_gbs(cache_root() / "host" / "memory_bandwidth.json")
