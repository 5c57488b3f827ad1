"""Shared pieces for building cached artifacts (draft models, AWQ checkpoints, compile caches).

Every artifact is built under a temporary name next to its final folder and renamed into place
only when complete, with a marker file holding what it was built from. A crash, an interrupt
or a failing step therefore never leaves a folder that looks usable, and a later run simply
builds it again. Builders check and build while holding `base.files.folder_lock(final)`, so
a second process waits for the first instead of building (and replacing) the same folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

ARTIFACT_MARKER = ".jupyter-optimize-artifact.json"
MODEL_MARKER = ".jupyter-optimize-complete.json"  # written by engine.model_files


def model_hash(folder: str | os.PathLike) -> str:
    """A content key for a model folder, cheap enough to compute on every prepare.

    A folder converted by the toolkit carries its GGUF's sha256 in its marker; for any other
    folder we hash config.json and the names, sizes and mtimes of its weight files, so a
    changed checkpoint gets new artifacts without reading gigabytes on every call."""
    folder = Path(folder)
    marker = folder / MODEL_MARKER
    if marker.is_file():
        try:
            return json.loads(marker.read_text())["sha256"][:16]
        except (ValueError, KeyError):
            pass
    h = hashlib.sha256()
    cfg = folder / "config.json"
    if cfg.is_file():
        h.update(cfg.read_bytes())
    for f in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def artifact_dir(cache_dir: Path, kind: str, model: Path, suffix: str) -> Path:
    """`<cache>/<kind>/<model folder name>[-<model hash>]-<suffix>`: the model's hash is added
    unless its folder name already carries it (folders converted from a GGUF do)."""
    h = model_hash(model)
    name = model.name if h[:12] in model.name else f"{model.name}-{h}"
    return cache_dir / kind / f"{name}-{suffix}"


def options_key(*parts: Any) -> str:
    """A short stable hash of JSON-able parts (options that change an artifact)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def is_built(folder: Path) -> bool:
    return (folder / ARTIFACT_MARKER).is_file()


def read_marker(folder: Path) -> dict:
    return json.loads((folder / ARTIFACT_MARKER).read_text())


@contextmanager
def building(final: Path, meta: dict[str, Any]) -> Iterator[Path]:
    """Yield a fresh temporary folder; on success write the marker and rename it to `final`.

    On any exception (including KeyboardInterrupt) the temporary folder is removed and the
    exception propagates: nothing half-written is left under `final`'s name. The caller holds
    `folder_lock(final)` (the temporary name is per process, not per thread)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        (tmp / ARTIFACT_MARKER).write_text(json.dumps(meta, indent=1, default=str))
        if final.exists():  # an incomplete folder from an older layout
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
