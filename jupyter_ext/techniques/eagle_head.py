"""A local EAGLE draft head (`speculative: {method: eagle_head, num_tokens: 3, train: {...}}`).

`prepare` trains a one-layer EAGLE-1 head for the recipe's target on the target's own
greedy answers (eagle_train.py; the same teacher data as the trained draft_model, built-in
prompts or `--dataset`), caches it by (target, dataset, settings), prints its held-out
acceptance at k = num_tokens, and the server runs it through vLLM's `eagle` method, which
shares the target's embeddings and LM head with it. Not `method: eagle`: that name is the
SageMaker-trained head (eagle.py), which runs only on SageMaker.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from ..base.schema import Strict
from ..errors import DeployError, RecipeError
from .registry import Artifacts, LmiTarget, SpeculativeMethod, register

if TYPE_CHECKING:
    from ..recipes import Recipe


class EagleHeadTraining(Strict):
    """How `prepare` trains the head (defaults not yet timed on the 2-core host)."""

    steps: int = Field(300, gt=0)
    lr: float = Field(5e-4, gt=0)
    batch_size: int = Field(4, gt=0)
    feature_weight: float = Field(1.0, ge=0, description="weight of the smooth-L1 feature regression vs the KL")
    unroll: int = Field(1, ge=1, le=3, description="passes per step: 2 or 3 also train the head on its own fed-back "
                                                   "features, as it drafts positions 2..k (EAGLE-3's training-time test)")
    seq_len: int = Field(240, gt=8, description="prompt tokens kept + new_tokens")
    new_tokens: int = Field(48, gt=0, description="tokens of the teacher's greedy answer per prompt")
    prompts: int = Field(256, gt=0, description="training prompts (a dataset may have fewer)")
    heldout_prompts: int = Field(16, gt=0, description="prompts acceptance is measured on, never trained on")
    dataset: str | None = Field(None, description="a dataset file as bench --dataset reads; default built-in text")
    seed: int = 0
    checkpoint_every: int = Field(25, gt=0)

    @model_validator(mode="after")
    def _room_for_a_prompt(self) -> "EagleHeadTraining":
        if self.new_tokens >= self.seq_len - 8:
            raise ValueError(f"seq_len ({self.seq_len}) must exceed new_tokens ({self.new_tokens}) by more than 8 "
                             f"so some of the prompt is kept")
        return self


class EagleHeadSpeculation(Strict):
    """An EAGLE head trained here for the target proposes tokens the target verifies."""

    method: Literal["eagle_head"]
    num_tokens: int = Field(3, gt=0, le=16)
    train: EagleHeadTraining = Field(default_factory=EagleHeadTraining)


def check_eagle_head(recipe: Recipe) -> None:
    """Refuse what cannot work before anything is trained or started."""
    if recipe.engine.weights == "dummy":
        raise RecipeError("speculative: eagle_head needs real weights (a head trained on random weights accepts "
                          "nothing); use method: ngram for dummy-weight speed runs")
    if recipe.speculative.train.dataset is not None:
        from .draft_data import dataset_id

        dataset_id(recipe.speculative.train.dataset)  # DatasetError when the file is missing


class EagleHead(SpeculativeMethod):
    method = "eagle_head"
    schema = EagleHeadSpeculation

    def validate(self, recipe: Recipe) -> None:
        check_eagle_head(recipe)

    def prepare(self, recipe: Recipe, artifacts: Artifacts, source: Path, cache_root: Path) -> Artifacts:
        from .eagle_train import trained_eagle_head

        spec = recipe.speculative
        head = trained_eagle_head(source, spec.train.model_dump(mode="json"), spec.num_tokens, cache_root)
        artifacts.draft_path = str(head)
        return artifacts

    def speculative_config(self, options: EagleHeadSpeculation, draft: str | None) -> dict[str, Any]:
        if draft is None:
            raise RecipeError("speculative: eagle_head has no trained head yet; run `jupyter-optimize prepare "
                              "RECIPE` (or start the server through prepare) first")
        return {"method": "eagle", "model": draft, "num_speculative_tokens": options.num_tokens}

    def lmi_speculative_config(self, recipe: Recipe, target: LmiTarget) -> dict[str, Any]:
        if target.draft is None:
            raise DeployError("the EAGLE head trained by prepare is a local folder the endpoint cannot load: upload "
                              "it to S3 and pass draft_model_s3='s3://bucket/prefix/'")
        return self.speculative_config(recipe.speculative, target.draft)


register(EagleHead())
