"""Small real LoRA adapters for the default model, made offline: one "flavor" per topic.

A flavor is a topic subset of the offline text every host has (the standard library's
documentation, store/passages.py): `concurrency` is asyncio, threading and queue prose,
`numbers` is decimal, fractions and statistics, and so on. Fine-tuning the model on one
subset for a few dozen steps (peft LoRA, rank 8 by default, on q/k/v/o and the MLP of the
last layers) makes an
adapter whose outputs lean to that topic's vocabulary: enough to serve N distinct fine-tuned
flavors of one base model, as the seed's "thousands of fine-tuned flavors" do, and to
measure what multi-LoRA serving costs. They are not meant to be good models.

Training runs in this process on CPU (torch, transformers and peft are imported only here,
late) with a tqdm bar; each adapter takes seconds to a minute on two cores. The caller
(techniques/adapters.py) caches the folder with write-then-rename (store/artifacts.py).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

# flavor -> the stdlib modules whose documentation it is trained on (store.passages names them).
FLAVORS: dict[str, tuple[str, ...]] = {
    "concurrency": ("asyncio.locks", "asyncio.queues", "asyncio.tasks", "threading", "queue",
                    "concurrent.futures._base", "sched"),
    "numbers": ("decimal", "fractions", "numbers", "statistics", "random", "bisect", "heapq"),
    "text": ("string", "textwrap", "difflib", "shlex", "gettext", "pprint"),
    "files": ("pathlib", "shutil", "tempfile", "tarfile", "zipfile", "mailbox"),
    "network": ("http.client", "http.cookiejar", "urllib.parse", "smtplib", "socketserver",
                "ipaddress", "email.message"),
    "time": ("datetime", "calendar", "timeit", "uuid"),
    "types": ("typing", "dataclasses", "enum", "inspect", "functools", "weakref", "itertools"),
    "cli": ("argparse", "optparse", "logging", "warnings", "subprocess", "contextlib"),
}
# What peft's LoRA targets in a Llama decoder (vLLM serves LoRA on each of these).
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
SEQ_TOKENS = 64
BATCH = 2
LEARNING_RATE = 5e-4
# Only the last layers get LoRA weights: backpropagation then stops there, which makes a step
# about 3x cheaper on CPU than adapting all 30 layers (a few seconds on two cores).
LAST_LAYERS = 4
# What else changes a made adapter (part of its cache key).
TRAINING_KEY = {"seq_tokens": SEQ_TOKENS, "batch": BATCH, "last_layers": LAST_LAYERS, "lr": LEARNING_RATE}


def flavor_texts(flavor: str, seq_chars: int = 600) -> list[str]:
    """Training snippets of one flavor: its modules' documentation cut into ~seq_chars pieces,
    in a fixed shuffled order (seed = the flavor's name)."""
    from ..store.passages import documentation_passages

    wanted = set(FLAVORS[flavor])
    texts = [text for topic, text in documentation_passages() if topic in wanted]
    pieces = [t[i:i + seq_chars] for t in texts for i in range(0, len(t) - seq_chars // 2, seq_chars)]
    random.Random(flavor).shuffle(pieces)
    return pieces


def train_adapter(model_path: str | Path, flavor: str, out: Path, *, rank: int = 8, steps: int = 30,
                  base_model_id: str, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Fine-tune a LoRA adapter of `rank` on `flavor` for `steps` steps and save it to `out`
    (peft's adapter_config.json + adapter_model.safetensors). `base_model_id` is written as the
    adapter's base_model_name_or_path, so the recipe check can tell which model it is for.
    Returns the training summary (first and last loss, seconds)."""
    import time

    import torch
    from peft import LoraConfig, get_peft_model
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(str(model_path))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=torch.float32)
    layers = model.config.num_hidden_layers
    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=list(TARGET_MODULES),
                        layers_to_transform=list(range(max(0, layers - LAST_LAYERS), layers)),
                        task_type="CAUSAL_LM")
    model = get_peft_model(model, config)
    texts = flavor_texts(flavor)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LEARNING_RATE)
    model.train()
    losses: list[float] = []
    start = time.monotonic()
    with tqdm(total=steps, desc=f"LoRA {flavor} (r={rank})", unit="step", disable=not progress) as bar:
        for step in range(steps):
            batch = [texts[(step * BATCH + j) % len(texts)] for j in range(BATCH)]
            enc = tok(batch, return_tensors="pt", truncation=True, max_length=SEQ_TOKENS, padding=True)
            labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
            loss = model(**enc, labels=labels).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.2f}")
            bar.update()
    model.peft_config["default"].base_model_name_or_path = base_model_id
    model.save_pretrained(str(out), safe_serialization=True, save_embedding_layers=False)
    summary = {"flavor": flavor, "rank": rank, "steps": steps, "first_loss": losses[0], "last_loss": losses[-1],
               "train_s": time.monotonic() - start, "texts": len(texts)}
    (out / "training.json").write_text(json.dumps(summary, indent=1))
    return summary
