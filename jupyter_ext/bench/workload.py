"""The built-in prompt sets: `copy` (question answering over a quoted passage, shaped like the
seed benchmark's) and `open` (open questions with no passage to quote).

The seed used prompts of 500-1000 tokens (mean 622) and 250 new tokens. We build the same
shape from real English text that every machine has offline: the documentation strings of
Python's standard library. Each prompt is a passage of documentation followed by a
question about it. Prompt lengths follow 500 + Exp(mean 125) tokens clipped at 1000 (mean
about 622), counted with the served model's tokenizer when it is available, else estimated
at 4 characters per token. `input_scale` and `max_tokens` shrink the workload for CI.

The copy workload is the best case for n-gram prompt lookup: answers repeat the passage. The
open workload names the same topics but quotes nothing ("Explain in your own words ..."), so
what speculation gains there is what it gains on open chat. `open_workload_messages` hands
the open prompts, as chat messages, to draft training. A user's own file is `bench.datasets`.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

from ..errors import BenchError
from ..store.passages import documentation_passages, documentation_topics
from ..store.prompt_templates import OPEN_QUESTIONS, OPEN_SYSTEM_PROMPT, QUESTIONS, SYSTEM_PROMPT


SEED_SHAPE = {"input_min": 500, "input_max": 1000, "input_mean": 622, "max_tokens": 250}


KINDS = ("copy", "open")  # the built-in workloads (`--workload`)


@dataclass
class Prompt:
    """One request's prompt. Built-in prompts are a system and a user turn; a dataset row
    keeps its whole conversation (`chat`), its completions-API text (`raw`) and its own
    output length (`max_tokens`), each None where it does not apply."""

    index: int
    system: str
    user: str
    topic: str
    target_input_tokens: int
    chat: list[dict] | None = None
    raw: str | None = None
    max_tokens: int | None = None
    model: str | None = None  # the served model (a LoRA adapter's name) this prompt is sent to; None: the endpoint's

    def messages(self) -> list[dict]:
        if self.chat is not None:
            return [dict(m) for m in self.chat]
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user}]

    def text(self) -> str:
        """Single-string form for the completions API."""
        if self.raw is not None:
            return self.raw
        if self.chat is not None:
            return "".join(f"{m['role']}: {m['content']}\n\n" for m in self.chat) + "assistant:"
        return f"{self.system}\n\n{self.user}\n\nAnswer:"


@dataclass
class Turn:
    """A later turn of a conversation: the earlier turns (user prompts and the assistant's
    actual replies) then the new question. Sent like a Prompt (`messages()` / `text()`)."""

    index: int
    system: str
    history: list[dict]
    user: str
    model: str | None = None  # the conversation's adapter (its first prompt's model)

    def messages(self) -> list[dict]:
        return [{"role": "system", "content": self.system}, *self.history, {"role": "user", "content": self.user}]

    def text(self) -> str:
        said = "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in self.history)
        return f"{self.system}\n\n{said}\n\nUser: {self.user}\n\nAnswer:"


@dataclass
class Workload:
    """A list of prompts plus how they were made (recorded with every result). In a
    multi-turn workload `followups[i]` are the later questions of the conversation that
    prompt i opens (short questions about the same passage)."""

    prompts: list[Prompt]
    max_tokens: int
    description: dict = field(default_factory=dict)
    followups: list[list[str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.prompts)

    def tokens_for(self, prompt: Prompt) -> int:
        """New tokens to ask for: the prompt's own length (a dataset row's), else the workload's."""
        return prompt.max_tokens or self.max_tokens

    def fingerprint(self) -> str:
        # Fields a prompt does not use (None: no dataset row, no adapter) are left out, so a
        # built-in workload keeps the fingerprint it had before datasets and adapters added them.
        rows = [{k: v for k, v in asdict(p).items() if v is not None} for p in self.prompts]
        h = hashlib.sha256(json.dumps(rows, sort_keys=True).encode())
        return h.hexdigest()[:16]

    def summary(self) -> dict:
        t = [p.target_input_tokens for p in self.prompts]
        return {**self.description, "num_prompts": len(t), "max_tokens": self.max_tokens,
                "target_input_tokens_mean": sum(t) / len(t) if t else 0,
                "target_input_tokens_min": min(t, default=0), "target_input_tokens_max": max(t, default=0),
                "fingerprint": self.fingerprint()}



def seed_lengths(n: int, rng: random.Random, scale: float = 1.0) -> list[int]:
    """Prompt lengths: 500 + Exp(mean 125) clipped to [500, 1000] (mean ~622), times `scale`."""
    lo, hi = SEED_SHAPE["input_min"], SEED_SHAPE["input_max"]
    return [max(8, int(round(min(hi, lo + rng.expovariate(1 / 125.0)) * scale))) for _ in range(n)]


def _truncate(text: str, tokens: int, count: Callable[[str], int] | None) -> str:
    """Cut `text` to about `tokens` tokens (binary search on characters when a tokenizer exists)."""
    if count is None:
        return text[: tokens * 4]
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(text[:mid]) <= tokens:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo]


def tokenizer_counter(model_path: str | Path | None) -> Callable[[str], int] | None:
    """A token counter from the model folder's tokenizer.json (the `tokenizers` library is
    fast to import), or None when there is no local tokenizer."""
    if model_path is None or not (Path(model_path) / "tokenizer.json").is_file():
        return None
    try:
        from tokenizers import Tokenizer
    except ImportError:
        return None
    tok = Tokenizer.from_file(str(Path(model_path) / "tokenizer.json"))
    return lambda s: len(tok.encode(s, add_special_tokens=False).ids)


def shared_prefix_text(tokens: int, seed: int, count: Callable[[str], int] | None) -> str:
    """About `tokens` tokens of documentation, the same for every prompt of a workload."""
    rng = random.Random(f"shared-prefix-{seed}")
    passages = documentation_passages()
    text = ""
    while len(text) < tokens * 6:
        text += passages[rng.randrange(len(passages))][1] + "\n\n"
    return "Reference material:\n" + _truncate(text, max(1, tokens - 4), count) + "\n\n"


def add_followups(workload: Workload, turns: int, seed: int = 0) -> Workload:
    """Make `workload` multi-turn: each prompt opens a conversation of `turns` requests whose
    later questions ask about the same topic (drawn with `seed`), as the workload asks: about
    the quoted passage (copy) or open ones (open)."""
    rng = random.Random(f"followups-{seed}")
    questions = OPEN_QUESTIONS if workload.description.get("kind") == "open" else QUESTIONS
    workload.followups = [[rng.choice(questions).format(topic=p.topic) for _ in range(turns - 1)]
                          for p in workload.prompts]
    workload.description.update(shape_turns=turns)
    return workload


def build_workload(num_prompts: int = 32, max_tokens: int = 250, input_scale: float = 1.0,
                   seed: int = 0, tokenizer_path: str | Path | None = None, shared_prefix: int = 0) -> Workload:
    """Seed-shaped QA prompts. The question and system prompt are counted in the target length;
    a `shared_prefix` of that many tokens starts every system prompt (and adds to it)."""
    if num_prompts < 1:
        raise BenchError(f"number of prompts must be >= 1 (got {num_prompts})")
    if max_tokens < 1:
        raise BenchError(f"max_tokens must be >= 1 (got {max_tokens})")
    if not 0 < input_scale <= 4:
        raise BenchError(f"input_scale must be in (0, 4] (got {input_scale}); 1.0 is the seed's shape")
    rng = random.Random(seed)
    count = tokenizer_counter(tokenizer_path)
    passages = documentation_passages()
    system = SYSTEM_PROMPT if not shared_prefix else shared_prefix_text(shared_prefix, seed, count) + SYSTEM_PROMPT
    prompts = []
    for i, target in enumerate(seed_lengths(num_prompts, rng, input_scale)):
        topic, text = passages[rng.randrange(len(passages))]
        start = rng.randrange(max(1, len(text) // 3))
        body = text[start:]
        while len(body) < target * 6:  # enough raw text to cut from
            body += "\n\n" + passages[rng.randrange(len(passages))][1]
        question = rng.choice(QUESTIONS).format(topic=topic)
        overhead = (count(SYSTEM_PROMPT + question) if count else len(SYSTEM_PROMPT + question) // 4) + 8
        passage = _truncate(body, max(4, target - overhead), count)
        user = f"Documentation:\n{passage}\n\nQuestion: {question}"
        prompts.append(Prompt(i, system, user, topic, target + shared_prefix))
    desc = {"kind": "copy", "source": "Python standard library docstrings", "shape": "seed (OpenOrca-style QA)",
            "input_scale": input_scale, "seed": seed, "token_counts": "model tokenizer" if count else "estimated (4 chars/token)"}
    if shared_prefix:
        desc["shared_prefix_tokens"] = shared_prefix
    return Workload(prompts, max_tokens, desc)


def _open_questions(seed: int) -> list[tuple[str, str]]:
    """Every (topic, question) pair of the open workload, shuffled with `seed`."""
    pairs = [(topic, q.format(topic=topic)) for topic in documentation_topics() for q in OPEN_QUESTIONS]
    random.Random(seed).shuffle(pairs)
    return pairs


def open_workload_messages(n: int | None = None, seed: int = 0) -> list[list[dict]]:
    """The open workload's prompts as chat messages (system + user), for draft training: all
    of them (about 2,600) or the first `n`. A benchmark of the open workload with `seed` sends
    the first prompts of this list, so train on `open_workload_messages(seed=s)[k:]` to keep
    the first `k` (the benchmark's) held out."""
    pairs = _open_questions(seed)[:n]
    return [[{"role": "system", "content": OPEN_SYSTEM_PROMPT}, {"role": "user", "content": q}] for _t, q in pairs]


def build_open_workload(num_prompts: int = 32, max_tokens: int = 250, seed: int = 0,
                        tokenizer_path: str | Path | None = None, shared_prefix: int = 0) -> Workload:
    """Open questions that name a documented topic and quote no text: nothing for prompt
    lookup to copy. Prompts are short (tens of tokens); the output is what is measured. A
    `shared_prefix` of that many tokens starts every system prompt (and adds to it)."""
    if num_prompts < 1:
        raise BenchError(f"number of prompts must be >= 1 (got {num_prompts})")
    if max_tokens < 1:
        raise BenchError(f"max_tokens must be >= 1 (got {max_tokens})")
    count = tokenizer_counter(tokenizer_path)
    pairs = _open_questions(seed)
    prefix = shared_prefix_text(shared_prefix, seed, count) if shared_prefix else ""
    prompts = []
    for i in range(num_prompts):
        topic, question = pairs[i % len(pairs)]
        size = count(OPEN_SYSTEM_PROMPT + question) if count else len(OPEN_SYSTEM_PROMPT + question) // 4
        prompts.append(Prompt(i, prefix + OPEN_SYSTEM_PROMPT, question, topic, size + shared_prefix))
    desc = {"kind": "open", "source": "topics of Python standard library docstrings (no passage quoted)",
            "shape": "open questions", "seed": seed,
            "token_counts": "model tokenizer" if count else "estimated (4 chars/token)"}
    if shared_prefix:
        desc["shared_prefix_tokens"] = shared_prefix
    return Workload(prompts, max_tokens, desc)


def parse_adapter_skew(text: str) -> float | None:
    """'uniform' -> None; 'zipf:1.1' -> 1.1 (the Zipf exponent s > 0); else a BenchError."""
    text = str(text).strip().lower()
    if text == "uniform":
        return None
    kind, _, value = text.partition(":")
    try:
        s = float(value)
    except ValueError:
        s = -1.0
    if kind != "zipf" or not s > 0:
        raise BenchError(f"adapter skew {text!r}: use uniform, or zipf:S with S > 0 (zipf:1.1 is typical of "
                         f"real traffic: the k-th most used adapter gets 1/k^S of the requests)")
    return s


def adapter_weights(n: int, skew: str) -> list[float]:
    """Share of the requests each of n adapters gets: equal, or Zipf's 1/k^s normalised."""
    s = parse_adapter_skew(skew)
    raw = [1.0] * n if s is None else [1.0 / (k ** s) for k in range(1, n + 1)]
    total = sum(raw)
    return [w / total for w in raw]


def assign_adapters(workload: Workload, names: list[str], skew: str = "uniform", seed: int = 0) -> Workload:
    """The workload with each prompt sent to one of `names`: in turn for 'uniform' (exactly
    equal traffic), else drawn with `adapter_weights` reproducibly from `seed`, so requests
    spread over the adapters as skewed real traffic does."""
    rng = random.Random(f"adapters-{seed}")
    weights = adapter_weights(len(names), skew)
    n = len(workload.prompts)
    picks = ([names[i % len(names)] for i in range(n)] if parse_adapter_skew(skew) is None
             else rng.choices(names, weights=weights, k=n))
    prompts = [replace(p, model=name) for p, name in zip(workload.prompts, picks)]
    description = {**workload.description, "adapters": list(names), "adapter_skew": skew,
                   "adapter_shares": dict(zip(names, (round(w, 4) for w in weights)))}
    return Workload(prompts, workload.max_tokens, description, workload.followups)
