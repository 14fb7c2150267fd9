"""2s-AGCN data preparation: pre-normalisation, body selection, tiling, Kinetics flip, bones."""

from pathlib import Path

import numpy as np
import pytest

from amstgcn_jax import agcn_preprocess as ap
from amstgcn_jax import graph

_SHARED = Path(__file__).resolve().parents[1].parent / "shared"

# 2s-AGCN data_gen/gen_bone_data.py pairs, as written upstream (NTU 1-based, Kinetics 0-based).
UPSTREAM_NTU_BONES_1B = (
    (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9),
    (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18),
    (20, 19), (22, 23), (21, 21), (23, 8), (24, 25), (25, 12))
UPSTREAM_KINETICS_BONES = (
    (0, 0), (1, 0), (2, 1), (3, 2), (4, 3), (5, 1), (6, 5), (7, 6), (8, 2), (9, 8), (10, 9),
    (11, 5), (12, 11), (13, 12), (14, 0), (15, 0), (16, 14), (17, 15))


def _random_rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _canonical_bodies(rng, t=12, m=2):
    """Bodies (M, T, V, 3) with person 0's joint 1 at the origin in every frame, its spine
    (joint 0 -> 1) along +z and shoulders (joint 4 -> 8) along +x in frame 0."""
    bodies = rng.uniform(-0.5, 0.5, size=(m, t, 25, 3))
    bodies[0, :, 1] = 0.0
    bodies[0, 0, 0] = (0.0, 0.0, -0.3)
    bodies[0, 0, 4] = (-0.2, 0.1, 0.25)
    bodies[0, 0, 8] = (0.2, 0.1, 0.25)
    return bodies


def _to_ctvm(bodies_MTVC):
    return np.ascontiguousarray(bodies_MTVC.transpose(3, 1, 2, 0)).astype(np.float32)


def test_rotation_aligns_spine_with_z_and_shoulders_with_x():
    rng = np.random.default_rng(0)
    canonical = _canonical_bodies(rng)
    rot = _random_rotation(rng)
    shift_T3 = rng.normal(size=(canonical.shape[1], 3))  # per-frame drift, removed by centring
    moved = canonical @ rot.T + shift_T3[None, :, None, :]
    moved[1, 3, 7] = 0.0  # a missing joint stays missing
    out = ap.pre_normalize_sample(_to_ctvm(moved)).transpose(3, 1, 2, 0)
    expected = canonical.copy()
    expected[1, 3, 7] = 0.0
    np.testing.assert_allclose(out, expected, atol=2e-5)
    np.testing.assert_array_equal(out[1, 3, 7], 0.0)
    spine, shoulders = out[0, 0, 1] - out[0, 0, 0], out[0, 0, 8] - out[0, 0, 4]
    np.testing.assert_allclose(spine / np.linalg.norm(spine), [0, 0, 1], atol=1e-6)
    np.testing.assert_allclose(shoulders / np.linalg.norm(shoulders), [1, 0, 0], atol=1e-6)
    np.testing.assert_array_equal(out[0, :, 1], 0.0)  # centred on person 0's spine middle


def test_shoulders_exact_and_spine_approximate_when_not_perpendicular():
    rng = np.random.default_rng(1)
    bodies = _canonical_bodies(rng, m=1)
    bodies[0, 0, 8] = (0.2, 0.1, 0.35)  # shoulders tilted against the spine
    out = ap.pre_normalize_sample(_to_ctvm(bodies @ _random_rotation(rng).T))
    out = out.transpose(3, 1, 2, 0)
    shoulders = out[0, 0, 8] - out[0, 0, 4]
    assert abs(shoulders[1]) < 1e-6 and abs(shoulders[2]) < 1e-6 and shoulders[0] > 0
    spine = out[0, 0, 1] - out[0, 0, 0]
    assert spine[2] > 0.75 * np.linalg.norm(spine) and abs(spine[0]) > 1e-2


def test_short_clips_are_tiled_by_repetition():
    rng = np.random.default_rng(2)
    bodies = np.zeros((2, 20, 25, 3))
    bodies[0, :7] = _canonical_bodies(rng, t=7, m=1)[0]
    bodies[1, 3:8] = rng.uniform(-0.5, 0.5, size=(5, 25, 3))  # starts late: moved to the front
    bodies[0, 4] = 0.0  # an empty frame inside the clip stays empty
    out = ap.pre_normalize_sample(_to_ctvm(bodies)).transpose(3, 1, 2, 0)
    for t in range(7, 20):
        np.testing.assert_array_equal(out[0, t], out[0, t % 7])
    np.testing.assert_array_equal(out[0, 4], 0.0)
    assert np.abs(out[1, :5]).sum(axis=(1, 2)).min() > 0
    for t in range(5, 20):
        np.testing.assert_array_equal(out[1, t], out[1, t % 5])


def test_empty_sample_and_empty_person_pass_through():
    zeros = np.zeros((3, 10, 25, 2), np.float32)
    np.testing.assert_array_equal(ap.pre_normalize_sample(zeros), zeros)
    rng = np.random.default_rng(3)
    one = np.zeros((2, 10, 25, 3))
    one[0] = _canonical_bodies(rng, t=10, m=1)[0]
    out = ap.pre_normalize_sample(_to_ctvm(one))
    np.testing.assert_array_equal(out[..., 1], 0.0)
    batch = ap.pre_normalization(np.stack([_to_ctvm(one), zeros]))
    np.testing.assert_array_equal(batch[0], out)
    with pytest.raises(ValueError, match="3, T, V, M"):
        ap.pre_normalize_sample(np.zeros((2, 10, 25, 2), np.float32))


def test_select_the_two_most_active_of_four_bodies():
    rng = np.random.default_rng(4)
    t = np.arange(30)[:, None, None]
    still = np.ones((30, 25, 3)) * 0.5 + 0.001 * rng.normal(size=(30, 25, 3))
    big = 0.8 * np.sin(t / 3.0) + 0.1 * rng.normal(size=(30, 25, 3))
    medium = 0.3 * np.sin(t / 4.0) + 0.05 * rng.normal(size=(30, 25, 3))
    medium[20:] = 0.0  # empty frames do not count in its energy
    data = _to_ctvm(np.stack([still, big, np.zeros((30, 25, 3)), medium]))
    out = ap.select_active_bodies(data, 2)
    assert out.shape == (3, 30, 25, 2)
    np.testing.assert_array_equal(out[..., 0], data[..., 1])
    np.testing.assert_array_equal(out[..., 1], data[..., 3])
    expected = sum(medium[:20, :, c].std() for c in range(3))
    assert ap.body_energy(medium) == pytest.approx(expected)
    single = ap.select_active_bodies(data[..., :1], 2)  # fewer slots: padded with zeros
    np.testing.assert_array_equal(single[..., 1], 0.0)
    # a zero-energy body ties with the empty slots and loses to the later one, as upstream's
    # energy.argsort()[::-1] (stable for 4 entries)
    flat = np.zeros((30, 25, 3))
    flat[0] = 0.3
    tie = _to_ctvm(np.stack([big, flat]))
    np.testing.assert_array_equal(ap.select_active_bodies(tie, 2)[..., 1], 0.0)


def test_kinetics_flip_y():
    rng = np.random.default_rng(5)
    data = rng.normal(size=(3, 6, 18, 2)).astype(np.float32)
    data[:, 2] = 0.0
    out = ap.flip_y(data)
    np.testing.assert_array_equal(out[1], -data[1])
    np.testing.assert_array_equal(out[[0, 2]], data[[0, 2]])
    assert not np.signbit(out[1, 2]).any()  # zero joints stay +0, as upstream's float64 path
    np.testing.assert_array_equal(ap.flip_y(out), data)


def test_bone_pairs_are_upstreams():
    assert graph.bone_pairs("ntu-rgb+d") == tuple((c - 1, p - 1) for c, p in UPSTREAM_NTU_BONES_1B)
    assert graph.bone_pairs("openpose") == UPSTREAM_KINETICS_BONES


def test_bone_modality_toy_example():
    data = np.zeros((3, 2, 25, 1), np.float32)
    data[:, 0, 0, 0] = (1.0, 2.0, 3.0)  # spine base
    data[:, 0, 1, 0] = (1.5, 2.0, 4.0)  # spine middle, parent of the spine base
    data[:, 0, 20, 0] = (9.0, 9.0, 9.0)  # spine shoulder: the root, bone (21, 21) = 0
    bone = ap.to_bone(data, "ntu-rgb+d")
    np.testing.assert_allclose(bone[:, 0, 0, 0], (-0.5, 0.0, -1.0))
    np.testing.assert_allclose(bone[:, 0, 1, 0], (1.5 - 9, 2.0 - 9, 4.0 - 9))  # (2, 21)
    np.testing.assert_array_equal(bone[:, 0, 20, 0], 0.0)
    kin = np.zeros((3, 1, 18, 1), np.float32)
    kin[:, 0, 1, 0] = (0.1, 0.2, 0.9)  # neck
    kin[:, 0, 0, 0] = (0.1, 0.4, 0.5)  # nose, parent of the neck in upstream's list
    np.testing.assert_allclose(ap.to_bone(kin, "openpose")[:, 0, 1, 0], (0.0, -0.2, 0.4),
                               atol=1e-7)  # the score channel is differenced too


def test_pipeline_recipes():
    from amstgcn_jax import transforms

    rng = np.random.default_rng(6)
    bodies = np.zeros((4, 40, 25, 3))
    bodies[2] = _canonical_bodies(rng, t=40, m=1)[0] @ _random_rotation(rng).T
    example = {"data": _to_ctvm(bodies), "label": 3, "length": 40}
    padded = np.concatenate([example["data"], np.zeros((3, 260, 25, 4), np.float32)], 1)
    expected = ap.pre_normalize_sample(ap.select_active_bodies(padded)).transpose(3, 1, 2, 0)
    for train in (False, True):  # upstream NTU training uses no augmentation
        ops = ap.make_agcn_transforms("ntu", train=train, modality="joint")
        out = transforms.to_model_input(transforms.apply_transforms(example, ops, rng))
        assert out["x"].shape == (2, 300, 25, 3) and out["label"] == 3
        np.testing.assert_array_equal(out["x"], expected)

    kin = {"data": rng.uniform(-0.5, 0.5, size=(3, 100, 18, 2)).astype(np.float32), "label": 1}
    ops = ap.make_agcn_transforms("kinetics", train=True, modality="bone")
    assert transforms.apply_transforms(kin, ops, rng)["data"].shape == (3, 150, 18, 2)
    ops = ap.make_agcn_transforms("kinetics", train=False, modality="bone")
    test = transforms.to_model_input(transforms.apply_transforms(kin, ops))
    padded = np.concatenate([kin["data"], np.zeros((3, 200, 18, 2), np.float32)], 1)
    expected = ap.to_bone(ap.flip_y(padded), "openpose").transpose(3, 1, 2, 0)
    np.testing.assert_array_equal(test["x"], expected)
    with pytest.raises(ValueError, match="ntu"):
        ap.make_agcn_transforms("ucla", train=False)


def test_real_ntu_two_body_sample():
    path = _SHARED / "data/ntu60-raw-samples/LevelCA/S001C003P008R002A058.skeleton"
    if not _SHARED.is_dir():
        pytest.skip(f"../shared is absent ({_SHARED})")
    data = ap.read_ntu_agcn(path)
    assert data.shape == (3, 300, 25, 2) and data.dtype == np.float32
    skel = data.transpose(3, 1, 2, 0)
    np.testing.assert_array_equal(skel[0, :, 1], 0.0)  # every frame: 70 real + tiled copies
    assert (np.abs(skel[1]).sum(axis=(1, 2)) > 0).all()
    for t in (70, 140, 299):
        np.testing.assert_array_equal(skel[:, t], skel[:, t % 70])
    shoulders = skel[0, 0, 8] - skel[0, 0, 4]
    assert shoulders[0] > 0.2 and np.abs(shoulders[1:]).max() < 1e-6
    spine = skel[0, 0, 1] - skel[0, 0, 0]
    assert spine[2] > 0.95 * np.linalg.norm(spine)


# ------------------------------------------ vectorised forms against upstream's Python loops


def _tile_person_loop(person):
    """2s-AGCN `preprocess.py` padding of one person, its per-frame loop as written upstream."""
    person = person.copy()
    if person[0].sum() == 0:
        index = person.sum(-1).sum(-1) != 0
        tmp = person[index].copy()
        person *= 0
        person[: len(tmp)] = tmp
    for i_f, frame in enumerate(person):
        if frame.sum() == 0 and person[i_f:].sum() == 0:
            if i_f == 0:
                break
            rest = len(person) - i_f
            num = int(np.ceil(rest / i_f))
            person[i_f:] = np.concatenate([person[0:i_f] for _ in range(num)], 0)[:rest]
            break
    return person


def _align_loop(skel, joint_from, joint_to, target):
    """`rotation` step of `preprocess.py`, frame by frame (the matrix as `ap._align` builds it)."""
    vec = skel[0, 0, joint_to] - skel[0, 0, joint_from]
    rot = ap._rotation_matrix(np.cross(vec, target), ap._angle_between(vec, target))
    out = skel.copy()
    for m, person in enumerate(skel):
        if person.sum() == 0:
            continue
        frames = np.array([frame.sum() != 0 for frame in person])
        out[m, frames] = (person[frames].astype(np.float64) @ rot.T).astype(np.float32)
    return out


def _pre_normalize_loops(data):
    skel = np.ascontiguousarray(data.transpose(3, 1, 2, 0))
    if skel.sum() == 0:
        return data.copy()
    for m in range(skel.shape[0]):
        if skel[m].sum() != 0:
            skel[m] = _tile_person_loop(skel[m])
    center = skel[0][:, 1:2, :].copy()
    for m in range(skel.shape[0]):
        if skel[m].sum() != 0:
            skel[m] = (skel[m] - center) * (skel[m].sum(-1) != 0)[..., None]
    skel = _align_loop(skel, 0, 1, np.array([0, 0, 1]))
    skel = _align_loop(skel, 4, 8, np.array([1, 0, 0]))
    return np.ascontiguousarray(skel.transpose(3, 1, 2, 0))


def _select_loop(data, num_keep=2, num_slots=4):
    if data.shape[-1] < num_slots:
        pad = np.zeros(data.shape[:-1] + (num_slots - data.shape[-1],), data.dtype)
        data = np.concatenate([data, pad], axis=-1)
    energy = np.array([ap.body_energy(data[..., m].transpose(1, 2, 0))
                       for m in range(data.shape[-1])])
    return data[..., np.argsort(energy, kind="stable")[::-1][:num_keep]]


def _awkward_samples(rng):
    """(3, 30, 25, M) samples that reach every branch: a late start (frame 0 empty), interior
    empty frames, a frame whose values cancel to an exact 0 sum (counts as empty), a frame
    whose sum depends on the summation order, an empty person, one and four slots."""
    out = []
    for case in range(7):
        m = 4 if case == 6 else (1 if case == 5 else 2)
        data = rng.normal(size=(3, 30, 25, m)).astype(np.float32)
        data[:, 22:] = 0.0
        data[:, 9, :, 0] = 0.0
        if case in (1, 3):
            data[:, :4, :, 0] = 0.0
        if case == 2:
            data[:, 11, :, 0] = 0.0
            data[0, 11, 2, 0], data[1, 11, 7, 0] = 0.75, -0.75
            data[:, 12, :, 0] = 0.0
            data[0, 12, :3, 0] = (1e8, 1.0, -1e8)
        if case == 3:
            data[..., 1] = 0.0
        if case == 4:
            data[:, 15:, :, 1] = 0.0
            data[:, 3, 20, 1] = 0.0  # a missing joint stays 0 after centring
        if case == 6:
            data[..., 2] = 0.0
            data[:, :, :, 3] *= 3
        out.append(data)
    return out


def test_vectorised_pre_normalisation_is_bit_identical_to_upstreams_loops():
    rng = np.random.default_rng(13)
    for data in _awkward_samples(rng):
        selected = ap.select_active_bodies(data, 2)
        np.testing.assert_array_equal(selected, _select_loop(data))
        assert selected.flags.c_contiguous
        padded = np.concatenate([selected, np.zeros((3, 20, 25, 2), np.float32)], 1)
        np.testing.assert_array_equal(ap.pre_normalize_sample(padded),
                                      _pre_normalize_loops(padded))
    for person in (s[..., 0].transpose(1, 2, 0) for s in _awkward_samples(rng)):
        person = np.ascontiguousarray(person)
        np.testing.assert_array_equal(ap._tile_person(person), _tile_person_loop(person))
