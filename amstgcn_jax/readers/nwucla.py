"""NW-UCLA Multiview Action 3D, CTR-GCN ``all_sqe`` JSON release.

Each file ``a<AA>_s<SS>_e<EE>_v<VV>.json`` holds ``{"file_name": str, "skeletons": T x 20 x 3
(metres, camera coordinates), "label": 1..10}`` (github.com/Uason-Chen/CTR-GCN, README data
section and ``feeders/feeder_ucla.py``). The ten actions are ids 1, 2, 3, 4, 5, 6, 8, 9, 11, 12;
the 0-based label is the position of ``AA`` in that list, which equals the JSON ``label - 1``
(checked: a file whose two disagree, or whose ``file_name`` is not its own name, is rejected).

Layout: `read_nwucla_json` returns the raw sequence as float32 ``(3, T, 20, 1)`` (C = x, y, z,
one person), T = the file's frame count; CTR-GCN's training-time resampling and normalisation
are transforms, not reading. Cross-view protocol (CTR-GCN ``val_label.pkl``): views 1 and 2
train (1,020 sequences), view 3 is the test split ``"val"`` (464).
"""

from __future__ import annotations

import dataclasses
import os
import re

import numpy as np

from amstgcn_jax.readers import safe_pickle
from amstgcn_jax.readers.errors import EmptySkeletonError, SkeletonFormatError
from amstgcn_jax.readers.files import load_json

NUM_JOINTS = 20
ACTION_IDS = (1, 2, 3, 4, 5, 6, 8, 9, 11, 12)
NUM_CLASSES = len(ACTION_IDS)
TRAIN_VIEWS = (1, 2)
_NAME_RE = re.compile(r"a(\d{2})_s(\d{2})_e(\d{2})_v(\d{2})")


@dataclasses.dataclass(frozen=True)
class NWUCLAName:
    name: str  # "a01_s01_e00_v01"
    action: int
    subject: int
    repetition: int
    view: int

    @property
    def label(self) -> int:
        """0-based class index (position of the action id in `ACTION_IDS`)."""
        return ACTION_IDS.index(self.action)

    @property
    def split(self) -> str:
        """Cross-view split: ``"train"`` for views 1 and 2, ``"val"`` for view 3."""
        return "train" if self.view in TRAIN_VIEWS else "val"


def parse_nwucla_name(path_or_name: str | os.PathLike) -> NWUCLAName:
    """Parses ``a<AA>_s<SS>_e<EE>_v<VV>`` from a file name."""
    base = os.path.basename(os.fspath(path_or_name))
    m = _NAME_RE.fullmatch(base.split(".")[0])
    if m is None:
        raise SkeletonFormatError(path_or_name, "file name is not an NW-UCLA name a##_s##_e##_v##")
    a, s, e, v = (int(g) for g in m.groups())
    if a not in ACTION_IDS:
        raise SkeletonFormatError(path_or_name, f"action id {a} is not one of {ACTION_IDS}")
    return NWUCLAName(name=m.group(0), action=a, subject=s, repetition=e, view=v)


def _walk_no_bool(path, x):
    stack = [x]
    while stack:  # bounded by the size of the parsed JSON
        y = stack.pop()
        if isinstance(y, bool):
            raise SkeletonFormatError(path, "'skeletons' holds a boolean, expected numbers")
        if isinstance(y, list):
            stack.extend(y)


def read_nwucla_json(path: str | os.PathLike, *, num_joint: int = NUM_JOINTS
                     ) -> tuple[np.ndarray, int]:
    """Reads one NW-UCLA JSON file.

    Returns:
      ``(data, label)``: float32 ``(3, T, num_joint, 1)`` and the 0-based label.

    Raises:
      EmptySkeletonError: no frame, or every coordinate is zero.
      SkeletonFormatError: bad name, invalid JSON, wrong types or shape, NaN/inf, a ``label`` or
        ``file_name`` that contradicts the file name.
    """
    path = os.fspath(path)
    info = parse_nwucla_name(path)
    obj, raw = load_json(path, with_raw=True)
    if not isinstance(obj, dict) or "skeletons" not in obj:
        raise SkeletonFormatError(path, "expected an object with 'skeletons'")
    name, label = obj.get("file_name", info.name), obj.get("label", info.label + 1)
    if name != info.name:
        raise SkeletonFormatError(path, f"file_name {name!r:.40} differs from the file's name")
    if isinstance(label, bool) or not isinstance(label, int) or label != info.label + 1:
        raise SkeletonFormatError(path, f"label {label!r:.20} contradicts action "
                                        f"a{info.action:02d} "
                                        f"(expected {info.label + 1})")
    skeletons = obj["skeletons"]
    if not isinstance(skeletons, list):
        raise SkeletonFormatError(path, "'skeletons' is not a list")
    if not skeletons:
        raise EmptySkeletonError(path, "no frame")
    try:
        arr = np.array(skeletons)
    except (ValueError, TypeError, OverflowError) as e:
        raise SkeletonFormatError(path, f"'skeletons' is not a T x {num_joint} x 3 array of "
                                        f"numbers ({e})") from None
    if arr.dtype.kind not in "fiu":
        raise SkeletonFormatError(path, f"'skeletons' holds non-numbers (dtype {arr.dtype})")
    if b"true" in raw or b"false" in raw:  # numpy turns booleans mixed with floats into 1.0/0.0
        _walk_no_bool(path, skeletons)
    if arr.ndim != 3 or arr.shape[1:] != (num_joint, 3):
        raise SkeletonFormatError(path, f"'skeletons' has shape {arr.shape}, expected "
                                        f"(T, {num_joint}, 3)")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise SkeletonFormatError(path, "NaN or infinite coordinate")
    if not arr.any():
        raise EmptySkeletonError(path, f"all {arr.shape[0]} frames are zero")
    return np.ascontiguousarray(arr.transpose(2, 0, 1)[..., None]).astype(np.float32), info.label


def _json_dir(root) -> str:
    root = os.fspath(root)
    sub = os.path.join(root, "all_sqe")
    if os.path.isdir(sub):
        return sub
    if os.path.isdir(root):
        return root
    raise FileNotFoundError(f"NW-UCLA directory not found: {root} (expected the all_sqe folder "
                            "of JSON files, or its parent)")


def list_nwucla_files(root: str | os.PathLike, split: str | None = None
                      ) -> list[tuple[str, str, int]]:
    """Lists ``(name, path, label)`` of a split (``"train"``, ``"val"`` or None for all), sorted.

    ``root`` is the ``all_sqe`` folder or its parent. Files whose name is not an NW-UCLA name are
    ignored.
    """
    if split not in ("train", "val", None):
        raise ValueError(f"split must be 'train', 'val' or None, got {split!r}")
    folder = _json_dir(root)
    out = []
    for fname in sorted(os.listdir(folder)):
        if not fname.endswith(".json") or _NAME_RE.fullmatch(fname[:-5]) is None:
            continue
        info = parse_nwucla_name(fname)
        if split is None or info.split == split:
            out.append((info.name, os.path.join(folder, fname), info.label))
    return out


def read_nwucla_dir(root: str | os.PathLike, split: str | None = None
                    ) -> list[tuple[str, np.ndarray, int]]:
    """Reads every file of a split: ``[(name, data (3, T, 20, 1) float32, label), ...]``.

    Raises on the first bad file; dataset builders that want to skip bad files iterate
    `list_nwucla_files` and call `read_nwucla_json` themselves.
    """
    return [(name, *read_nwucla_json(path)) for name, path, _ in list_nwucla_files(root, split)]


def read_nwucla_val_labels(path: str | os.PathLike) -> list[dict]:
    """Reads CTR-GCN's ``val_label.pkl`` (list of ``{file_name, length, label}``, label 1-based)."""
    path = os.fspath(path)
    obj = safe_pickle.load(path)
    if not isinstance(obj, list) or not all(
            isinstance(d, dict) and {"file_name", "length", "label"} <= d.keys() for d in obj):
        raise SkeletonFormatError(path, "expected a list of {file_name, length, label} dicts")
    return obj
