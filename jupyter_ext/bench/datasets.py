"""A user's own prompts from a file, in the formats people already have.

One row is one request:
  * JSONL of OpenAI chat rows, `{"messages": [{"role": "user", "content": "..."}, ...]}`: the
    prompt is the conversation up to its last user turn; an assistant turn after it is the
    row's expected output;
  * JSONL with a `prompt` field, optionally `completion` or `response` (the expected output);
  * ShareGPT-style JSON (an array) or JSONL, `{"conversations": [{"from": "human", "value":
    "..."}, {"from": "gpt", ...}]}`: the prompt is the conversation up to its last human turn;
  * CSV (or TSV) with a header and a prompt column: `prompt`, `question`, `input` or `text`,
    or the one `column` names; optional `completion`/`response` and `max_tokens` columns.
A row's `max_tokens` is its output length; else its expected output's length in tokens
(4 characters a token without a tokenizer); else the benchmark's `--max-tokens`. These are
the formats SageMaker's managed draft training reads too, so one file serves both.

The whole file is read and every row checked when the benchmark's spec is built, before any
server starts: a malformed row is a DatasetError naming the file, the line (for CSV the row
and its line) and what is wrong. `sample` rows are drawn with `seed`; the result records the
file's name, path as given, sha256, row counts and length statistics. The file is read by
`store.dataset_rows`, the reader draft training uses too.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import DatasetError
from ..store.dataset_rows import Row, read_rows
from .metrics import Percentiles
from .workload import Prompt, Workload, tokenizer_counter

EXAMPLE_DATASET = Path(__file__).resolve().parents[1] / "data" / "datasets" / "chat.jsonl"  # 3 chat rows, shipped


@dataclass(frozen=True)
class Dataset:
    """A checked dataset file and the rows a benchmark may use: all in file order, or
    `sample` of them drawn with `seed` (in the order drawn, so any first few are a random pick)."""

    path: str
    format: str
    sha256: str
    rows: tuple[Row, ...]
    used: tuple[Row, ...]
    sample: int | None = None
    seed: int = 0

    @property
    def name(self) -> str:
        return Path(self.path).stem

    def workload(self, max_tokens: int, tokenizer_path: str | Path | None = None,
                 limit: int | None = None) -> Workload:
        """The rows used (the first `limit` of `used`, where a level sends fewer requests) as a
        Workload, each asking for its own output length (its `max_tokens`, else its expected
        output's length, else `max_tokens`); the summary records this dataset with
        prompt/output length statistics of those rows."""
        count = tokenizer_counter(tokenizer_path)
        rows = self.used[:limit]
        prompts = []
        for i, row in enumerate(rows):
            user = next(m["content"] for m in reversed(row.messages) if m["role"] == "user")
            size = count(_prompt_text(row)) if count else len(_prompt_text(row)) // 4
            prompts.append(Prompt(i, "", user, self.name, size, chat=list(row.messages), raw=row.raw,
                                  max_tokens=_output_tokens(row, count)))
        w = Workload(prompts, max_tokens, {"kind": "dataset", "source": f"dataset {self.name}",
                                           "token_counts": "model tokenizer" if count else "estimated (4 chars/token)"})
        w.description["dataset"] = self.summary(rows, w, count)
        return w

    def summary(self, rows: tuple[Row, ...], workload: Workload,
                count: Callable[[str], int] | None) -> dict[str, Any]:
        """What the result records: the file (name, path as given, format, sha256), how many
        rows it has and how many were used, and length statistics of the used rows' prompts
        and expected outputs (in tokens with a tokenizer, else characters: `length_unit`)
        and of the new tokens each asks for."""
        def stats(values: list[int]) -> dict[str, float]:
            p = Percentiles.of(values)
            return {"mean": p.mean, "p50": p.p50, "p90": p.p90, "max": p.max}

        expected = [_length(r.expected, count) for r in rows if r.expected is not None]
        return {"name": self.name, "path": self.path, "format": self.format, "sha256": self.sha256,
                "rows": len(self.rows), "rows_used": len(rows), "sample": self.sample, "seed": self.seed,
                "length_unit": "tokens" if count else "characters",
                "prompt_length": stats([_length(_prompt_text(r), count) for r in rows]),
                "expected_output_length": stats(expected) if expected else None,
                "max_tokens": stats([workload.tokens_for(p) for p in workload.prompts])}


def _prompt_text(row: Row) -> str:
    """What a row's prompt length is measured on: its text, or its turns' contents joined
    (the chat template's tokens are not counted)."""
    return row.raw if row.raw is not None else "\n".join(m["content"] for m in row.messages)


def _length(text: str, count: Callable[[str], int] | None) -> int:
    return count(text) if count else len(text)


def _output_tokens(row: Row, count: Callable[[str], int] | None) -> int | None:
    if row.max_tokens is not None:
        return row.max_tokens
    if row.expected is None:
        return None
    return max(1, count(row.expected) if count else -(-len(row.expected) // 4))

def load_dataset(path: str | Path, *, column: str | None = None, sample: int | None = None,
                 seed: int = 0) -> Dataset:
    """Read and check every row of `path` (store.dataset_rows); a DatasetError names the file,
    the line and what is wrong. `sample` rows are drawn with `seed`."""
    f = read_rows(path, column=column)
    return Dataset(f.path, f.format, f.sha256, f.rows, _sample(list(f.rows), sample, seed, f.path), sample, seed)


def _sample(rows: list[Row], n: int | None, seed: int, where: str) -> tuple[Row, ...]:
    if n is None:
        return tuple(rows)
    if n < 1:
        raise DatasetError(f"--dataset-sample must be >= 1 row (got {n})")
    if n > len(rows):
        raise DatasetError(f"dataset {where!r} has {len(rows)} rows; --dataset-sample {n} asks for more "
                           f"(sampling is without replacement)")
    return tuple(rows[i] for i in random.Random(seed).sample(range(len(rows)), n))
