#!/usr/bin/env bash
# The GPU figures in one sitting, with the kit's steps kept here so they repeat unchanged.
#
# On the CPU machine:   ../shared/gpu/prepare.sh .gpu        (vLLM 0.24.0 + deps + the GGUF, in
#                                                            folders .gpu/c1..cN of <= 48 MiB)
# With the device tool: one `run` per folder, each carrying it, within 30 s of the last:
#                         mkdir -p $HOME/st && cp -r .gpu/cK/* $HOME/st/
# Then, on the GPU host: bash benchmarks/gpu_bench.sh "$OUT" [llama|smol|all]
# (the llama group takes about 9 minutes and smol about 4 on an H200: run them as two calls
# under the device's 10-minute limit).
set -euo pipefail
OUT=${1:?usage: gpu_bench.sh OUT_DIR [llama|smol|all]}
GROUP=${2:-all}
[ -d "$HOME/vllm-site/vllm" ] || bash "$HOME/st/install.sh"
export PYTHONPATH="$HOME/vllm-site:$PWD" VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1
export JUPYTER_OPTIMIZE_CACHE=/tmp/jo JUPYTER_OPTIMIZE_PLATFORM=cuda
mkdir -p "$OUT"
for g in llama smol; do
  if [ "$GROUP" = all ] || [ "$GROUP" = "$g" ]; then
    python3 benchmarks/gpu_bench.py --group "$g" --out "/tmp/gpu-$g"
    cp "/tmp/gpu-$g/gpu_$g.json" "$OUT/"
  fi
done
