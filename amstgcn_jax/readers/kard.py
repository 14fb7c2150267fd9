"""KARD (Kinect Activity Recognition Dataset), real-world skeleton text files.

Format (Gaglio, Lo Re, Morana, IEEE THMS 2014; the copy in
github.com/Mabdou11/Activity-Recognition-skeleton-datasets ``kard_realworld/``): file
``a<AA>_s<SS>_e<EE>_realworld.txt`` = activity AA (1..18), subject SS (1..10), repetition EE
(1..3); plain text, three numbers ``x y z`` (millimetres) per line, 15 lines per frame (joints:
head, neck, R shoulder/elbow/hand, L shoulder/elbow/hand, torso, R hip/knee/foot,
L hip/knee/foot), frames concatenated.

`read_kard_txt` returns float32 ``(3, T, 15, 1)`` (values as in the file, parsed as float64 and
rounded once) and the 0-based label ``AA - 1``. There is no single standard split; choose test
subjects with `list_kard_files(root, test_subjects=...)`.

Limit of the format: a file cut inside its last number still holds 15·T valid lines, so such a
truncation cannot be detected; a line count that is not a multiple of 15, a line without exactly
three numbers, NaN/inf and non-ASCII bytes are.
"""

from __future__ import annotations

import dataclasses
import os
import re

import numpy as np

from amstgcn_jax.readers import files
from amstgcn_jax.readers.errors import EmptySkeletonError, SkeletonFormatError

NUM_JOINTS = 15
NUM_CLASSES = 18
_NAME_RE = re.compile(r"a(\d{2})_s(\d{2})_e(\d{2})")


@dataclasses.dataclass(frozen=True)
class KARDName:
    name: str  # "a01_s01_e01"
    action: int
    subject: int
    repetition: int

    @property
    def label(self) -> int:
        return self.action - 1


def parse_kard_name(path_or_name: str | os.PathLike) -> KARDName:
    base = os.path.basename(os.fspath(path_or_name))
    m = _NAME_RE.match(base)
    if m is None:
        raise SkeletonFormatError(path_or_name, "file name is not a KARD name a##_s##_e##...")
    a, s, e = (int(g) for g in m.groups())
    if not 1 <= a <= NUM_CLASSES:
        raise SkeletonFormatError(path_or_name, f"activity {a} outside 1..{NUM_CLASSES}")
    return KARDName(name=m.group(0), action=a, subject=s, repetition=e)


def read_kard_txt(path: str | os.PathLike, *, num_joint: int = NUM_JOINTS
                  ) -> tuple[np.ndarray, int]:
    """Reads one KARD file: ``(data (3, T, 15, 1) float32, label)``."""
    path = os.fspath(path)
    info = parse_kard_name(path)
    lines = [line for line in files.read_ascii(path).splitlines() if line.strip()]
    if not lines:
        raise SkeletonFormatError(path, "empty file")
    if len(lines) % num_joint:
        raise SkeletonFormatError(path, f"{len(lines)} lines is not a whole number of "
                                        f"{num_joint}-joint frames (truncated or garbage)")
    tokens = []
    for i, line in enumerate(lines):
        fields = line.split()
        if len(fields) != 3:
            raise SkeletonFormatError(path, f"line {i + 1}: expected 3 numbers, got {len(fields)}")
        tokens.extend(fields)
    try:
        xyz = np.array(tokens, dtype=np.float64).reshape(-1, num_joint, 3)
    except ValueError:
        raise SkeletonFormatError(path, "non-numeric value") from None
    if not np.isfinite(xyz).all():
        raise SkeletonFormatError(path, "NaN or infinite coordinate")
    if not xyz.any():
        raise EmptySkeletonError(path, "all coordinates are zero")
    return np.ascontiguousarray(xyz.transpose(2, 0, 1)[..., None]).astype(np.float32), info.label


def list_kard_files(root: str | os.PathLike, *, test_subjects=None, split: str | None = None
                    ) -> list[tuple[str, str, int]]:
    """Lists ``(name, path, label)`` sorted by name; with ``split`` ("train"/"val") and
    ``test_subjects``, only that side of a cross-subject split."""
    root = os.fspath(root)
    sub = os.path.join(root, "kard_realworld")
    folder = sub if os.path.isdir(sub) else root
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"KARD directory not found: {root}")
    if split is not None and (split not in ("train", "val") or test_subjects is None):
        raise ValueError("split needs 'train' or 'val' and test_subjects")
    out = []
    for fname in sorted(os.listdir(folder)):
        if not fname.endswith(".txt") or _NAME_RE.match(fname) is None:
            continue
        info = parse_kard_name(fname)
        if split is not None and (info.subject in test_subjects) != (split == "val"):
            continue
        out.append((info.name, os.path.join(folder, fname), info.label))
    return out
