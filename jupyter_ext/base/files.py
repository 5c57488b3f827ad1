"""Writing files and folders so that nothing half-written is ever left behind, and two
processes building the same cached folder never undo each other's work."""

from __future__ import annotations

import logging
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

log = logging.getLogger(__name__)

def atomic_write_text(path: Path, text: str) -> Path:
    """Write `text` to `path` through a temporary file in the same folder and a rename,
    so a crash or a bad input never leaves a half-written file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextmanager
def folder_lock(final: Path) -> Iterator[None]:
    """Hold `<parent>/.<name>.lock` while `final` is checked and built.

    Without it two processes (two notebooks, a notebook and the CLI) that both find `final`
    missing would both build it, and the second to finish would remove the first one's
    folder, possibly while a server already reads from it. With it the second waits, then
    finds the folder complete. The lock is the OS's (flock): a crashed holder releases it."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(final.parent / f".{final.name}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("waiting for another process that is building %s", final)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()
