"""Kinetics-skeleton reader: real samples, label files, feeder semantics on synthetic clips."""

import json
import os

import numpy as np
import pytest

from amstgcn_jax.readers import kinetics
from amstgcn_jax.readers.errors import EmptySkeletonError, SkeletonFormatError


@pytest.fixture
def kin_dir(shared_dir):
    return shared_dir / "data" / "kinetics-skeleton-samples"


def _clip(frames, label_index=7):
    """frames: list of (frame_index, [(pose36, score18), ...])."""
    return {"data": [{"frame_index": t, "skeleton": [{"pose": list(p), "score": list(s)}
                                                     for p, s in people]}
                     for t, people in frames], "label": "x", "label_index": label_index}


def _write(tmp_path, obj, name="clip.json"):
    p = tmp_path / name
    p.write_text(json.dumps(obj))
    return p


def test_real_samples(kin_dir):
    labels = kinetics.read_kinetics_labels(kin_dir / "kinetics_val_label-old.json")
    names = kinetics.read_kinetics_label_names(kin_dir / "label_name.txt")
    assert len(labels) == 19906 and sum(v.has_skeleton for v in labels.values()) == 19796
    assert len(names) == 400
    for path in sorted((kin_dir / "kinetics_val_old").glob("*.json")):
        x, label = kinetics.read_kinetics_json(path)
        entry = labels[path.name.split(".")[0]]
        assert x.shape == (3, 300, 18, 2) and x.dtype == np.float32
        assert label == entry.label_index and names[label] == entry.label
        assert not x[:, 0].any()  # frame_index starts at 1: row 0 is never written
        assert (np.abs(x[:2]) < 1).all() and ((x[2] >= 0) & (x[2] <= 1)).all()
        assert not x[:2][:, x[2] == 0].any()  # x = y = 0 where score == 0
        s = x[2].sum(axis=1)
        assert (s[:, 0] >= s[:, 1]).all()  # slot 0 is the higher-scoring person of each frame


def test_list_samples(kin_dir, tmp_path):
    got = kinetics.list_kinetics_samples(kin_dir / "kinetics_train",
                                         kin_dir / "kinetics_train_label.json")
    assert [(vid, label) for vid, _, label in got] == sorted(
        [("___dTOdxzXY", 0), ("___qijXy2f0", 1), ("__0muxHV-Uw", 2), ("__4frZhaVDs", 3),
         ("__6LvmReo3Y", 4)])
    labels = json.loads((kin_dir / "kinetics_train_label.json").read_text())
    labels["__0muxHV-Uw"]["has_skeleton"] = False
    (tmp_path / "l.json").write_text(json.dumps(labels))
    got = kinetics.list_kinetics_samples(kin_dir / "kinetics_train", tmp_path / "l.json")
    assert "__0muxHV-Uw" not in {vid for vid, _, _ in got} and len(got) == 4
    del labels["__0muxHV-Uw"]
    (tmp_path / "l.json").write_text(json.dumps(labels))
    with pytest.raises(SkeletonFormatError, match="no entry"):
        kinetics.list_kinetics_samples(kin_dir / "kinetics_train", tmp_path / "l.json")
    skipped = []  # a dataset build reports the unlabelled clip and keeps the others
    got = kinetics.list_kinetics_samples(kin_dir / "kinetics_train", tmp_path / "l.json",
                                         on_unlabelled=lambda vid, why: skipped.append(vid))
    assert skipped == ["__0muxHV-Uw"] and len(got) == 4


def test_feeder_semantics(tmp_path):
    rng = np.random.default_rng(0)
    people = [(rng.uniform(0, 1, 36).round(3), np.full(18, w)) for w in (0.1, 0.2, 0.3, 0.4,
                                                                         0.5, 0.9)]
    people[1][1][3] = 0.0  # a missing joint of person 1
    x, label = kinetics.read_kinetics_json(_write(tmp_path, _clip([(2, people), (5, [])])))
    assert label == 7
    # only the first 5 listed are ranked: the 6th (score 0.9) is dropped even though it is best
    np.testing.assert_array_equal(x[2, 2, :, 0], np.float32(0.5))
    np.testing.assert_array_equal(x[2, 2, :, 1], np.float32(0.4))
    np.testing.assert_array_equal(x[0, 2, :, 0], (people[4][0][0::2] - 0.5).astype(np.float32))
    np.testing.assert_array_equal(x[1, 2, :, 1], (people[3][0][1::2] - 0.5).astype(np.float32))
    assert not x[:, [0, 1, 3, 4, 5]].any()  # frame_index used as the row; empty entry stays 0
    x, _ = kinetics.read_kinetics_json(_write(tmp_path, _clip([(1, people[1:3])])))
    np.testing.assert_array_equal(x[:, 1, 3, 1], 0)  # person 1 is 2nd; its score-0 joint is 0,0,0


def test_ties_follow_argsort_and_stable_option(tmp_path):
    same = (np.full(36, 0.25), np.full(18, 0.5))
    other = (np.full(36, 0.75), np.full(18, 0.5))
    x, _ = kinetics.read_kinetics_json(_write(tmp_path, _clip([(1, [same, other])])),
                                       sort_kind="stable")
    np.testing.assert_array_equal(x[0, 1, :, 0], np.float32(-0.25))  # JSON order kept on a tie
    np.testing.assert_array_equal(x[0, 1, :, 1], np.float32(0.25))


def test_frame_index_out_of_range(tmp_path):
    person = [(np.full(36, 0.5), np.full(18, 0.5))]
    p = _write(tmp_path, _clip([(1, person), (300, person)]))
    with pytest.raises(SkeletonFormatError, match="frame_index 300"):
        kinetics.read_kinetics_json(p)
    x, _ = kinetics.read_kinetics_json(p, truncate=True)
    assert x[2, 1].any() and x.shape[1] == 300
    with pytest.raises(SkeletonFormatError, match="frame_index -1"):
        kinetics.read_kinetics_json(_write(tmp_path, _clip([(-1, person)]), "neg.json"),
                                    truncate=True)
    x, _ = kinetics.read_kinetics_json(p, max_frame=301)
    assert x.shape == (3, 301, 18, 2) and x[2, 300].any()


def test_no_skeleton_is_empty(tmp_path):
    with pytest.raises(EmptySkeletonError):
        kinetics.read_kinetics_json(_write(tmp_path, _clip([(1, []), (2, [])])))


def test_missing_file_is_typed(tmp_path):
    with pytest.raises(SkeletonFormatError, match="cannot read"):
        kinetics.read_kinetics_json(tmp_path / "absent.json")
    assert not os.path.exists(tmp_path / "absent.json")
