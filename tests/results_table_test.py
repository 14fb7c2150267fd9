"""benchmarks/results_table.py: the README's `results_table.py benchmarks/results/*.jsonl`."""

import json
from pathlib import Path

from benchmarks import results_table

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def test_tables_from_every_results_file_skip_other_benchmarks_lines(capsys):
    paths = sorted(str(p) for p in RESULTS.glob("*.jsonl"))
    records = [json.loads(line) for p in paths for line in Path(p).read_text().splitlines()
               if line.startswith("{")]
    harness = sum(1 for d in records if {"config", "jax"} <= d.keys())
    other = len(records) - harness
    assert harness and other, "results/ should hold harness lines and other benchmarks' lines"
    assert len(results_table.load(paths)) == harness
    results_table.main(paths)
    out = capsys.readouterr()
    table = [line for line in out.out.splitlines() if line.startswith("| ") and " | " in line]
    assert len(table) > harness  # one row per harness run, plus headers and overhead rows
    assert f"({other} lines of other benchmarks left out)" in out.err


def test_overhead_rows_skip_runs_without_a_train_figure(tmp_path, capsys):
    """A baseline whose torch record has no train entry no longer raises KeyError: the JAX
    overhead row is printed, the torch one left out."""
    base = {"config": {"model": "stgcn", "dataset": "ntu", "frames": 8, "batch": 2,
                       "persons": 2, "dtype": "float32", "device": "cpu"},
            "jax": {"device": "cpu", "train": {"clips_per_s": 2.0, "gflop_per_s": 1.0}},
            "torch": {"infer": {"clips_per_s": 1.0}}, "model_gflop_fwd_per_clip": 1.0}
    other = json.loads(json.dumps(base))
    other["config"]["model"] = "am_stgcn"
    other["jax"]["train"]["clips_per_s"] = 1.0
    other["torch"] = {"train": {"clips_per_s": 0.5}}
    other["model_gflop_fwd_per_clip"] = 1.5
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(base) + "\n" + json.dumps(other) + "\n")
    results_table.main([str(path)])
    rows = [line for line in capsys.readouterr().out.splitlines() if "separate runs" in line]
    assert len(rows) == 1 and "| jax, separate runs | +100% | +50% |" in rows[0]
