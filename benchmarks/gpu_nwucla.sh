#!/usr/bin/env bash
# NW-UCLA cross-view on one GPU: AM-STGCN vs ST-GCN (joint), plus 2s-AGCN joint and bone streams
# for the two-stream fusion, all in parallel on the same GPU.
#
#   UCLA_ROOT=<all_sqe dir> EPOCHS=30 BUDGET_S=260 bash benchmarks/gpu_nwucla.sh [OUT_DIR]
#
# Each run is `python train.py --config configs/nwucla.py:...` (the documented recipe, with
# `epochs=N` scaling its schedule); BUDGET_S is a safety net (`--config.time_budget_s`) that ends a
# run with its final eval instead of losing it. A run that fails is retried once with synchronous
# checkpointing. Results: OUT_DIR/ucla_results.tar.gz with <run>.json (summary),
# <run>_scores.npz (per-sample test scores for `python -m amstgcn_jax.fuse`), metrics and logs.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-${OUT:-./ucla_results}}
mkdir -p "$OUT_DIR"
PY=${PYTHON:-python3}
UCLA_ROOT=${UCLA_ROOT:?set UCLA_ROOT to the NW-UCLA all_sqe directory}
EPOCHS=${EPOCHS:-30}
BUDGET_S=${BUDGET_S:-260}
RUNS=${RUNS:-"am_joint st_joint agcn_joint agcn_bone"}
WORK=${WORK:-/tmp/ucla_runs}
mkdir -p "$WORK/results"
export PYTHONUNBUFFERED=1
# Several processes share one GPU: don't let the first one preallocate most of its memory.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
# XLA:GPU's Triton GEMM fusion aborts on this model (openxla/xla#47381): use cuBLAS GEMMs.
case "${XLA_FLAGS:-}" in *triton_gemm*) ;; *) export XLA_FLAGS="${XLA_FLAGS:-} --xla_gpu_enable_triton_gemm=false" ;; esac

args_for() {
  case $1 in
    am_joint) echo "variant=am_stgcn" ;;
    st_joint) echo "variant=stgcn" ;;
    am_bone) echo "variant=am_stgcn,bone" ;;
    st_bone) echo "variant=stgcn,bone" ;;
    agcn_joint) echo "backbone=agcn,variant=stgcn" ;;
    agcn_bone) echo "backbone=agcn,variant=stgcn,bone" ;;
    *) echo "unknown run $1" >&2; return 1 ;;
  esac
}

collect() {  # copy one run's results next to the others as soon as it ends
  local r=$1
  cp "$WORK/$r/summary.json" "$WORK/results/$r.json" 2>/dev/null
  cp "$WORK/$r/scores_test.npz" "$WORK/results/${r}_scores.npz" 2>/dev/null
  cp "$WORK/$r/metrics.jsonl" "$WORK/results/${r}_metrics.jsonl" 2>/dev/null
  cp "$WORK.$r.log" "$WORK/results/$r.log" 2>/dev/null
  tar -czf "$OUT_DIR/ucla_results.tar.gz" -C "$WORK/results" .
}

one_run() {  # train one stream; on failure retry once with synchronous checkpoints
  local r=$1 a extra=""
  a=$(args_for "$r") || return 2
  for attempt in 1 2; do
    local left=$(( BUDGET_S - ($(date +%s) - start) ))
    $PY train.py --config "configs/nwucla.py:$a,epochs=$EPOCHS" --workdir "$WORK/$r" \
      --config.data.root="$UCLA_ROOT" --config.time_budget_s="$left" \
      --config.tensorboard=False $extra >> "$WORK.$r.log" 2>&1 && break
    echo "== $r attempt $attempt failed:"; grep -v '^\s*$' "$WORK.$r.log" | tail -n 15
    extra="--config.async_checkpointing=False"
    rm -rf "${WORK:?}/$r"
  done
  collect "$r"
  echo "== $r: $(grep -h 'final top-1' "$WORK.$r.log")"
}

start=$(date +%s)
for r in $RUNS; do one_run "$r" & done
wait
echo "all runs finished in $(( $(date +%s) - start )) s"
collect "${RUNS%% *}"
