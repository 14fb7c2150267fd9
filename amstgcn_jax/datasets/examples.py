"""Raw dataset files → example dicts, skipping (and reporting) bad samples. No TFDS import.

The TFDS builders (`amstgcn_jax.datasets.<name>`) and the in-memory sources of
`amstgcn_jax.pipeline.make_source(..., manual_dir=...)` both iterate these generators, so a
prepared dataset and a direct read give the same examples. Each yields `(key, example)` with
`example = {"data": float32[C, T, V, M] (T = the sample's true number of frames), "label": int,
"name": str, "length": int, ...}`, in sorted-name order.

A sample whose reader raises `SkeletonFormatError` (truncated or unparsable file, NaN, wrong
joint count, empty skeleton, ...) is skipped: `SkipLog.skip` prints one line naming it and the
reason, and keeps it for the summary printed at the end of a build.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import numpy as np

from amstgcn_jax.readers.errors import SkeletonFormatError

NTU_DIR_NAMES = ("nturgb+d_skeletons", "nturgbd_skeletons_s001_to_s017",
                 "nturgbd_skeletons_s018_to_s032")


class SkipLog:
    """Collects `(name, reason)` of skipped samples; prints each one as it happens."""

    def __init__(self, quiet: bool = False):
        self.skipped: list[tuple[str, str]] = []
        self.quiet = quiet

    def skip(self, name: str, reason: str) -> None:
        self.skipped.append((name, reason))
        if not self.quiet:
            print(f"skipped {name}: {reason}", file=sys.stderr, flush=True)

    def summary(self) -> str:
        return f"{len(self.skipped)} sample(s) skipped"


def _require_dir(path, what: str) -> str:
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{what} directory not found: {path}")
    return path


def _trim(data: np.ndarray) -> np.ndarray:
    """Drops trailing all-zero frames (the padding of fixed-length readers)."""
    nonzero = np.flatnonzero(np.abs(data).sum(axis=(0, 2, 3)))
    return data[:, : nonzero[-1] + 1] if len(nonzero) else data[:, :0]


def _example(name: str, data: np.ndarray, label: int, **extra) -> tuple[str, dict]:
    data = np.ascontiguousarray(data, dtype=np.float32)
    return name, {"data": data, "label": int(label), "name": name, "length": data.shape[1],
                  **extra}


# ----------------------------------------------------------------------------- NTU RGB+D


def ntu_dirs(root) -> list[str]:
    """`root` itself if it holds `.skeleton` files, else its sub-folders that do."""
    root = _require_dir(root, "NTU RGB+D skeleton")
    if any(f.endswith(".skeleton") for f in os.listdir(root)):
        return [root]
    subs = [os.path.join(root, d) for d in sorted(os.listdir(root))
            if os.path.isdir(os.path.join(root, d))]
    found = [d for d in subs if any(f.endswith(".skeleton") for f in os.listdir(d))]
    if not found:
        raise FileNotFoundError(f"no .skeleton files in {root} or its sub-folders "
                                f"(expected e.g. {root}/{NTU_DIR_NAMES[0]}/S001C001P001R001A001"
                                ".skeleton)")
    return found


def ntu_examples(root, *, dataset: str, benchmark: str, split: str,
                 log: SkipLog) -> Iterator[tuple[str, dict]]:
    """NTU RGB+D 60/120 `.skeleton` files of one benchmark split ("train" / "test").

    Data: `readers.ntu.read_ntu_skeleton(path, max_frame=None)`, i.e. ST-GCN's `ntu_gendata`
    row without the zero padding to 300 frames. Samples on the official missing-skeleton list
    are left out (as upstream), not reported.
    """
    from amstgcn_jax.readers import ntu
    part = {"train": "train", "test": "val"}[split]
    entries = []
    for d in ntu_dirs(root):
        entries += ntu.list_ntu_samples(d, benchmark, part, dataset)
    for name, path, label in sorted(entries):
        try:
            data = ntu.read_ntu_skeleton(path, max_frame=None)
        except SkeletonFormatError as e:
            log.skip(name, e.reason)
            continue
        info = ntu.parse_ntu_name(name)
        yield _example(name, data, label, setup=info.setup, camera=info.camera,
                       subject=info.subject, replication=info.replication)


# ----------------------------------------------------------------------------- Kinetics


KINETICS_PARTS = {"train": "train", "test": "val"}


def kinetics_parts(root) -> dict[str, tuple[str, str]]:
    """The splits present under `root`: {split: (json_dir, label_json)} (ST-GCN layout)."""
    root = _require_dir(root, "Kinetics-skeleton")
    out = {}
    for split, part in KINETICS_PARTS.items():
        d = os.path.join(root, f"kinetics_{part}")
        lab = os.path.join(root, f"kinetics_{part}_label.json")
        if os.path.isdir(d) and os.path.isfile(lab):
            out[split] = (d, lab)
    if not out:
        raise FileNotFoundError(f"no kinetics_train/ + kinetics_train_label.json (or kinetics_val/"
                                f" + kinetics_val_label.json) in {root}")
    return out


def kinetics_examples(root, *, split: str, log: SkipLog) -> Iterator[tuple[str, dict]]:
    """Kinetics-skeleton JSON clips of one split, as ST-GCN's `kinetics_gendata` rows.

    The label comes from the label JSON (as the feeder); clips with `has_skeleton: false` are
    left out (upstream `ignore_empty_sample`); a clip without a label entry, or whose own
    `label_index` disagrees with the label JSON (upstream asserts), is skipped. Data is
    `readers.kinetics.read_kinetics_json` cut after the last non-empty frame.
    """
    from amstgcn_jax.readers import kinetics
    json_dir, label_path = kinetics_parts(root)[split]
    for vid, path, label_index in kinetics.list_kinetics_samples(json_dir, label_path,
                                                                 on_unlabelled=log.skip):
        try:
            data, label = kinetics.read_kinetics_json(path)
        except SkeletonFormatError as e:
            log.skip(vid, e.reason)
            continue
        if label != label_index:
            log.skip(vid, f"label_index {label} in the clip differs from {label_index} in "
                          f"{os.path.basename(label_path)}")
            continue
        yield _example(vid, _trim(data), label)


# ----------------------------------------------------------------------------- NW-UCLA


def nwucla_examples(root, *, split: str, log: SkipLog) -> Iterator[tuple[str, dict]]:
    """NW-UCLA (CTR-GCN JSON release), cross-view: "train" = views 1+2, "test" = view 3."""
    from amstgcn_jax.readers import nwucla
    part = {"train": "train", "test": "val", "val": "val"}[split]
    for name, path, _ in nwucla.list_nwucla_files(root, part):
        try:
            data, label = nwucla.read_nwucla_json(path)
        except SkeletonFormatError as e:
            log.skip(name, e.reason)
            continue
        info = nwucla.parse_nwucla_name(name)
        yield _example(name, data, label, view=info.view, subject=info.subject)


# ----------------------------------------------------------------------------- arrays


def stgcn_array_examples(root, *, split: str, log: SkipLog) -> Iterator[tuple[str, dict]]:
    """ST-GCN `{train,val}_data.npy` + `{train,val}_label.pkl` (split "test" reads `val_*`)."""
    from amstgcn_jax.readers import arrays
    root = _require_dir(root, "ST-GCN arrays")
    part = {"train": "train", "test": "val"}[split]
    data_path = os.path.join(root, f"{part}_data.npy")
    label_path = os.path.join(root, f"{part}_label.pkl")
    for p in (data_path, label_path):
        if not os.path.isfile(p):
            raise FileNotFoundError(f"missing {p} (ST-GCN layout: {part}_data.npy + "
                                    f"{part}_label.pkl)")
    split_arrays = arrays.read_stgcn_arrays(data_path, label_path)
    for i, name in enumerate(split_arrays.names):
        try:
            data = split_arrays.sample(i)
        except SkeletonFormatError as e:
            log.skip(name, e.reason)
            continue
        yield _example(name, _trim(data), int(split_arrays.labels[i]))


def ctrgcn_npz_examples(root, *, split: str, log: SkipLog) -> Iterator[tuple[str, dict]]:
    """CTR-GCN `NTU60_CS.npz`-style file (`x_train`/`y_train`, `x_test`/`y_test`) in `root`
    (a directory holding exactly one `.npz`, or the file itself). Names are `{split}_{i:06d}`;
    rows are cut after their last non-empty frame."""
    from amstgcn_jax.readers import arrays
    path = os.fspath(root)
    if os.path.isdir(path):
        found = sorted(f for f in os.listdir(path) if f.endswith(".npz"))
        if len(found) != 1:
            raise FileNotFoundError(f"expected exactly one CTR-GCN .npz in {path}, found "
                                    f"{len(found)}")
        path = os.path.join(path, found[0])
    elif not os.path.isfile(path):
        raise FileNotFoundError(f"CTR-GCN .npz not found: {path}")
    x, y = arrays.read_ctrgcn_npz(path, split)
    for i in range(len(x)):
        name = f"{split}_{i:06d}"
        data = _trim(x[i])
        if data.shape[1] == 0:
            log.skip(name, "all values are zero (no skeleton)")
            continue
        yield _example(name, data, int(y[i]))


def pyskl_examples(path, *, split: str, log: SkipLog,
                   split_name: str | None = None) -> Iterator[tuple[str, dict]]:
    """A pyskl / mmaction2 annotation pickle; `split_name` (default: `split`) picks the
    annotations listed in its `split` dict (all of them when it has none)."""
    from amstgcn_jax.readers import arrays
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"pyskl annotation pickle not found: {path}")
    splits, anns = arrays.read_pyskl_pickle(path)
    if splits is not None:
        anns = arrays.select_pyskl_split(splits, anns, split_name or split, path)
    for i, ann in enumerate(anns):
        name = str(ann.get("frame_dir", f"{i:06d}"))
        try:
            data, label = arrays.pyskl_to_array(ann, path=path)
        except SkeletonFormatError as e:
            log.skip(name, e.reason)
            continue
        yield _example(name, data, label)


# ----------------------------------------------------------------------------- in memory

NTU_DATASETS = {"ntu_rgbd60": "ntu60", "ntu_rgbd120": "ntu120"}


def read_examples(name: str, root, *, split: str, log: SkipLog | None = None) -> list[dict]:
    """All examples of `name` ("ntu_rgbd60/xsub", "ntu_rgbd120/xset", "kinetics_skeleton",
    "nw_ucla", "skeleton_arrays/stgcn", "skeleton_arrays/pyskl", "skeleton_arrays/ctrgcn")
    read from raw files."""
    log = log or SkipLog()
    base, _, config = name.partition("/")
    if base in ("ntu_rgbd60", "ntu_rgbd120"):
        gen = ntu_examples(root, dataset=NTU_DATASETS[base], benchmark=config or "xsub",
                           split=split, log=log)
    elif base == "kinetics_skeleton":
        gen = kinetics_examples(root, split=split, log=log)
    elif base == "nw_ucla":
        gen = nwucla_examples(root, split=split, log=log)
    elif base == "skeleton_arrays" and config in ("", "stgcn"):
        gen = stgcn_array_examples(root, split=split, log=log)
    elif base == "skeleton_arrays" and config == "pyskl":
        gen = pyskl_examples(root, split=split, log=log)
    elif base == "skeleton_arrays" and config == "ctrgcn":
        gen = ctrgcn_npz_examples(root, split=split, log=log)
    else:
        raise ValueError(f"no raw reader for dataset {name!r}")
    return [ex for _, ex in gen]
