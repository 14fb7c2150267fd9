"""JHMDB ground-truth 2D joints, DD-Net pickles (``GT_{train,test}_{1,2,3}.pkl``).

Format (github.com/fandulu/DD-Net ``data/JHMDB``): a pickle of ``{"pose": [float (T, 15, 2)
arrays], "label": [class-name strings]}``, one entry per clip, read through the restricted
unpickler. `read_jhmdb_pickle` returns ``[(data (2, T, 15, 1) float32, label), ...]`` with the
label the index of the name in `JHMDB_CLASSES` (the 21 JHMDB classes in alphabetical order, the
order of the official split files), so partial copies (the DD-Net upload holds 14 classes) keep
the standard indices.
"""

from __future__ import annotations

import os

import numpy as np

from amstgcn_jax.readers import safe_pickle
from amstgcn_jax.readers.errors import EmptySkeletonError, SkeletonFormatError

NUM_JOINTS = 15
JHMDB_CLASSES = ("brush_hair", "catch", "clap", "climb_stairs", "golf", "jump", "kick_ball",
                 "pick", "pour", "pullup", "push", "run", "shoot_ball", "shoot_bow", "shoot_gun",
                 "sit", "stand", "swing_baseball", "throw", "walk", "wave")


def read_jhmdb_pickle(path: str | os.PathLike, *, num_joint: int = NUM_JOINTS
                      ) -> list[tuple[np.ndarray, int]]:
    """Reads a DD-Net JHMDB pickle: ``[(data (2, T, num_joint, 1) float32, label), ...]``."""
    path = os.fspath(path)
    obj = safe_pickle.load(path)
    if not isinstance(obj, dict) or not isinstance(obj.get("pose"), list) \
            or not isinstance(obj.get("label"), list):
        raise SkeletonFormatError(path, "expected a dict with lists 'pose' and 'label'")
    poses, labels = obj["pose"], obj["label"]
    if len(poses) != len(labels):
        raise SkeletonFormatError(path, f"{len(poses)} poses but {len(labels)} labels")
    out = []
    for i, (pose, name) in enumerate(zip(poses, labels)):
        if not isinstance(name, str) or name not in JHMDB_CLASSES:
            raise SkeletonFormatError(path, f"clip {i}: label {name!r:.40} is not a JHMDB class")
        if (not isinstance(pose, np.ndarray) or pose.ndim != 3
                or pose.shape[1:] != (num_joint, 2) or pose.dtype.kind not in "fiu"):
            got = pose.shape if isinstance(pose, np.ndarray) else type(pose).__name__
            raise SkeletonFormatError(path, f"clip {i}: pose must be (T, {num_joint}, 2) numbers, "
                                            f"got {got}")
        if pose.shape[0] == 0 or not pose.any():
            raise EmptySkeletonError(path, f"clip {i}: no frame or all zero")
        if not np.isfinite(pose).all():
            raise SkeletonFormatError(path, f"clip {i}: NaN or infinite value")
        data = np.ascontiguousarray(pose.transpose(2, 0, 1)[..., None]).astype(np.float32)
        out.append((data, JHMDB_CLASSES.index(name)))
    return out
