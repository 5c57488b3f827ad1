"""SageMaker-trained EAGLE drafts (`speculative: {method: eagle, dataset: ...}`).

An EAGLE draft head is trained for the target model by a SageMaker optimization job
(ModelSpeculativeDecodingConfig {Technique: EAGLE, TrainingDataSource}); the draft exists only
in that job's output, so this method runs nowhere else: a local server refuses it (SageMaker's
draft model does not support local testing), and a SageMaker deploy needs the job's output
(`jupyter-optimize optimize RECIPE --target sagemaker` makes the job and deploys its output).
`dataset` is the training data: an s3:// prefix, or a local JSONL file in ShareGPT, OpenAI
chat or completions format (the optimize step uploads it); without one SageMaker trains on
its own default data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..base.schema import Strict
from ..errors import DeployError, RecipeError, SageMakerLimitError
from .registry import LmiTarget, SpeculativeMethod, register

if TYPE_CHECKING:
    from ..recipes import Recipe

DATA_FORMATS = ("sharegpt", "openai_chat", "completions")
LOCAL_TESTING_LIMIT = ("SageMaker's draft models (EAGLE heads trained by an optimization job) do not support "
                       "local testing")


class EagleSpeculation(Strict):
    """A draft head trained by SageMaker for the target (EAGLE), from `dataset` or SageMaker's data."""

    method: Literal["eagle"]
    dataset: str | None = None
    data_format: Literal["auto", "sharegpt", "openai_chat", "completions"] = "auto"


def record_format(record: Any) -> str | None:
    """Which training-data format one JSONL record has (None: none of them)."""
    if not isinstance(record, dict):
        return None
    conv = record.get("conversations")
    if isinstance(conv, list) and conv and all(isinstance(t, dict) and {"from", "value"} <= t.keys() for t in conv):
        return "sharegpt"
    msgs = record.get("messages")
    if isinstance(msgs, list) and msgs and all(isinstance(t, dict) and {"role", "content"} <= t.keys() for t in msgs):
        return "openai_chat"
    if isinstance(record.get("prompt"), str) and isinstance(record.get("completion"), str):
        return "completions"
    return None


def dataset_format(path: Path, declared: str = "auto") -> str:
    """The format of a local JSONL dataset, checked on every record; RecipeError naming the
    first bad line, so a wrong file fails before anything is uploaded."""
    found: str | None = None
    lines = path.read_text(encoding="utf-8").splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            fmt = record_format(json.loads(line))
        except json.JSONDecodeError as e:
            raise RecipeError(f"speculative.dataset: {path} line {n} is not JSON ({e})") from None
        want = found or (None if declared == "auto" else declared)
        if fmt is None or (want and fmt != want):
            raise RecipeError(
                f"speculative.dataset: {path} line {n} is not a {want or ' / '.join(DATA_FORMATS)} record; "
                "expected one JSON object a line: ShareGPT {\"conversations\": [{\"from\", \"value\"}]}, OpenAI chat "
                "{\"messages\": [{\"role\", \"content\"}]} or completions {\"prompt\", \"completion\"}")
        found = fmt
    if found is None:
        raise RecipeError(f"speculative.dataset: {path} has no records")
    return found


class Eagle(SpeculativeMethod):
    method = "eagle"
    schema = EagleSpeculation

    def validate(self, recipe: Recipe) -> None:
        ds = recipe.speculative.dataset
        if ds is None or ds.startswith("s3://"):
            return
        path = Path(ds).expanduser()
        if not path.is_file():
            raise RecipeError(f"speculative.dataset: {ds!r} is neither an s3:// prefix nor a file here; give a "
                              "JSONL file (ShareGPT, OpenAI chat or completions) or an s3:// prefix")
        dataset_format(path, recipe.speculative.data_format)

    def check_host(self, recipe: Recipe, platform: str) -> None:
        raise SageMakerLimitError(
            f"speculative: eagle cannot run on this host: {LOCAL_TESTING_LIMIT}; the draft only exists once "
            "SageMaker trains it. Run `jupyter-optimize optimize RECIPE --target sagemaker`, or use method: ngram, "
            "suffix or draft_model here")

    def check_deploy(self, recipe: Recipe, target: LmiTarget) -> None:
        if target.model_data_s3 is None:
            raise DeployError("speculative: eagle deploys the output of a SageMaker optimization job (which trains "
                              "the draft): run `jupyter-optimize optimize RECIPE --target sagemaker`, which makes the "
                              "job and deploys its output")

    def speculative_config(self, options: EagleSpeculation, draft: str | None) -> dict[str, Any]:
        return {"method": "eagle", "model": draft}

    def lmi_speculative_config(self, recipe: Recipe, target: LmiTarget) -> dict[str, Any] | None:
        # The job's output (model + trained draft) and its recommended image carry the draft's
        # settings; a config written here would point at a path only the job knows.
        return None

    def deploy_warnings(self, recipe: Recipe) -> list[str]:
        return ["the EAGLE draft comes from the optimization job's output; benchmark the endpoint and check that "
                "the acceptance rate is > 0 (speculation staged but never active is a known failure)"]


register(Eagle())
