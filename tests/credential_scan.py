"""Find AWS credentials in what a run wrote: the exact values a test put in the environment
(and their JSON-escaped forms), plus generic patterns that catch a key of anyone's (an
access key id, an assigned `aws_secret_access_key`, an `x-amz-security-token` header with a
value, a SigV4 `Credential=` scope). Mentions of the names alone (docs, error hints) are no
finding: a pattern needs a value beside it.

    findings = scan_paths([tmp_path], known=[key_id, secret, token])
    assert not findings, describe(findings)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

PATTERNS: dict[str, re.Pattern[str]] = {
    "access key id": re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Z0-9])"),
    "aws_secret_access_key with a value": re.compile(
        r"aws_secret_access_key['\"]?\s*[:=]\s*['\"]?(?!\*)[A-Za-z0-9/+=]{16,}", re.I),
    "aws_session_token with a value": re.compile(
        r"aws_(?:session|security)_token['\"]?\s*[:=]\s*['\"]?(?!\*)[A-Za-z0-9/+=]{16,}", re.I),
    "x-amz-security-token with a value": re.compile(
        r"x-amz-security-token['\"]?\s*[:=]\s*['\"]?(?!\*)[A-Za-z0-9/+=%]{16,}", re.I),
    "SigV4 credential scope": re.compile(r"Credential=[A-Z0-9]{16,}/\d{8}/"),
}
_TOKEN_LIKE = re.compile(r"[A-Za-z0-9/+=%_-]{8,}")


@dataclass(frozen=True)
class Finding:
    where: str
    what: str
    excerpt: str  # the neighbourhood, with the match itself masked (a report must not leak it)

    def __str__(self) -> str:
        return f"{self.where}: {self.what}: ...{self.excerpt}..."


def _forms(value: str) -> set[str]:
    """The value as it may appear in a file: plain, JSON-escaped, and its long tail (a
    truncated dump)."""
    forms = {value, json.dumps(value)[1:-1]}
    if len(value) > 24:
        forms.add(value[-20:])
    return {f for f in forms if f}


def scan_text(text: str, where: str, known: Iterable[str] = ()) -> list[Finding]:
    """Every credential in `text`: the `known` values in any of their forms, then the patterns."""
    hits: list[tuple[int, int, str]] = []
    for i, value in enumerate(v for v in known if v):
        for form in _forms(value):
            for m in re.finditer(re.escape(form), text):
                hits.append((m.start(), m.end(), f"known value #{i + 1}"))
    for name, pattern in PATTERNS.items():
        hits += [(m.start(), m.end(), name) for m in pattern.finditer(text)]
    return [Finding(where, what, _mask(text[max(0, a - 40):a]) + "<MATCH>" + _mask(text[b:b + 40]))
            for a, b, what in sorted(set(hits))]


def _mask(context: str) -> str:
    """Context for a finding with every long token-like run hidden: the neighbours of a
    match in a dumped environment are often other secrets."""
    return _TOKEN_LIKE.sub("<...>", context).replace("\n", " ")


def files_under(paths: Iterable[Path]) -> list[Path]:
    """The files of `paths`, folders walked recursively."""
    out: list[Path] = []
    for p in map(Path, paths):
        out += sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p] if p.is_file() else []
    return out


def scan_paths(paths: Iterable[Path], known: Iterable[str] = ()) -> list[Finding]:
    """Scan every file under `paths` (binary files too: read as Latin-1, so bytes map 1:1)."""
    known = list(known)
    findings: list[Finding] = []
    for f in files_under(paths):
        findings += scan_text(f.read_bytes().decode("latin-1"), str(f), known)
    return findings


def describe(findings: list[Finding]) -> str:
    return f"{len(findings)} credential finding(s):\n" + "\n".join(map(str, findings[:20]))


__all__ = ["PATTERNS", "Finding", "scan_text", "scan_paths", "files_under", "describe"]
