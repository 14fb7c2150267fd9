"""TFDS builders (array_record, no TensorFlow): build tiny datasets into tmp_path, read back."""

import json
import os
import pickle

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")

from amstgcn_jax import pipeline, synthetic  # noqa: E402
from amstgcn_jax.datasets import build as build_cli  # noqa: E402
from amstgcn_jax.readers import kinetics, ntu, nwucla  # noqa: E402


def _read_all(builder, split):
    ds = builder.as_data_source(split=split)
    return [ds[i] for i in range(len(ds))]


def _link(src_dir, names, dst_dir):
    os.makedirs(dst_dir, exist_ok=True)
    for n in names:
        os.symlink(os.path.join(src_dir, n), os.path.join(dst_dir, n))


def test_synthetic_builds_and_matches_the_generator(tmp_path):
    b = build_cli.build("amstgcn_synthetic/tiny", data_dir=str(tmp_path), quiet=True)
    assert b.info.splits["train"].num_examples == 120 and b.info.splits["test"].num_examples == 60
    ref = synthetic.SyntheticSource(60, split="test")
    src = pipeline.make_source("amstgcn_synthetic/tiny", split="test", data_dir=tmp_path)
    assert len(src) == 60
    for i in range(60):  # same order (shuffling disabled), bit-identical
        got, want = src[i], ref[i]
        assert got["name"] == want["name"] and got["label"] == want["label"]
        assert got["length"] == want["length"]
        np.testing.assert_array_equal(got["data"], want["data"])
    assert b.info.features["label"].names == list(synthetic.CLASS_NAMES)

    # What `num_workers=-1` gives a TFDS source on a GPU host: the source travels to spawned
    # grain workers as a handle on the files and yields the in-process batches.
    from amstgcn_jax import transforms
    assert src.file_backed
    ops = transforms.make_transforms("stgcn", train=True, window=32)
    ref_it = pipeline.make_train_iter(src, batch_size=8, seed=3, transforms=ops)
    it = pipeline.make_train_iter(src, batch_size=8, seed=3, transforms=ops, num_workers=2)
    try:
        for _ in range(8):  # one epoch (60 // 8 batches) and the first of the next
            want, got = next(ref_it), next(it)
            for k in want:
                np.testing.assert_array_equal(got[k], want[k])
    finally:
        it.close()


def test_ntu_builds_from_raw_files_and_skips_bad_ones(tmp_path, shared_dir, capsys):
    raw = shared_dir / "data" / "ntu60-raw-samples"
    files = sorted(p for p in raw.rglob("*.skeleton"))
    manual = tmp_path / "raw"
    manual.mkdir()
    for p in files:
        os.symlink(p, manual / p.name)
    good = files[0].read_text().splitlines()
    # a truncated copy and a garbage file, with names of the train part (subject 1)
    (manual / "S001C001P001R001A002.skeleton").write_text("\n".join(good[: len(good) // 3]))
    (manual / "S001C002P001R001A002.skeleton").write_text("12\nnot a skeleton\n")
    b = build_cli.build("ntu_rgbd60/xsub", data_dir=str(tmp_path / "tfds"),
                        manual_dir=str(manual))
    err = capsys.readouterr().err
    skipped = dict(sum(b.skipped.values(), []))
    assert set(skipped) == {"S001C001P001R001A002", "S001C002P001R001A002"}
    assert "skipped S001C001P001R001A002" in err
    meta = json.loads((tmp_path / "tfds" / "ntu_rgbd60" / "xsub" / "1.0.0" /
                       "metadata.json").read_text())
    assert len(sum(meta["skipped"].values(), [])) == 2
    built = {}
    for split in ("train", "test"):
        for ex in _read_all(b, split):
            built[ex["name"].decode()] = (split, ex)
    expected = {}
    for p in files:
        info = ntu.parse_ntu_name(p.name)
        if info.name not in ntu.missing_skeleton_samples("ntu60"):
            expected[info.name] = p
    assert set(built) == set(expected)
    for name, p in expected.items():
        split, ex = built[name]
        ref = ntu.read_ntu_skeleton(p, max_frame=None)
        np.testing.assert_array_equal(ex["data"], ref)
        np.testing.assert_array_equal(ntu.read_ntu_skeleton(p)[:, : ex["length"]], ex["data"])
        info = ntu.parse_ntu_name(name)
        assert ex["label"] == info.label and ex["subject"] == info.subject
        assert split == {"train": "train", "val": "test"}[ntu.ntu_split(info, "xsub")]


def test_kinetics_builds_and_matches_reader(tmp_path, shared_dir, capsys):
    raw = shared_dir / "data" / "kinetics-skeleton-samples"
    names = sorted(os.listdir(raw / "kinetics_train"))
    manual = tmp_path / "raw"
    _link(raw / "kinetics_train", names, manual / "kinetics_train")
    labels = json.loads((raw / "kinetics_train_label.json").read_text())
    (manual / "kinetics_train" / "zzzbroken.json").write_text('{"data": [{"frame_index": 1, ')
    (manual / "kinetics_train" / "zzznolabel.json").write_text('{"data": []}')
    labels["zzzbroken"] = {"has_skeleton": True, "label": "x", "label_index": 1}
    (manual / "kinetics_train_label.json").write_text(json.dumps(labels))
    b = build_cli.build("kinetics_skeleton", data_dir=str(tmp_path / "tfds"),
                        manual_dir=str(manual))
    assert {n for n, _ in b.skipped["train"]} == {"zzzbroken", "zzznolabel"}
    assert "skipped zzzbroken" in capsys.readouterr().err
    got = _read_all(b, "train")
    assert [g["name"].decode() for g in got] == [n.split(".")[0] for n in names]
    for g, n in zip(got, names):
        ref, label = kinetics.read_kinetics_json(raw / "kinetics_train" / n)
        assert g["label"] == label
        np.testing.assert_array_equal(g["data"], ref[:, : g["length"]])
        assert not ref[:, g["length"]:].any() and g["data"][:, -1].any()


def test_nwucla_builds_and_matches_reader(tmp_path, shared_dir):
    raw = shared_dir / "data" / "nw-ucla" / "all_sqe"
    pick = [f for f in sorted(os.listdir(raw)) if f.startswith("a01_s01")][:6]  # 2 in view 3
    manual = tmp_path / "all_sqe"
    _link(raw, pick, manual)
    (manual / "a12_s10_e09_v03.json").write_text('{"file_name": "a12_s10_e09_v03", "label": 10, '
                                                  '"skeletons": [[[0.1, 0.2, NaN]]]}')
    b = build_cli.build("nw_ucla", data_dir=str(tmp_path / "tfds"), manual_dir=str(manual),
                        quiet=True)
    assert [n for n, _ in b.skipped["test"]] == ["a12_s10_e09_v03"] and not b.skipped["train"]
    for split in ("train", "test"):
        got = _read_all(b, split)
        want = [f for f in pick if nwucla.parse_nwucla_name(f).split ==
                {"train": "train", "test": "val"}[split]]
        assert [g["name"].decode() for g in got] == [f[:-5] for f in want]
        for g, f in zip(got, want):
            ref, label = nwucla.read_nwucla_json(raw / f)
            np.testing.assert_array_equal(g["data"], ref)
            assert g["label"] == label and g["length"] == ref.shape[1]
    mem = pipeline.make_source("nw_ucla", split="test", manual_dir=manual)
    tf = pipeline.make_source("nw_ucla/xview", split="test", data_dir=tmp_path / "tfds")
    assert len(mem) == len(tf) == 2
    np.testing.assert_array_equal(mem[1]["data"], tf[1]["data"])


def test_stgcn_arrays_build_skips_nan_rows(tmp_path):
    rng = np.random.default_rng(0)
    data = np.zeros((3, 3, 10, 25, 2), np.float32)
    data[:, :, :7] = rng.normal(size=(3, 3, 7, 25, 2))
    data[1, 0, 2, 3, 0] = np.nan
    np.save(tmp_path / "train_data.npy", data)
    with open(tmp_path / "train_label.pkl", "wb") as f:
        pickle.dump((["a", "b", "c"], [4, 5, 6]), f)
    b = build_cli.build("skeleton_arrays/stgcn", data_dir=str(tmp_path / "tfds"),
                        manual_dir=str(tmp_path), quiet=True)
    assert [n for n, _ in b.skipped["train"]] == ["b"]
    got = _read_all(b, "train")
    assert [g["name"].decode() for g in got] == ["a", "c"] and [g["label"] for g in got] == [4, 6]
    np.testing.assert_array_equal(got[1]["data"], data[2][:, :7])


def test_ctrgcn_npz_builds(tmp_path):
    rng = np.random.default_rng(1)
    x = np.zeros((3, 8, 2 * 25 * 3), np.float32)  # (N, T, M*V*C)
    x[:, :5] = rng.normal(size=(3, 5, 150))
    x[2] = 0  # an empty row is skipped
    y = np.eye(4)[[1, 3, 0]]
    np.savez(tmp_path / "NTU60_CS.npz", x_train=x, y_train=y, x_test=x[:1], y_test=y[:1])
    b = build_cli.build("skeleton_arrays/ctrgcn", data_dir=str(tmp_path / "tfds"),
                        manual_dir=str(tmp_path), quiet=True)
    assert [n for n, _ in b.skipped["train"]] == ["train_000002"]
    got = _read_all(b, "train")
    assert [g["label"] for g in got] == [1, 3]
    ref = x[1].reshape(8, 2, 25, 3).transpose(3, 0, 2, 1)[:, :5]
    np.testing.assert_array_equal(got[1]["data"], ref)


def test_pyskl_pickle_builds(tmp_path, shared_dir):
    src = shared_dir / "data" / "array-format-samples" / "example_UCF101_skeleton.pkl"
    manual = tmp_path / "raw"
    manual.mkdir()
    os.symlink(src, manual / src.name)
    b = build_cli.build("skeleton_arrays/pyskl", data_dir=str(tmp_path / "tfds"),
                        manual_dir=str(manual), quiet=True)
    (ex,) = _read_all(b, "train")
    assert ex["data"].shape == (3, 163, 17, 2) and ex["length"] == 163


def test_cli_errors_are_one_sentence(tmp_path, capsys):
    cases = [
        (["ntu_rgbd60/xsub", "--data_dir", str(tmp_path)], "--manual_dir"),
        (["ntu_rgbd60/xsub", "--manual_dir", str(tmp_path / "nope")], "does not exist"),
        (["ntu_rgbd60/xsub", "--manual_dir", str(tmp_path)], "no .skeleton files"),
        (["kinetics_skeleton", "--manual_dir", str(tmp_path)], "kinetics_train"),
        (["nw_ucla", "--manual_dir", str(tmp_path)], "no NW-UCLA JSON"),
        (["ntu_rgbd60/xset", "--manual_dir", str(tmp_path)], "no config"),
        (["imagenet"], "unknown dataset"),
    ]
    for argv, needle in cases:
        assert build_cli.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and needle in err and "\n" not in err, err
        assert "Traceback" not in err


def test_cli_builds_and_reports_count(tmp_path, capsys):
    assert build_cli.main(["amstgcn_synthetic/tiny", "--data_dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "train: 120" in out and "0 sample(s) skipped" in out
    assert build_cli.main(["amstgcn_synthetic/tiny", "--data_dir", str(tmp_path)]) == 0
    assert "already prepared" in capsys.readouterr().out
