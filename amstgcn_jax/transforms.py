"""Per-example numpy transforms: `fn(example, rng)` when random, `fn(example)` when deterministic.

An example is a dict with `data` in the UPSTREAM layout float[C, T, V, M] (what the readers and
`amstgcn_jax.synthetic` return), `label`, `length` (true number of frames), optionally `name`,
`index`, `clip`. Every op returns a new dict (inputs are never modified in place). Options are
keyword-only, so `functools.partial(op, size=150)` makes a pipeline op; `to_model_input` must be
last and gives the channels-last `x` float32[M, T, V, C].

Mirrors (semantics, not code):
- ST-GCN `feeder/tools.py` (yysijie/st-gcn, master): `random_choose`, `random_move`,
  `random_shift`, `auto_pading` (→ `auto_pad`), and the per-frame person ordering of
  `feeder/feeder_kinetics.py` (→ `order_persons`). Deliberate deviations: randomness comes from
  the `np.random.Generator` argument instead of the global `random`/`np.random` state;
  `random_move` is vectorised over frames (same arithmetic, no Python frame loop).
- pyskl `datasets/pipelines/pose_related.py` (kennymckormick/pyskl@07eeb4a): `PreNormalize3D`
  (→ `pre_normalize_3d`), `RandomRot` (→ `random_rotation`; the 2-D case draws from
  (−θ, θ); pyskl's `np.random.uniform(-theta)` draws from (−θ, 1), a bug we do not copy),
  `JointToBone`/`ToMotion` (→ `to_modality`).
- Temporal sampling (pyskl `UniformSampleFrames`, CTR-GCN `valid_crop_resize`) is in
  `amstgcn_jax.frame_sampling` and imported here.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence

import numpy as np

# Temporal sampling ops live in their own file; imported here so that one module lists every op.
from amstgcn_jax.frame_sampling import (  # noqa: F401
    center_crop_resize,
    uniform_sample_frames,
    uniform_sample_frames_test,
    valid_crop_resize,
)

MODALITIES = ("joint", "bone", "joint_motion", "bone_motion")


def _with(example: dict, data: np.ndarray, **extra) -> dict:
    return {**example, "data": data, **extra}


def _num_frames(example: dict) -> int:
    return int(example.get("length", example["data"].shape[1]))


# ----------------------------------------------------------------------------- ST-GCN feeder


def auto_pad(example: dict, *, size: int) -> dict:
    """Zero-pads the time axis to `size` at the end (`auto_pading(..., random_pad=False)`).

    Longer inputs are returned unchanged, as upstream.
    """
    data = example["data"]
    c, t, v, m = data.shape
    if t >= size:
        return example
    out = np.zeros((c, size, v, m), data.dtype)
    out[:, :t] = data
    return _with(example, out)


def random_choose(example: dict, rng: np.random.Generator, *, size: int,
                  auto_pad: bool = True) -> dict:
    """A random `size`-frame window; shorter inputs are zero-padded at a random offset."""
    data = example["data"]
    c, t, v, m = data.shape
    if t == size:
        return example
    if t < size:
        if not auto_pad:
            return example
        begin = int(rng.integers(0, size - t, endpoint=True))
        out = np.zeros((c, size, v, m), data.dtype)
        out[:, begin:begin + t] = data
        return _with(example, out)
    begin = int(rng.integers(0, t - size, endpoint=True))
    return _with(example, data[:, begin:begin + size].copy())


def random_move(example: dict, rng: np.random.Generator, *,
                angle_candidate: Sequence[float] = (-10.0, -5.0, 0.0, 5.0, 10.0),
                scale_candidate: Sequence[float] = (0.9, 1.0, 1.1),
                transform_candidate: Sequence[float] = (-0.2, -0.1, 0.0, 0.1, 0.2),
                move_time_candidate: Sequence[int] = (1,)) -> dict:
    """Rotation/scale/translation of x, y interpolated linearly between random key frames.

    As upstream, every frame moves, including zero padding and absent persons.
    """
    data = example["data"]
    c, t, v, m = data.shape
    def choice(candidates, n=None):  # uniform choice, as np.random.choice (cheaper draw)
        candidates = np.asarray(candidates, float)
        return candidates[rng.integers(len(candidates), size=n)]

    move_time = int(choice(move_time_candidate))
    node = np.append(np.arange(0, t, t * 1.0 / move_time).round().astype(int), t)
    num_node = len(node)
    keys = np.stack([choice(angle_candidate, num_node), choice(scale_candidate, num_node),
                     choice(transform_candidate, num_node), choice(transform_candidate, num_node)])
    curves = np.zeros((4, t))  # angle (degrees), scale, tx, ty
    for i in range(num_node - 1):  # one vectorised linspace per segment (same arithmetic)
        curves[:, node[i]:node[i + 1]] = np.linspace(keys[:, i], keys[:, i + 1],
                                                     node[i + 1] - node[i], axis=1)
    a, s, tx, ty = curves[0] * np.pi / 180, curves[1], curves[2], curves[3]
    theta = np.array([[np.cos(a) * s, -np.sin(a) * s], [np.sin(a) * s, np.cos(a) * s]])
    out = data.copy()
    xy = np.einsum("ijt,jtvm->itvm", theta, data[0:2].astype(np.float64))
    xy[0] += tx[:, None, None]
    xy[1] += ty[:, None, None]
    out[0:2] = xy
    return _with(example, out)


def random_shift(example: dict, rng: np.random.Generator) -> dict:
    """Moves the non-empty span of frames to a random offset inside the same length."""
    data = example["data"]
    t = data.shape[1]
    valid = (data != 0).sum(axis=(0, 2, 3)) > 0
    begin = int(valid.argmax())
    end = len(valid) - int(valid[::-1].argmax())
    size = end - begin
    bias = int(rng.integers(0, t - size, endpoint=True))
    out = np.zeros_like(data)
    out[:, bias:bias + size] = data[:, begin:end]
    return _with(example, out)


def order_persons(example: dict, *, num_person_out: int = 2, score_channel: int = 2) -> dict:
    """Per frame, sorts person slots by descending summed score and keeps the first ones.

    `feeder_kinetics.py`: `(-data[2].sum(axis=1)).argsort(axis=1)`, no identity tracking.
    """
    data = example["data"]
    order = (-data[score_channel].sum(axis=1)).argsort(axis=1)  # (T, M)
    t_idx = np.arange(data.shape[1])[:, None]
    out = data.transpose(1, 3, 0, 2)[t_idx, order].transpose(2, 0, 3, 1)  # (C, T, V, M)
    return _with(example, np.ascontiguousarray(out[..., :num_person_out]))


def pad_persons(example: dict, *, num_persons: int = 2) -> dict:
    """Zero-pads or truncates the person axis to `num_persons` (pyskl FormatGCNInput 'zero')."""
    data = example["data"]
    m = data.shape[3]
    if m >= num_persons:
        return _with(example, data[..., :num_persons])
    pad = np.zeros(data.shape[:3] + (num_persons - m,), data.dtype)
    return _with(example, np.concatenate([data, pad], axis=3))


# ----------------------------------------------------------------------------- pyskl


def _unit(v):
    return v / np.linalg.norm(v)


def _angle_between(v1, v2) -> float:
    if np.abs(v1).sum() < 1e-6 or np.abs(v2).sum() < 1e-6:
        return 0.0
    return float(np.arccos(np.clip(np.dot(_unit(v1), _unit(v2)), -1.0, 1.0)))


def _axis_rotation(axis, theta) -> np.ndarray:
    """Counter-clockwise rotation by `theta` about `axis` (Euler–Rodrigues, as 2s-AGCN/pyskl)."""
    if np.abs(axis).sum() < 1e-6 or np.abs(theta) < 1e-6:
        return np.eye(3)
    axis = np.asarray(axis) / np.sqrt(np.dot(axis, axis))
    a = np.cos(theta / 2.0)
    b, c, d = -axis * np.sin(theta / 2.0)
    aa, bb, cc, dd = a * a, b * b, c * c, d * d
    bc, ad, ac, ab, bd, cd = b * c, a * d, a * c, a * b, b * d, c * d
    return np.array([[aa + bb - cc - dd, 2 * (bc + ad), 2 * (bd - ac)],
                     [2 * (bc - ad), aa + cc - bb - dd, 2 * (cd + ab)],
                     [2 * (bd + ac), 2 * (cd - ab), aa + dd - bb - cc]])


def pre_normalize_3d(example: dict, *, zaxis: Sequence[int] = (0, 1),
                     xaxis: Sequence[int] = (8, 4), align_spine: bool = True,
                     align_center: bool = True) -> dict:
    """pyskl `PreNormalize3D`: drop frames without the main body, centre, align spine/shoulders.

    Works on the first `length` frames; the result has the new (possibly shorter) length.
    Needs M ≤ 2 persons (as pyskl).
    """
    data = example["data"][:, : _num_frames(example)]
    skel = data.transpose(3, 1, 2, 0)  # (M, T, V, C)
    m, _, v, _ = skel.shape
    if skel.sum() == 0:
        return example
    if m not in (1, 2):
        raise ValueError(f"pre_normalize_3d needs 1 or 2 persons, got {m}")
    # pyskl lists, frame by frame in Python, the frames where not all of a person is close to 0
    # (|x| <= 1e-8); the same elementwise test reduced per frame at once took this op from 12
    # to 1 ms per NTU clip.
    present_MT = ~np.all(np.isclose(skel, 0), axis=(2, 3))
    index0 = np.flatnonzero(present_MT[0])
    if m == 2:
        index1 = np.flatnonzero(present_MT[1])
        if len(index0) < len(index1):
            skel = skel[:, index1][[1, 0]]
        else:
            skel = skel[:, index0]
    else:
        skel = skel[:, index0]
    if align_center:
        center = skel[0, 0, 1 if v == 25 else -1].copy()
        mask = ((skel != 0).sum(-1) > 0)[..., None]
        skel = (skel - center) * mask
    if align_spine:
        bottom, top = skel[0, 0, zaxis[0]], skel[0, 0, zaxis[1]]
        rot = _axis_rotation(np.cross(top - bottom, [0, 0, 1]),
                             _angle_between(top - bottom, [0, 0, 1]))
        skel = np.einsum("abcd,kd->abck", skel, rot)
        right, left = skel[0, 0, xaxis[0]], skel[0, 0, xaxis[1]]
        rot = _axis_rotation(np.cross(right - left, [1, 0, 0]),
                             _angle_between(right - left, [1, 0, 0]))
        skel = np.einsum("abcd,kd->abck", skel, rot)
    out = np.ascontiguousarray(skel.transpose(3, 1, 2, 0))
    return _with(example, out, length=out.shape[1])


def random_rotation(example: dict, rng: np.random.Generator, *, theta: float = 0.3,
                    num_spatial: int | None = None) -> dict:
    """pyskl `RandomRot`: a random rotation of the coordinates about the origin.

    `num_spatial` (default: 3 if C == 3 else 2) is how many leading channels are coordinates;
    use 2 for (x, y, score) data. 3-D: angles ~ U(−θ, θ) per axis, R = Rz·Ry·Rx.
    """
    data = example["data"]
    ns = num_spatial or (3 if data.shape[0] == 3 else 2)
    if np.all(np.isclose(data, 0)):
        return example
    if ns == 3:
        ang = rng.uniform(-theta, theta, size=3)
        cos, sin = np.cos(ang), np.sin(ang)
        rx = np.array([[1, 0, 0], [0, cos[0], sin[0]], [0, -sin[0], cos[0]]])
        ry = np.array([[cos[1], 0, -sin[1]], [0, 1, 0], [sin[1], 0, cos[1]]])
        rz = np.array([[cos[2], sin[2], 0], [-sin[2], cos[2], 0], [0, 0, 1]])
        rot = rz @ ry @ rx
    else:
        a = rng.uniform(-theta, theta)
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    out = data.astype(np.float64, copy=True)
    out[:ns] = np.einsum("ab,btvm->atvm", rot, out[:ns])
    return _with(example, out.astype(data.dtype))


# ----------------------------------------------------------------------------- modalities


def to_modality(example: dict, *, modality: str = "joint",
                pairs: Sequence[tuple[int, int]] | None = None,
                layout: str | None = None, score_channel: bool = False) -> dict:
    """joint / bone / joint_motion / bone_motion (pyskl `JointToBone` + `ToMotion`).

    bone[child] = x[child] − x[parent] for (child, parent) in `pairs` (default:
    `amstgcn_jax.graph.bone_pairs(layout)`); joints not listed are zero.
    motion[t] = x[t+1] − x[t], last frame zero. With `score_channel`, channel 2 is a confidence
    and becomes the mean of the two scores involved instead of a difference (pyskl,
    openpose/coco).
    """
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
    data = example["data"]
    if modality == "joint":
        return example
    out = data
    if modality.startswith("bone"):
        from amstgcn_jax import graph
        if pairs is None and layout is None:
            raise ValueError("bone modalities need `pairs` or a graph `layout` name")
        child, parent = graph.bone_index(layout if pairs is None else pairs)
        out = joint_differences(data, child, parent)
        if score_channel:
            out[2] = joint_differences(data[2:3], child, parent, mean=True)[0]
    if modality.endswith("motion"):
        motion = np.zeros_like(out)
        motion[:, :-1] = np.diff(out, axis=1)
        if score_channel:
            motion[2, :-1] = (out[2, :-1] + out[2, 1:]) / 2
        out = motion
    return _with(example, out)


def joint_differences(data_CTVM: np.ndarray, child: np.ndarray, parent: np.ndarray, *,
                      mean: bool = False) -> np.ndarray:
    """`out[:, :, c] = x[:, :, c] − x[:, :, p]` for each child c with parent p
    (`graph.bone_index`), or `(x[c] + x[p]) / 2` with `mean`; every other joint is 0.

    Elementwise the same float arithmetic as assigning the pairs one by one, but as one gather
    over all joints (`np.take`: numpy's fancy indexing on a middle axis ran 5x slower).
    """
    v = data_CTVM.shape[2]
    parent_V = np.arange(v)
    parent_V[child] = parent
    out = np.take(data_CTVM, parent_V, axis=2)
    if mean:
        np.add(data_CTVM, out, out=out)
        out /= 2
    else:
        np.subtract(data_CTVM, out, out=out)
    unlisted = np.ones(v, bool)
    unlisted[child] = False
    out[:, :, unlisted] = 0
    return out


# ----------------------------------------------------------------------------- composition


def to_model_input(example: dict) -> dict:
    """The last op: `{"x": float32[M, T, V, C], "label": int32, "index": int32, ...}`.

    Keeps `index` and `clip` if present; drops `name`, `length` (strings and per-sample scalars
    the batch does not need).
    """
    out = {"x": np.ascontiguousarray(example["data"].transpose(3, 1, 2, 0), dtype=np.float32),
           "label": np.int32(example["label"])}
    for key in ("index", "clip"):
        if key in example:
            out[key] = np.int32(example[key])
    return out


@functools.lru_cache(maxsize=256)
def _has_rng_param(fn: Callable) -> bool:
    return "rng" in inspect.signature(fn).parameters


def takes_rng(fn: Callable) -> bool:
    """True if `fn` is a random op (its signature has an `rng` parameter)."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    try:
        return _has_rng_param(fn)
    except TypeError:  # unhashable callable
        return "rng" in inspect.signature(fn).parameters


def apply_transforms(example: dict, transforms: Sequence[Callable],
                     rng: np.random.Generator | None = None) -> dict:
    """Runs `transforms` in order; random ones get `rng` (an error if it is None)."""
    for fn in transforms:
        if takes_rng(fn):
            if rng is None:
                raise ValueError(f"random transform {fn} needs an rng (eval pipelines take none)")
            example = fn(example, rng)
        else:
            example = fn(example)
    return example


def crop_or_pad(example: dict, *, size: int) -> dict:
    """Deterministic fixed length: zero-pad at the end, or keep the first `size` frames."""
    data = example["data"]
    if data.shape[1] > size:
        return _with(example, data[:, :size].copy(), length=min(_num_frames(example), size))
    return auto_pad(example, size=size)


RECIPES = ("stgcn", "pyskl", "ctrgcn")


def make_transforms(recipe: str = "stgcn", *, train: bool, window: int, modality: str = "joint",
                    layout: str | None = None, score_channel: bool = False,
                    random_move_on: bool = True, rotation: float = 0.0, num_clips: int = 1,
                    p_interval: Sequence[float] | None = None,
                    pad_to: int | None = None) -> list[Callable]:
    """A transform list for `pipeline.make_train_iter` / `make_eval_batches`.

    - "stgcn" (ST-GCN feeder; modality first, as 2s-AGCN's offline bone/motion data):
      train = random_choose(window) [+ random_move]; test = crop_or_pad(window).
    - "pyskl": [pre_normalize_3d if 3-D] + modality + uniform_sample_frames(window)
      [+ random_rotation]; test = uniform_sample_frames_test(window, num_clips).
    - "ctrgcn": valid_crop_resize(window, p_interval=(0.5, 1)) [+ random_rotation] + modality;
      test = center_crop_resize(window, 0.95) + modality.
    `rotation` > 0 adds `random_rotation(theta=rotation)` in training. `pad_to` (e.g. 300 for
    NTU / Kinetics) first zero-pads the stored unpadded clip back to upstream's fixed length, so
    ST-GCN's random_choose/random_move see exactly the arrays the PyTorch feeder sees.
    """
    P = functools.partial
    mod = P(to_modality, modality=modality, layout=layout, score_channel=score_channel)
    rot = [P(random_rotation, theta=rotation,
             num_spatial=2 if score_channel else None)] if train and rotation > 0 else []
    if recipe == "stgcn":
        pad = [P(auto_pad, size=pad_to)] if pad_to else []
        if train:
            return pad + [mod, P(random_choose, size=window)] + (
                [random_move] if random_move_on else []) + rot
        return pad + [mod, P(crop_or_pad, size=window)]
    if recipe == "pyskl":
        pre = [] if score_channel else [pre_normalize_3d]
        if train:
            return pre + [mod, P(uniform_sample_frames, clip_len=window)] + rot
        return pre + [mod, P(uniform_sample_frames_test, clip_len=window, num_clips=num_clips)]
    if recipe == "ctrgcn":
        if train:
            return [P(valid_crop_resize, window=window,
                      p_interval=tuple(p_interval or (0.5, 1.0)))] + rot + [mod]
        return [P(center_crop_resize, window=window,
                  p=(p_interval or (0.95,))[0]), mod]
    raise ValueError(f"unknown transform recipe {recipe!r}; expected one of {RECIPES}")
