"""NTU RGB+D reader: real samples, name parsing, splits, missing-skeleton list, edge cases."""

import os

import numpy as np
import pytest

from amstgcn_jax.readers import ntu
from amstgcn_jax.readers.errors import EmptySkeletonError, SkeletonFormatError

REAL = ["gardiens/S001C001P001R001A001.skeleton", "LevelCA/S001C001P001R001A011.skeleton",
        "LevelCA/S001C003P008R002A058.skeleton", "LevelCA/S002C001P003R001A003.skeleton",
        "LevelCA/S004C002P003R001A017.skeleton"]


def _text(bodies_per_frame, coords, num_joint=25, newline="\r\n"):
    """A .skeleton file; coords[t][b] is a (num_joint, 3) array."""
    lines = [str(len(bodies_per_frame))]
    for t, n in enumerate(bodies_per_frame):
        lines.append(str(n))
        for b in range(n):
            lines += [f"72057594037{b:06d} 0 1 1 1 1 0 0.01 -0.25 2", str(num_joint)]
            lines += [f"{float(x)!r} {float(y)!r} {float(z)!r} 1 2 3 4 0 0 0 0 2"
                      for x, y, z in coords[t][b]]
    return (newline.join(lines) + newline).encode()


def _random_coords(rng, bodies_per_frame, num_joint=25):
    return [[rng.uniform(-2, 4, (num_joint, 3)).round(7) for _ in range(n)]
            for n in bodies_per_frame]


@pytest.fixture
def ntu_dir(shared_dir):
    return shared_dir / "data" / "ntu60-raw-samples"


@pytest.mark.parametrize("rel", REAL)
def test_real_sample_shape_and_content(ntu_dir, rel):
    x = ntu.read_ntu_skeleton(ntu_dir / rel)
    parsed = ntu.parse_ntu_skeleton(ntu_dir / rel)
    assert x.shape == (3, 300, 25, 2) and x.dtype == np.float32
    t = parsed.num_frames
    assert np.abs(x[:, :t, :, 0]).sum(axis=(0, 2)).min() > 0  # every frame has body 0
    assert not x[:, t:].any()  # zero padding
    assert (parsed.bodies_per_frame.max() >= 2) == bool(x[..., 1].any())
    y = ntu.read_ntu_skeleton(ntu_dir / rel, max_frame=None)
    assert y.shape == (3, t, 25, 2) and np.array_equal(y, x[:, :t])


def test_authors_npy_equals_text_reader(ntu_dir):
    a = ntu.read_ntu_npy(ntu_dir / "gardiens/S001C001P001R001A001.skeleton.npy")
    b = ntu.read_ntu_skeleton(ntu_dir / "gardiens/S001C001P001R001A001.skeleton")
    assert a.tobytes() == b.tobytes()


def test_crlf_and_lf_give_the_same_array(ntu_dir, tmp_path):
    raw = (ntu_dir / REAL[2]).read_bytes()
    assert b"\r\n" in raw
    lf = tmp_path / "S001C003P008R002A058.skeleton"
    lf.write_bytes(raw.replace(b"\r\n", b"\n"))
    assert np.array_equal(ntu.read_ntu_skeleton(lf), ntu.read_ntu_skeleton(ntu_dir / REAL[2]))


def test_bodies_fill_slots_in_file_order_and_extra_bodies_are_dropped(tmp_path):
    rng = np.random.default_rng(0)
    bodies = [1, 3, 0, 2]
    coords = _random_coords(rng, bodies)
    p = tmp_path / "S001C001P001R001A001.skeleton"
    p.write_bytes(_text(bodies, coords))
    x = ntu.read_ntu_skeleton(p, max_frame=6)
    assert x.shape == (3, 6, 25, 2)
    for t, n in enumerate(bodies):
        for m in range(2):
            want = coords[t][m].T.astype(np.float32) if m < n else 0
            np.testing.assert_array_equal(x[:, t, :, m], want)
    assert not x[:, 4:].any()
    x3 = ntu.read_ntu_skeleton(p, max_body=3, max_frame=None)
    np.testing.assert_array_equal(x3[:, 1, :, 2], coords[1][2].T.astype(np.float32))


def test_float64_parse_then_single_rounding(tmp_path):
    # upstream parses every number with float() (float64) and rounds once to float32
    coords = [[np.full((25, 3), 0.30000001192092896)]]
    p = tmp_path / "S001C001P001R001A001.skeleton"
    p.write_bytes(_text([1], coords))
    x = ntu.read_ntu_skeleton(p, max_frame=None)
    assert x[0, 0, 0, 0] == np.float32(np.float64(0.30000001192092896))


def test_too_many_frames_raises_unless_truncate(tmp_path):
    rng = np.random.default_rng(1)
    bodies = [1] * 7
    coords = _random_coords(rng, bodies)
    p = tmp_path / "S001C001P001R001A001.skeleton"
    p.write_bytes(_text(bodies, coords))
    with pytest.raises(SkeletonFormatError, match="more than max_frame=5"):
        ntu.read_ntu_skeleton(p, max_frame=5)
    x = ntu.read_ntu_skeleton(p, max_frame=5, truncate=True)
    np.testing.assert_array_equal(x, ntu.read_ntu_skeleton(p, max_frame=None)[:, :5])


def test_no_body_in_any_frame_is_empty_error(tmp_path):
    p = tmp_path / "S001C002P005R002A008.skeleton"
    p.write_bytes(b"3\r\n0\r\n0\r\n0\r\n")
    with pytest.raises(EmptySkeletonError, match="S001C002P005R002A008"):
        ntu.read_ntu_skeleton(p)
    p.write_bytes(b"0\r\n")
    with pytest.raises(EmptySkeletonError):
        ntu.read_ntu_skeleton(p)


def test_wrong_joint_count_is_named(tmp_path):
    rng = np.random.default_rng(2)
    p = tmp_path / "S001C001P001R001A001.skeleton"
    p.write_bytes(_text([1, 1], _random_coords(rng, [1, 1], num_joint=24), num_joint=24))
    with pytest.raises(SkeletonFormatError, match="24 joints, expected 25"):
        ntu.read_ntu_skeleton(p)
    assert ntu.read_ntu_skeleton(p, num_joint=24, max_frame=None).shape == (3, 2, 24, 2)


def test_name_parsing():
    info = ntu.parse_ntu_name("/x/y/S017C003P020R001A059.skeleton")
    assert (info.setup, info.camera, info.subject, info.replication, info.action, info.label) == \
        (17, 3, 20, 1, 59, 58)
    assert ntu.parse_ntu_name("S032C001P106R002A120").label == 119
    with pytest.raises(SkeletonFormatError, match="sample name"):
        ntu.parse_ntu_name("foo.skeleton")


def test_splits():
    # NTU-60 (ntu_gendata constants)
    assert ntu.ntu_split("S001C001P001R001A001", "xsub") == "train"
    assert ntu.ntu_split("S001C001P003R001A001", "xsub") == "val"
    assert ntu.ntu_split("S001C001P001R001A001", "xview") == "val"
    assert ntu.ntu_split("S001C002P001R001A001", "xview") == "train"
    assert ntu.ntu_split("S001C003P001R001A001", "xview") == "train"
    # NTU-120: 53 training subjects, even setups train for xset
    assert len(ntu.TRAINING_SUBJECTS_120) == 53 and len(set(ntu.TRAINING_SUBJECTS_120)) == 53
    assert ntu.ntu_split("S018C001P045R001A061", "xsub", "ntu120") == "train"
    assert ntu.ntu_split("S018C001P044R001A061", "xsub", "ntu120") == "val"
    assert ntu.ntu_split("S018C001P044R001A061", "xset", "ntu120") == "train"
    assert ntu.ntu_split("S019C001P044R001A061", "xset", "ntu120") == "val"
    with pytest.raises(ValueError, match="xset"):
        ntu.ntu_split("S001C001P001R001A001", "xset", "ntu60")


def test_missing_skeleton_lists():
    m60, m120 = ntu.missing_skeleton_samples("ntu60"), ntu.missing_skeleton_samples("ntu120")
    assert len(m60) == 302 and len(m120) == 535 and m60 < m120
    assert "S001C002P005R002A008" in m60 and "S017C003P020R001A059" in m60
    assert "S032C003P067R002A077" in m120 and "S032C003P067R002A077" not in m60
    assert all(ntu.parse_ntu_name(n).setup <= 17 for n in m60)


def test_list_samples_partitions_and_skips_missing(ntu_dir, tmp_path):
    for rel in REAL:
        os.symlink(ntu_dir / rel, tmp_path / os.path.basename(rel))
    (tmp_path / "S001C002P005R002A008.skeleton").write_bytes(b"1\r\n0\r\n")  # in missing list
    (tmp_path / "S018C001P045R001A061.skeleton").write_bytes(b"1\r\n0\r\n")  # NTU-120 only
    (tmp_path / "notes.txt").write_text("x")
    for bench in ("xsub", "xview"):
        train = ntu.list_ntu_samples(tmp_path, bench, "train")
        val = ntu.list_ntu_samples(tmp_path, bench, "val")
        names = sorted(n for n, _, _ in train + val)
        assert names == sorted(os.path.basename(r)[:20] for r in REAL)
        assert all(label == ntu.parse_ntu_name(n).label for n, _, label in train + val)
    assert {n for n, _, _ in ntu.list_ntu_samples(tmp_path, "xsub", "train")} == {
        "S001C001P001R001A001", "S001C001P001R001A011", "S001C003P008R002A058"}
    all120 = ntu.list_ntu_samples(tmp_path, "xset", "train", "ntu120", skip_missing=False)
    assert {n for n, _, _ in all120} == {"S002C001P003R001A003", "S004C002P003R001A017",
                                         "S018C001P045R001A061"}  # even setups
    with pytest.raises(FileNotFoundError):
        ntu.list_ntu_samples(tmp_path / "nope", "xsub", "train")
