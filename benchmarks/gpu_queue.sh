#!/usr/bin/env bash
# On the GPU host, after ../shared/gpu/install.sh: run issue 12's sitting as one detached queue,
# so no single device call has to hold a whole compile + benchmark (the queue outlives the call
# that starts it; later calls collect $HOME/res). One configuration after another, each with its
# own inner timeout; leftover vLLM processes are killed by the pid nvidia-smi reports.
#   bash benchmarks/gpu_queue.sh start [ENTRY ...]  # copies the repo to $HOME/repo, starts the queue
#   bash benchmarks/gpu_queue.sh collect S          # waits up to S seconds, copies results to $OUT
# Entries (default: the third sitting's train plain draft ngram atomic):
#   bigeagle bigeagle2 bigdraft      the EAGLE head (bigeagle2: trained on its own fed-back features too) /
#                                    the draft, trained on 8192 prompts (does acceptance scale with data?)
#   train plain draft ngram suffix   SmolLM2 arms of benchmarks/gpu_draft.py (suffix needs
#                                    `bash benchmarks/gpu_suffix.sh build` first)
#   bf16 marlin fp8 atomic w4a8 w4a8i  Llama-3-8B-shape arms of gpu_bench.py's "stacks" group
#                                    (w4a8: fp8 activations, which vLLM 0.24 refuses on SM90;
#                                    w4a8i: int8 activations)
# The machine goes back after 30 s idle (status: idle_release_s): issue the collect calls back to
# back, with no local step between them, or the next call finds a fresh machine and no queue.
set -uo pipefail
R=$HOME/res
case "${1:-}" in
start)
  declare -A ARMS=(   # entry -> script and arguments; every entry writes to --out $R/<entry>
    [train]="benchmarks/gpu_draft.py --skip-bench"
    [bigeagle]="benchmarks/gpu_draft.py --skip-bench --head eagle --prompts 8192 --steps 3000 --batch-size 32 --heldout 64"
    [bigeagle2]="benchmarks/gpu_draft.py --skip-bench --head eagle --unroll 2 --prompts 8192 --steps 3000 --batch-size 32 --heldout 64"
    [bigdraft]="benchmarks/gpu_draft.py --skip-bench --prompts 8192 --steps 3000 --batch-size 32 --heldout 64"
    [plain]="benchmarks/gpu_draft.py --only smol-compiled"
    [draft]="benchmarks/gpu_draft.py --only smol-draft-trained-compiled"
    [ngram]="benchmarks/gpu_draft.py --only smol-ngram-compiled"
    [suffix]="benchmarks/gpu_draft.py --only smol-suffix-compiled"
    [bf16]="benchmarks/gpu_bench.py --group stacks --only llama8b-bf16-compiled"
    [marlin]="benchmarks/gpu_bench.py --group stacks --only llama8b-awq-marlin-fp8kv"
    [fp8]="benchmarks/gpu_bench.py --group stacks --only llama8b-fp8-fp8kv"
    [atomic]="benchmarks/gpu_bench.py --group stacks --only llama8b-awq-marlin-atomic-fp8kv"
    [w4a8]="benchmarks/gpu_bench.py --group stacks --only llama8b-awq-marlin-w4a8-fp8kv"
    [w4a8i]="benchmarks/gpu_bench.py --group stacks --only llama8b-awq-marlin-w4a8int8-fp8kv")
  entries="${*:2}"; entries="${entries:-train plain draft ngram atomic}"
  queue=""
  for e in $entries; do
    [ -n "${ARMS[$e]+x}" ] || { echo "unknown queue entry: $e (known: ${!ARMS[*]})"; exit 2; }
    queue+="run $e ${ARMS[$e]} --out $R/$e; "
  done
  rm -rf $HOME/repo && mkdir -p $HOME/repo $R && cp -r . $HOME/repo/ && cd $HOME/repo
  export PYTHONPATH=$HOME/vllm-site:$PWD VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1 \
         JUPYTER_OPTIMIZE_CACHE=/tmp/jo JUPYTER_OPTIMIZE_PLATFORM=cuda
  [ -d $HOME/arctic-site ] && export PYTHONPATH=$PYTHONPATH:$HOME/arctic-site
  setsid bash -c '
    run() { name=$1; shift; echo "$(date -u +%T) start $name" >> '$R'/queue.log
            timeout 560 python3 "$@" > '$R'/$name.log 2>&1; echo "$(date -u +%T) end $name rc=$?" >> '$R'/queue.log
            for p in $(nvidia-smi --query-compute-apps=pid --format=csv,noheader); do kill -9 $p; done; sleep 3; }
    '"$queue"'
    touch '$R'/DONE' < /dev/null > /dev/null 2>&1 &
  echo "queue started"; sleep 5; cat $R/queue.log ;;
collect)
  # a fresh machine (the held one was released) has no queue: say so at once, not after S seconds
  [ -f $R/queue.log ] || { echo "no queue on this machine ($R/queue.log missing): it was released; stage again"; exit 3; }
  deadline=$((SECONDS + ${2:-60}))
  while [ $SECONDS -lt $deadline ] && [ ! -f $R/DONE ]; do sleep 5; done
  cat $R/queue.log; for f in $R/*.log; do echo "== $f"; tail -c 1500 $f; done
  n=0; for f in $R/*/gpu_*.json; do [ -f "$f" ] && [ $n -lt 7 ] && cp "$f" "$OUT/$(basename "$(dirname "$f")")_$(basename "$f")" && n=$((n+1)); done
  cp $R/queue.log $OUT/ 2>/dev/null; nvidia-smi --query-gpu=memory.used --format=csv ;;
*) echo "usage: $0 start | collect SECONDS"; exit 2 ;;
esac
