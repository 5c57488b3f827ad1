"""What a trained draft learns from: chat prompts, and the teacher's greedy answers to them.

Prompts come from a dataset file (`read_prompt_dataset`: JSONL rows with OpenAI chat
`messages` or a `prompt` string) or, by default, from the built-in text (documentation
passages of Python's standard library with a question, the shape of the benchmark's
workload; held-out prompts use other modules than training prompts, so held-out acceptance
is measured on topics never trained on).

The teacher (the recipe's target, fp32, transformers on CPU) answers every prompt greedily
(`new_tokens` tokens, or fewer at its end-of-sequence token); one teacher-forced pass over
prompt + answer then keeps, at every position, the teacher's `TOP_K` most likely next tokens
and their log-probabilities: the soft targets of the distillation and, in their first
column, the teacher's greedy choice that acceptance is measured against. Both splits are
cached in one file keyed by (target hash, dataset hash, the settings that shape them).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path
from typing import Any, Sequence

from ..errors import DatasetError

TOP_K = 16  # teacher log-probs kept per position (the distillation's soft targets)
BATCH = 8   # sequences per teacher pass; the acceptance pass uses the same grouping
BUILTIN_VERSION = "builtin-v1"  # bump when the built-in prompts change
SYSTEM_PROMPT = ("You are a helpful assistant. Answer the user's question using the documentation "
                 "they provide. Be thorough and explain step by step.")
QUESTIONS = (
    "Using only the documentation above, explain what `{topic}` is for and how a programmer would use it.",
    "Summarise the documentation above for a new Python developer.",
    "What mistakes might someone make when using `{topic}`, and how can they avoid them?",
    "Write a short tutorial on `{topic}` based on the text above.",
    "What problem does `{topic}` solve according to the passage, and what are its main parts?",
)

Messages = list[dict[str, str]]


def read_prompt_dataset(path: str | os.PathLike) -> list[Messages]:
    """Chat prompts from a JSONL file: each line `{"messages": [{"role", "content"}, ...]}`
    (a final assistant turn is dropped: it is the answer, not the prompt) or
    `{"prompt": "..."}` (one user turn). A malformed line is a DatasetError naming it."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetError(f"dataset {str(path)!r} not found; give a JSONL file with one "
                           f"{{\"messages\": [...]}} or {{\"prompt\": \"...\"}} object per line")
    rows: list[Messages] = []
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if line.strip():
            rows.append(_row_messages(line, n, path))
    if not rows:
        raise DatasetError(f"dataset {path} holds no rows; write one JSON object per line")
    return rows


def _row_messages(line: str, n: int, path: Path) -> Messages:
    where = f"dataset {path.name} line {n}"
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise DatasetError(f"{where} is not JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(row, dict) or not ("messages" in row or "prompt" in row):
        raise DatasetError(f"{where}: expected an object with a 'messages' list or a 'prompt' string")
    if "prompt" in row and "messages" not in row:
        if not isinstance(row["prompt"], str) or not row["prompt"].strip():
            raise DatasetError(f"{where}: 'prompt' must be a non-empty string")
        return [{"role": "user", "content": row["prompt"]}]
    msgs = row["messages"]
    if not isinstance(msgs, list) or not msgs:
        raise DatasetError(f"{where}: 'messages' must be a non-empty list of {{role, content}} objects")
    for i, m in enumerate(msgs):
        if not (isinstance(m, dict) and m.get("role") in ("system", "user", "assistant")
                and isinstance(m.get("content"), str)):
            raise DatasetError(f"{where}: messages[{i}] must be {{\"role\": system|user|assistant, "
                               f"\"content\": string}}")
    if msgs[-1]["role"] == "assistant":
        msgs = msgs[:-1]
    if not msgs or msgs[-1]["role"] != "user":
        raise DatasetError(f"{where}: the prompt must end with a user turn (the model answers it)")
    return [{"role": m["role"], "content": m["content"]} for m in msgs]


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


def builtin_prompts(n: int, heldout: bool, passage_chars: int, seed: int = 0) -> list[Messages]:
    """`n` documentation-question prompts; held-out ones from other modules than training ones."""
    from ..store.passages import documentation_passages

    passages = [p for p in documentation_passages() if _heldout_topic(p[0]) == heldout]
    rng = random.Random(f"{seed}-{heldout}")
    out = []
    for _ in range(n):
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
