#!/usr/bin/env bash
# The GPU tuning sweep (benchmarks/README.md "GPU tuning"): train-step variants of ST-GCN /
# AM-STGCN in one process, interleaved, plus a per-kernel device profile of one of them.
# Writes OUT_DIR/prof/{results.json,profile_*.txt}. Sweep 2 (graph-conv form per block,
# attention) is this script at commit 401331d; sweep 4 (sparse graph conv and per-block
# layouts on the GPU) ran at 1df5153 and 2229e5d (benchmarks/README.md "GPU tuning"), and made
# 'auto' = Kronecker up to V·C = 4608, sparse beyond. This version leads with what a rerun
# should check: the current default against the previous one (256-channel NTU blocks factored
# on NTVC), Kinetics, AM-STGCN and batch 256; then the sparse forms on more blocks, which lost
# in sweep 4 but were measured with a slower V-major temporal conv than the current one.
# Round 9 added the BatchNorm with the written-out backward (the CPU default since round 7,
# unmeasured on a GPU) for ST-GCN and AM-STGCN, each right after its default.
#
#   bash benchmarks/gpu_tuning.sh [OUT_DIR]       # ~3-4 minutes on an H100
#
# DEVICE, COMMON (the shape every variant starts from), KIN (the Kinetics variants' shape),
# BIG (the large-batch variant), PYTHON and BUDGET_S override the H100 defaults; with tiny shapes
# and DEVICE=cpu the sweep runs on a CPU (tests/gpu_scripts_test.py, marker slow), so a GPU
# session does not find a broken script.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-${OUT:-./gpu_tuning}}
KIN=${KIN:-dataset=kinetics,frames=150,batch=256}
KRON7_SPARSE3=kron+kron+kron+kron+kron+kron+kron+sparse+sparse+sparse
KRON4_SPARSE6=kron+kron+kron+kron+sparse+sparse+sparse+sparse+sparse+sparse
${PYTHON:-python3} benchmarks/step_profile.py --device "${DEVICE:-gpu}" --out "$OUT_DIR/prof" \
  --budget-s "${BUDGET_S:-210}" --iters "${ITERS:-4}" --chunk "${CHUNK:-5}" \
  --common "${COMMON:-dataset=ntu,frames=300,batch=128,dtype=bfloat16}" \
  --variant "ntu_auto" \
  --variant "ntu_bn_custom:bn_impl=custom" \
  --variant "ntu_stored:block_output=stored" \
  --variant "ntu_factored256:activation_layout=NTVC" \
  --variant "kin_auto:$KIN" \
  --variant "ntu_am:model=am_stgcn" \
  --variant "ntu_am_bn_custom:model=am_stgcn,bn_impl=custom" \
  --variant "ntu_b256:${BIG:-batch=256}" \
  --variant "ntu_kron4_sparse6:activation_layout=per_block,gcn_impl=$KRON4_SPARSE6" \
  --variant "kin_kron7_sparse3:$KIN,activation_layout=per_block,gcn_impl=$KRON7_SPARSE3" \
  --variant "ntu_sparse:activation_layout=VNTC,gcn_impl=sparse" \
  --profile "${PROFILE:-ntu_auto}"
