#!/usr/bin/env bash
# One command for a GPU machine: JAX vs PyTorch (CUDA) train step + inference, ST-GCN and
# AM-STGCN, NTU (T=300, V=25) and the Kinetics training crop (T=150, V=18).
#
#   bash benchmarks/gpu_benchmark.sh [OUT_DIR]        # default OUT_DIR: $OUT or ./gpu_results
#
# Each configuration is a separate process (clean peak-memory figures) and appends its JSON line
# to OUT_DIR/gpu_results.jsonl as soon as it finishes; stdout+stderr go to OUT_DIR/gpu_log.txt.
# BUDGET_S (default 400) bounds the whole script: a configuration starts only if its
# estimate still fits, so the most important ones run first. Needs python3 with jax[cuda],
# flax, optax, absl, grain and torch (CUDA); amstgcn_jax is used from this checkout (no install).
# Last, train.py itself runs a Kinetics-shaped TFDS dataset end to end (OUT_DIR/epoch_results.jsonl)
# and the host's input pipeline is timed (OUT_DIR/pipeline_results.jsonl).
# NTU_FLAGS / KIN_FLAGS add harness flags to the JAX side of the NTU / Kinetics runs; with
# TUNED=OUT/prof/results.json (from gpu_tuning.sh) they default to the fastest ntu_* / kin_*
# variant's formulation flags (benchmarks/pick_variant.py), so the JAX-vs-PyTorch figures are
# those of the best formulation the sweep found, named in the log. STEPS picks and orders the
# steps (names below; default all), e.g. STEPS="ntu_stgcn_bf16 train_epoch".
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-${OUT:-./gpu_results}}
mkdir -p "$OUT_DIR"
PY=${PYTHON:-python3}
BUDGET_S=${BUDGET_S:-400}
DEVICE=${DEVICE:-gpu}
ITERS=${ITERS:-4}
CHUNK=${CHUNK:-5}
WARMUP=${WARMUP:-2}
NTU_BATCH=${NTU_BATCH:-128}
KIN_BATCH=${KIN_BATCH:-256}
FP32_BATCH=${FP32_BATCH:-64}
NTU_T=${NTU_T:-300}
KIN_T=${KIN_T:-150}
JSONL="$OUT_DIR/gpu_results.jsonl"
LOG="$OUT_DIR/gpu_log.txt"
export PYTHONUNBUFFERED=1
# jax 0.11.2 aborts compiling this model in XLA's Triton GEMM fusion (openxla/xla#47381, seen on
# an H100 2026-11-26 for every configuration below); cuBLAS GEMMs avoid the pass.
export XLA_FLAGS="${XLA_FLAGS:-} --xla_gpu_enable_triton_gemm=false"
START=$(date +%s)
if [[ -n "${TUNED:-}" ]]; then
  NTU_FLAGS=${NTU_FLAGS:-$($PY benchmarks/pick_variant.py "$TUNED" ntu_ 2>>"$LOG")}
  KIN_FLAGS=${KIN_FLAGS:-$($PY benchmarks/pick_variant.py "$TUNED" kin_ 2>>"$LOG")}
fi
NTU_FLAGS=${NTU_FLAGS:-}
KIN_FLAGS=${KIN_FLAGS:-}
echo "== NTU_FLAGS='$NTU_FLAGS' KIN_FLAGS='$KIN_FLAGS'" | tee -a "$LOG"

{
  echo "== $(date -u) $(uname -m)"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 || true
} | tee -a "$LOG"

# run NAME ESTIMATE_S TIMEOUT_S ARGS... : one harness process, skipped if it cannot fit.
run() {
  local name=$1 est=$2 tmo=$3; shift 3
  local left=$(( BUDGET_S - ($(date +%s) - START) ))
  if (( left < est )); then
    echo "== SKIP $name (needs ~${est}s, ${left}s left)" | tee -a "$LOG"; return 1
  fi
  (( tmo > left )) && tmo=$left
  echo "== RUN $name (timeout ${tmo}s): $*" | tee -a "$LOG"
  local t0=$(date +%s)
  timeout "$tmo" $PY benchmarks/train_step_benchmark.py --device "$DEVICE" --iters "$ITERS" \
      --chunk "$CHUNK" --warmup "$WARMUP" --out "$JSONL" "$@" >>"$LOG" 2>&1
  local rc=$?
  echo "== END $name rc=$rc in $(( $(date +%s) - t0 ))s" | tee -a "$LOG"
  grep -E '^(jax|torch|ratio|logits|#) ' "$LOG" | tail -n 12 | sed 's/^/   /'
  return $rc
}

# Each step below is a function; STEPS (names, space-separated) picks which run and in what
# order (default: all, in this order), so a device call can lead with what it most needs.
# 1. ST-GCN, NTU, bf16: the headline training throughput (target >= 2,000 clips/s on an H100).
ntu_stgcn_bf16() {
  run ntu_stgcn_bf16 70 150 --model stgcn --dataset ntu --frames "$NTU_T" --batch "$NTU_BATCH" \
      --dtype bfloat16 $NTU_FLAGS
}
# 2. AM-STGCN default (non-local x3 after ConvT of layer 3), NTU, bf16; the automatic attention
#    implementation is cuDNN flash attention there (amstgcn_jax.attention._auto_impl).
ntu_amstgcn_bf16() {
  run ntu_amstgcn_bf16 80 150 --model am_stgcn --dataset ntu --frames "$NTU_T" \
      --batch "$NTU_BATCH" --dtype bfloat16 $NTU_FLAGS
}
# 3. Kinetics training crop, bf16: the epoch-time estimate (240,000 clips).
kinetics_stgcn_bf16() {
  run kinetics_stgcn_bf16 55 120 --model stgcn --dataset kinetics --frames "$KIN_T" \
      --batch "$KIN_BATCH" --dtype bfloat16 --skip-infer $KIN_FLAGS
}
# 4. Kinetics AM-STGCN default and the ConvS placement (paper Table 8), JAX only.
kinetics_amstgcn_bf16() {
  run kinetics_amstgcn_bf16 40 100 --model am_stgcn --dataset kinetics \
      --frames "$KIN_T" --batch "$KIN_BATCH" --dtype bfloat16 --skip-infer --skip-torch
}
kinetics_convs_l3x3_bf16() {
  run kinetics_convs_l3x3_bf16 35 90 --model convs_l3x3 \
      --dataset kinetics --frames "$KIN_T" --batch "$KIN_BATCH" --dtype bfloat16 --skip-infer \
      --skip-torch
}
# 5. float32 (TF32 matmuls/convs pinned on both sides), NTU.
ntu_stgcn_fp32() {
  run ntu_stgcn_fp32 60 120 --model stgcn --dataset ntu --frames "$NTU_T" \
      --batch "$FP32_BATCH" --dtype float32 --precision tf32
}
# 6. train.py end to end on a built TFDS dataset (decode, the Kinetics transforms, grain workers,
#    host-to-device copies, the step): the Kinetics epoch the issue asks for, projected from
#    EPOCH_STEPS steps after the first logged interval (benchmarks/epoch_benchmark.py).
train_epoch() {
  local left=$(( BUDGET_S - ($(date +%s) - START) ))
  if (( left < ${EPOCH_EST_S:-150} )); then
    echo "== SKIP train_epoch (needs ~${EPOCH_EST_S:-150}s, ${left}s left)" | tee -a "$LOG"
    return 1
  fi
  echo "== RUN train_epoch (timeout ${left}s)" | tee -a "$LOG"
  timeout "$left" $PY benchmarks/epoch_benchmark.py \
      --config "${EPOCH_CONFIG:-configs/kinetics.py:variant=stgcn,bf16}" \
      --clips "${EPOCH_CLIPS:-4096}" --steps "${EPOCH_STEPS:-150}" \
      --log_every "${EPOCH_LOG_EVERY:-10}" --workers="${EPOCH_WORKERS:--1}" \
      ${EPOCH_ARGS:-} --out "$OUT_DIR/epoch_results.jsonl" >>"$LOG" 2>&1
  echo "== END train_epoch rc=$?" | tee -a "$LOG"
  grep -E '^(wrote|num_workers=)' "$LOG" | tail -n 4 | sed 's/^/   /'
}
# 7. The host's input pipeline (CPU only): can its cores feed the steps above? Each config's own
#    train transforms with 0 and PIPE_WORKERS grain workers (README "Input pipeline").
host_pipeline() {
  local left=$(( BUDGET_S - ($(date +%s) - START) ))
  if (( left < 45 )); then
    echo "== SKIP host_pipeline (needs ~45s, ${left}s left)" | tee -a "$LOG"; return 1
  fi
  echo "== RUN host_pipeline (timeout ${left}s)" | tee -a "$LOG"
  timeout "$left" $PY benchmarks/pipeline_benchmark.py --workers "0,${PIPE_WORKERS:-4,8}" \
      --batches "${PIPE_BATCHES:-20}" --config configs/kinetics.py --config configs/ntu60.py:xsub \
      --config configs/ntu60.py:xsub,backbone=agcn --out "$OUT_DIR/pipeline_results.jsonl" \
      >>"$LOG" 2>&1
  echo "== END host_pipeline rc=$?" | tee -a "$LOG"
  grep -E '^(configs/|  workers=)' "$LOG" | tail -n 12 | sed 's/^/   /'
}
ALL_STEPS="ntu_stgcn_bf16 ntu_amstgcn_bf16 kinetics_stgcn_bf16 kinetics_amstgcn_bf16
  kinetics_convs_l3x3_bf16 ntu_stgcn_fp32 train_epoch host_pipeline"
for step in ${STEPS:-$ALL_STEPS}; do  # all names checked before any step runs
  if [[ " $(echo $ALL_STEPS) " != *" $step "* ]]; then
    echo "== unknown step '$step'; steps: $(echo $ALL_STEPS)" | tee -a "$LOG"; exit 2
  fi
done
for step in ${STEPS:-$ALL_STEPS}; do
  "$step"
done
echo "== done in $(( $(date +%s) - START ))s; results: $JSONL" | tee -a "$LOG"
