"""Offline English text every host has: the documentation strings of Python's standard library.

The benchmark's prompts and the AWQ calibration set are both built from these passages, so
neither needs a dataset download.
"""

from __future__ import annotations

import importlib
import inspect
import re

from ..errors import BenchError

# Modules with long, well-written prose docstrings; order matters for reproducibility.
SOURCE_MODULES = [
    "argparse", "asyncio.locks", "asyncio.queues", "asyncio.tasks", "bisect", "calendar",
    "collections", "concurrent.futures._base", "contextlib", "csv", "dataclasses", "datetime",
    "decimal", "difflib", "email.message", "enum", "fractions", "functools", "gettext", "heapq",
    "http.client", "http.cookiejar", "inspect", "ipaddress", "itertools", "json", "logging",
    "mailbox", "numbers", "optparse", "pathlib", "pickle", "pprint", "queue", "random", "sched",
    "shlex", "shutil", "smtplib", "socketserver", "statistics", "string", "subprocess", "tarfile",
    "tempfile", "textwrap", "threading", "timeit", "typing", "unittest.case", "urllib.parse",
    "uuid", "warnings", "weakref", "zipfile",
]


def _clean(doc: str) -> str:
    lines = [ln for ln in doc.splitlines() if not ln.lstrip().startswith((">>>", "..."))]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _module_parts(name: str) -> list[tuple[str | None, str]] | None:
    """(attribute, cleaned docstring) of a module (attribute None) and of its public
    classes/functions, or None when the module cannot be imported here."""
    try:
        mod = importlib.import_module(name)
    except ImportError:
        return None
    parts: list[tuple[str | None, str]] = []
    doc = inspect.getdoc(mod)
    if doc:
        parts.append((None, _clean(doc)))
    for attr in sorted(getattr(mod, "__all__", None) or dir(mod)):
        if attr.startswith("_"):
            continue
        obj = getattr(mod, attr, None)
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and getattr(obj, "__module__", "") == mod.__name__:
            d = inspect.getdoc(obj)
            if d and len(d) > 80:
                parts.append((attr, _clean(d)))
    return parts


def documentation_passages(min_chars: int = 200) -> list[tuple[str, str]]:
    """(topic, text) pairs from stdlib docstrings: module docs and their public classes/functions."""
    out: list[tuple[str, str]] = []
    for name in SOURCE_MODULES:
        parts = _module_parts(name)
        if parts is None:
            continue
        text = "\n\n".join(d if attr is None else f"{attr}:\n{d}" for attr, d in parts)
        if len(text) >= min_chars:
            out.append((name, text))
    if not out:
        raise BenchError("no documentation text could be read from the standard library to build prompts")
    return out


def documentation_topics() -> list[str]:
    """The names the passages document, without their text: each module (`json`) and each of
    its documented classes and functions (`json.JSONDecoder`), in a fixed order. Prompts that
    only name a topic ask the model to explain from what it knows: nothing to quote."""
    out: list[str] = []
    for name in SOURCE_MODULES:
        for attr, _doc in _module_parts(name) or []:
            out.append(name if attr is None else f"{name}.{attr}")
    if not out:
        raise BenchError("no documentation topics could be read from the standard library to build prompts")
    return out
