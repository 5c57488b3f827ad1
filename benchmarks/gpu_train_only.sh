#!/usr/bin/env bash
# On the GPU host, without staging vLLM: train a draft or an EAGLE head there (the GPU host has
# torch and transformers; jupyter_ext needs pydantic and the GGUF reader, which it lacks).
# Needs, copied to $HOME/st by earlier calls: the GGUF parts (.gpu/c2, .gpu/c3 of gpu_stage.sh), and
# in .gpu/x the wheels gguf, pydantic, pydantic_core, annotated_types, typing_inspection (from .gpu/c1/deps).
#   bash benchmarks/gpu_train_only.sh OUT_DIR gpu_draft.py-arguments...
#   e.g. bash benchmarks/gpu_train_only.sh $OUT/bigeagle --head eagle --prompts 4096 --steps 2000 --batch-size 32
# Not yet run on a GPU host (written 2026-12-08, when no GPU machine could be started).
set -euo pipefail
OUT_DIR=${1:?usage: gpu_train_only.sh OUT_DIR ARGS...}; shift
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/x/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 JUPYTER_OPTIMIZE_CACHE=/tmp/jo JUPYTER_OPTIMIZE_PLATFORM=cuda
if [ ! -f "$HOME/st/smollm2/model.safetensors" ]; then
  cat "$HOME"/st/model.gguf.part* > "$HOME/st/model.gguf"
  python3 -m jupyter_ext.store.gguf_convert "$HOME/st/model.gguf" "$HOME/st/smollm2"  # the toolkit's own converter
fi
python3 benchmarks/gpu_draft.py --skip-bench --out "$OUT_DIR" "$@"
