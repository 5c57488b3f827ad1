#!/usr/bin/env bash
# The GPU figures in one sitting, with the kit's steps kept here so they repeat unchanged.
#
# On the CPU machine:   benchmarks/gpu_stage.sh   (the kit's vLLM 0.24.0 + deps + the GGUF, and the
#                                                 AWQ checkpoint made here, in folders .gpu/c1..cN
#                                                 of <= 48 MiB)
# With the device tool: one `run` per folder, each carrying it, within 30 s of the last:
#                         mkdir -p $HOME/st && cp -r .gpu/cK/* $HOME/st/
# Then, on the GPU host: bash benchmarks/gpu_bench.sh "$OUT" GROUP...   (groups: llama, llama-awq,
# smol, offline; "all" = all four. llama takes about 9 minutes on an H200 and the others 3-6:
# run them as separate calls under the device's 10-minute limit; offline compares with the
# smol group's JSON left in /tmp/gpu-smol by an earlier call on the same machine).
set -euo pipefail
OUT=${1:?usage: gpu_bench.sh OUT_DIR [llama|smol|all]}
shift
GROUPS_=("$@"); [ ${#GROUPS_[@]} -gt 0 ] && [ "${GROUPS_[0]}" != all ] || GROUPS_=(llama llama-awq smol offline)
[ -d "$HOME/vllm-site/vllm" ] || bash "$HOME/st/install.sh"
# the AWQ checkpoint staged by gpu_stage.sh
if compgen -G "$HOME/st/awq.part*" >/dev/null && [ ! -f "$HOME/st/smollm2-awq/model.safetensors" ]; then
  mkdir -p "$HOME/st/smollm2-awq" && cp "$HOME"/st/awq-files/* "$HOME/st/smollm2-awq/"
  cat "$HOME"/st/awq.part* > "$HOME/st/smollm2-awq/model.safetensors"
fi
export PYTHONPATH="$HOME/vllm-site:$PWD" VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1
export JUPYTER_OPTIMIZE_CACHE=/tmp/jo JUPYTER_OPTIMIZE_PLATFORM=cuda
mkdir -p "$OUT"
for g in "${GROUPS_[@]}"; do
  python3 benchmarks/gpu_bench.py --group "$g" --out "/tmp/gpu-$g" || echo "group $g failed: rc $?"
  cp "/tmp/gpu-$g/gpu_$g.json" "$OUT/" || true
  tar czf "$OUT/logs-$g.tgz" -C "/tmp/gpu-$g" $(cd "/tmp/gpu-$g" && ls *.log 2>/dev/null) 2>/dev/null || true
done
