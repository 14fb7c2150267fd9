"""benchmarks/pipeline_benchmark.py: a config's own train transforms, timed per op and batched."""

import json

import pytest

from benchmarks import pipeline_benchmark


def test_config_mode_times_each_op_and_ends_with_json(capsys, tmp_path):
    pipeline_benchmark.main([
        "--workers", "0", "--batches", "2", "--warmup", "1", "--batch_size", "4",
        "--num_samples", "12", "--op_clips", "6", "--min_frames", "40", "--max_frames", "80",
        "--config", "configs/ntu60.py:xsub,backbone=agcn,bone",
        "--config", "configs/kinetics.py", "--out", str(tmp_path / "r.jsonl")])
    lines = capsys.readouterr().out.strip().splitlines()
    out = json.loads(lines[-1])
    assert json.loads((tmp_path / "r.jsonl").read_text()) == out and "commit" in out["source"]
    ntu, kinetics = out["configs"]
    assert ntu["recipe"] == "agcn" and ntu["modality"] == "bone"
    assert list(ntu["op_ms_per_clip"]) == ["agcn_select_bodies", "agcn_pre_normalize",
                                           "to_modality", "random_choose", "pad_persons"]
    # 2s-AGCN's NTU recipe pads to 300 frames; the Kinetics recipe trains on 150 of 18 joints
    assert ntu["pipeline"][0]["batch_shape"] == [4, 2, 300, 25, 3]
    assert kinetics["pipeline"][0]["batch_shape"] == [4, 2, 150, 18, 3]
    assert "random_move" in kinetics["op_ms_per_clip"]
    for c in out["configs"]:
        assert c["in_process_ms_per_clip"] > 0 and c["pipeline"][0]["clips_per_s"] > 0


def test_random_clips_have_the_configs_skeleton():
    src = pipeline_benchmark.RandomClips(4, joints=18, persons=2, score_channel=True,
                                         min_frames=5, max_frames=9)
    shapes = [src[i]["data"].shape for i in range(4)]
    assert all(s[0] == 3 and 5 <= s[1] <= 9 and s[2:] == (18, 2) for s in shapes)
    assert not src[0]["data"][..., 1].any() and src[1]["data"][..., 1].any()
    assert (src[1]["data"][2] >= 0).all() and (src[1]["data"][2] <= 1).all()


def test_recipe_mode_appends_the_same_json_line_to_out(capsys, tmp_path):
    pipeline_benchmark.main(["--workers", "0", "--batches", "1", "--warmup", "1",
                             "--batch_size", "4", "--num_samples", "8",
                             "--out", str(tmp_path / "r.jsonl")])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert json.loads((tmp_path / "r.jsonl").read_text()) == out
    assert out["recipe"] == "stgcn" and out["pipeline"][0]["clips_per_s"] > 0
    assert "commit" in out["source"] and out["batch_size"] == 4


@pytest.mark.slow  # a benchmark tool's full run; its helpers are tested in the default suite
def test_model_mode_times_the_projects_train_step():
    """`--model` times `amstgcn_jax.train_step.train_step` (the step train.py runs), not a
    stand-in: its state is a TrainState that advances one step per call."""
    t = pipeline_benchmark.time_train_step("stgcn", (1, 2, 8, 25, 3), batches=2)
    assert t["model"] == "stgcn" and t["clips_per_s"] > 0 and t["compile_s"] > 0
    assert t["state_step"] == 3  # the compile call and the two timed ones
    assert t["step_s"] == pytest.approx(1 / t["clips_per_s"])
