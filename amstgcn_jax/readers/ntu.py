"""NTU RGB+D 60 / 120 raw ``.skeleton`` files: parsing, sample names, splits, missing samples.

Mirrors the official ST-GCN preparation (github.com/yysijie/st-gcn, commit 221c0e15,
``tools/ntu_gendata.py`` and ``tools/utils/ntu_read_skeleton.py``): bodies are put into person
slots in the order each frame lists them (not by bodyID, no tracking, no "energy" selection), the
first ``max_body=2`` are kept, all 25 joints whatever their tracking state, camera-space x/y/z in
metres, no normalisation; frames go to rows ``0..T-1`` of a zero ``(3, 300, 25, 2)`` float32
array. Numbers are parsed as float64 and rounded once to float32, as upstream does when it writes
its memmap, so the result matches the official ``.npy`` rows bit for bit.

Deliberate deviations (upstream crashes or silently accepts):
  * a file with more than ``max_frame`` frames raises `SkeletonFormatError` (upstream fails on a
    broadcast); pass ``truncate=True`` to keep the first ``max_frame`` frames, or
    ``max_frame=None`` to get the unpadded ``(3, T, 25, M)`` array;
  * a body whose joint count is not ``num_joint`` (25), a malformed line, NaN/inf coordinates,
    missing lines or trailing data raise `SkeletonFormatError`; a file without any body raises
    `EmptySkeletonError` (official gendata skips such samples through its ignore list).

Splits (``ntu_gendata.py`` constants; NTU-120 from Liu et al., TPAMI 2019, as in 2s-AGCN /
CTR-GCN ``ntu120_gendata``): NTU-60 xsub trains on `TRAINING_SUBJECTS_60`, xview on cameras 2
and 3; NTU-120 xsub trains on `TRAINING_SUBJECTS_120`, xset on even setup ids. The other part is
called ``"val"`` as in ST-GCN's file names.

The authors' converter output (github.com/shahroudy/NTURGB-D ``Python/txt2npy.py``: a pickled
dict with ``skel_body{i}`` arrays of shape (T, 25, 3)) is read by `read_ntu_npy` through the
restricted unpickler.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import os
import re

import numpy as np

from amstgcn_jax.readers import files, safe_pickle
from amstgcn_jax.readers.errors import EmptySkeletonError, SkeletonFormatError

NUM_JOINTS = 25
MAX_BODY = 2
MAX_FRAME = 300
TRAINING_SUBJECTS_60 = (1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38)
TRAINING_SUBJECTS_120 = TRAINING_SUBJECTS_60 + (
    45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86,
    89, 91, 92, 93, 94, 95, 97, 98, 100, 103)
TRAINING_CAMERAS = (2, 3)
BENCHMARKS = {"ntu60": ("xsub", "xview"), "ntu120": ("xsub", "xset")}
NUM_CLASSES = {"ntu60": 60, "ntu120": 120}

_NAME_RE = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")
# bodyID clipedEdges hand{Left,Right}{Confidence,State} isResticted lean{X,Y} trackingState
_BODY_INFO_FIELDS = 10
# x y z depthX depthY colorX colorY orientW orientX orientY orientZ trackingState
_JOINT_FIELDS = 12
_LINES_PER_BODY_MIN = 2  # body info line + joint count line (+ joints)


@dataclasses.dataclass(frozen=True)
class NTUName:
    """The fields of an NTU sample name ``SsssCcccPpppRrrrAaaa``."""

    name: str  # e.g. "S001C002P005R002A008" (no extension)
    setup: int
    camera: int
    subject: int
    replication: int
    action: int

    @property
    def label(self) -> int:
        """0-based class index: ``action - 1`` (as ntu_gendata)."""
        return self.action - 1


def parse_ntu_name(path_or_name: str | os.PathLike) -> NTUName:
    """Parses the S/C/P/R/A numbers from a file name such as ``S001C002P005R002A008.skeleton``."""
    base = os.path.basename(os.fspath(path_or_name))
    m = _NAME_RE.search(base)
    if m is None:
        raise SkeletonFormatError(
            path_or_name, "file name does not contain an NTU sample name SsssCcccPpppRrrrAaaa")
    s, c, p, r, a = (int(g) for g in m.groups())
    return NTUName(name=m.group(0), setup=s, camera=c, subject=p, replication=r, action=a)


def ntu_split(name: NTUName | str | os.PathLike, benchmark: str, dataset: str = "ntu60") -> str:
    """Returns ``"train"`` or ``"val"`` for a sample under ``benchmark`` of ``dataset``.

    ``dataset="ntu60"``: benchmark ``"xsub"`` or ``"xview"``; ``dataset="ntu120"``: ``"xsub"`` or
    ``"xset"``.
    """
    if dataset not in BENCHMARKS:
        raise ValueError(f"unknown NTU dataset {dataset!r}; expected one of {sorted(BENCHMARKS)}")
    if benchmark not in BENCHMARKS[dataset]:
        raise ValueError(f"unknown benchmark {benchmark!r} for {dataset}; "
                         f"expected one of {BENCHMARKS[dataset]}")
    info = name if isinstance(name, NTUName) else parse_ntu_name(name)
    if benchmark == "xsub":
        subjects = TRAINING_SUBJECTS_60 if dataset == "ntu60" else TRAINING_SUBJECTS_120
        train = info.subject in subjects
    elif benchmark == "xview":
        train = info.camera in TRAINING_CAMERAS
    else:  # xset
        train = info.setup % 2 == 0
    return "train" if train else "val"


@functools.cache
def _missing_names() -> tuple[str, ...]:
    text = importlib.resources.files(__package__).joinpath("ntu_missing_skeletons.txt").read_text()
    return tuple(line.strip() for line in text.splitlines()
                 if line.strip() and not line.startswith("#"))


def missing_skeleton_samples(dataset: str = "ntu60") -> frozenset[str]:
    """The official names of samples with missing or incomplete skeletons.

    ``"ntu60"``: the 302 names of setups 1-17 (st-gcn's ``samples_with_missing_skeletons.txt``);
    ``"ntu120"``: all 535 names. Source: github.com/shahroudy/NTURGB-D (see the resource header).
    """
    names = _missing_names()
    if dataset == "ntu60":
        return frozenset(n for n in names if int(n[1:4]) <= 17)
    if dataset == "ntu120":
        return frozenset(names)
    raise ValueError(f"unknown NTU dataset {dataset!r}; expected 'ntu60' or 'ntu120'")


@dataclasses.dataclass(frozen=True)
class NTUSkeletonFile:
    """Everything `read_ntu_skeleton` needs from a parsed ``.skeleton`` file.

    Attributes:
      bodies_per_frame: int64 (T,), bodies listed in each frame.
      xyz: float64 (sum(bodies_per_frame), V, 3), every body's joints in file order.
    """

    bodies_per_frame: np.ndarray
    xyz: np.ndarray

    @property
    def num_frames(self) -> int:
        return int(self.bodies_per_frame.shape[0])


def _count(path, lines, i, what) -> int:
    if i >= len(lines):
        raise SkeletonFormatError(path, f"file ends early (truncated?): expected {what} at line "
                                        f"{i + 1}")
    try:
        n = int(lines[i])
    except ValueError:
        raise SkeletonFormatError(path, f"line {i + 1}: expected {what}, got "
                                        f"{lines[i][:40]!r}") from None
    if n < 0:
        raise SkeletonFormatError(path, f"line {i + 1}: negative {what} {n}")
    return n


def parse_ntu_skeleton(path: str | os.PathLike, num_joint: int = NUM_JOINTS) -> NTUSkeletonFile:
    """Parses a ``.skeleton`` file strictly; all counts are checked against the lines present."""
    path = os.fspath(path)
    lines = files.read_ascii(path).splitlines()
    while lines and not lines[-1].strip():  # trailing blank lines are harmless
        lines.pop()
    if not lines:
        raise SkeletonFormatError(path, "empty file")
    num_frames = _count(path, lines, 0, "the frame count")
    if num_frames > len(lines):  # each frame needs at least its body-count line
        raise SkeletonFormatError(path, f"frame count {num_frames} exceeds the {len(lines)} lines "
                                        "in the file (truncated or garbage)")
    bodies_per_frame = np.zeros(num_frames, np.int64)
    joint_tokens: list[str] = []
    lines_per_body = _LINES_PER_BODY_MIN + num_joint
    i = 1
    for t in range(num_frames):
        n_body = _count(path, lines, i, f"the body count of frame {t}")
        i += 1
        if n_body * lines_per_body > len(lines) - i:
            raise SkeletonFormatError(path, f"frame {t} lists {n_body} bodies but only "
                                            f"{len(lines) - i} lines remain (truncated?)")
        bodies_per_frame[t] = n_body
        for b in range(n_body):
            info = lines[i].split()
            if len(info) != _BODY_INFO_FIELDS:
                raise SkeletonFormatError(path, f"line {i + 1} (frame {t}, body {b}): expected "
                                                f"{_BODY_INFO_FIELDS} body-info fields, got "
                                                f"{len(info)}")
            try:
                for field in info:
                    float(field)
            except ValueError:
                raise SkeletonFormatError(path, f"line {i + 1} (frame {t}, body {b}): "
                                                "non-numeric body-info field") from None
            n_joint = _count(path, lines, i + 1, f"the joint count of frame {t}, body {b}")
            if n_joint != num_joint:
                raise SkeletonFormatError(path, f"line {i + 2} (frame {t}, body {b}): "
                                                f"{n_joint} joints, expected {num_joint}")
            i += 2
            for j in range(num_joint):
                fields = lines[i + j].split()
                if len(fields) != _JOINT_FIELDS:
                    raise SkeletonFormatError(path, f"line {i + j + 1} (frame {t}, body {b}, "
                                                    f"joint {j}): expected {_JOINT_FIELDS} "
                                                    f"fields, got {len(fields)}")
                joint_tokens.extend(fields)
            i += num_joint
    if i != len(lines):
        raise SkeletonFormatError(path, f"unexpected data after the last frame at line {i + 1}")
    try:  # every field is parsed (as upstream's float() does) so garbage anywhere is caught
        joints = np.array(joint_tokens, dtype=np.float64).reshape(-1, num_joint, _JOINT_FIELDS)
    except ValueError:
        bad = next(tok for tok in joint_tokens if not _is_float(tok))
        raise SkeletonFormatError(path, f"non-numeric joint field {bad[:40]!r}") from None
    xyz = np.ascontiguousarray(joints[:, :, :3])
    if not np.isfinite(xyz).all():
        body, joint, _ = np.argwhere(~np.isfinite(xyz))[0]
        frame = int(np.searchsorted(np.cumsum(bodies_per_frame), body, side="right"))
        raise SkeletonFormatError(path, f"NaN or infinite coordinate (frame {frame}, "
                                        f"joint {joint})")
    return NTUSkeletonFile(bodies_per_frame=bodies_per_frame, xyz=xyz)


def _is_float(tok: str) -> bool:
    try:
        float(tok)
        return True
    except ValueError:
        return False


def read_ntu_skeleton(path: str | os.PathLike, *, max_body: int = MAX_BODY,
                      num_joint: int = NUM_JOINTS, max_frame: int | None = MAX_FRAME,
                      truncate: bool = False) -> np.ndarray:
    """Reads an NTU ``.skeleton`` file as ST-GCN's ``ntu_gendata`` row.

    Returns float32 ``(3, max_frame, num_joint, max_body)`` (frames after the last are zero), or
    ``(3, T, num_joint, max_body)`` with T the file's frame count when ``max_frame is None``.

    Raises:
      EmptySkeletonError: the file is well formed but no frame lists a body.
      SkeletonFormatError: anything malformed, or more than ``max_frame`` frames and not
        ``truncate``.
    """
    path = os.fspath(path)
    parsed = parse_ntu_skeleton(path, num_joint)
    bodies = parsed.bodies_per_frame
    if bodies.sum() == 0:
        raise EmptySkeletonError(path, f"no body in any of its {parsed.num_frames} frames")
    num_frames = parsed.num_frames
    if max_frame is not None and num_frames > max_frame:
        if not truncate:
            raise SkeletonFormatError(path, f"{num_frames} frames, more than max_frame="
                                            f"{max_frame} (pass truncate=True to keep the first "
                                            f"{max_frame}, or max_frame=None)")
        num_frames = max_frame
    rows = num_frames if max_frame is None else max_frame
    data_TMVC = np.zeros((rows, max_body, num_joint, 3), np.float64)
    frame_of_body = np.repeat(np.arange(parsed.num_frames), bodies)
    slot_of_body = np.arange(bodies.sum()) - np.repeat(np.cumsum(bodies) - bodies, bodies)
    keep = (slot_of_body < max_body) & (frame_of_body < num_frames)
    data_TMVC[frame_of_body[keep], slot_of_body[keep]] = parsed.xyz[keep]
    return np.ascontiguousarray(data_TMVC.transpose(3, 0, 2, 1)).astype(np.float32)


def read_ntu_npy(path: str | os.PathLike, *, max_body: int = MAX_BODY,
                 max_frame: int | None = MAX_FRAME, truncate: bool = False) -> np.ndarray:
    """Reads the dataset authors' ``txt2npy.py`` output (``<name>.skeleton.npy``).

    That file is a 0-d object ``.npy`` holding a dict (``file_name``, ``nbodys``, ``njoints``,
    ``skel_body{i}`` float64 (T, 25, 3) for each body position ``i``); it is unpickled with the
    restricted unpickler. Returns the same array as `read_ntu_skeleton` on the source file.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read_header(f)
            if dtype != np.dtype(object) or shape != ():
                raise SkeletonFormatError(path, f"expected a txt2npy dict (0-d object array), got "
                                                f"dtype {dtype} shape {shape}")
            payload = f.read()
    except SkeletonFormatError:
        raise
    except OSError as e:
        raise SkeletonFormatError(path, f"cannot read file ({e.strerror or e})") from None
    except Exception as e:  # noqa: BLE001 - numpy's header parser raises many types on garbage
        raise SkeletonFormatError(path, f"not a valid .npy file ({type(e).__name__}: {e})") \
            from None
    obj = safe_pickle.loads(payload, path)
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == ():
        obj = obj.item()
    if not isinstance(obj, dict) or "skel_body0" not in obj:
        raise SkeletonFormatError(path, "expected a dict with 'skel_body0' (txt2npy format)")
    bodies = []
    for b in range(max_body):
        arr = obj.get(f"skel_body{b}")
        if arr is None:
            break
        if (not isinstance(arr, np.ndarray) or arr.ndim != 3 or arr.shape[2] != 3
                or arr.dtype.kind != "f"):
            raise SkeletonFormatError(path, f"skel_body{b} is not a float (T, V, 3) array")
        bodies.append(arr)
    shapes = {a.shape for a in bodies}
    if len(shapes) != 1:
        raise SkeletonFormatError(path, f"skel_body arrays differ in shape: {sorted(shapes)}")
    num_frames, num_joint, _ = bodies[0].shape
    if num_frames == 0 or not any(a.any() for a in bodies):
        raise EmptySkeletonError(path, "no body in any frame")
    if not all(np.isfinite(a).all() for a in bodies):
        raise SkeletonFormatError(path, "NaN or infinite coordinate")
    if max_frame is not None and num_frames > max_frame:
        if not truncate:
            raise SkeletonFormatError(path, f"{num_frames} frames, more than max_frame="
                                            f"{max_frame} (pass truncate=True or max_frame=None)")
        num_frames = max_frame
    rows = num_frames if max_frame is None else max_frame
    data = np.zeros((3, rows, num_joint, max_body), np.float32)
    for b, arr in enumerate(bodies):
        data[:, :num_frames, :, b] = arr[:num_frames].transpose(2, 0, 1)
    return data


def list_ntu_samples(data_dir: str | os.PathLike, benchmark: str, split: str,
                     dataset: str = "ntu60", *, skip_missing: bool = True
                     ) -> list[tuple[str, str, int]]:
    """Lists ``(name, path, label)`` of the ``.skeleton`` files of one split, sorted by name.

    ``split`` is ``"train"`` or ``"val"``. Names in `missing_skeleton_samples` are left out when
    ``skip_missing`` (as ntu_gendata does). For ``dataset="ntu60"``, files of NTU-120's setups
    18-32 (actions 61-120) are left out too. Upstream orders samples by ``os.listdir``; sorting
    makes the order reproducible.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    data_dir = os.fspath(data_dir)
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"NTU skeleton directory not found: {data_dir}")
    missing = missing_skeleton_samples(dataset) if skip_missing else frozenset()
    out = []
    for fname in sorted(os.listdir(data_dir)):
        if not fname.endswith(".skeleton"):
            continue
        m = _NAME_RE.search(fname)
        if m is None:
            continue
        info = parse_ntu_name(fname)
        if info.name in missing or info.action > NUM_CLASSES[dataset]:
            continue
        if ntu_split(info, benchmark, dataset) == split:
            out.append((info.name, os.path.join(data_dir, fname), info.label))
    return out
