"""Where a panel says what went wrong: a visible message area, and the guard every button
and observer callback runs under, so that no error vanishes into the kernel's log.

A user mistake (`OptimizeError`) is shown as its message. Anything else is a bug: it is
shown too, with its traceback folded, rather than swallowed or sent where nobody looks.
"""

from __future__ import annotations

import functools
import html
import traceback
from typing import Any, Callable

import ipywidgets as W

from jupyter_ext.errors import OptimizeError


class MessageArea(W.HTML):
    """An HTML line that shows an error, a note, or nothing."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_class("jo-message")
        self.text = ""  # the plain message, for tests and for callers deciding what to do

    def error(self, exc: BaseException) -> None:
        if isinstance(exc, OptimizeError):
            self.text = f"{type(exc).__name__}: {exc}"
            self.value = (f"<div class='jo-error' style='color:#a40000;white-space:pre-wrap'>"
                          f"<b>{html.escape(type(exc).__name__)}</b>: {html.escape(str(exc))}</div>")
            return
        self.text = f"unexpected {type(exc).__name__}: {exc}"
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        self.value = (f"<div class='jo-error' style='color:#a40000'><b>unexpected {html.escape(type(exc).__name__)}"
                      f"</b> (a bug in jupyter-optimize; please report it): {html.escape(str(exc))}"
                      f"<details><summary>traceback</summary><pre>{html.escape(tb)}</pre></details></div>")

    def note(self, text: str) -> None:
        self.text = text
        self.value = f"<div class='jo-note'>{html.escape(text)}</div>"

    def clear(self) -> None:
        self.text, self.value = "", ""


def shown_in(area: MessageArea) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Run a callback so that any exception it raises ends up in `area`."""
    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - shown in the panel, see the module docstring
                area.error(exc)
                return None
        return guarded
    return wrap
