#!/usr/bin/env bash
# The GPU tuning sweep (benchmarks/README.md "GPU tuning"): train-step variants of ST-GCN /
# AM-STGCN in one process, interleaved, plus a per-kernel device profile of the defaults.
# Writes OUT_DIR/prof/{results.json,profile_*.txt}. Sweep 2 (graph-conv form per block,
# attention) is this script at commit 401331d; this is sweep 3, for the questions still open on
# GPU: the V-major activation layout (transpose-free graph aggregation, the CPU default), and
# the new dropout mask (1 random bit per element at rate 0.5; "nodrop" bounds what it can gain).
#
#   bash benchmarks/gpu_tuning.sh [OUT_DIR]       # ~3-4 minutes on an H100
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-${OUT:-./gpu_tuning}}
KIN=dataset=kinetics,frames=150,batch=256
python3 benchmarks/step_profile.py --device gpu --out "$OUT_DIR/prof" \
  --budget-s "${BUDGET_S:-210}" --iters 4 --chunk 5 \
  --common dataset=ntu,frames=300,batch=128,dtype=bfloat16 \
  --variant "ntu_auto" \
  --variant "ntu_vntc:activation_layout=VNTC,gcn_impl=factored" \
  --variant "ntu_ntvc_factored:activation_layout=NTVC,gcn_impl=factored" \
  --variant "ntu_nodrop:dropout=0" \
  --variant "ntu_am:model=am_stgcn" \
  --variant "ntu_am_vntc:model=am_stgcn,activation_layout=VNTC,gcn_impl=factored" \
  --variant "kin_auto:$KIN" \
  --variant "kin_vntc:$KIN,activation_layout=VNTC,gcn_impl=factored" \
  --variant "kin_am:$KIN,model=am_stgcn" \
  --variant "kin_convs:$KIN,model=convs_l3x3" \
  --profile ntu_auto,ntu_vntc
