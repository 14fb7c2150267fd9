"""The GPU scripts run end to end (on the CPU, tiny shapes), so a lent GPU's minutes are not
spent finding a broken script: gpu_tuning.sh's sweep feeds pick_variant.py, whose flags
gpu_benchmark.sh passes to every JAX harness run, and its train.py and pipeline steps run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TINY = {"PYTHON": sys.executable, "DEVICE": "cpu", "BUDGET_S": "900", "ITERS": "1", "CHUNK": "1"}


def _run(script, out_dir, env):
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / script), str(out_dir)],
                          env=os.environ | TINY | env, capture_output=True, text=True, check=False,
                          timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_tuning_sweep_feeds_the_benchmark_on_cpu(tmp_path):
    _run("gpu_tuning.sh", tmp_path / "tune", {
        "COMMON": "dataset=ntu,frames=8,batch=1,dtype=float32",
        "KIN": "dataset=kinetics,frames=8,batch=1", "BIG": "batch=2", "PROFILE": "ntu_auto"})
    results = json.loads((tmp_path / "tune" / "prof" / "results.json").read_text())
    timed = {name for name, info in results["variants"].items() if "clips_per_s" in info}
    assert {"ntu_auto", "kin_auto", "ntu_am", "ntu_sparse"} <= timed, results["variants"].keys()
    assert list((tmp_path / "tune" / "prof").glob("profile_ntu_auto*.txt"))

    _run("gpu_benchmark.sh", tmp_path / "bench", {
        "TUNED": str(tmp_path / "tune" / "prof" / "results.json"), "WARMUP": "1",
        "NTU_T": "8", "KIN_T": "8", "NTU_BATCH": "1", "KIN_BATCH": "1", "FP32_BATCH": "1",
        "PIPE_WORKERS": "1", "PIPE_BATCHES": "2",
        "EPOCH_CONFIG": "configs/kinetics.py:variant=stgcn", "EPOCH_CLIPS": "16",
        "EPOCH_STEPS": "6", "EPOCH_LOG_EVERY": "2",
        "EPOCH_ARGS": "--batch_size 8 --set data.window=8 --epoch_clips 1000"})
    log = (tmp_path / "bench" / "gpu_log.txt").read_text()
    assert "== NTU_FLAGS=" in log and "SKIP" not in log, log[-3000:]
    rows = [json.loads(line) for line in
            (tmp_path / "bench" / "gpu_results.jsonl").read_text().splitlines()]
    assert [r["config"]["model"] for r in rows] == [
        "stgcn", "am_stgcn", "stgcn", "am_stgcn", "convs_l3x3", "stgcn"]
    assert all(r["jax"]["train"]["clips_per_s"] > 0 for r in rows)
    pipe = json.loads((tmp_path / "bench" / "pipeline_results.jsonl").read_text())
    assert [c["config"] for c in pipe["configs"]] == [
        "configs/kinetics.py", "configs/ntu60.py:xsub", "configs/ntu60.py:xsub,backbone=agcn"]
    assert [p["workers"] for p in pipe["configs"][0]["pipeline"]] == [0, 1]
    epoch = json.loads((tmp_path / "bench" / "epoch_results.jsonl").read_text())
    assert epoch["batch_size"] == 8 and epoch["runs"][0]["clips_per_s"] > 0
    assert rows[0]["source"]["commit"] is None or len(rows[0]["source"]["commit"]) == 40


def test_benchmark_steps_are_chosen_by_name(tmp_path):
    """STEPS names the steps a call runs, in order; a misspelt one stops the script before any
    step runs, with the list of known names, instead of skipping silently."""
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_benchmark.sh"), str(tmp_path)],
                          env=os.environ | TINY | {"STEPS": "ntu_stgcn_bf16 epoch"},
                          capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "unknown step 'epoch'" in proc.stdout and "train_epoch host_pipeline" in proc.stdout
    assert "== RUN" not in (tmp_path / "gpu_log.txt").read_text()
