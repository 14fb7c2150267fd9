"""Array formats: real PaddleVideo samples, ST-GCN data/label pairs, CTR-GCN npz, pyskl pickles."""

import pickle

import numpy as np
import pytest

from amstgcn_jax.readers import arrays, ntu
from amstgcn_jax.readers.errors import EmptySkeletonError, SkeletonFormatError, UnsafePickleError


@pytest.fixture
def arr_dir(shared_dir):
    return shared_dir / "data" / "array-format-samples"


def test_real_npy_samples(arr_dir):
    x = arrays.read_array_npy(arr_dir / "example_NTU-RGB-D_sketeton.npy")
    assert x.shape == (3, 300, 25, 2) and x.dtype == np.float32
    valid = np.abs(x).sum(axis=(0, 2)) > 0  # (T, M)
    assert valid[:72, 0].all() and not valid[72:, 0].any() and not valid[:, 1].any()
    raw = np.load(arr_dir / "fsd10_example_skeleton.npy")
    y = arrays.read_array_npy(arr_dir / "fsd10_example_skeleton.npy")
    assert raw.dtype == np.float64 and y.dtype == np.float32 and y.shape == (3, 2500, 25, 1)
    np.testing.assert_array_equal(y, raw.astype(np.float32))


def test_real_pyskl_pickle(arr_dir):
    split, anns = arrays.read_pyskl_pickle(arr_dir / "example_UCF101_skeleton.pkl")
    assert split is None and len(anns) == 1
    x, label = arrays.pyskl_to_array(anns[0])
    kp, score = anns[0]["keypoint"], anns[0]["keypoint_score"]
    assert x.shape == (3, 163, 17, 2) and x.dtype == np.float32 and label == 0
    np.testing.assert_array_equal(x[:2], kp.astype(np.float32).transpose(3, 1, 2, 0))
    np.testing.assert_array_equal(x[2], score.astype(np.float32).transpose(1, 2, 0))
    assert arrays.pyskl_to_array(anns[0], with_score=False)[0].shape == (2, 163, 17, 2)


def test_stgcn_pair_roundtrip(shared_dir, tmp_path):
    d = shared_dir / "data" / "ntu60-raw-samples" / "LevelCA"
    files = sorted(d.glob("*.skeleton"))
    data = np.stack([ntu.read_ntu_skeleton(f) for f in files])
    names = [f.name for f in files]
    labels = [ntu.parse_ntu_name(f).label for f in files]
    np.save(tmp_path / "val_data.npy", data)
    with open(tmp_path / "val_label.pkl", "wb") as f:
        pickle.dump((names, labels), f)
    split = arrays.read_stgcn_arrays(tmp_path / "val_data.npy", tmp_path / "val_label.pkl")
    assert isinstance(split.data, np.memmap) and len(split) == len(files)
    assert split.names == names and split.labels.tolist() == labels
    for i in range(len(files)):
        assert split.sample(i).tobytes() == data[i].tobytes()
    with open(tmp_path / "bad_label.pkl", "wb") as f:
        pickle.dump((names[:-1], labels[:-1]), f)
    with pytest.raises(SkeletonFormatError, match="labels"):
        arrays.read_stgcn_arrays(tmp_path / "val_data.npy", tmp_path / "bad_label.pkl")


def test_stgcn_zero_or_nan_row(tmp_path):
    data = np.zeros((2, 3, 4, 25, 2), np.float32)
    data[0, :, 1] = 1.0
    data[1, 0, 0, 0, 0] = np.nan
    np.save(tmp_path / "d.npy", data)
    with open(tmp_path / "l.pkl", "wb") as f:
        pickle.dump((["a", "b"], [0, 1]), f)
    split = arrays.read_stgcn_arrays(tmp_path / "d.npy", tmp_path / "l.pkl", mmap=False)
    assert split.sample(0).shape == (3, 4, 25, 2)
    with pytest.raises(SkeletonFormatError, match="sample 1 .*NaN"):
        split.sample(1)
    data[0] = 0
    np.save(tmp_path / "d.npy", data)
    with pytest.raises(EmptySkeletonError, match="sample 0"):
        arrays.read_stgcn_arrays(tmp_path / "d.npy", tmp_path / "l.pkl").sample(0)


def test_ctrgcn_npz(tmp_path):
    rng = np.random.default_rng(0)
    x_NCTVM = rng.normal(size=(3, 3, 7, 25, 2)).astype(np.float32)
    flat = x_NCTVM.transpose(0, 2, 4, 3, 1).reshape(3, 7, 150)  # CTR-GCN's (N, T, M*V*C)
    y = np.eye(60, dtype=np.float32)[[4, 0, 59]]
    np.savez(tmp_path / "NTU60_CS.npz", x_train=flat, y_train=y, x_test=flat[:1], y_test=y[:1])
    got, labels = arrays.read_ctrgcn_npz(tmp_path / "NTU60_CS.npz", "train")
    np.testing.assert_array_equal(got, x_NCTVM)
    assert labels.tolist() == [4, 0, 59]
    assert arrays.read_ctrgcn_npz(tmp_path / "NTU60_CS.npz", "test")[0].shape == (1, 3, 7, 25, 2)


def test_pyskl_split_selection(tmp_path):
    rng = np.random.default_rng(1)
    anns = [{"frame_dir": f"S001C001P00{i}R001A001", "label": i, "total_frames": 4,
             "keypoint": rng.normal(size=(1, 4, 25, 3)).astype(np.float32)} for i in range(1, 4)]
    obj = {"split": {"xsub_train": [anns[0]["frame_dir"], anns[2]["frame_dir"]],
                     "xsub_val": [anns[1]["frame_dir"]]}, "annotations": anns}
    with open(tmp_path / "ntu60_3danno.pkl", "wb") as f:
        pickle.dump(obj, f)
    split, got = arrays.read_pyskl_pickle(tmp_path / "ntu60_3danno.pkl")
    train = arrays.select_pyskl_split(split, got, "xsub_train")
    assert [a["label"] for a in train] == [1, 3]
    x, label = arrays.pyskl_to_array(train[1])
    assert x.shape == (3, 4, 25, 1) and label == 3  # 3D keypoints, no score channel
    with pytest.raises(SkeletonFormatError, match="available"):
        arrays.select_pyskl_split(split, got, "xview_train")


def test_pickles_only_through_the_restricted_unpickler(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("executed",))
    with open(tmp_path / "l.pkl", "wb") as f:
        pickle.dump((["a"], [Evil()]), f)
    np.save(tmp_path / "d.npy", np.ones((1, 3, 2, 25, 2), np.float32))
    with pytest.raises(UnsafePickleError, match="builtins.print"):
        arrays.read_stgcn_arrays(tmp_path / "d.npy", tmp_path / "l.pkl")


def test_npy_header_declaring_more_data_than_present(tmp_path):
    import io
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f4", "fortran_order": False, "shape": (10**11, 3, 300, 25, 2)})
    (tmp_path / "huge.npy").write_bytes(buf.getvalue() + b"\x00" * 64)
    with pytest.raises(SkeletonFormatError, match="header declares"):  # no 18 PB allocation
        arrays.read_array_npy(tmp_path / "huge.npy")
    with pytest.raises(SkeletonFormatError, match="header declares"):
        arrays.read_stgcn_arrays(tmp_path / "huge.npy", tmp_path / "absent.pkl")
