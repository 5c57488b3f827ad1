"""What a trained draft learns from: chat prompts, and the teacher's greedy answers to them.

Prompts come from a dataset file (`read_prompt_dataset`: any file `bench --dataset`
reads, by the same reader, store.dataset_rows) or, by default, from the built-in text in the
shapes of both built-in workloads, alternately (store.prompt_templates): a documentation
passage of Python's standard library with one of the copy workload's questions, and one of
the open workload's questions about a documented topic, quoting nothing. (Until builtin-v3
only the first shape was trained, and vLLM's acceptance of that draft on the open workload was
under half its held-out figure.) Held-out prompts use other modules than training prompts, so
held-out acceptance is measured on topics never trained on.

The teacher (the recipe's target, fp32, transformers on CPU) answers every prompt greedily
(`new_tokens` tokens, or fewer at its end-of-sequence token); one teacher-forced pass over
prompt + answer then keeps, at every position, the teacher's `TOP_K` most likely next tokens
and their log-probabilities: the soft targets of the distillation and, in their first
column, the teacher's greedy choice that acceptance is measured against. Both splits are
cached in one file keyed by (target hash, dataset hash, the settings that shape them).
"""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path
from typing import Any, Sequence

from ..errors import DatasetError
from ..store.dataset_rows import read_rows
from ..store.prompt_templates import OPEN_QUESTIONS, OPEN_SYSTEM_PROMPT, QUESTIONS, SYSTEM_PROMPT

TOP_K = 16  # teacher log-probs kept per position (the distillation's soft targets)
BATCH = 8   # sequences per teacher pass; the acceptance pass uses the same grouping
BUILTIN_VERSION = "builtin-v3"  # bump when the built-in prompts change (v2: the workload's own questions;
#                                  v3: the open workload's shape too, every other prompt)
Messages = list[dict[str, str]]


def read_prompt_dataset(path: str | os.PathLike) -> list[Messages]:
    """Chat prompts from a dataset file, read by the benchmark's reader (store.dataset_rows:
    JSONL of chat `messages` or `prompt` rows, ShareGPT `conversations`, CSV with a prompt
    column): each row's conversation up to its last user turn (the answer after it, if any,
    is the teacher's to give). A malformed row is a DatasetError naming its line."""
    return [[dict(m) for m in row.messages] for row in read_rows(path).rows]


def dataset_id(dataset: str | None) -> str:
    """The dataset part of a cache key: the file's sha256, or the built-in prompts' version."""
    if dataset is None:
        return BUILTIN_VERSION
    path = Path(dataset).expanduser()
    if not path.is_file():
        raise DatasetError(f"dataset {str(path)!r} not found")
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _heldout_topic(topic: str) -> bool:
    return hashlib.sha256(topic.encode()).digest()[0] % 4 == 1


def _module_of(topic: str, modules: list[str]) -> str:
    """The documented module a topic belongs to (`json.JSONDecoder` -> `json`): held-out prompts
    leave out whole modules, so no class of a held-out module is trained on either."""
    return max((m for m in modules if topic == m or topic.startswith(m + ".")), key=len, default=topic)


def builtin_prompts(n: int, heldout: bool, passage_chars: int, seed: int = 0) -> list[Messages]:
    """`n` prompts, alternately a documentation question (the copy workload's shape) and an open
    question (the open workload's); held-out ones from other modules than training ones."""
    from ..store.passages import SOURCE_MODULES, documentation_passages, documentation_topics

    passages = [p for p in documentation_passages() if _heldout_topic(p[0]) == heldout]
    topics = [t for t in documentation_topics() if _heldout_topic(_module_of(t, SOURCE_MODULES)) == heldout]
    rng = random.Random(f"{seed}-{heldout}")
    out = []
    for i in range(n):
        if i % 2:
            question = rng.choice(OPEN_QUESTIONS).format(topic=topics[rng.randrange(len(topics))])
            out.append([{"role": "system", "content": OPEN_SYSTEM_PROMPT}, {"role": "user", "content": question}])
            continue
        topic, text = passages[rng.randrange(len(passages))]
        start = rng.randrange(max(1, len(text) - passage_chars))
        question = rng.choice(QUESTIONS).format(topic=topic)
        user = f"Documentation:\n{text[start:start + passage_chars]}\n\nQuestion: {question}"
        out.append([{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}])
    return out


def split_prompts(dataset: str | None, train: int, heldout: int, passage_chars: int,
                  seed: int = 0) -> tuple[list[Messages], list[Messages]]:
    """(training prompts, held-out prompts). A dataset is shuffled with `seed`; its held-out
    share is `heldout` rows, or a fifth of a smaller file (at least one row each)."""
    if dataset is None:
        return builtin_prompts(train, False, passage_chars, seed), builtin_prompts(heldout, True, passage_chars, seed)
    rows = read_prompt_dataset(dataset)
    if len(rows) < 2:
        raise DatasetError(f"dataset {dataset}: {len(rows)} row; a draft needs at least 2 (training and held-out)")
    random.Random(seed).shuffle(rows)
    held = max(1, min(heldout, len(rows) // 5))
    return rows[held:held + train], rows[:held]


def encode_prompts(tokenizer: Any, prompts: Sequence[Messages], context_tokens: int) -> list[list[int]]:
    """Chat-template token ids (as vLLM's chat endpoint builds them), cut to the last
    `context_tokens` tokens so training sequences have a bounded length."""
    out = []
    for msgs in prompts:
        ids = tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        out.append(list(ids)[-context_tokens:])
    return out


def train_device() -> str:
    """Where the teacher and the draft run: $JUPYTER_OPTIMIZE_TRAIN_DEVICE, else CUDA when torch
    sees a GPU (the same `prepare` command then trains on a GPU host), else the CPU."""
    import torch

    return os.environ.get("JUPYTER_OPTIMIZE_TRAIN_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")


def padded(seqs: Sequence[Sequence[int]], pad: int = 0, device: Any = "cpu"):
    """Left-padded ids, attention mask and position ids (positions count real tokens only)."""
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, width - len(s):] = torch.tensor(list(s), dtype=torch.long)
        mask[i, width - len(s):] = 1
    return ids.to(device), mask.to(device), (mask.cumsum(1) - 1).clamp(min=0).to(device)


def generate_answers(teacher: Any, contexts: list[list[int]], new_tokens: int, eos: set[int],
                     desc: str, batch: int = BATCH) -> list[list[int]]:
    """The teacher's greedy answers (cut after its first end-of-sequence token), `batch` prompts
    per generate call (larger on a GPU, where one call costs about as much for 8 as for 64)."""
    import torch
    from tqdm.auto import tqdm

    answers = []
    for i in tqdm(range(0, len(contexts), batch), desc=desc, unit="batch", leave=False):
        ids, mask, _ = padded(contexts[i:i + batch], device=teacher.device)
        with torch.no_grad():
            out = teacher.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens,
                                   do_sample=False, pad_token_id=min(eos) if eos else 0)
        for row in out[:, ids.shape[1]:].tolist():
            cut = next((j + 1 for j, t in enumerate(row) if t in eos), len(row))
            answers.append(row[:cut])
    return answers


def forward_batches(model: Any, seqs: list[list[int]]):
    """Yield (index, logits over the sequence's real positions) for each sequence, in groups of
    BATCH: the one batched forward used for the teacher's targets and the draft's guesses."""
    import torch

    for i in range(0, len(seqs), BATCH):
        group = seqs[i:i + BATCH]
        ids, mask, pos = padded(group, device=model.device)
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        for j, s in enumerate(group):
            yield i + j, logits[j, ids.shape[1] - len(s):]


def teacher_targets(teacher: Any, contexts: list[list[int]], answers: list[list[int]]) -> list[dict]:
    """Per prompt: the full ids, where the answer starts, and the teacher's top-K next-token
    ids and log-probs at every position (row p predicts token p + 1)."""
    import torch

    seqs = [c + a for c, a in zip(contexts, answers)]
    out = []
    for i, logits in forward_batches(teacher, seqs):
        top = torch.log_softmax(logits[:-1].float(), -1).topk(TOP_K, -1)
        out.append({"ids": torch.tensor(seqs[i], dtype=torch.int32), "start": len(contexts[i]),
                    "top_ids": top.indices.to("cpu", torch.int32), "top_logprobs": top.values.to("cpu", torch.float16)})
    return out


def teacher_set(target: Path, dataset: str | None, settings: dict, cache_file: Path) -> dict:
    """{"train": [...], "heldout": [...]} teacher samples, from the cache or made now."""
    import torch

    if cache_file.is_file():
        return torch.load(cache_file, weights_only=True)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    context = settings["seq_len"] - settings["new_tokens"]
    train_p, held_p = split_prompts(dataset, settings["prompts"], settings["heldout_prompts"],
                                    passage_chars=context * 3, seed=settings["seed"])
    tok = AutoTokenizer.from_pretrained(str(target))
    teacher = AutoModelForCausalLM.from_pretrained(str(target), dtype=torch.float32).to(train_device()).eval()
    eos = teacher.generation_config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos]) - {None}
    result = {}
    for split, prompts in (("train", train_p), ("heldout", held_p)):
        contexts = encode_prompts(tok, prompts, context)
        answers = generate_answers(teacher, contexts, settings["new_tokens"], eos, f"teacher answers ({split})",
                                   batch=BATCH if teacher.device.type == "cpu" else 8 * BATCH)
        result[split] = teacher_targets(teacher, contexts, answers)
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_name(f".{cache_file.name}.partial-{os.getpid()}")
    torch.save(result, tmp)
    os.replace(tmp, cache_file)
    return result
