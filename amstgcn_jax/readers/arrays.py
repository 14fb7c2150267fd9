"""Preprocessed array formats: ST-GCN ``*_data.npy`` + ``*_label.pkl``, single ``(C, T, V, M)``
``.npy`` samples, CTR-GCN ``NTU*_C*.npz``, and pyskl / mmaction2 annotation pickles.

* ST-GCN / 2s-AGCN / MS-G3D (github.com/yysijie/st-gcn ``feeder/feeder.py``): ``data.npy`` is a
  float32 ``(N, C, T, V, M)`` array (memory-mapped here, as upstream does) and ``label.pkl`` a
  pickle of ``(sample_names, labels)``. `read_stgcn_arrays` returns both; `StgcnArrays.sample`
  gives one checked ``(C, T, V, M)`` float32 row.
* A single sample saved as ``(C, T, V, M)`` (e.g. PaddleVideo's examples): `read_array_npy`.
* CTR-GCN (github.com/Uason-Chen/CTR-GCN ``feeders/feeder_ntu.py``): ``x_{train,test}`` of shape
  ``(N, T, M*V*C) = (N, T, 2*25*3)`` and one-hot ``y_{train,test}``; the feeder reshapes to
  ``(N, T, 2, 25, 3)`` and transposes to ``(N, C, T, V, M)``, as `read_ctrgcn_npz` does.
* pyskl / mmaction2 (github.com/kennymckormick/pyskl ``docs/en/data_preparation`` and
  mmaction2 ``PoseDataset``): a dict ``{"split": {name: [frame_dir, ...]}, "annotations": [...]}``
  (or a bare list of annotations, or one annotation dict), each annotation with ``keypoint``
  ``(M, T, V, C)``, optional ``keypoint_score`` ``(M, T, V)``, ``label``, ``frame_dir``,
  ``total_frames``. `pyskl_to_array` turns one into upstream layout ``(C[+1], T, V, M)`` float32
  with the score as the last channel (what ST-GCN's Kinetics arrays hold).

All pickles go through `amstgcn_jax.readers.safe_pickle`; ``.npy``/``.npz`` files are loaded
with ``allow_pickle=False``.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from amstgcn_jax.readers import safe_pickle
from amstgcn_jax.readers.errors import EmptySkeletonError, SkeletonFormatError


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _check_npy_size(path) -> None:
    """The data a ``.npy`` header declares must be exactly what the file holds: numpy would
    otherwise allocate a garbage size before noticing the file is short."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            return  # (3, 0) headers are only checked by numpy itself
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read_header(f)
        offset = f.tell()
    if dtype.hasobject:
        raise SkeletonFormatError(path, "holds pickled Python objects, not a numeric array")
    declared = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    present = os.path.getsize(path) - offset
    if present != declared:
        raise SkeletonFormatError(path, f"header declares {declared} bytes of {dtype} {shape} "
                                        f"data but the file holds {present} (truncated or "
                                        "garbage)")


def _load_npy(path, mmap: bool):
    try:
        _check_npy_size(path)
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except SkeletonFormatError:
        raise
    except OSError as e:
        if not os.path.exists(path):
            raise SkeletonFormatError(path, "file not found") from None
        raise SkeletonFormatError(path, f"not a readable .npy file ({e})") from None
    except Exception as e:  # noqa: BLE001 - numpy's header parser raises many types on garbage
        raise SkeletonFormatError(path, f"not a valid .npy file (truncated, garbage or pickled "
                                        f"objects: {type(e).__name__}: {e})") from None
    if not isinstance(arr, np.ndarray):
        raise SkeletonFormatError(path, f"expected a .npy array, got {type(arr).__name__}")
    return arr


def _check_sample(path, x, where="") -> np.ndarray:
    if x.dtype.kind not in "fiu":
        raise SkeletonFormatError(path, f"{where}non-numeric dtype {x.dtype}")
    x = np.asarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise SkeletonFormatError(path, f"{where}NaN or infinite value")
    if x.size == 0 or not x.any():
        raise EmptySkeletonError(path, f"{where}all values are zero (no skeleton)")
    return x


def read_array_npy(path: str | os.PathLike) -> np.ndarray:
    """Reads one sample stored as a ``(C, T, V, M)`` ``.npy`` array; returns float32.

    float64 files (e.g. PaddleVideo's FSD-10 example) are rounded to float32 once.
    """
    path = os.fspath(path)
    arr = _load_npy(path, mmap=False)
    if arr.ndim != 4:
        raise SkeletonFormatError(path, f"expected a (C, T, V, M) array, got shape {arr.shape}")
    return _check_sample(path, arr)


@dataclasses.dataclass(frozen=True)
class StgcnArrays:
    """ST-GCN's preprocessed split: ``data`` (N, C, T, V, M) memmap, names and labels."""

    data_path: str
    data: np.ndarray
    names: list[str]
    labels: np.ndarray  # int64 (N,)

    def __len__(self) -> int:
        return len(self.names)

    def sample(self, i: int) -> np.ndarray:
        """Row ``i`` as float32 ``(C, T, V, M)``; NaN/inf or an all-zero row raise."""
        return _check_sample(self.data_path, np.asarray(self.data[i]),
                             f"sample {i} ({self.names[i]}): ")


def read_stgcn_labels(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Reads an ST-GCN ``*_label.pkl``: ``(sample_names, labels)``."""
    path = os.fspath(path)
    obj = safe_pickle.load(path)
    if not isinstance(obj, (tuple, list)) or len(obj) != 2:
        raise SkeletonFormatError(path, "expected a pickled pair (sample_names, labels)")
    names, labels = obj
    if isinstance(labels, np.ndarray):
        labels = labels.tolist()
    if not isinstance(names, (list, tuple)) or not isinstance(labels, (list, tuple)):
        raise SkeletonFormatError(path, "sample_names and labels must be sequences")
    if len(names) != len(labels):
        raise SkeletonFormatError(path, f"{len(names)} names but {len(labels)} labels")
    if not all(isinstance(n, str) for n in names):
        raise SkeletonFormatError(path, "a sample name is not a string")
    if not all(_is_int(v) and v >= 0 for v in labels):
        raise SkeletonFormatError(path, "a label is not a non-negative integer")
    return list(names), np.asarray(labels, dtype=np.int64).reshape(len(labels))


def read_stgcn_arrays(data_path: str | os.PathLike, label_path: str | os.PathLike, *,
                      mmap: bool = True) -> StgcnArrays:
    """Reads an ST-GCN split (``{part}_data.npy`` + ``{part}_label.pkl``)."""
    data_path = os.fspath(data_path)
    data = _load_npy(data_path, mmap=mmap)
    if data.ndim != 5:
        raise SkeletonFormatError(data_path, f"expected (N, C, T, V, M), got shape {data.shape}")
    if data.dtype.kind not in "fiu":
        raise SkeletonFormatError(data_path, f"non-numeric dtype {data.dtype}")
    names, labels = read_stgcn_labels(label_path)
    if len(names) != data.shape[0]:
        raise SkeletonFormatError(data_path, f"{data.shape[0]} samples but {len(names)} labels "
                                             f"in {os.fspath(label_path)}")
    return StgcnArrays(data_path=data_path, data=data, names=names, labels=labels)


def read_ctrgcn_npz(path: str | os.PathLike, part: str, *, num_person: int = 2,
                    num_joint: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """Reads ``x_{part}``/``y_{part}`` of a CTR-GCN ``.npz``; returns ``(N, C, T, V, M)`` float32
    and int64 labels (``argmax`` of the one-hot rows, each checked to have exactly one 1).

    The data is a strided view of the stored ``(N, T, M*V*C)`` array (NTU-60 xsub train is
    7 GB; no second copy): take ``np.ascontiguousarray(x[i])`` per sample."""
    path = os.fspath(path)
    if part not in ("train", "test"):
        raise ValueError(f"part must be 'train' or 'test', got {part!r}")
    try:
        with np.load(path, allow_pickle=False) as z:
            if f"x_{part}" not in z.files or f"y_{part}" not in z.files:
                raise SkeletonFormatError(path, f"missing x_{part} / y_{part} (has {z.files})")
            x, y = z[f"x_{part}"], z[f"y_{part}"]
    except SkeletonFormatError:
        raise
    except Exception as e:  # noqa: BLE001 - zip, zlib and the npy header parser raise many types
        raise SkeletonFormatError(path, f"not a valid .npz file ({type(e).__name__}: {e})") \
            from None
    if x.ndim != 3 or x.shape[2] % (num_person * num_joint) or x.dtype.kind != "f":
        raise SkeletonFormatError(path, f"x_{part} has shape {x.shape} dtype {x.dtype}, expected "
                                        f"float (N, T, {num_person}*{num_joint}*C)")
    if y.ndim != 2 or y.shape[0] != x.shape[0] or not ((y == 0) | (y == 1)).all() \
            or not (y.sum(axis=1) == 1).all():
        raise SkeletonFormatError(path, f"y_{part} is not one-hot rows matching x_{part}")
    for start in range(0, x.shape[0], 256):  # chunked: no N-sized boolean temporary
        if not np.isfinite(x[start:start + 256]).all():
            raise SkeletonFormatError(path, f"x_{part} holds NaN or infinite values")
    n, t, _ = x.shape
    x = x.astype(np.float32, copy=False).reshape(n, t, num_person, num_joint, -1)
    return x.transpose(0, 4, 1, 3, 2), y.argmax(axis=1).astype(np.int64)


def read_pyskl_pickle(path: str | os.PathLike) -> tuple[dict[str, list[str]] | None, list[dict]]:
    """Reads a pyskl / mmaction2 annotation pickle; returns ``(split or None, annotations)``."""
    path = os.fspath(path)
    obj = safe_pickle.load(path)
    if isinstance(obj, dict) and "annotations" in obj:
        split, anns = obj.get("split"), obj["annotations"]
        if split is not None and not (isinstance(split, dict) and all(
                isinstance(k, str) and isinstance(v, (list, tuple)) for k, v in split.items())):
            raise SkeletonFormatError(path, "'split' must map names to lists of frame_dir")
    elif isinstance(obj, dict) and "keypoint" in obj:
        split, anns = None, [obj]
    elif isinstance(obj, list):
        split, anns = None, obj
    else:
        raise SkeletonFormatError(path, "expected {'split', 'annotations'}, a list of annotations "
                                        "or one annotation dict")
    if not isinstance(anns, list) or not all(isinstance(a, dict) for a in anns):
        raise SkeletonFormatError(path, "'annotations' must be a list of dicts")
    return (dict(split) if split is not None else None), anns


def select_pyskl_split(split: dict[str, list[str]] | None, annotations: list[dict],
                       name: str, path: str = "<annotations>") -> list[dict]:
    """The annotations whose ``frame_dir`` is listed in ``split[name]``, in annotation order."""
    if split is None or name not in split:
        raise SkeletonFormatError(path, f"no split {name!r} (available: "
                                        f"{sorted(split) if split else 'none'})")
    wanted = set(split[name])
    return [a for a in annotations if a.get("frame_dir") in wanted]


def pyskl_to_array(ann: dict, *, path: str = "<annotation>", with_score: bool = True
                   ) -> tuple[np.ndarray, int]:
    """One pyskl annotation → ``(data (C[+1], T, V, M) float32, label)``.

    ``keypoint`` (M, T, V, C) becomes channels ``0..C-1``; ``keypoint_score`` (M, T, V), when
    present and ``with_score``, the last channel. Checks shapes, dtypes, finiteness, the label
    and ``total_frames == T`` when given.
    """
    where = f"annotation {ann.get('frame_dir', '?')!r:.60}: " if isinstance(ann, dict) else ""
    if not isinstance(ann, dict):
        raise SkeletonFormatError(path, "annotation is not a dict")
    kp = ann.get("keypoint")
    if kp is None and "raw_file" in ann:
        raise SkeletonFormatError(path, f"{where}keypoints are stored in external files "
                                        "('raw_file', mmaction2 Kinetics-400 style), not supported")
    if not isinstance(kp, np.ndarray) or kp.ndim != 4 or kp.dtype.kind != "f":
        got = f"shape {kp.shape} dtype {kp.dtype}" if isinstance(kp, np.ndarray) else repr(type(kp))
        raise SkeletonFormatError(path, f"{where}'keypoint' must be a float (M, T, V, C) array, "
                                        f"got {got}")
    m, t, v, c = kp.shape
    if m == 0 or t == 0:
        raise EmptySkeletonError(path, f"{where}no person or no frame (keypoint shape {kp.shape})")
    label = ann.get("label")
    if not _is_int(label) or label < 0:
        raise SkeletonFormatError(path, f"{where}'label' must be a non-negative integer")
    total = ann.get("total_frames")
    if total is not None and (not _is_int(total) or total != t):
        raise SkeletonFormatError(path, f"{where}total_frames {total!r:.20} != keypoint frames {t}")
    channels = [kp.astype(np.float32)]
    score = ann.get("keypoint_score")
    if with_score and score is not None:
        if (not isinstance(score, np.ndarray) or score.shape != (m, t, v)
                or score.dtype.kind != "f"):
            raise SkeletonFormatError(path, f"{where}'keypoint_score' must be a float "
                                            f"({m}, {t}, {v}) array")
        channels.append(score.astype(np.float32)[..., None])
    data_MTVC = np.concatenate(channels, axis=-1)
    if not np.isfinite(data_MTVC).all():
        raise SkeletonFormatError(path, f"{where}NaN or infinite value")
    return np.ascontiguousarray(data_MTVC.transpose(3, 1, 2, 0)), int(label)
