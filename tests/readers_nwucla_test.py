"""NW-UCLA (CTR-GCN JSON release): real files, names, labels, the cross-view split."""

import os

import numpy as np
import pytest

from amstgcn_jax.readers import nwucla
from amstgcn_jax.readers.errors import SkeletonFormatError


@pytest.fixture
def ucla_dir(shared_dir):
    return shared_dir / "data" / "nw-ucla"


def test_split_sizes_and_labels(ucla_dir):
    train = nwucla.list_nwucla_files(ucla_dir, "train")
    val = nwucla.list_nwucla_files(ucla_dir, "val")
    assert len(train) == 1020 and len(val) == 464
    assert {nwucla.parse_nwucla_name(n).view for n, _, _ in train} == {1, 2}
    assert {nwucla.parse_nwucla_name(n).view for n, _, _ in val} == {3}
    assert sorted({label for _, _, label in train + val}) == list(range(10))
    assert nwucla.list_nwucla_files(ucla_dir / "all_sqe") == nwucla.list_nwucla_files(ucla_dir)


def test_val_label_pickle_agrees(ucla_dir):
    entries = nwucla.read_nwucla_val_labels(ucla_dir / "val_label.pkl")
    val = {n: label for n, _, label in nwucla.list_nwucla_files(ucla_dir, "val")}
    assert {e["file_name"] for e in entries} == set(val)
    assert all(val[e["file_name"]] == e["label"] - 1 for e in entries)
    for e in entries[:20]:  # frame counts (a few files; all 464 are read in the slow test)
        x, _ = nwucla.read_nwucla_json(ucla_dir / "all_sqe" / f"{e['file_name']}.json")
        assert x.shape == (3, e["length"], 20, 1)


@pytest.mark.parametrize("name", ["a01_s01_e00_v01", "a12_s10_e04_v03", "a02_s09_e04_v02",
                                  "a06_s02_e00_v03", "a11_s03_e00_v03"])
def test_real_files(ucla_dir, name):
    path = ucla_dir / "all_sqe" / f"{name}.json"
    x, label = nwucla.read_nwucla_json(path)
    info = nwucla.parse_nwucla_name(path)
    assert x.dtype == np.float32 and x.shape[0] == 3 and x.shape[2:] == (20, 1)
    assert label == nwucla.ACTION_IDS.index(info.action)
    assert np.isfinite(x).all() and x.any()


def test_read_dir_on_a_subset(ucla_dir, tmp_path):
    names = ["a01_s01_e00_v01", "a04_s02_e01_v02", "a05_s04_e02_v03", "a08_s02_e01_v03"]
    for n in names:
        os.symlink(ucla_dir / "all_sqe" / f"{n}.json", tmp_path / f"{n}.json")
    got = nwucla.read_nwucla_dir(tmp_path, "val")
    assert [n for n, _, _ in got] == ["a05_s04_e02_v03", "a08_s02_e01_v03"]
    assert [label for _, _, label in got] == [4, 6]
    assert len(nwucla.read_nwucla_dir(tmp_path)) == 4


def test_label_contradicting_name_is_rejected(ucla_dir, tmp_path):
    raw = (ucla_dir / "all_sqe" / "a01_s01_e00_v01.json").read_bytes()
    p = tmp_path / "a02_s01_e00_v01.json"
    p.write_bytes(raw)  # file_name inside says a01
    with pytest.raises(SkeletonFormatError, match="file_name"):
        nwucla.read_nwucla_json(p)
    with pytest.raises(SkeletonFormatError, match="NW-UCLA name"):
        nwucla.parse_nwucla_name("foo.json")


@pytest.mark.slow
def test_whole_dataset_reads(ucla_dir):
    got = nwucla.read_nwucla_dir(ucla_dir)
    assert len(got) == 1484
    assert min(x.shape[1] for _, x, _ in got) == 1 and max(x.shape[1] for _, x, _ in got) == 201
