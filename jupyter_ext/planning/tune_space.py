"""What `tune` searches and how it bounds a candidate before measuring it.

The space: recipes (techniques and their settings, from the shipped recipes and the
technique registry's sections) crossed with concurrency levels. Each candidate gets an
OPTIMISTIC bound from the roofline (planning/roofline.py) at full efficiency:

    step_s       >= weight bytes read / peak bandwidth   (memory-bound decode step; on
                    `local`, this machine's measured bandwidth x LOCAL_BANDWIDTH_HEADROOM;
                    another CPU instance without a figure, CPU_BANDWIDTH_BOUND_GBS)
    tpot_s       >= step_s / (1 + draft tokens)          (speculation emits at most k+1 per step)
    e2e_s        >= ttft + (max_tokens - 1) * tpot_s  >= (max_tokens - 1) * tpot_s
    blended $/1M >= blended_price(rate, tpot_s, concurrency)   (ANCHORS.md's formula)

A measured value can only be worse than its bound, so a candidate whose bound misses the
SLO (or costs more than a measured SLO-meeting winner) can be skipped without changing the
answer a full grid search would give.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from ..catalog import get_instance, get_model
from ..errors import OptimizeError, PlanError, TechniqueUnavailableError
from ..pricing import blended_price
from ..recipes import Recipe, load_recipe, recipe_from_dict
from .planner import plan, weight_bytes
from .roofline import LOCAL_INSTANCE, local_bandwidth_gbs, predict_decode

# An assumed ceiling on host memory bandwidth where the catalog has no accelerator figure
# and the instance is not this machine: generous on purpose (a bound must never be slower
# than the real thing).
CPU_BANDWIDTH_BOUND_GBS = 200.0
# `local` is this machine: its measured copy bandwidth times this headroom bounds it (a
# copy's figure counts read + write bytes, decode mostly reads, and vLLM's kernels may
# stream better than numpy's copy or than a probe on a busy machine).
LOCAL_BANDWIDTH_HEADROOM = 2.0
DEFAULT_CONCURRENCY = (1, 2, 4, 8)


@dataclass(frozen=True)
class Candidate:
    """One recipe of the search: its name in the table, the recipe, the precision the
    roofline reads its weights at, and the draft tokens speculation proposes per step."""

    label: str
    recipe: Recipe
    precision: str
    draft_tokens: int = 0


def _precision(recipe: Recipe) -> str:
    if recipe.quantize is not None:
        return "awq-int4" if recipe.quantize.method == "awq" else str(recipe.quantize.method)
    return {"float32": "fp32", "float16": "fp16"}.get(recipe.engine.dtype, "bf16")


def candidate(recipe: Recipe | str, label: str | None = None) -> Candidate:
    """A Candidate from a recipe (or a shipped recipe name / YAML path)."""
    r = recipe if isinstance(recipe, Recipe) else load_recipe(str(recipe))
    k = int(getattr(r.speculative, "num_tokens", 0) or 0) if r.speculative is not None else 0
    return Candidate(label or r.name, r, _precision(r), k)


def _variant(base: Recipe, name: str, description: str, **sections: Any) -> Recipe:
    data = {**base.to_dict(), "name": name, "description": description}
    for key, value in sections.items():
        if key == "engine":
            data["engine"] = {**data["engine"], **value}
        else:
            data[key] = value
    return recipe_from_dict(data, source=f"tune variant {name}")


def default_space(model: str | None = None, base: Recipe | str = "baseline") -> list[Candidate]:
    """baseline, n-gram speculation with k in {2, 4}, suffix decoding, AWQ int4, compiled
    mode, and fp32 weights: the shipped recipes' techniques with their settings varied."""
    b = base if isinstance(base, Recipe) else load_recipe(str(base))
    if model is not None:
        b = _variant(b, b.name, b.description, model=model)
    ngram = load_recipe("ngram").speculative.model_dump(mode="json")
    out = [candidate(b, "baseline")]
    for k in (2, 4):
        out.append(candidate(_variant(b, f"tune-ngram-k{k}", f"{b.name} + n-gram speculation, k={k}",
                                      speculative={**ngram, "num_tokens": k}), f"ngram k={k}"))
    suffix = load_recipe("suffix").speculative.model_dump(mode="json")
    out.append(candidate(_variant(b, "tune-suffix", f"{b.name} + suffix decoding", speculative=suffix), "suffix"))
    awq = load_recipe("awq").quantize.model_dump(mode="json")
    out.append(candidate(_variant(b, "tune-awq", f"{b.name} + AWQ int4 weights", quantize=awq), "awq int4"))
    out.append(candidate(_variant(b, "tune-compiled", f"{b.name} in compiled mode", engine={"enforce_eager": False},
                                  compile={"enabled": True, "cache": True}), "compile on"))
    out.append(candidate(_variant(b, "tune-fp32", f"{b.name} with fp32 weights", engine={"dtype": "float32"}),
                         "dtype float32"))
    return out


@dataclass(frozen=True)
class Bound:
    """The optimistic figures of one (candidate, concurrency): no measurement can beat them."""

    step_s: float
    tpot_s: float
    usd_per_1M: float
    basis: str


def bound(c: Candidate, concurrency: int, instance: str, discount: float = 0.0) -> Bound:
    """The roofline bound (module docstring) of a candidate at a concurrency on an instance."""
    spec = get_instance(instance)
    if spec.accelerator is not None:
        est = predict_decode(c.recipe.model, c.precision, concurrency, spec, bandwidth_efficiency=1.0,
                             compute_efficiency=1.0, tp_efficiency=1.0)
        step, basis = est.inter_token_latency_s, f"roofline at peak ({est.bound}-bound)"
    else:
        wb = weight_bytes(c.recipe.model, c.precision).total_bytes
        gbs, basis = cpu_bandwidth_bound_gbs(spec.name)
        step = wb / (gbs * 1e9)
    tpot = step / (1 + c.draft_tokens)
    price = blended_price(spec.usd_per_hour, tpot, concurrency, discount).blended_usd_per_1M
    return Bound(step, tpot, price, basis)


def cpu_bandwidth_bound_gbs(instance: str) -> tuple[float, str]:
    """The bandwidth bound of an instance without an accelerator figure, and what it is:
    `local` from this machine's measured bandwidth, any other the generous constant."""
    if instance != LOCAL_INSTANCE:
        return CPU_BANDWIDTH_BOUND_GBS, f"weights / {CPU_BANDWIDTH_BOUND_GBS:g} GB/s"
    bw = local_bandwidth_gbs()
    gbs = bw["gbs"] * LOCAL_BANDWIDTH_HEADROOM
    return gbs, f"weights / {gbs:.3g} GB/s ({LOCAL_BANDWIDTH_HEADROOM:g} x {bw['gbs']:.3g} GB/s, {bw['source']})"


def static_prune(c: Candidate, concurrency: int, instance: str, slo: Any, max_tokens: int) -> str | None:
    """Why (candidate, concurrency) cannot meet the SLO, whatever a measurement says; None
    when it might. `slo` is a bench.slo.SLO."""
    try:
        row = plan(c.recipe.model, precision=c.precision, concurrency=concurrency, instances=[instance]).rows[0]
    except PlanError as e:
        return f"plan: {e}"
    if row.available_gb is not None and not row.fits:
        return f"memory: {row.reason}"
    b = bound(c, concurrency, instance)
    checks = (("tpot", b.tpot_s, "TPOT"), ("itl", b.step_s, "ITL"), ("e2e", (max_tokens - 1) * b.tpot_s, "E2E"))
    for metric, value, name in checks:
        limit = slo.threshold(metric)
        if limit is not None and value > limit:
            return f"roofline: {name} >= {value * 1e3:.3g} ms > SLO {limit * 1e3:.3g} ms"
    return None


def host_problem(c: Candidate, instance: str) -> str | None:
    """Why this host cannot run the candidate at all (only for a CPU instance: this
    machine); None when it can."""
    if get_instance(instance).kind != "cpu":
        return None
    from ..recipes import check_stack
    from ..techniques import registry

    try:
        check_stack(c.recipe, "local")
        for t in registry.active(c.recipe):
            t.check_host(c.recipe, "cpu")
    except (TechniqueUnavailableError, OptimizeError) as e:
        return f"host: {e}"
    return None


@dataclass
class SearchSpace:
    """Candidates x concurrency levels, with the model they share."""

    candidates: list[Candidate]
    concurrency: tuple[int, ...] = DEFAULT_CONCURRENCY
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.candidates:
            raise OptimizeError("tune needs at least one recipe to search")
        labels = [c.label for c in self.candidates]
        if len(set(labels)) != len(labels):
            raise OptimizeError(f"tune candidates repeat a name: {labels}; give each recipe its own name")
        bad = [x for x in self.concurrency if not isinstance(x, int) or x < 1]
        if bad or not self.concurrency:
            raise OptimizeError(f"tune concurrency levels must be whole numbers >= 1 (got {list(self.concurrency)})")
        self.concurrency = tuple(sorted(set(self.concurrency)))
        get_model(self.candidates[0].recipe.model)

    @classmethod
    def of(cls, recipes: Sequence[Recipe | str] | None, model: str | None = None,
           concurrency: Sequence[int] = DEFAULT_CONCURRENCY) -> "SearchSpace":
        cands = default_space(model) if not recipes else [candidate(r) for r in recipes]
        if model is not None and recipes:
            cands = [Candidate(c.label, _variant(c.recipe, c.recipe.name, c.recipe.description, model=model),
                               c.precision, c.draft_tokens) for c in cands]
        return cls(cands, tuple(concurrency))
