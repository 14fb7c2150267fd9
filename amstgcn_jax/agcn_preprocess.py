"""2s-AGCN data preparation: NTU body selection + pre-normalisation, Kinetics y-flip, bones.

Mirrors lshiwjx/2s-AGCN @ 953c14fc (files unchanged since d8f5ad2), semantics per
../shared/parity-agcn/NOTES.md §4:
- `select_active_bodies`: `data_gen/ntu_gendata.py:read_xyz` keeps the 2 of up to 4 Kinect bodies
  with the largest "energy" std(x) + std(y) + std(z) over their non-zero frames, sorted by
  descending energy (`get_nonzero_std`, `energy.argsort()[::-1][:2]`).
- `pre_normalization`: `data_gen/preprocess.py` (with `data_gen/rotation.py`): per sample, move a
  person's non-empty frames to the front if frame 0 is empty and tile the clip cyclically over
  the trailing empty frames; subtract person 0's joint 1 (spine middle) of the same frame from
  every person (all-zero joints stay zero); rotate spine (joint 0 -> 1 of person 0, frame 0) onto
  +z, then shoulders (joint 4 -> 8) onto +x. Values are float32, every step rounds to float32 as
  upstream's in-place float32 array does.
- `flip_y`: `data_gen/kinetics_gendata.py:116` negates channel 1 (y up), ST-GCN does not.
- bones: `data_gen/gen_bone_data.py` `bone[v] = x[v] - x[parent(v)]` on all channels with its
  25 NTU pairs / 18 Kinetics pairs (= `graph.bone_pairs("ntu-rgb+d" | "openpose")`).

Deliberate deviations: nothing is modified in place (upstream edits its memmap); the body energy
is computed from the reader's float32 values (upstream: float64 before rounding), which can only
change the order of bodies whose energies agree to about 1e-7; equal energies keep upstream's
order (reversed stable argsort: the later body first).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

from amstgcn_jax import graph
from amstgcn_jax.transforms import joint_differences

NTU_ZAXIS = (0, 1)  # spine base -> spine middle
NTU_XAXIS = (8, 4)  # right shoulder, left shoulder: vector left -> right
MAX_FRAME = 300


# ----------------------------------------------------------------------------- NTU bodies


def body_energy(body_TVC: np.ndarray) -> float:
    """`get_nonzero_std`: sum of the per-axis std over the body's non-empty frames (0 if none)."""
    if not np.any(body_TVC):  # an empty slot (most are): no frames, energy 0, no float64 copy
        return 0.0
    body = np.asarray(body_TVC, np.float64)
    frames = body[body.sum(-1).sum(-1) != 0]
    if len(frames) == 0:
        return 0.0
    return float(sum(frames[:, :, c].std() for c in range(frames.shape[-1])))


def select_active_bodies(data_CTVM: np.ndarray, num_keep: int = 2,
                         num_slots: int = 4) -> np.ndarray:
    """Keeps the `num_keep` most active person slots, most active first.

    The slots are first zero-padded to `num_slots` (upstream's `max_body_kinect = 4` array), so
    that ties between a zero-energy body (e.g. seen in one frame only) and empty slots resolve as
    upstream's: the later slot wins, so such a body is dropped for an empty slot.
    """
    data = np.asarray(data_CTVM)
    m = data.shape[-1]
    energy = [body_energy(data[..., i].transpose(1, 2, 0)) for i in range(m)]
    energy += [0.0] * (num_slots - m)  # the empty padding slots, never materialised
    order = np.argsort(np.array(energy), kind="stable")[::-1][:num_keep]
    out = np.zeros(data.shape[:-1] + (len(order),), data.dtype)
    for j, i in enumerate(order):
        if i < m:
            out[..., j] = data[..., i]
    return out


# ----------------------------------------------------------------------------- rotations


def _rotation_matrix(axis, theta) -> np.ndarray:
    """`rotation.rotation_matrix`: counter-clockwise rotation by theta about axis
    (Euler-Rodrigues)."""
    axis = np.asarray(axis, np.float64)
    if np.abs(axis).sum() < 1e-6 or abs(theta) < 1e-6:
        return np.eye(3)
    axis = axis / math.sqrt(np.dot(axis, axis))
    a = math.cos(theta / 2.0)
    b, c, d = -axis * math.sin(theta / 2.0)
    aa, bb, cc, dd = a * a, b * b, c * c, d * d
    bc, ad, ac, ab, bd, cd = b * c, a * d, a * c, a * b, b * d, c * d
    return np.array([[aa + bb - cc - dd, 2 * (bc + ad), 2 * (bd - ac)],
                     [2 * (bc - ad), aa + cc - bb - dd, 2 * (cd + ab)],
                     [2 * (bd + ac), 2 * (cd - ab), aa + dd - bb - cc]])


def _angle_between(v1, v2) -> float:
    if np.abs(v1).sum() < 1e-6 or np.abs(v2).sum() < 1e-6:
        return 0.0
    u1 = v1 / np.linalg.norm(v1)
    u2 = np.asarray(v2) / np.linalg.norm(v2)
    return float(np.arccos(np.clip(np.dot(u1, u2), -1.0, 1.0)))


def _align(skel_MTVC, joint_from, joint_to, target):
    """Rotates every non-empty frame of every non-empty person so that person 0's frame-0 vector
    from `joint_from` to `joint_to` points along `target`."""
    vec = skel_MTVC[0, 0, joint_to] - skel_MTVC[0, 0, joint_from]  # float32, as upstream
    rot = _rotation_matrix(np.cross(vec, target), _angle_between(vec, target))
    out = skel_MTVC.copy()
    for m, person in enumerate(skel_MTVC):
        if person.sum() == 0:
            continue
        frames = _frame_sums(person) != 0
        out[m, frames] = (person[frames].astype(np.float64) @ rot.T).astype(np.float32)
    return out


def _frame_sums(person_TVC: np.ndarray) -> np.ndarray:
    """`[frame.sum() for frame in person]` in one reduction: each contiguous row of V·C values
    is summed by the same pairwise loop, so the sums (and their `== 0` tests, which upstream
    makes per frame in Python) are bit-identical, cancellations included."""
    person = np.ascontiguousarray(person_TVC)
    return person.reshape(len(person), -1).sum(axis=1)


# ----------------------------------------------------------------------------- pre-normalisation


def _tile_person(person_TVC: np.ndarray) -> np.ndarray:
    """Front-aligns a person whose frame 0 is empty, then repeats frames 0..i-1 over the
    trailing all-empty frames (first empty frame i after which nothing follows)."""
    person = person_TVC.copy()
    if person[0].sum() == 0:
        keep = person.sum(-1).sum(-1) != 0
        moved = person[keep]
        person[:] = 0
        person[: len(moved)] = moved
    # Upstream walks every frame in Python; only frames whose own sum is 0 can pass its test,
    # so walk just those (usually the first one is the start of the zero tail).
    for i in np.flatnonzero(_frame_sums(person) == 0):
        if person[i:].sum() == 0:
            if i == 0:
                break  # nothing to repeat (upstream would divide by zero)
            rest = len(person) - i
            reps = math.ceil(rest / i)
            person[i:] = np.concatenate([person[:i]] * reps, axis=0)[:rest]
            break
    return person


def pre_normalize_sample(data_CTVM: np.ndarray, zaxis: Sequence[int] = NTU_ZAXIS,
                         xaxis: Sequence[int] = NTU_XAXIS) -> np.ndarray:
    """`preprocess.pre_normalization` of one sample `(C=3, T, V, M)`; a new float32 array."""
    data = np.asarray(data_CTVM, np.float32)
    if data.ndim != 4 or data.shape[0] != 3:
        raise ValueError(f"pre_normalize_sample expects (3, T, V, M) coordinates, got {data.shape}")
    skel = np.ascontiguousarray(data.transpose(3, 1, 2, 0))  # (M, T, V, C)
    if skel.sum() == 0:
        return data.copy()
    for m in range(skel.shape[0]):
        if skel[m].sum() != 0:
            skel[m] = _tile_person(skel[m])
    center_T1C = skel[0][:, 1:2, :].copy()
    for m in range(skel.shape[0]):
        if skel[m].sum() == 0:
            continue
        x, y, z = (skel[m, ..., c] for c in range(3))
        # = `skel[m].sum(-1) != 0`: a 3-term reduction adds in this order, and numpy's
        # reduction over a length-3 last axis was 10x slower than the two adds
        mask_TV1 = ((x + y + z) != 0)[..., None]
        skel[m] = (skel[m] - center_T1C) * mask_TV1
    skel = _align(skel, zaxis[0], zaxis[1], np.array([0, 0, 1]))
    # upstream: rshoulder (xaxis[0]) - lshoulder (xaxis[1]), the vector joint 4 -> joint 8
    skel = _align(skel, xaxis[1], xaxis[0], np.array([1, 0, 0]))
    return np.ascontiguousarray(skel.transpose(3, 1, 2, 0))


def pre_normalization(data_NCTVM: np.ndarray, zaxis: Sequence[int] = NTU_ZAXIS,
                      xaxis: Sequence[int] = NTU_XAXIS) -> np.ndarray:
    """The whole-array form used by 2s-AGCN's `ntu_gendata.py` (samples are independent)."""
    data = np.asarray(data_NCTVM, np.float32)
    if data.ndim != 5:
        raise ValueError(f"pre_normalization expects (N, C, T, V, M), got {data.shape}")
    return np.stack([pre_normalize_sample(s, zaxis, xaxis) for s in data]) if len(data) else data


def read_ntu_agcn(path, max_frame: int = MAX_FRAME) -> np.ndarray:
    """One NTU `.skeleton` file as a row of 2s-AGCN's `{part}_data_joint.npy`: float32
    `(3, 300, 25, 2)` = 4 bodies read, the 2 most active kept, then `pre_normalization`."""
    from amstgcn_jax.readers.ntu import read_ntu_skeleton

    data = read_ntu_skeleton(path, max_body=4, max_frame=max_frame)
    return pre_normalize_sample(select_active_bodies(data, 2))


# ----------------------------------------------------------------------------- Kinetics, bones


def flip_y(data_CTVM: np.ndarray) -> np.ndarray:
    """2s-AGCN Kinetics: channel 1 becomes `0.5 - y` (up positive). Zeros stay +0."""
    out = np.array(data_CTVM, copy=True)
    out[1] = 0.0 - out[1]
    return out


def to_bone(data_CTVM: np.ndarray, layout: str = "ntu-rgb+d") -> np.ndarray:
    """`gen_bone_data.py`: every channel (a Kinetics score too) of joint v minus its parent's."""
    return joint_differences(np.asarray(data_CTVM), *graph.bone_index(layout))


# ----------------------------------------------------------------------------- pipeline ops


def agcn_select_bodies(example: dict, *, num_keep: int = 2) -> dict:
    """Pipeline op: `select_active_bodies`. Exact when the data holds the first 4 bodies of each
    frame (`read_ntu_skeleton(path, max_body=4)`); with the usual 2 stored slots it only differs
    from upstream where a 3rd/4th body listed would have outranked one of the first two."""
    return {**example, "data": select_active_bodies(example["data"], num_keep)}


def agcn_pre_normalize(example: dict, *, size: int = MAX_FRAME) -> dict:
    """Pipeline op: zero-pad to `size` frames as upstream's fixed array, then pre-normalise
    (short clips end up tiled to `size` frames)."""
    data = example["data"]
    if data.shape[1] < size:
        data = np.concatenate(
            [data, np.zeros((data.shape[0], size - data.shape[1]) + data.shape[2:], data.dtype)], 1)
    out = pre_normalize_sample(data)
    return {**example, "data": out, "length": out.shape[1]}


def kinetics_flip_y(example: dict) -> dict:
    """Pipeline op: `flip_y`."""
    return {**example, "data": flip_y(example["data"])}


def make_agcn_transforms(dataset: str, *, train: bool, modality: str = "joint",
                         window: int | None = None) -> list:
    """The 2s-AGCN feeder for `dataset` "ntu" (3-D, 25 joints) or "kinetics" (OpenPose 18).

    NTU: [2-of-M body selection] + pre-normalisation to 300 frames + modality, no augmentation
    (upstream `config/nturgbd-*/train_*.yaml`). Kinetics: y-flip + modality on the 300-frame
    array; training adds `random_choose(150)` + `random_move` (`config/kinetics-skeleton/
    train_*.yaml`). `modality` "bone" gives the Bs-AGCN stream.
    """
    from amstgcn_jax import transforms

    P = functools.partial
    if dataset == "ntu":
        pre = [P(agcn_select_bodies, num_keep=2), agcn_pre_normalize]
        rest = transforms.make_transforms("stgcn", train=train, window=window or MAX_FRAME,
                                          modality=modality, layout="ntu-rgb+d",
                                          random_move_on=False)
        return pre + rest
    if dataset == "kinetics":
        pre = [P(transforms.auto_pad, size=MAX_FRAME), kinetics_flip_y]
        size = window or (150 if train else MAX_FRAME)
        rest = transforms.make_transforms("stgcn", train=train, window=size, modality=modality,
                                          layout="openpose", random_move_on=True)
        return pre + rest
    raise ValueError(f"unknown 2s-AGCN dataset {dataset!r}; expected 'ntu' or 'kinetics'")
