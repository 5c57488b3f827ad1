"""The catalog: models and instance types as data, and the lookups over them.

`get_model` / `get_instance` are the single entry points the rest of the toolkit (recipes,
planner, pricing, deploy) uses, so a misspelt id fails in one place with one good message:
close matches for models, the expected `ml.<family>.<size>` form and the supported families
for instances (the same families the SageMaker SDK accepts for optimization jobs).
The YAML files are read on first use and cached.

`local` is this machine: no accelerator, host figures read at lookup time, and a rate the
user sets (`set_local_rate`, or the env var JUPYTER_OPTIMIZE_LOCAL_USD_PER_HOUR), defaulting
to a comparable 2-vCPU cloud VM so local benchmarks still get a $/1M figure.
"""

from __future__ import annotations

import difflib
import os
import re

from ..errors import PricingError, UnknownInstanceError, UnknownModelError
from .specs import (
    AcceleratorSpec,
    InstanceSpec,
    InstanceTable,
    ModelSpec,
    ModelTable,
    load_accelerators,
    load_instances,
    load_models,
    pricing_snapshot,
)

__all__ = [
    "AcceleratorSpec", "InstanceSpec", "InstanceTable", "ModelSpec", "ModelTable", "Plan",
    "PlanRow", "RooflineEstimate", "GPU_FAMILIES", "NEURON_FAMILIES", "LOCAL_RATE_ENV",
    "get_model", "list_models", "get_instance", "list_instances", "get_accelerator",
    "list_accelerators", "set_local_rate", "plan", "predict_decode", "estimate_blended_price",
    "weight_bytes", "pricing_snapshot", "PRECISIONS",
]

# Families SageMaker's optimization toolkit accepts (g6e is the L40S sibling of g6).
GPU_FAMILIES = ("p4d", "p4de", "p5", "g5", "g6", "g6e")
NEURON_FAMILIES = ("inf2", "trn1", "trn1n")
LOCAL_RATE_ENV = "JUPYTER_OPTIMIZE_LOCAL_USD_PER_HOUR"
_INSTANCE_RE = re.compile(r"^ml\.(?P<family>[a-z][a-z0-9]*)\.(?P<size>\d*xlarge|large|medium)$")
_local_rate: float | None = None


def get_model(model_id: str | ModelSpec) -> ModelSpec:
    """The catalog entry for a JumpStart-style id (or its Hugging Face id)."""
    if isinstance(model_id, ModelSpec):
        return model_id
    models = load_models()
    key = str(model_id).strip()
    if key in models:
        return models[key]
    for spec in models.values():
        if spec.hf_id.lower() == key.lower():
            return spec
    # A fragment ("llama-3-8b") is matched by containment; a typo by similarity.
    close = [m for m, spec in models.items() if key.lower() in f"{m} {spec.hf_id}".lower()]
    close = (close or difflib.get_close_matches(key, list(models), n=3, cutoff=0.5))[:3]
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownModelError(
        f"Unknown model {key!r}.{hint} Known models: {', '.join(models)}. "
        "Use one of these ids (or its Hugging Face id); list_models() shows them with details."
    )


def list_models() -> ModelTable:
    """Every catalog model, as a table object (iterable; shows as HTML in a notebook)."""
    return ModelTable(list(load_models().values()))


def get_instance(name: str | InstanceSpec) -> InstanceSpec:
    """The catalog entry for `ml.<family>.<size>` or `local`, with its rate's provenance."""
    if isinstance(name, InstanceSpec):
        return name
    key = str(name).strip().lower()
    instances = load_instances()
    if key == "local":
        return _local_instance(instances["local"])
    match = _INSTANCE_RE.match(key)
    if match is None:
        fix = f" Did you mean 'ml.{key}'?" if _INSTANCE_RE.match(f"ml.{key}") else ""
        raise UnknownInstanceError(
            f"Instance type {name!r} is not of the form ml.<family>.<size> "
            f"(e.g. ml.g5.12xlarge), nor 'local'.{fix}"
        )
    family = match["family"]
    if family not in GPU_FAMILIES + NEURON_FAMILIES:
        raise UnknownInstanceError(
            f"Instance family {family!r} (in {name!r}) is not supported. Supported families: "
            f"GPU {', '.join(GPU_FAMILIES)}; Neuron {', '.join(NEURON_FAMILIES)} "
            "(Neuron: compilation only)."
        )
    if key not in instances:
        known = [n for n in instances if n != "local"]
        raise UnknownInstanceError(
            f"Instance type {name!r} is of a supported family but not in the catalog. "
            f"Known: {', '.join(known)}, local. Add it to jupyter_ext/catalog/instances.yaml "
            "(with source and date) to use it."
        )
    return instances[key]


def list_instances() -> InstanceTable:
    """Every catalog instance type (with `local` filled in), as a table object."""
    return InstanceTable([get_instance(n) for n in load_instances()])


def get_accelerator(name: str) -> AcceleratorSpec:
    """Peak figures for an accelerator name used in instances.yaml (e.g. 'H100-SXM')."""
    accs = load_accelerators()
    for key, spec in accs.items():
        if key.lower() == str(name).strip().lower():
            return spec
    raise UnknownInstanceError(
        f"Unknown accelerator {name!r}. Known: {', '.join(accs)}; or pass an instance type."
    )


def list_accelerators() -> list[AcceleratorSpec]:
    """Every accelerator in accelerators.yaml."""
    return list(load_accelerators().values())


def set_local_rate(usd_per_hour: float | None) -> None:
    """Say what this machine costs per hour (None: back to the env var or the default).

    Set for the session; it wins over JUPYTER_OPTIMIZE_LOCAL_USD_PER_HOUR.
    """
    global _local_rate
    if usd_per_hour is not None and (not isinstance(usd_per_hour, (int, float)) or usd_per_hour < 0):
        raise PricingError(f"local rate must be a number >= 0 USD/hour, got {usd_per_hour!r}.")
    _local_rate = None if usd_per_hour is None else float(usd_per_hour)


def _local_instance(base: InstanceSpec) -> InstanceSpec:
    """`local` with this host's vCPUs and memory and the rate from session, env or default."""
    rate, where = base.usd_per_hour, f"default: {base.source}"
    env = os.environ.get(LOCAL_RATE_ENV)
    if _local_rate is not None:
        rate, where = _local_rate, "set_local_rate()"
    elif env:
        try:
            rate = float(env)
        except ValueError:
            raise PricingError(
                f"{LOCAL_RATE_ENV}={env!r} is not a number; set it to USD/hour, e.g. 0.096."
            ) from None
        if rate < 0:
            raise PricingError(f"{LOCAL_RATE_ENV} must be >= 0 USD/hour, got {env!r}.")
        where = f"env {LOCAL_RATE_ENV}"
    return base.model_copy(update={
        "vcpus": os.cpu_count(),
        "memory_gib": _host_memory_gib(),
        "usd_per_hour": rate,
        "approximate": where.startswith("default"),
        "rate_source": where,
    })


def _host_memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):  # not exposed on this OS
        return None

