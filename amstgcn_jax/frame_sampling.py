"""Temporal sampling ops (per example, upstream layout (C, T, V, M)); see `transforms`.

- pyskl `datasets/pipelines/sampling.py::UniformSampleFrames` (kennymckormick/pyskl@07eeb4a):
  `uniform_sample_frames` (train, one clip, draws from the given Generator) and
  `uniform_sample_frames_test` (test: clip `example["clip"]` of `num_clips`, drawn from
  `RandomState(seed=255)` exactly as pyskl's `np.random.seed(255)`, so the indices are the same).
  Indices wrap modulo the true length (`np.mod`), as pyskl. pyskl's "transitional frame"
  adjustment is a no-op on integer indices and is left out.
- CTR-GCN `feeders/tools.py::valid_crop_resize` (Uason-Chen/CTR-GCN): `valid_crop_resize`
  (train, random crop of p ∈ p_interval of the non-empty frames, at least `min_length`) and
  `center_crop_resize` (test, the central fraction p), resized to `window` frames with torch's
  `F.interpolate(mode="bilinear", align_corners=False)` reimplemented in numpy along T.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _with(example: dict, data: np.ndarray, **extra) -> dict:
    return {**example, "data": data, **extra}


def _num_frames(example: dict) -> int:
    return int(example.get("length", example["data"].shape[1]))


def _sample_clip(num_frames: int, clip_len: int, p_interval, draw, test_clip=None):
    """One pyskl UniformSampleFrames clip; `draw` is a RandomState or Generator adapter."""
    ratio = draw.rand() * (p_interval[1] - p_interval[0]) + p_interval[0]
    old = num_frames
    num_frames = int(ratio * num_frames)
    off = draw.randint(old - num_frames + 1)
    if num_frames < clip_len:
        if test_clip is None:
            start = draw.randint(num_frames)
        else:
            i, num_clips = test_clip
            start = i if num_frames < num_clips else i * num_frames // num_clips
        inds = np.arange(start, start + clip_len)
    elif num_frames < 2 * clip_len:
        chosen = draw.choice(clip_len + 1, num_frames - clip_len)
        offset = np.zeros(clip_len + 1, dtype=np.int64)
        offset[chosen] = 1
        inds = np.arange(clip_len) + np.cumsum(offset)[:-1]
    else:
        bids = np.array([i * num_frames // clip_len for i in range(clip_len + 1)])
        inds = bids[:clip_len] + draw.randint(np.diff(bids))
    return inds + off


class _GeneratorDraw:
    def __init__(self, rng):
        self.rng = rng

    def rand(self):
        return self.rng.random()

    def randint(self, high):
        return self.rng.integers(high)

    def choice(self, n, k):
        return self.rng.choice(n, k, replace=False)


class _RandomStateDraw(_GeneratorDraw):
    def rand(self):
        return self.rng.rand()

    def randint(self, high):
        return self.rng.randint(high)


def _take_frames(example: dict, inds: np.ndarray) -> dict:
    n = _num_frames(example)
    if n <= 0:
        raise ValueError(f"sample {example.get('name', '?')!r} has no frames to sample")
    out = example["data"][:, np.mod(inds, n)]
    return _with(example, np.ascontiguousarray(out), length=len(inds))


def uniform_sample_frames(example: dict, rng: np.random.Generator, *, clip_len: int,
                          p_interval: Sequence[float] = (1.0, 1.0)) -> dict:
    """pyskl `UniformSampleFrames` (train mode, one clip), over the first `length` frames."""
    p = tuple(p_interval) if len(p_interval) == 2 else (p_interval[0], p_interval[0])
    inds = _sample_clip(_num_frames(example), clip_len, p, _GeneratorDraw(rng))
    return _take_frames(example, inds)


def uniform_sample_frames_test(example: dict, *, clip_len: int, num_clips: int = 1,
                               p_interval: Sequence[float] = (1.0, 1.0),
                               seed: int = 255) -> dict:
    """pyskl `UniformSampleFrames` (test mode): clip number `example["clip"]` (default 0) of
    `num_clips`, drawn from `RandomState(seed)` exactly as pyskl draws them."""
    p = tuple(p_interval) if len(p_interval) == 2 else (p_interval[0], p_interval[0])
    draw = _RandomStateDraw(np.random.RandomState(seed))
    clip = int(example.get("clip", 0))
    if not 0 <= clip < num_clips:
        raise ValueError(f"clip index {clip} out of range for num_clips={num_clips}")
    for i in range(clip + 1):
        inds = _sample_clip(_num_frames(example), clip_len, p, draw, test_clip=(i, num_clips))
    return _take_frames(example, inds)




def _resize_time(data: np.ndarray, window: int) -> np.ndarray:
    """torch `F.interpolate(mode='bilinear', align_corners=False)` along T only (float32)."""
    t_in = data.shape[1]
    scale = np.float32(t_in / window)
    src = np.maximum((np.arange(window, dtype=np.float32) + np.float32(0.5)) * scale
                     - np.float32(0.5), np.float32(0))
    i0 = src.astype(np.int64)
    i1 = np.where(i0 < t_in - 1, i0 + 1, i0)
    w1 = (src - i0.astype(np.float32))[None, :, None, None]
    d = data.astype(np.float32)
    return (np.float32(1) - w1) * d[:, i0] + w1 * d[:, i1]


def _valid_frames(data: np.ndarray) -> int:
    return int(np.sum(data.sum(0).sum(-1).sum(-1) != 0))


def valid_crop_resize(example: dict, rng: np.random.Generator, *, window: int = 64,
                      p_interval: Sequence[float] = (0.5, 1.0), min_length: int = 64) -> dict:
    """CTR-GCN train crop: a random crop of p ∈ p_interval of the non-empty frames, resized."""
    data = example["data"]
    valid = _valid_frames(data)
    if valid == 0:
        raise ValueError(f"sample {example.get('name', '?')!r} is empty (no non-zero frame)")
    p = rng.random() * (p_interval[1] - p_interval[0]) + p_interval[0]
    length = min(max(int(np.floor(valid * p)), min_length), valid)
    bias = int(rng.integers(0, valid - length + 1))
    out = _resize_time(data[:, bias:bias + length], window)
    return _with(example, out, length=window)


def center_crop_resize(example: dict, *, window: int = 64, p: float = 0.95) -> dict:
    """CTR-GCN test crop: the central fraction `p` of the non-empty frames, resized."""
    data = example["data"]
    valid = _valid_frames(data)
    if valid == 0:
        raise ValueError(f"sample {example.get('name', '?')!r} is empty (no non-zero frame)")
    bias = int((1 - p) * valid / 2)
    out = _resize_time(data[:, bias:valid - bias], window)
    return _with(example, out, length=window)
