"""The rows of a user's dataset file, read and checked: the one reader that benchmarks
(`bench.datasets`) and draft training (`techniques.draft_data`) share, so one file serves
both and a malformed row gets the same error in both.

Formats: JSONL of OpenAI chat `messages` rows, JSONL with a `prompt` field (optionally
`completion`/`response`), ShareGPT-style JSON or JSONL (`conversations`), and CSV/TSV with a
header and a prompt column (`prompt`, `question`, `input`, `text`, or the one `column`
names; optional `completion`/`response` and `max_tokens` columns). A row's prompt is the
conversation up to its last user turn; an assistant turn right after it is its expected
output. A malformed row is a DatasetError naming the file, the line (for CSV the row and its
line) and what is wrong; an empty or unreadable file is one too.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import DatasetError

PROMPT_COLUMNS = ("prompt", "question", "input", "text")
EXPECTED_FIELDS = ("completion", "response")
ROLES = ("system", "developer", "user", "assistant", "tool")
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "chatgpt": "assistant", "system": "system"}
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv"}

@dataclass(frozen=True)
class Row:
    """One checked request: its prompt conversation, its completions-API text (rows that
    had a plain prompt), and its expected output or output length where the file gave one."""

    line: int
    messages: tuple[dict, ...]
    raw: str | None = None
    expected: str | None = None
    max_tokens: int | None = None


class RowError(Exception):
    """What is wrong with one row; `read_rows` adds the file and the line."""


@dataclass(frozen=True)
class RowFile:
    """A dataset file read and checked: its path as given, format, sha256 and rows in file order."""

    path: str
    format: str
    sha256: str
    rows: tuple[Row, ...]


def read_rows(path: str | Path, *, column: str | None = None) -> RowFile:
    """Read and check every row of `path`; a DatasetError names the file, the line and what is wrong."""
    where = str(path)
    p = Path(path).expanduser()
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"dataset {where!r} not found; give the path of a .jsonl, .json or .csv file") from None
    except IsADirectoryError:
        raise DatasetError(f"dataset {where!r} is a directory; give the path of a .jsonl, .json or .csv file") from None
    except OSError as e:
        raise DatasetError(f"dataset {where!r} cannot be read ({e.strerror or e})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DatasetError(f"dataset {where!r}, line {line}: not UTF-8 text ({e.reason}); save the file as UTF-8") from None
    if not text.strip():
        raise DatasetError(f"dataset {where!r} is empty: it needs at least one row")
    fmt = _format(p, text)
    if column is not None and fmt not in ("csv", "tsv"):
        raise DatasetError(f"a dataset column ({column!r}) names a CSV column, but {where!r} is {fmt.upper()}")
    # Each source yields (where in the file, a call that makes the checked Row).
    if fmt in ("csv", "tsv"):
        items: Iterator[tuple[Any, Callable[[], Row]]] = _table_rows(text, fmt, column, where)
    else:
        items = ((line, partial(_row, obj, line)) for line, obj in _json_rows(text, fmt, where))
    rows = []
    for at, make in items:
        try:
            rows.append(make())
        except RowError as e:
            raise DatasetError(f"dataset {where!r}, {_at(at)}: {e}") from None
    if not rows:
        raise DatasetError(f"dataset {where!r} has no rows (only a header or blank lines)")
    return RowFile(where, fmt, hashlib.sha256(data).hexdigest(), tuple(rows))

def _at(at: int | tuple[int, int]) -> str:
    """`line N` (JSON), or `row N (line L)` (CSV: the row counts records, not lines)."""
    return f"row {at[0]} (line {at[1]})" if isinstance(at, tuple) else f"line {at}"

def _format(p: Path, text: str) -> str:
    fmt = FORMATS.get(p.suffix.lower())
    first = text.lstrip()[:1]
    if fmt == "json" and first == "{":
        return "jsonl"  # JSON Lines saved as .json
    if fmt is None:
        fmt = {"[": "json", "{": "jsonl"}.get(first)
        if fmt is None:
            raise DatasetError(f"dataset {str(p)!r}: unknown format; name it .jsonl (one JSON row a line), "
                               f".json (a JSON array, e.g. ShareGPT) or .csv (a header with a prompt column)")
    return fmt


# -- JSON rows ---------------------------------------------------------------------------
def _json_rows(text: str, fmt: str, where: str) -> Iterator[tuple[int, Any]]:
    if fmt == "json":
        yield from _json_array(text, where)
        return
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield n, json.loads(line)
        except json.JSONDecodeError as e:
            raise DatasetError(f"dataset {where!r}, line {n}: not valid JSON ({e.msg} at column {e.colno}); "
                               f"JSONL needs one JSON object a line") from None


def _json_array(text: str, where: str) -> Iterator[tuple[int, Any]]:
    """The elements of a top-level JSON array, each with the line it starts on."""
    dec, i, line, last = json.JSONDecoder(), 0, 1, 0

    def skip(j: int) -> int:
        while j < len(text) and text[j] in " \t\r\n":
            j += 1
        return j

    def bad(msg: str, at: int) -> DatasetError:
        return DatasetError(f"dataset {where!r}, line {text.count(chr(10), 0, at) + 1}: {msg}")

    i = skip(i)
    if text[i:i + 1] != "[":
        raise bad("a .json dataset must be a JSON array of rows (or JSON Lines)", i)
    i = skip(i + 1)
    if text[i:i + 1] == "]":
        i += 1
    else:
        while True:
            line += text.count("\n", last, i)
            last = i
            try:
                obj, i = dec.raw_decode(text, i)
            except json.JSONDecodeError as e:
                raise DatasetError(f"dataset {where!r}, line {e.lineno}: not valid JSON ({e.msg})") from None
            yield line, obj
            i = skip(i)
            if text[i:i + 1] == ",":
                i = skip(i + 1)
            elif text[i:i + 1] == "]":
                i += 1
                break
            else:
                raise bad("expected ',' or ']' after a row of the JSON array", i)
    if skip(i) != len(text):
        raise bad("unexpected text after the JSON array", skip(i))


def _row(obj: Any, line: int) -> Row:
    if not isinstance(obj, dict):
        raise RowError(f"a row must be a JSON object (got {type(obj).__name__})")
    mt = _max_tokens(obj.get("max_tokens"))
    if "messages" in obj:
        msgs, expected = _conversation(obj["messages"], "messages", _chat_turn)
        return Row(line, msgs, None, expected, mt)
    if "conversations" in obj:
        msgs, expected = _conversation(obj["conversations"], "conversations", _sharegpt_turn)
        return Row(line, msgs, None, expected, mt)
    if "prompt" in obj:
        return _prompt_row(line, obj["prompt"], "'prompt'", _expected(obj), mt)
    raise RowError(f"no 'messages', 'conversations' or 'prompt' field (the row has {sorted(obj) or 'no fields'})")


def _prompt_row(line: int, prompt: Any, name: str, expected: str | None, mt: int | None) -> Row:
    if not isinstance(prompt, str) or not prompt.strip():
        raise RowError(f"{name} must be a non-empty string (got {_shown(prompt)})")
    return Row(line, ({"role": "user", "content": prompt},), prompt, expected, mt)


def _expected(obj: dict) -> str | None:
    for key in EXPECTED_FIELDS:
        if obj.get(key) is not None:
            if not isinstance(obj[key], str):
                raise RowError(f"'{key}' (the expected output) must be a string (got {_shown(obj[key])})")
            return obj[key]
    return None


def _max_tokens(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RowError(f"'max_tokens' must be a whole number >= 1 (got {_shown(value)})")
    return value


def _shown(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {json.dumps(value)[:40]}"


def _chat_turn(turn: dict, n: int) -> dict:
    role, content = turn.get("role"), turn.get("content")
    if role not in ROLES:
        raise RowError(f"messages[{n}] has role {_shown(role)}; expected one of {', '.join(ROLES)}")
    if isinstance(content, list):  # OpenAI content parts: only text is benchmarked
        if not all(isinstance(c, dict) and c.get("type") == "text" and isinstance(c.get("text"), str) for c in content):
            raise RowError(f"messages[{n}].content has a part that is not text; only text content can be benchmarked")
        content = "".join(c["text"] for c in content)
    if content is None and role in ("assistant", "tool"):
        content = ""
    if not isinstance(content, str):
        raise RowError(f"messages[{n}].content must be a string (got {_shown(content)})")
    return {"role": role, "content": content}


def _sharegpt_turn(turn: dict, n: int) -> dict:
    who, value = turn.get("from"), turn.get("value")
    if who not in SHAREGPT_ROLES:
        raise RowError(f"conversations[{n}] has 'from' {_shown(who)}; expected human, gpt or system")
    if not isinstance(value, str):
        raise RowError(f"conversations[{n}].value must be a string (got {_shown(value)})")
    return {"role": SHAREGPT_ROLES[who], "content": value}


def _conversation(turns: Any, name: str, turn: Callable[[dict, int], dict]) -> tuple[tuple[dict, ...], str | None]:
    """The prompt (turns up to the last user turn) and the expected output (the assistant
    turn right after it, if any)."""
    if not isinstance(turns, list) or not turns:
        raise RowError(f"'{name}' must be a non-empty list of turns (got {_shown(turns)})")
    msgs = []
    for n, t in enumerate(turns):
        if not isinstance(t, dict):
            raise RowError(f"{name}[{n}] must be an object (got {_shown(t)})")
        msgs.append(turn(t, n))
    last = max((i for i, m in enumerate(msgs) if m["role"] == "user"), default=None)
    if last is None:
        who = "human" if name == "conversations" else "user"
        raise RowError(f"'{name}' has no {who} turn: there is nothing to send")
    if not msgs[last]["content"].strip():
        raise RowError(f"{name}[{last}], the last {('human' if name == 'conversations' else 'user')} turn, is empty")
    after = msgs[last + 1:last + 2]
    return tuple(msgs[:last + 1]), (after[0]["content"] if after and after[0]["role"] == "assistant" else None)


# -- CSV rows ----------------------------------------------------------------------------
def _table_rows(text: str, fmt: str, column: str | None,
                where: str) -> Iterator[tuple[tuple[int, int], Callable[[], Row]]]:
    """Each record's (row number, first line) and a call making its Row. A header without a
    prompt column is refused at once; a record's own mistake when its Row is made."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if fmt == "tsv" else ",")
    try:
        header = [h.strip() for h in next(reader)]
    except csv.Error as e:
        raise DatasetError(f"dataset {where!r}, line 1: not a readable {fmt.upper()} header ({e})") from None
    names = {h.lower(): i for i, h in reversed(list(enumerate(header)))}
    if column is not None:
        if column.lower() not in names:
            raise DatasetError(f"dataset {where!r} has no column {column!r} (its columns: {', '.join(header)})")
        prompt_at = names[column.lower()]
    else:
        prompt_at = next((names[c] for c in PROMPT_COLUMNS if c in names), None)
        if prompt_at is None:
            raise DatasetError(f"dataset {where!r} has no prompt column (its columns: {', '.join(header)}); name one "
                               f"{', '.join(PROMPT_COLUMNS)}, or give it with --dataset-column")
    expected_at = next((names[c] for c in EXPECTED_FIELDS if c in names), None)
    tokens_at = names.get("max_tokens")
    n = 0
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise DatasetError(f"dataset {where!r}, row {n + 1} (line {start}): not readable {fmt.upper()} ({e})") from None
        if not any(c.strip() for c in cells):
            continue
        n += 1

        def make(cells: list[str] = cells, start: int = start) -> Row:
            if len(cells) != len(header):
                raise RowError(f"has {len(cells)} fields; the header has {len(header)}")
            expected = cells[expected_at] if expected_at is not None and cells[expected_at] != "" else None
            mt = _max_tokens(cells[tokens_at] or None) if tokens_at is not None else None
            return _prompt_row(start, cells[prompt_at], f"column {header[prompt_at]!r}", expected, mt)

        yield (n, start), make
