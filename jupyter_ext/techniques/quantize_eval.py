"""How good and how small an AWQ checkpoint is, measured on CPU with transformers.

Three models are scored on the same held-out text (documentation modules never used for
calibration): the fp model, the AWQ checkpoint (transformers decompresses compressed-tensors
weights on load), and plain round-to-nearest int4 (RTN) with the same grouping, zero points
and layers, so the difference between AWQ and RTN is exactly the activation-aware scaling.

    perplexity = exp(sum of token negative log-likelihoods / number of predicted tokens)

over non-overlapping windows of `window` tokens (each window's first token is not predicted).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

EVAL_WINDOW = 512


@dataclass
class WeightMemory:
    """Bytes of weights: the checkpoint's tensors as stored, and the fp model at fp32/fp16."""

    checkpoint_bytes: int
    fp32_bytes: int
    fp16_bytes: int
    quantized_linear_bytes: int  # packed int4 + scales + zero points of the quantized layers
    quantized_linear_fp16_bytes: int  # the same layers' weights at fp16

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["vs_fp32"] = self.checkpoint_bytes / self.fp32_bytes
        d["vs_fp16"] = self.checkpoint_bytes / self.fp16_bytes
        d["linear_vs_fp16"] = self.quantized_linear_bytes / self.quantized_linear_fp16_bytes
        return d


@dataclass
class QualityReport:
    """Perplexities on held-out text, plus the weight memory; AWQ should beat RTN."""

    ppl_fp: float
    ppl_awq: float
    ppl_rtn: float
    eval_tokens: int
    group_size: int
    memory: WeightMemory
    notes: list[str] = field(default_factory=list)

    @property
    def awq_beats_rtn(self) -> bool:
        return self.ppl_awq < self.ppl_rtn

    def to_dict(self) -> dict[str, Any]:
        return {"ppl_fp": self.ppl_fp, "ppl_awq": self.ppl_awq, "ppl_rtn": self.ppl_rtn,
                "awq_vs_fp": self.ppl_awq / self.ppl_fp, "rtn_vs_fp": self.ppl_rtn / self.ppl_fp,
                "awq_beats_rtn": self.awq_beats_rtn, "eval_tokens": self.eval_tokens,
                "group_size": self.group_size, "memory": self.memory.to_dict(), "notes": self.notes}

    def markdown_line(self) -> str:
        m = self.memory.to_dict()
        return (f"AWQ int4 g{self.group_size}: perplexity {self.ppl_awq:.2f} vs fp {self.ppl_fp:.2f} "
                f"(+{100 * (self.ppl_awq / self.ppl_fp - 1):.1f}%) and RTN int4 {self.ppl_rtn:.2f} "
                f"(+{100 * (self.ppl_rtn / self.ppl_fp - 1):.1f}%) on {self.eval_tokens} held-out tokens; "
                f"weights {m['checkpoint_bytes'] / 1e6:.0f} MB vs {m['fp32_bytes'] / 1e6:.0f} MB fp32 / "
                f"{m['fp16_bytes'] / 1e6:.0f} MB fp16; quantized layers {1 / m['linear_vs_fp16']:.2f}x smaller than fp16")

    def __str__(self) -> str:
        return self.markdown_line()


def heldout_token_windows(tokenizer, max_windows: int, window: int = EVAL_WINDOW) -> list[list[int]]:
    """Windows of held-out documentation text (disjoint from the calibration text)."""
    from .quantize import builtin_texts

    ids: list[int] = []
    for t in builtin_texts(heldout=True):
        ids += tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return [ids[i:i + window] for i in range(0, len(ids) - window + 1, window)][:max_windows]


def perplexity(model, windows: list[list[int]]) -> float:
    """exp(mean next-token negative log-likelihood) over the windows."""
    import torch

    nll, count = 0.0, 0
    model.eval()
    with torch.inference_mode():
        for w in windows:
            ids = torch.tensor([w])
            logits = model(input_ids=ids).logits[0, :-1].float()
            nll += torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum").item()
            count += len(w) - 1
    return math.exp(nll / count)


def quantized_linear_names(model) -> list[str]:
    """The decoder's Linear layers: what AWQ and RTN quantize (lm_head is left out)."""
    import torch

    return [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and not n.endswith("lm_head")]


def rtn_int4_(model, group_size: int) -> None:
    """Round-to-nearest asymmetric int4 per group of `group_size` input channels, in place:
        scale = (max - min) / 15, zero = round(-min / scale),
        w_q = (clamp(round(w / scale) + zero, 0, 15) - zero) * scale."""
    import torch

    mods = dict(model.named_modules())
    with torch.no_grad():
        for name in quantized_linear_names(model):
            w = mods[name].weight
            out_f, in_f = w.shape
            g = w.reshape(out_f, in_f // group_size, group_size)
            lo = g.amin(dim=-1, keepdim=True).clamp(max=0)
            hi = g.amax(dim=-1, keepdim=True).clamp(min=0)
            scale = ((hi - lo) / 15).clamp(min=1e-8)
            zero = torch.round(-lo / scale)
            q = torch.clamp(torch.round(g / scale) + zero, 0, 15)
            w.copy_(((q - zero) * scale).reshape(out_f, in_f))


def checkpoint_memory(checkpoint: Path, fp_model_dir: Path) -> WeightMemory:
    """Weight bytes read from the checkpoint's safetensors headers (no tensors loaded)."""
    from safetensors import safe_open

    def tensor_bytes(folder: Path) -> dict[str, int]:
        out = {}
        for f in sorted(folder.glob("*.safetensors")):
            with safe_open(str(f), "pt") as st:
                for k in st.keys():
                    sl = st.get_slice(k)
                    n = math.prod(sl.get_shape())
                    out[k] = n * _dtype_bytes(sl.get_dtype())
        return out

    q = tensor_bytes(checkpoint)
    fp = tensor_bytes(fp_model_dir)
    fp_params = {k: v // 4 for k, v in fp.items()}  # the fp folder is fp32
    quant_prefixes = {k.rsplit(".", 1)[0] for k in q if k.endswith(".weight_packed")}
    qlin = sum(v for k, v in q.items() if k.rsplit(".", 1)[0] in quant_prefixes)
    qlin_fp16 = sum(2 * fp_params[p + ".weight"] for p in quant_prefixes if p + ".weight" in fp_params)
    total = sum(fp_params.values())
    return WeightMemory(sum(q.values()), 4 * total, 2 * total, qlin, qlin_fp16)


def _dtype_bytes(dtype: str) -> int:
    return {"F64": 8, "I64": 8, "F32": 4, "I32": 4, "F16": 2, "BF16": 2, "I16": 2, "I8": 1, "U8": 1,
            "F8_E4M3": 1, "BOOL": 1}.get(dtype, 4)


def evaluate_awq(checkpoint: Path, fp_model_dir: Path, max_windows: int = 16) -> QualityReport:
    """Perplexity of fp, AWQ and RTN on the same held-out windows, plus weight memory."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    opts = json.loads((checkpoint / "awq-options.json").read_text())
    group = int(opts["group_size"])
    tok = AutoTokenizer.from_pretrained(str(fp_model_dir))
    windows = heldout_token_windows(tok, max_windows)
    fp = AutoModelForCausalLM.from_pretrained(str(fp_model_dir), dtype=torch.float32)
    ppl_fp = perplexity(fp, windows)
    rtn_int4_(fp, group)
    ppl_rtn = perplexity(fp, windows)
    del fp
    awq = AutoModelForCausalLM.from_pretrained(str(checkpoint), dtype=torch.float32)
    ppl_awq = perplexity(awq, windows)
    tokens = sum(len(w) - 1 for w in windows)
    return QualityReport(ppl_fp, ppl_awq, ppl_rtn, tokens, group, checkpoint_memory(checkpoint, fp_model_dir))
