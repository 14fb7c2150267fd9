"""Per-example transforms: determinism given rng, reference semantics, modalities on a toy."""

import functools
import inspect

import numpy as np
import pytest

from amstgcn_jax import graph, synthetic
from amstgcn_jax import transforms as T


@pytest.fixture(scope="module")
def example():
    ex = next(synthetic.generate(1, min_frames=40, max_frames=40))
    data = np.zeros((3, 56, 25, 2), np.float32)  # zero-padded like the NTU/Kinetics arrays
    data[:, :40] = ex["data"]
    return dict(ex, data=data, index=0)


RANDOM_OPS = [
    functools.partial(T.random_choose, size=24),
    functools.partial(T.random_choose, size=64),
    T.random_move,
    T.random_shift,
    functools.partial(T.random_rotation, theta=0.3),
    functools.partial(T.uniform_sample_frames, clip_len=16, p_interval=(0.5, 1.0)),
    functools.partial(T.uniform_sample_frames, clip_len=64),
    functools.partial(T.valid_crop_resize, window=16, p_interval=(0.5, 1.0), min_length=8),
]
DET_OPS = [
    functools.partial(T.auto_pad, size=64),
    functools.partial(T.crop_or_pad, size=16),
    functools.partial(T.order_persons, num_person_out=2),
    functools.partial(T.pad_persons, num_persons=3),
    T.pre_normalize_3d,
    functools.partial(T.uniform_sample_frames_test, clip_len=16, num_clips=3),
    functools.partial(T.center_crop_resize, window=16),
    functools.partial(T.to_modality, modality="bone_motion", layout="ntu-rgb+d"),
]


@pytest.mark.parametrize("op", RANDOM_OPS, ids=lambda f: f.func.__name__
                         if isinstance(f, functools.partial) else f.__name__)
def test_random_ops_deterministic_given_rng(example, op):
    before = example["data"].copy()
    a = op(example, np.random.default_rng(7))
    b = op(example, np.random.default_rng(7))
    np.testing.assert_array_equal(a["data"], b["data"])
    np.testing.assert_array_equal(example["data"], before)  # input untouched
    outs = [op(example, np.random.default_rng(s))["data"] for s in range(8)]
    assert any(not np.array_equal(outs[0], o) for o in outs[1:])
    assert T.takes_rng(op)


@pytest.mark.parametrize("op", DET_OPS, ids=lambda f: f.func.__name__
                         if isinstance(f, functools.partial) else f.__name__)
def test_eval_ops_take_no_rng(example, op):
    assert not T.takes_rng(op)
    a, b = op(example), op(example)
    np.testing.assert_array_equal(a["data"], b["data"])


def test_make_transforms_eval_lists_take_no_rng(example):
    for recipe in T.RECIPES:
        ops = T.make_transforms(recipe, train=False, window=16, modality="bone",
                                layout="ntu-rgb+d")
        assert not any(T.takes_rng(op) for op in ops)
        out = T.to_model_input(T.apply_transforms(example, ops))
        assert out["x"].shape == (2, 16, 25, 3) and out["x"].dtype == np.float32
        train_ops = T.make_transforms(recipe, train=True, window=16, rotation=0.1)
        with pytest.raises(ValueError, match="needs an rng"):
            T.apply_transforms(example, train_ops)


def test_random_choose_and_shift_semantics():
    full = np.arange(1, 11, dtype=np.float32)[None, :, None, None] * np.ones((3, 10, 25, 2))
    ex = {"data": full.astype(np.float32), "label": 0, "length": 10}
    outs = [T.random_choose(ex, np.random.default_rng(s), size=4)["data"] for s in range(60)]
    assert all(o.shape[1] == 4 for o in outs)
    starts = {int(o[0, 0, 0, 0]) - 1 for o in outs}
    assert starts == set(range(7))  # begin is drawn from 0..T-size inclusive
    padded = T.random_choose(ex, np.random.default_rng(0), size=14)["data"]
    assert padded.shape[1] == 14 and padded.sum() == full.sum()
    data = np.zeros((3, 10, 25, 2), np.float32)
    data[:, 2:6] = np.arange(4, dtype=np.float32)[None, :, None, None] + 1
    ex = {"data": data, "label": 0, "length": 10}
    for s in range(20):
        sh = T.random_shift(ex, np.random.default_rng(s))["data"]
        nz = np.flatnonzero(np.abs(sh).sum(axis=(0, 2, 3)))
        assert len(nz) == 4 and nz[-1] - nz[0] == 3
        np.testing.assert_array_equal(sh[:, nz], data[:, 2:6])


def test_random_move_matches_reference_loop():
    """The vectorised op equals ST-GCN's per-frame loop driven by the same draws."""
    rng_data = np.random.default_rng(1)
    data = rng_data.normal(size=(3, 12, 25, 2)).astype(np.float32)
    ex = {"data": data, "label": 0}
    kw = dict(move_time_candidate=(2,))
    out = T.random_move(ex, np.random.default_rng(5), **kw)["data"]
    rng = np.random.default_rng(5)  # replay the draws in the same order
    move_time = np.array([2])[rng.integers(1)]
    node = np.append(np.arange(0, 12, 12 / move_time).round().astype(int), 12)
    a_k = np.array([-10.0, -5.0, 0.0, 5.0, 10.0])[rng.integers(5, size=len(node))]
    s_k = np.array([0.9, 1.0, 1.1])[rng.integers(3, size=len(node))]
    tx_k = np.array([-0.2, -0.1, 0.0, 0.1, 0.2])[rng.integers(5, size=len(node))]
    ty_k = np.array([-0.2, -0.1, 0.0, 0.1, 0.2])[rng.integers(5, size=len(node))]
    ref = data.copy()
    for i in range(len(node) - 1):
        for f in range(node[i], node[i + 1]):
            w = np.linspace(0, 1, node[i + 1] - node[i])[f - node[i]]
            a = (a_k[i] + (a_k[i + 1] - a_k[i]) * w) * np.pi / 180
            s = s_k[i] + (s_k[i + 1] - s_k[i]) * w
            rot = np.array([[np.cos(a) * s, -np.sin(a) * s], [np.sin(a) * s, np.cos(a) * s]])
            xy = rot @ data[0:2, f].reshape(2, -1)
            xy[0] += tx_k[i] + (tx_k[i + 1] - tx_k[i]) * w
            xy[1] += ty_k[i] + (ty_k[i + 1] - ty_k[i]) * w
            ref[0:2, f] = xy.reshape(2, 25, 2)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out[2], data[2])


def test_modalities_toy():
    # 3 joints in a chain 0 <- 1 <- 2 (bone[child] = x[child] - x[parent]), root (0, 0).
    pairs = ((0, 0), (1, 0), (2, 1))
    data = np.zeros((3, 3, 3, 1), np.float32)
    data[:, 0, :, 0] = [[0, 1, 3], [0, 0, 0], [0, 0, 0]]  # frame 0: x = 0, 1, 3
    data[:, 1, :, 0] = [[0, 2, 5], [1, 1, 1], [0, 0, 0]]  # frame 1
    data[:, 2, :, 0] = [[1, 2, 4], [1, 1, 2], [0, 0, 0]]  # frame 2
    ex = {"data": data, "label": 0}
    bone = T.to_modality(ex, modality="bone", pairs=pairs)["data"][..., 0]
    np.testing.assert_array_equal(bone[0], [[0, 1, 2], [0, 2, 3], [0, 1, 2]])
    np.testing.assert_array_equal(bone[1], [[0, 0, 0], [0, 0, 0], [0, 0, 1]])
    jm = T.to_modality(ex, modality="joint_motion", pairs=pairs)["data"][..., 0]
    np.testing.assert_array_equal(jm[0], [[0, 1, 2], [1, 0, -1], [0, 0, 0]])
    np.testing.assert_array_equal(jm[1], [[1, 1, 1], [0, 0, 1], [0, 0, 0]])
    bm = T.to_modality(ex, modality="bone_motion", pairs=pairs)["data"][..., 0]
    np.testing.assert_array_equal(bm[0], [[0, 1, 1], [0, -1, -1], [0, 0, 0]])
    assert T.to_modality(ex, modality="joint") is ex
    # score channel (2-D + confidence): bones/motion average the scores
    data[2] = [[[1], [0.5], [0.2]]] * 3
    sc = T.to_modality({"data": data, "label": 0}, modality="bone", pairs=pairs,
                       score_channel=True)["data"][2, 0, :, 0]
    np.testing.assert_allclose(sc, [1.0, 0.75, 0.35])
    with pytest.raises(ValueError, match="modality"):
        T.to_modality(ex, modality="velocity")


def test_bone_pairs_come_from_graph(example):
    out = T.to_modality(example, modality="bone", layout="ntu-rgb+d")["data"]
    d = example["data"]
    for child, parent in graph.bone_pairs("ntu-rgb+d"):
        np.testing.assert_array_equal(out[:, :, child], d[:, :, child] - d[:, :, parent])


def test_uniform_sample_frames_test_matches_pyskl_draws():
    """Test clips replay pyskl's seeded global-RandomState draws exactly."""
    n, clip_len, num_clips = 70, 20, 3
    data = np.arange(n, dtype=np.float32)[None, :, None, None] * np.ones((3, n, 25, 2), np.float32)
    ex = {"data": data, "label": 0, "length": n}
    rs = np.random.RandomState(255)
    ref = []
    for i in range(num_clips):  # pyskl _get_test_clips with p_interval (1, 1)
        ratio = rs.rand() * 0 + 1
        nf = int(ratio * n)
        off = rs.randint(n - nf + 1)
        bids = np.array([j * nf // clip_len for j in range(clip_len + 1)])
        ref.append(bids[:clip_len] + rs.randint(np.diff(bids)) + off)
    for i in range(num_clips):
        out = T.uniform_sample_frames_test(dict(ex, clip=i), clip_len=clip_len,
                                           num_clips=num_clips)
        np.testing.assert_array_equal(out["data"][0, :, 0, 0], np.mod(ref[i], n))
        assert out["length"] == clip_len
    short = T.uniform_sample_frames_test(dict(ex, length=5), clip_len=8)["data"][0, :, 0, 0]
    np.testing.assert_array_equal(short, np.mod(np.arange(8), 5))  # loops, start 0


def test_pre_normalize_3d_centres_and_aligns_shoulders(example):
    example = dict(example, length=56)  # trailing empty frames are dropped
    out = T.pre_normalize_3d(example)
    d = out["data"]
    np.testing.assert_allclose(d[:, 0, 1, 0], 0, atol=1e-6)  # centred on joint 1
    shoulders = d[:, 0, 8, 0] - d[:, 0, 4, 0]
    assert abs(shoulders[1]) < 1e-6 and abs(shoulders[2]) < 1e-6 and shoulders[0] > 0
    assert out["length"] == d.shape[1] == 40
    assert not np.allclose(T.pre_normalize_3d(example, align_spine=False)["data"], d)


def test_center_crop_resize_identity_and_linear():
    t = np.arange(1, 21, dtype=np.float32)
    data = t[None, :, None, None] * np.ones((3, 20, 25, 2), np.float32)
    ex = {"data": data, "label": 0}
    same = T.center_crop_resize(ex, window=20, p=1.0)["data"]
    np.testing.assert_array_equal(same, data)
    half = T.center_crop_resize(ex, window=10, p=1.0)["data"][0, :, 0, 0]
    np.testing.assert_allclose(half, t.reshape(10, 2).mean(1))  # align_corners=False halves


def test_to_model_input_layout(example):
    out = T.to_model_input(example)
    np.testing.assert_array_equal(out["x"], example["data"].transpose(3, 1, 2, 0))
    assert out["label"].dtype == np.int32 and out["index"] == 0
    assert "name" not in out


def test_signatures_are_keyword_only():
    for op in (T.random_choose, T.uniform_sample_frames, T.valid_crop_resize, T.auto_pad):
        params = list(inspect.signature(op).parameters.values())
        assert all(p.kind == p.KEYWORD_ONLY for p in params if p.name not in ("example", "rng"))


@pytest.mark.torch
@pytest.mark.parametrize("t_in,window", [(37, 64), (120, 64), (64, 64), (300, 50)])
def test_crop_resize_matches_torch_interpolate(t_in, window):
    """CTR-GCN resizes with F.interpolate(bilinear, align_corners=False) on (1,1,CVM,T)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(t_in)
    data = rng.normal(size=(3, t_in, 25, 2)).astype(np.float32)
    ours = T.center_crop_resize({"data": data, "label": 0}, window=window, p=1.0)["data"]
    x = torch.tensor(data).permute(0, 2, 3, 1).contiguous().view(3 * 25 * 2, t_in)[None, None]
    ref = torch.nn.functional.interpolate(x, size=(3 * 25 * 2, window), mode="bilinear",
                                          align_corners=False)
    ref = ref.squeeze().view(3, 25, 2, window).permute(0, 3, 1, 2).numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-6)


def test_order_persons_matches_feeder_expression():
    rng = np.random.default_rng(3)
    data = rng.uniform(size=(3, 6, 18, 5)).astype(np.float32)
    out = T.order_persons({"data": data, "label": 0}, num_person_out=2)["data"]
    sort_index = (-data[2, :, :, :].sum(axis=1)).argsort(axis=1)  # feeder_kinetics.py
    ref = np.stack([data[:, t, :, sort_index[t]].transpose((1, 2, 0)) for t in range(6)], 1)
    np.testing.assert_array_equal(out, ref[..., :2])


def test_pad_persons_and_auto_pad():
    data = np.ones((3, 5, 25, 1), np.float32)
    ex = {"data": data, "label": 0, "length": 5}
    two = T.pad_persons(ex, num_persons=2)["data"]
    assert two.shape == (3, 5, 25, 2) and not two[..., 1].any()
    padded = T.auto_pad(ex, size=8)
    assert padded["data"].shape == (3, 8, 25, 1) and not padded["data"][:, 5:].any()
    assert padded["length"] == 5  # the true length is kept
    assert T.auto_pad(ex, size=3) is ex  # longer inputs unchanged, as upstream


# ------------------------------------------------- vectorised ops against upstream-shaped loops


def _pre_normalize_3d_loop(data_CTVM):
    """pyskl `PreNormalize3D` as upstream writes it (a Python loop over frames), up to the
    alignment, which `T.pre_normalize_3d` shares: returns the kept (M, T', V, C) frames."""
    skel = data_CTVM.transpose(3, 1, 2, 0)
    t = skel.shape[1]
    index0 = [i for i in range(t) if not np.all(np.isclose(skel[0, i], 0))]
    if skel.shape[0] == 2:
        index1 = [i for i in range(t) if not np.all(np.isclose(skel[1, i], 0))]
        if len(index0) < len(index1):
            return skel[:, np.array(index1)][[1, 0]]
    return skel[:, np.array(index0)]


def _awkward_clips(rng, v=25):
    """Two-person clips with what the frame tests must get right: empty and near-zero frames
    (|x| ≤ 1e-8 is "close to 0"), a second person with more frames than the first, NaN."""
    clips = []
    for case in range(6):
        data = rng.normal(size=(3, 40, v, 2)).astype(np.float32)
        data[:, 30:] = 0.0
        data[:, [3, 17], :, 0] = 0.0
        data[:, 5, :, 0] = 5e-9  # close to 0 everywhere: dropped
        data[0, 6, 4, 0] = 2e-8  # one value not close to 0: kept
        if case % 2:
            data[:, :12, :, 0] = 0.0  # person 1 has more frames: the persons swap
        if case == 4:
            data[..., 1] = 0.0
        if case == 5:
            data[1, 8, 3, 1] = np.nan
        clips.append(data)
    return clips


def test_pre_normalize_3d_keeps_the_frames_pyskls_loop_keeps():
    rng = np.random.default_rng(11)
    for data in _awkward_clips(rng):
        ex = {"data": data, "label": 0, "length": 40}
        kept = _pre_normalize_3d_loop(data)
        out = T.pre_normalize_3d(ex, align_spine=False, align_center=False)
        np.testing.assert_array_equal(out["data"], kept.transpose(3, 1, 2, 0))
        assert out["length"] == kept.shape[1]
        full = T.pre_normalize_3d(ex)  # the alignment then sees the same frames
        assert full["data"].shape == out["data"].shape


def _bones_loop(data, pairs, score_channel):
    bone = np.zeros_like(data)
    for child, parent in pairs:
        bone[:, :, child] = data[:, :, child] - data[:, :, parent]
        if score_channel:
            bone[2, :, child] = (data[2, :, child] + data[2, :, parent]) / 2
    return bone


@pytest.mark.parametrize("layout", ["ntu-rgb+d", "openpose", "nw-ucla"])
@pytest.mark.parametrize("score_channel", [False, True])
def test_bone_modality_equals_the_pair_by_pair_loop(layout, score_channel):
    v = graph.get_layout(layout).num_nodes
    data = np.random.default_rng(12).normal(size=(3, 9, v, 2)).astype(np.float32)
    data[1, 2, 3, 0] = np.nan
    pairs = graph.bone_pairs(layout)
    ex = {"data": data, "label": 0}
    bone = T.to_modality(ex, modality="bone", layout=layout, score_channel=score_channel)["data"]
    np.testing.assert_array_equal(bone, _bones_loop(data, pairs, score_channel))
    assert bone.dtype == data.dtype
    # a joint without a pair is exactly 0 even next to NaN; a child listed twice keeps its
    # last parent, as the loop's second assignment overwrites the first
    few = ((1, 0), (2, 1), (1, 3))
    out = T.to_modality(ex, modality="bone_motion", pairs=few, score_channel=score_channel)
    bm = _bones_loop(data, few, score_channel)
    motion = np.zeros_like(bm)
    motion[:, :-1] = np.diff(bm, axis=1)
    if score_channel:
        motion[2, :-1] = (bm[2, :-1] + bm[2, 1:]) / 2
    np.testing.assert_array_equal(out["data"], motion)
    assert not out["data"][:, :, 4:].any()
