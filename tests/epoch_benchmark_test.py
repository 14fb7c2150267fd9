"""benchmarks/epoch_benchmark.py: train.py end to end on a built TFDS dataset, its rate read from
metrics.jsonl."""

import json

import numpy as np
import pytest

from amstgcn_jax.readers import arrays
from benchmarks import epoch_benchmark


def test_written_split_reads_back_as_an_stgcn_array_dataset(tmp_path):
    epoch_benchmark.write_stgcn_split(tmp_path, "train", 6, joints=18, persons=2,
                                      score_channel=True, num_classes=400, min_frames=5,
                                      max_frames=9, seed=0)
    split = arrays.read_stgcn_arrays(tmp_path / "train_data.npy", tmp_path / "train_label.pkl")
    assert split.data.shape == (6, 3, 300, 18, 2) and split.data.dtype == np.float32
    assert len(split.names) == 6 and ((split.labels >= 0) & (split.labels < 400)).all()
    for i in range(6):
        clip = np.asarray(split.data[i])
        length = np.flatnonzero(np.abs(clip).sum(axis=(0, 2, 3)))[-1] + 1
        assert 5 <= length <= 9 and not clip[:, length:].any()
        assert clip[..., 1].any() == (i % 2 == 1)  # a second person in every other clip
        assert (clip[2] >= 0).all() and (clip[2] <= 1).all()  # OpenPose score channel


def test_steady_rate_leaves_out_the_compile_interval():
    records = [{"step": 10, "time": 100.0, "train/clips_per_s": 1.0},
               {"step": 20, "time": 101.0, "train/clips_per_s": 80.0},
               {"step": 20, "time": 101.0, "eval/top1": 0.1},  # not a rate record
               {"step": 30, "time": 103.0, "train/clips_per_s": 40.0}]
    rate = epoch_benchmark.steady_rate(records, batch_size=8, skip=1)
    assert rate["steps"] == 10 and rate["seconds"] == 2.0 and rate["clips_per_s"] == 40.0
    assert epoch_benchmark.steady_rate(records, batch_size=8, skip=0)["clips_per_s"] == \
        pytest.approx(8 * 20 / 3.0)
    with pytest.raises(SystemExit, match="raise --steps"):
        epoch_benchmark.steady_rate(records, batch_size=8, skip=2)


def test_batch_size_goes_through_its_own_option():
    with pytest.raises(SystemExit, match="--batch_size"):
        epoch_benchmark.main(["--set", "batch_size=32"])


@pytest.mark.slow
def test_train_py_runs_a_built_dataset_end_to_end(tmp_path, capsys):
    """~2.5 min on 2 cores: a tiny Kinetics-shaped dataset, 0 and 1 grain workers (batch 8: the
    suite's 8 host devices reach train.py through XLA_FLAGS)."""
    epoch_benchmark.main([
        "--config", "configs/kinetics.py:variant=stgcn", "--clips", "24", "--steps", "6",
        "--log_every", "2", "--batch_size", "8", "--workers", "0,1", "--set", "data.window=16",
        "--epoch_clips", "1000", "--workdir", str(tmp_path), "--out", str(tmp_path / "r.jsonl")])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert json.loads((tmp_path / "r.jsonl").read_text()) == out
    assert out["data_repeat"] == 42 and out["test_clips"] == 8 and out["layout"] == "openpose"
    assert [r["workers_started"] for r in out["runs"]] == [0, 1]
    for r in out["runs"]:
        assert r["steps"] == 6 - 2 - 2 and r["clips_per_s"] > 0 and "Cpu" in r["devices"]
        assert r["epoch_s"] == pytest.approx(1000 / r["clips_per_s"])
        # the run read the built dataset: train.py saw 24 clips repeated 42 times per epoch
        assert (tmp_path / f"run_workers{r['num_workers']}" / "summary.json").exists()
