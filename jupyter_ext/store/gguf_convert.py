"""Child-process entry: dequantize a GGUF file into a Hugging Face model folder.

Usage: python -m jupyter_ext.store.gguf_convert MODEL.gguf OUT_DIR
Run by `model_files.gguf_to_hf_folder`, which owns caching and the atomic rename.
"""

from __future__ import annotations

import sys
from pathlib import Path


def convert(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # Loading dequantized the GGUF weights; the GGUF quantizer would refuse save_pretrained.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    tok.save_pretrained(str(out))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m jupyter_ext.store.gguf_convert MODEL.gguf OUT_DIR")
    convert(Path(sys.argv[1]), Path(sys.argv[2]))
