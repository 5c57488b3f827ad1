"""Config-only model folders for speed runs of catalog models without their weights.

vLLM's `--load-format dummy` fills a model of the real shape with random weights, so a
user can measure how fast a Llama 3 8B or Mistral 7B shape runs on their GPU before
getting (or being allowed) the weights. The folder holds the catalog's architecture as
config.json and a synthetic word-level tokenizer of the real vocabulary size: every
whitespace-separated word is one token, so prompt lengths stay exact and the streaming
path is the same as with real weights. Quality is meaningless here and results say so.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from ..base.files import folder_lock
from .model_files import cache_root, is_complete, COMPLETE_MARKER

DUMMY_NOTE = ("dummy weights: random values in the real architecture; speed only, output quality was NOT "
              "measured and the text is meaningless")
log = logging.getLogger(__name__)
CHAT_TEMPLATE = "{% for m in messages %}{{ m['content'] }} {% endfor %}"


def _word_level_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    vocab.update({f"w{i}": i for i in range(3, vocab_size)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return tok


def dummy_model_folder(model_id: str, dest_root: Path | None = None) -> Path:
    """`<cache>/dummy/<model_id>/`: config.json + tokenizer for `--load-format dummy`."""
    from ..catalog import get_model

    spec = get_model(model_id)
    final = (dest_root or cache_root()) / "dummy" / spec.id
    if is_complete(final):
        return final
    with folder_lock(final):
        if not is_complete(final):  # else another process wrote it while we waited
            log.info("writing the config-only folder of %s for dummy weights: %s", spec.id, final)
            _write_folder(spec, final)
    return final


def _write_folder(spec: Any, final: Path) -> None:
    """Write the folder under a temporary name and rename it (with `folder_lock(final)` held)."""
    tmp = final.with_name(f".{final.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        config = {**spec.to_hf_config(), "bos_token_id": 1, "eos_token_id": 2}
        (tmp / "config.json").write_text(json.dumps(config, indent=1))
        _word_level_tokenizer(config["vocab_size"]).save(str(tmp / "tokenizer.json"))
        (tmp / "tokenizer_config.json").write_text(json.dumps({
            "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
            "unk_token": "<unk>", "model_max_length": config["max_position_embeddings"],
            "chat_template": CHAT_TEMPLATE}, indent=1))
        (tmp / COMPLETE_MARKER).write_text(json.dumps({"model": spec.id, "note": DUMMY_NOTE}))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
