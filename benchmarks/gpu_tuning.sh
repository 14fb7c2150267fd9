#!/usr/bin/env bash
# The GPU tuning sweep behind benchmarks/README.md "GPU tuning": train-step variants of ST-GCN /
# AM-STGCN (graph-conv formulation per block, attention) in one process, interleaved, plus a
# per-kernel device profile of the defaults. Writes OUT_DIR/prof/{results.json,profile_*.txt}.
#
#   bash benchmarks/gpu_tuning.sh [OUT_DIR]       # ~3-4 minutes on an H100
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-${OUT:-./gpu_tuning}}
F=factored
K=kron
python3 benchmarks/step_profile.py --device gpu --out "$OUT_DIR/prof" \
  --budget-s "${BUDGET_S:-210}" --iters 4 --chunk 5 \
  --common dataset=ntu,frames=300,batch=128,dtype=bfloat16 \
  --variant "ntu_factored:gcn_impl=$F" \
  --variant "ntu_auto" \
  --variant "ntu_kron_all:gcn_impl=$K" \
  --variant "ntu_kron64:gcn_impl=$K+$K+$K+$K+$F+$F+$F+$F+$F+$F" \
  --variant "ntu_am:model=am_stgcn" \
  --variant "kin_factored:dataset=kinetics,frames=150,batch=256,gcn_impl=$F" \
  --variant "kin_auto:dataset=kinetics,frames=150,batch=256" \
  --variant "kin_kron_all:dataset=kinetics,frames=150,batch=256,gcn_impl=$K" \
  --variant "kin_am:dataset=kinetics,frames=150,batch=256,model=am_stgcn" \
  --variant "kin_convs:dataset=kinetics,frames=150,batch=256,model=convs_l3x3" \
  --profile ntu_auto,ntu_am
