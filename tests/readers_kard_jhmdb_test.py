"""KARD text files and JHMDB (DD-Net) pickles."""

import numpy as np
import pytest

from amstgcn_jax.readers import jhmdb, kard


def test_kard_real_files(shared_dir):
    files = kard.list_kard_files(shared_dir / "data" / "kard")
    assert len(files) == 540
    assert np.bincount([label for _, _, label in files]).tolist() == [30] * 18
    for name, path, label in files[::97]:
        x, got = kard.read_kard_txt(path)
        assert got == label == kard.parse_kard_name(name).action - 1
        assert x.dtype == np.float32 and x.shape[0] == 3 and x.shape[2:] == (15, 1)
        assert 42 <= x.shape[1] <= 310
        raw = np.loadtxt(path).reshape(-1, 15, 3)
        np.testing.assert_array_equal(x[..., 0], raw.transpose(2, 0, 1).astype(np.float32))
    val = kard.list_kard_files(shared_dir / "data" / "kard", test_subjects={9, 10}, split="val")
    assert len(val) == 108 and all(kard.parse_kard_name(n).subject in {9, 10} for n, _, _ in val)


@pytest.mark.parametrize("split", [1, 2, 3])
def test_jhmdb_real_pickles(shared_dir, split):
    d = shared_dir / "data" / "jhmdb"
    train = jhmdb.read_jhmdb_pickle(d / f"GT_train_{split}.pkl")
    test = jhmdb.read_jhmdb_pickle(d / f"GT_test_{split}.pkl")
    assert len(train) + len(test) == 609
    labels = {label for _, label in train + test}
    assert len(labels) == 14 and labels <= set(range(21))
    for x, label in train[:5] + test[:5]:
        assert x.dtype == np.float32 and x.shape[0] == 2 and x.shape[2:] == (15, 1)
        assert 15 <= x.shape[1] <= 40
    assert jhmdb.JHMDB_CLASSES.index("clap") == 2
