"""The magic's line: `-o VAR`, `@name` arguments, and argparse that raises instead of exiting.

`OptimizeUsageError` is how every mistake reaches the notebook: a UsageError recorded as an
error output, so the cell fails (also under nbmake).
"""

from __future__ import annotations

import argparse
from typing import Any

from IPython.core.error import UsageError


class OptimizeUsageError(UsageError):
    """A UsageError that the notebook records as an error output (one short line, no
    traceback). IPython prints a plain UsageError on stderr only, and nbmake judges a cell by
    its error outputs: with a plain UsageError a failing `%optimize` stops the notebook, yet
    `pytest --nbmake` reports it as passed."""

    def _render_traceback_(self) -> list[str]:
        return [f"UsageError: {self}"]


class _HelpShown(Exception):
    """argparse printed help (`-h`): end the magic quietly."""


def make_quiet(parser: argparse.ArgumentParser) -> None:
    """argparse exits the process on a mistake; a magic must raise UsageError instead."""
    parser.prog = parser.prog.replace("jupyter-optimize", "%optimize", 1)

    def error(message: str) -> None:
        raise OptimizeUsageError(f"{parser.prog}: {message} (options: `{parser.prog} -h`)")

    def exit(status: int = 0, message: str | None = None) -> None:
        if message:
            print(message)
        raise _HelpShown()

    parser.error, parser.exit = error, exit  # type: ignore[method-assign]


# -- the line: -o VAR and @name -------------------------------------------------------
def pop_output_var(tokens: list[str]) -> tuple[list[str], str | None]:
    """Take `-o VAR` out of the arguments wherever it stands."""
    if "-o" not in tokens:
        return tokens, None
    i = tokens.index("-o")
    if i + 1 >= len(tokens) or not tokens[i + 1].isidentifier():
        raise OptimizeUsageError("-o takes a Python variable name (e.g. -o res); a chart's PNG path goes in --output")
    return tokens[:i] + tokens[i + 2:], tokens[i + 1]


def _lookup(token: str, namespace: dict[str, Any]) -> Any:
    name, *attrs = token[1:].split(".")
    if not name.isidentifier() or not all(a.isidentifier() for a in attrs):
        raise OptimizeUsageError(f"{token!r}: write @name or @name.attribute (use @@ for a literal @)")
    if name not in namespace:
        raise OptimizeUsageError(f"{token!r}: there is no Python variable named {name!r}")
    value = namespace[name]
    for a in attrs:
        try:
            value = getattr(value, a)
        except AttributeError:
            raise OptimizeUsageError(f"{token!r}: {type(value).__name__} has no attribute {a!r}") from None
    return value


def expand_variables(tokens: list[str], namespace: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """Replace `@name` arguments by the variable's value. Objects that are not text are kept
    aside under their token (returned mapping) and put back after parsing (`restore`)."""
    out: list[str] = []
    objects: dict[str, Any] = {}
    for tok in tokens:
        if tok.startswith("@@"):
            out.append(tok[1:])
            continue
        if not tok.startswith("@") or len(tok) == 1:
            out.append(tok)
            continue
        value = _lookup(tok, namespace)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            out.append(str(value))
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, int) for v in value):
            out.append(",".join(str(v) for v in value))
        elif isinstance(value, (list, tuple)):  # e.g. several results for `chart`
            for i, v in enumerate(value):
                key = f"{tok}[{i}]"
                objects[key] = v
                out.append(key)
        else:
            objects[tok] = value
            out.append(tok)
    return out, objects


def restore(args: argparse.Namespace, objects: dict[str, Any]) -> argparse.Namespace:
    """Put the objects `expand_variables` kept aside back into the parsed arguments."""
    if objects:
        for k, v in vars(args).items():
            if isinstance(v, str) and v in objects:
                setattr(args, k, objects[v])
            elif isinstance(v, list):
                setattr(args, k, [objects.get(x, x) if isinstance(x, str) else x for x in v])
    return args
