"""Kinetics-skeleton JSON (ST-GCN release): one clip per file, plus the label JSON.

Mirrors the official conversion (github.com/yysijie/st-gcn, commit 221c0e15,
``feeder/feeder_kinetics.py`` ``Feeder_kinetics.__getitem__`` as run by
``tools/kinetics_gendata.py`` with ``num_person_in=5, num_person_out=2, window_size=300``):

1. a zero float64 ``(3, 300, 18, 5)`` array; each ``data`` entry goes to the time row
   ``frame_index`` **as is** (the release starts at 1, so row 0 stays zero); the first 5
   skeletons listed in the entry fill person slots 0..4 in JSON order; channels are
   ``x = pose[0::2]``, ``y = pose[1::2]``, ``score``;
2. ``x, y -= 0.5`` (in float64), then ``x = y = 0`` wherever ``score == 0``;
3. per frame, the 5 slots are ranked by the negated sum of their 18 scores with NumPy's default
   ``argsort`` (exactly upstream's expression, so ties follow the same order on the same
   machine; pass ``sort_kind="stable"`` for a platform-independent order), the first 2 kept;
4. rounded once to float32 (the converter's memmap dtype).

The label is the JSON ``label_index``. `read_kinetics_labels` reads the label JSON
(``{video_id: {"has_skeleton", "label", "label_index"}}``); `list_kinetics_samples` applies
``ignore_empty_sample`` (clips with ``has_skeleton: false`` are left out) like the feeder.

Deliberate deviations: a ``frame_index`` outside ``0..max_frame-1`` raises
`SkeletonFormatError` (upstream raises IndexError for >= 300, and silently wraps negative
indices); ``truncate=True`` drops entries with ``frame_index >= max_frame`` instead. A clip with
no skeleton in any entry raises `EmptySkeletonError`. Wrong types, wrong pose/score lengths and
NaN/inf values raise `SkeletonFormatError`.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable

import numpy as np

from amstgcn_jax.readers.errors import EmptySkeletonError, SkeletonFormatError
from amstgcn_jax.readers.files import load_json

NUM_JOINTS = 18
NUM_PERSON_IN = 5
NUM_PERSON_OUT = 2
MAX_FRAME = 300


@dataclasses.dataclass(frozen=True)
class KineticsLabel:
    """One entry of a Kinetics-skeleton label JSON."""

    has_skeleton: bool
    label: str
    label_index: int




def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_numbers(path, values, n, what) -> None:
    if not isinstance(values, list) or len(values) != n:
        got = f"{len(values)} values" if isinstance(values, list) else type(values).__name__
        raise SkeletonFormatError(path, f"{what}: expected a list of {n} numbers, got {got}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise SkeletonFormatError(path, f"{what}: non-numeric value {v!r:.40}")
        if isinstance(v, int) and abs(v) > 2**53 or not math.isfinite(v):
            raise SkeletonFormatError(path, f"{what}: NaN, infinite or out-of-range value")


def _as_matrix(path, rows, n, key, slots, raw: bytes) -> np.ndarray:
    """``rows`` (lists of n numbers) as float64 (K, n); fast numpy path, and a per-value walk
    that names the offending skeleton whenever the fast path is unsure."""
    try:
        arr = np.array(rows)
        fast_ok = (arr.ndim == 2 and arr.shape[1] == n and arr.dtype.kind in "fi"
                   and b"true" not in raw and b"false" not in raw)  # numpy turns bools into 1/0
        if fast_ok:
            arr = arr.astype(np.float64)
            fast_ok = bool(np.isfinite(arr).all())
    except (ValueError, TypeError, OverflowError):
        fast_ok = False
    if fast_ok:
        return arr
    for (_, m, k), values in zip(slots, rows):
        _check_numbers(path, values, n, f"data[{k}].skeleton[{m}].{key}")
    return np.array(rows, dtype=np.float64)


def read_kinetics_json(path: str | os.PathLike, *, num_person_in: int = NUM_PERSON_IN,
                       num_person_out: int = NUM_PERSON_OUT, num_joint: int = NUM_JOINTS,
                       max_frame: int = MAX_FRAME, truncate: bool = False,
                       sort_kind: str | None = None, dtype=np.float32) -> tuple[np.ndarray, int]:
    """Reads one Kinetics-skeleton clip as the official converter's row.

    Returns:
      ``(data, label)``: float32 ``(3, max_frame, num_joint, num_person_out)`` with channels
      ``(x - 0.5, y - 0.5, score)``, and the JSON ``label_index`` (int). ``dtype=np.float64``
      gives the ``Feeder_kinetics`` item before the converter's float32 cast.

    Raises:
      EmptySkeletonError: valid JSON with no skeleton in any entry.
      SkeletonFormatError: invalid JSON, wrong types or lengths, NaN/inf, a frame_index out of
        range (unless ``truncate``), a missing label_index.
    """
    path = os.fspath(path)
    video, raw = load_json(path, with_raw=True)
    if not isinstance(video, dict):
        raise SkeletonFormatError(path, f"top level must be an object, got {type(video).__name__}")
    entries = video.get("data")
    if not isinstance(entries, list):
        raise SkeletonFormatError(path, "missing or non-list 'data'")
    label = video.get("label_index")
    if not _is_int(label):
        raise SkeletonFormatError(path, f"missing or non-integer 'label_index' ({label!r:.40})")
    poses, scores, slots = [], [], []  # every listed skeleton is validated; slots (t, m)
    for k, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise SkeletonFormatError(path, f"data[{k}] is not an object")
        t = entry.get("frame_index")
        skeletons = entry.get("skeleton")
        if not _is_int(t):
            raise SkeletonFormatError(path, f"data[{k}]: missing or non-integer 'frame_index'")
        if not isinstance(skeletons, list):
            raise SkeletonFormatError(path, f"data[{k}]: missing or non-list 'skeleton'")
        if t < 0 or t >= max_frame:
            if truncate and t >= max_frame:
                continue
            raise SkeletonFormatError(path, f"data[{k}]: frame_index {t} outside 0..{max_frame - 1}"
                                            + ("" if t < 0 else " (pass truncate=True to drop it)"))
        for m, skeleton in enumerate(skeletons):
            if not isinstance(skeleton, dict):
                raise SkeletonFormatError(path, f"data[{k}].skeleton[{m}] is not an object")
            poses.append(skeleton.get("pose"))
            scores.append(skeleton.get("score"))
            slots.append((t, m, k))
    if not poses:
        raise EmptySkeletonError(path, f"no skeleton in any of its {len(entries)} entries")
    pose_KP = _as_matrix(path, poses, 2 * num_joint, "pose", slots, raw)
    score_KV = _as_matrix(path, scores, num_joint, "score", slots, raw)
    slots_K3 = np.array(slots, dtype=np.int64)
    keep = slots_K3[:, 1] < num_person_in  # only the first num_person_in of each entry are used
    t_idx, m_idx = slots_K3[keep, 0], slots_K3[keep, 1]
    pose_KP, score_KV = pose_KP[keep], score_KV[keep]
    data = np.zeros((3, max_frame, num_joint, num_person_in), np.float64)
    if np.unique(t_idx * num_person_in + m_idx).size == t_idx.size:
        data[0, t_idx, :, m_idx] = pose_KP[:, 0::2]
        data[1, t_idx, :, m_idx] = pose_KP[:, 1::2]
        data[2, t_idx, :, m_idx] = score_KV
    else:  # a repeated frame_index: later entries overwrite, in file order, as upstream
        for i in range(t_idx.size):
            data[0, t_idx[i], :, m_idx[i]] = pose_KP[i, 0::2]
            data[1, t_idx[i], :, m_idx[i]] = pose_KP[i, 1::2]
            data[2, t_idx[i], :, m_idx[i]] = score_KV[i]
    data[0:2] -= 0.5
    data[0][data[2] == 0] = 0
    data[1][data[2] == 0] = 0
    sort_index_TM = (-data[2].sum(axis=1)).argsort(axis=1, kind=sort_kind)
    data = np.take_along_axis(data, sort_index_TM[None, :, None, :], axis=3)
    return data[:, :, :, :num_person_out].astype(dtype), int(label)


def read_kinetics_labels(path: str | os.PathLike) -> dict[str, KineticsLabel]:
    """Reads a Kinetics-skeleton label JSON: ``{video_id: KineticsLabel}``."""
    path = os.fspath(path)
    raw = load_json(path)
    if not isinstance(raw, dict):
        raise SkeletonFormatError(path, "label JSON must be an object {video_id: {...}}")
    out = {}
    for vid, entry in raw.items():
        if not isinstance(entry, dict):
            raise SkeletonFormatError(path, f"entry {vid!r:.40} is not an object")
        has, name, index = entry.get("has_skeleton"), entry.get("label"), entry.get("label_index")
        if not isinstance(has, bool) or not isinstance(name, str) or not _is_int(index):
            raise SkeletonFormatError(path, f"entry {vid!r:.40} needs has_skeleton (bool), label "
                                            "(str) and label_index (int)")
        out[vid] = KineticsLabel(has_skeleton=has, label=name, label_index=index)
    return out


def read_kinetics_label_names(path: str | os.PathLike) -> list[str]:
    """Reads ``label_name.txt`` (one class name per line; line number = Kinetics-400 index)."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            names = [line.rstrip("\r\n") for line in f]
    except (OSError, UnicodeDecodeError) as e:
        raise SkeletonFormatError(path, f"cannot read class names ({e})") from None
    while names and not names[-1]:
        names.pop()
    return names


def list_kinetics_samples(data_dir: str | os.PathLike, label_path: str | os.PathLike, *,
                          ignore_empty_sample: bool = True,
                          on_unlabelled: Callable[[str, str], None] | None = None
                          ) -> list[tuple[str, str, int]]:
    """Lists ``(video_id, path, label_index)`` of the clips in ``data_dir``, sorted by id.

    The id is the file name up to the first dot, looked up in the label JSON (as the feeder
    does). Clips with ``has_skeleton: false`` are left out when ``ignore_empty_sample``; a clip
    without a label entry raises `SkeletonFormatError`, or, given ``on_unlabelled``, is left
    out after ``on_unlabelled(video_id, reason)`` (a dataset build skips and reports it).
    Upstream orders by ``os.listdir``.
    """
    data_dir = os.fspath(data_dir)
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"Kinetics-skeleton JSON directory not found: {data_dir}")
    labels = read_kinetics_labels(label_path)
    out = []
    for fname in sorted(os.listdir(data_dir)):
        if not fname.endswith(".json"):
            continue
        vid = fname.split(".")[0]
        entry = labels.get(vid)
        if entry is None:
            reason = f"no entry for {vid!r} in label file {os.fspath(label_path)}"
            if on_unlabelled is None:
                raise SkeletonFormatError(os.path.join(data_dir, fname), reason)
            on_unlabelled(vid, reason)
            continue
        if ignore_empty_sample and not entry.has_skeleton:
            continue
        out.append((vid, os.path.join(data_dir, fname), entry.label_index))
    return out
