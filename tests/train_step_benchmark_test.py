"""The issue-5 harness (`benchmarks/train_step_benchmark.py`) where torch is absent."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_harness_without_torch_ends_with_one_json_line_of_figures(tmp_path):
    """`--skip-torch` runs the JAX side alone (torch is an optional extra, not installed by
    `.[test]`); the last printed line is the JSON object also appended to `--out`. A tiny
    Kinetics shape keeps it to ~15 s; the GPU sweep test (marker slow) runs the full scripts."""
    out_file = tmp_path / "results.jsonl"
    run = subprocess.run(
        [sys.executable, "benchmarks/train_step_benchmark.py", "--model", "stgcn", "--dataset",
         "kinetics", "--frames", "8", "--batch", "1", "--iters", "1", "--threads", "2",
         "--skip-torch", "--out", str(out_file)],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    last = json.loads(run.stdout.strip().splitlines()[-1])
    assert last == json.loads(out_file.read_text().splitlines()[-1])
    assert "torch" not in last
    assert last["config"]["frames"] == 8 and last["config"]["batch"] == 1
    for mode in ("train", "infer"):
        figures = last["jax"][mode]
        assert figures["n"] == 1 and figures["clips_per_s"] > 0 and figures["gflop_per_s"] > 0
        assert last["jax"][f"{mode}_compile"]["compile_s"] > 0
    assert last["model_gflop_train_per_clip"] == pytest.approx(
        3 * last["model_gflop_fwd_per_clip"])
    assert "commit" in last["source"]


def test_agcn_backbone_refuses_attention_against_the_torch_baseline(monkeypatch):
    """benchmarks/torch_agcn.py has no attention blocks: asking for them with the PyTorch side
    on is an error that names the way out, raised before anything is built."""
    from benchmarks import train_step_benchmark

    monkeypatch.setattr(train_step_benchmark, "configure_process", lambda args: None)
    with pytest.raises(SystemExit, match="--skip-torch"):
        train_step_benchmark.main(["--backbone", "agcn", "--model", "am_stgcn", "--frames", "8",
                                   "--batch", "1"])
