#!/usr/bin/env bash
# The GPU tuning sweep (benchmarks/README.md "GPU tuning"): train-step variants of ST-GCN /
# AM-STGCN in one process, interleaved, plus a per-kernel device profile of one of them.
# Writes OUT_DIR/prof/{results.json,profile_*.txt}. Sweep 2 (graph-conv form per block,
# attention) is this script at commit 401331d. This is sweep 4, for the questions still open
# on GPU: the sparse graph conv's unrolled GPU form (`graph_sparse.FORMS`) on all blocks, on
# the >= 128-channel ones or on the 256-channel ones (per-block layouts: NTVC for Kronecker
# blocks, V-major for the rest), the factored form V-major, and batch 256.
#
#   bash benchmarks/gpu_tuning.sh [OUT_DIR]       # ~3-4 minutes on an H100
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-${OUT:-./gpu_tuning}}
KIN=dataset=kinetics,frames=150,batch=256
KRON7_SPARSE3=kron+kron+kron+kron+kron+kron+kron+sparse+sparse+sparse
KRON4_SPARSE6=kron+kron+kron+kron+sparse+sparse+sparse+sparse+sparse+sparse
python3 benchmarks/step_profile.py --device gpu --out "$OUT_DIR/prof" \
  --budget-s "${BUDGET_S:-210}" --iters 4 --chunk 5 \
  --common dataset=ntu,frames=300,batch=128,dtype=bfloat16 \
  --variant "ntu_auto" \
  --variant "ntu_sparse:activation_layout=VNTC,gcn_impl=sparse" \
  --variant "ntu_kron4_sparse6:activation_layout=per_block,gcn_impl=$KRON4_SPARSE6" \
  --variant "ntu_kron7_sparse3:activation_layout=per_block,gcn_impl=$KRON7_SPARSE3" \
  --variant "ntu_perblock:activation_layout=per_block" \
  --variant "kin_auto:$KIN" \
  --variant "kin_sparse:$KIN,activation_layout=VNTC,gcn_impl=sparse" \
  --variant "ntu_am:model=am_stgcn" \
  --variant "ntu_vntc:activation_layout=VNTC,gcn_impl=factored" \
  --variant "ntu_b256:batch=256" \
  --profile "${PROFILE:-ntu_sparse}"
