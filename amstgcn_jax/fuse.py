"""Fuse saved class scores of several streams (joint, bone, motion, ...) with weights.

    python -m amstgcn_jax.fuse --scores joint.npz bone.npz --weights 1 1 [--labels labels.npy]

Mirrors the 2s-AGCN / CTR-GCN `ensemble.py` (weighted sum of per-stream scores, rows in dataset
order). Labels come from `--labels` (`.npy`/`.npz` with `labels`/`.pkl`/`.json` list of ints,
or a pyskl/CTR-GCN label pickle `(names, labels)`), else from the first `.npz` score file.
Prints top-1/top-5 of each stream and of the fusion; `--out` saves the fused scores.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from amstgcn_jax import evaluate
from amstgcn_jax.readers import safe_pickle


def load_labels(path) -> np.ndarray:
    path = Path(path)
    if path.suffix == ".npy":
        obj = np.load(path, allow_pickle=False)
    elif path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            obj = z["labels"] if "labels" in z else z[list(z.keys())[0]]
    elif path.suffix == ".json":
        obj = json.loads(path.read_text())
    elif path.suffix == ".pkl":
        obj = safe_pickle.load(path)
        if isinstance(obj, (list, tuple)) and len(obj) == 2 and isinstance(obj[0], (list, tuple)):
            obj = obj[1]  # ST-GCN / CTR-GCN label pickles: (sample_names, labels)
        elif isinstance(obj, list) and obj and isinstance(obj[0], dict) and "label" in obj[0]:
            obj = [d["label"] for d in obj]  # pyskl annotations / NW-UCLA val_label.pkl
    else:
        raise ValueError(f"{path}: unknown label file type (use .npy, .npz, .json or .pkl)")
    labels = np.asarray(obj)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{path}: expected a 1-D list of integer labels, got {labels.dtype} "
                         f"{labels.shape}")
    return labels.astype(np.int64)


def fuse_files(score_paths, weights=None, labels_path=None, *, softmax=False):
    """Returns `(fused_scores, labels, report)`; `report` maps a name to (top1, top5)."""
    loaded = [evaluate.load_scores(p) for p in score_paths]
    labels = load_labels(labels_path) if labels_path else next(
        (lab for _, lab in loaded if lab is not None), None)
    if labels is None:
        raise ValueError("no labels: pass --labels or use .npz score files that hold them")
    for path, (scores, _) in zip(score_paths, loaded):
        if len(scores) != len(labels):
            raise ValueError(f"{path}: {len(scores)} score rows but {len(labels)} labels")
    fused = evaluate.fuse_scores([s for s, _ in loaded], weights, softmax=softmax)
    report = {}
    for path, (scores, _) in zip(score_paths, loaded):
        report[str(path)] = (evaluate.topk_accuracy(scores, labels, 1),
                             evaluate.topk_accuracy(scores, labels, 5))
    report["fused"] = (evaluate.topk_accuracy(fused, labels, 1),
                       evaluate.topk_accuracy(fused, labels, 5))
    return fused, labels, report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scores", nargs="+", required=True, help="score files (.npy/.npz/.pkl)")
    parser.add_argument("--weights", nargs="+", type=float, default=None)
    parser.add_argument("--labels", default=None, help="label file (see module docstring)")
    parser.add_argument("--softmax", action="store_true", help="fuse probabilities, not logits")
    parser.add_argument("--out", default=None, help="save the fused scores here")
    args = parser.parse_args(argv)
    try:
        fused, labels, report = fuse_files(args.scores, args.weights, args.labels,
                                           softmax=args.softmax)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for name, (top1, top5) in report.items():
        print(f"{name}: top1 {100 * top1:.2f}%  top5 {100 * top5:.2f}%")
    if args.out:
        evaluate.save_scores(args.out, fused, labels)
    return 0


if __name__ == "__main__":
    sys.exit(main())
