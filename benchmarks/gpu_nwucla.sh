#!/usr/bin/env bash
# NW-UCLA cross-view on one GPU: AM-STGCN vs ST-GCN (joint), plus bone streams for the
# joint+bone two-stream fusion (AM-STGCN and 2s-AGCN), all in parallel on the same GPU.
#
#   UCLA_ROOT=<all_sqe dir> EPOCHS=30 BUDGET_S=260 bash benchmarks/gpu_nwucla.sh [OUT_DIR]
#
# Each run is `python train.py --config configs/nwucla.py:...` (the documented recipe, with
# `epochs=N` scaling its schedule); BUDGET_S is a safety net (`--config.time_budget_s`) that ends a
# run with its final eval instead of losing it. Results: OUT_DIR/<run>.json (summary) and
# OUT_DIR/<run>_scores.npz (per-sample test scores for `python -m amstgcn_jax.fuse`).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-${OUT:-./ucla_results}}
mkdir -p "$OUT_DIR"
PY=${PYTHON:-python3}
UCLA_ROOT=${UCLA_ROOT:?set UCLA_ROOT to the NW-UCLA all_sqe directory}
EPOCHS=${EPOCHS:-30}
BUDGET_S=${BUDGET_S:-260}
RUNS=${RUNS:-"am_joint st_joint am_bone agcn_joint agcn_bone"}
WORK=${WORK:-/tmp/ucla_runs}
export PYTHONUNBUFFERED=1
# Several processes share one GPU: don't let the first one preallocate most of its memory.
export XLA_PYTHON_CLIENT_PREALLOCATE=false

args_for() {
  case $1 in
    am_joint) echo "variant=am_stgcn" ;;
    st_joint) echo "variant=stgcn" ;;
    am_bone) echo "variant=am_stgcn,bone" ;;
    agcn_joint) echo "backbone=agcn,variant=stgcn" ;;
    agcn_bone) echo "backbone=agcn,variant=stgcn,bone" ;;
    *) echo "unknown run $1" >&2; return 1 ;;
  esac
}

start=$(date +%s)
for r in $RUNS; do
  a=$(args_for "$r") || exit 2
  $PY train.py --config "configs/nwucla.py:$a,epochs=$EPOCHS" --workdir "$WORK/$r" \
    --config.data.root="$UCLA_ROOT" --config.time_budget_s="$BUDGET_S" \
    --config.tensorboard=False > "$WORK.$r.log" 2>&1 &
done
wait
echo "all runs finished in $(( $(date +%s) - start )) s"
mkdir -p "$WORK/results"
for r in $RUNS; do
  cp "$WORK/$r/summary.json" "$WORK/results/$r.json" 2>/dev/null \
    || { echo "== $r FAILED"; tail -n 30 "$WORK.$r.log"; }
  cp "$WORK/$r/scores_test.npz" "$WORK/results/${r}_scores.npz" 2>/dev/null
  cp "$WORK/$r/metrics.jsonl" "$WORK/results/${r}_metrics.jsonl" 2>/dev/null
  cp "$WORK.$r.log" "$WORK/results/$r.log"
  echo "== $r: $(grep -h 'final top-1' "$WORK.$r.log")"
done
# One archive: the device tool brings back at most 8 files.
tar -czf "$OUT_DIR/ucla_results.tar.gz" -C "$WORK/results" .
