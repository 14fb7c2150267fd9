"""Evaluation: exact metrics over padded/masked batches, per-class results, saved class scores.

Metrics follow the PyTorch toolkits: top-1/top-5 as ST-GCN's `show_topk`, per-class accuracy
and the confusion matrix as pyskl's `mean_class_accuracy`/`confusion_matrix`
(github.com/kennymckormick/pyskl @3f6795f2, `pyskl/core/evaluation.py`). The Kinetics-Motion
numbers (ST-GCN paper, Fig. 4 of AM-STGCN) are computed on the test samples of the 30 classes
listed in a user-given file, with the 400-way prediction (ST-GCN trains on all 400 classes and
tests on the 30) and, additionally, with the prediction restricted to those 30 classes.

Per-sample scores are saved like pyskl's `test.py --out` (`.pkl`: list of per-sample float32
arrays) or as `.npy` (N, L) / `.npz` (`scores`, `labels`, `indices`); rows are in dataset order
so the scores of several streams can be fused sample by sample (`amstgcn_jax.fuse`).
"""

import pickle
from pathlib import Path

import numpy as np

from amstgcn_jax import sharding as sharding_lib
from amstgcn_jax.readers import safe_pickle


def collect_scores(eval_fn, state, batches, mesh) -> dict:
    """Runs `eval_fn(state, global_batch)` over eval batches; keeps rows whose `mask` is True.

    Returns numpy `scores` (N, L) float32, `labels` (N,), `indices` (N,) and `loss` (N,), sorted
    by sample index, each real sample exactly once (padding rows dropped). When the batches hold
    several clips per sample (rows sharing an `index`, told apart by `clip`), the clips'
    probabilities are averaged (pyskl `average_clips='prob'`) and `scores` are their logs.
    """
    rows = {k: [] for k in ("scores", "loss", "labels", "indices", "clips")}
    for batch in batches:
        gbatch = sharding_lib.shard_batch(batch, mesh)
        out = eval_fn(state, gbatch)
        mask = sharding_lib.gather_to_host(gbatch["mask"]).astype(bool)
        rows["scores"].append(sharding_lib.gather_to_host(out["logits"])[mask])
        rows["loss"].append(sharding_lib.gather_to_host(out["loss"])[mask])
        rows["labels"].append(sharding_lib.gather_to_host(gbatch["label"])[mask])
        if "index" in gbatch:
            rows["indices"].append(sharding_lib.gather_to_host(gbatch["index"])[mask])
        if "clip" in gbatch:
            rows["clips"].append(sharding_lib.gather_to_host(gbatch["clip"])[mask])
    if not rows["scores"]:
        raise ValueError("the evaluation data produced no batches")
    result = {"scores": np.concatenate(rows["scores"]).astype(np.float32),
              "labels": np.concatenate(rows["labels"]).astype(np.int64),
              "loss": np.concatenate(rows["loss"]).astype(np.float32)}
    if not rows["indices"]:
        return result
    idx = np.concatenate(rows["indices"]).astype(np.int64)
    clip = (np.concatenate(rows["clips"]).astype(np.int64) if rows["clips"]
            else np.zeros_like(idx))
    keys = idx * (clip.max() + 1) + clip
    if len(np.unique(keys)) != len(keys):
        raise ValueError("evaluation batches repeat a (sample, clip); each must be seen once "
                         "(is the eval iterator repeating?)")
    order = np.lexsort((clip, idx))
    result = {k: v[order] for k, v in result.items()}
    idx = idx[order]
    uniq, start, counts = np.unique(idx, return_index=True, return_counts=True)
    if np.any(counts != counts[0]):
        raise ValueError("samples have different numbers of test clips")
    if counts[0] > 1:  # multi-clip testing: average the clips' probabilities
        s = result["scores"].reshape(len(uniq), counts[0], -1).astype(np.float64)
        p = np.exp(s - s.max(-1, keepdims=True))
        p = (p / p.sum(-1, keepdims=True)).mean(1)
        labels = result["labels"][start]
        result = {"scores": np.log(np.maximum(p, 1e-30)).astype(np.float32), "labels": labels,
                  "loss": -np.log(np.maximum(p[np.arange(len(labels)), labels], 1e-30))}
    result["indices"] = uniq
    return result


def topk_accuracy(scores_NL, labels_N, k: int) -> float:
    scores_NL, labels_N = np.asarray(scores_NL), np.asarray(labels_N)
    if len(labels_N) == 0:
        return float("nan")
    k = min(k, scores_NL.shape[1])
    topk_NK = np.argsort(-scores_NL, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(topk_NK == labels_N[:, None], axis=1)))


def confusion_matrix(pred_N, labels_N, num_classes: int) -> np.ndarray:
    """`cm[true, pred]` counts (rows: ground truth)."""
    cm = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(cm, (np.asarray(labels_N), np.asarray(pred_N)), 1)
    return cm


def compute_metrics(scores_NL, labels_N, *, loss_N=None) -> dict:
    """top1, top5, mean class accuracy, per-class accuracy (NaN for absent classes), confusion."""
    scores_NL, labels_N = np.asarray(scores_NL), np.asarray(labels_N)
    num_classes = scores_NL.shape[1]
    cm = confusion_matrix(np.argmax(scores_NL, 1), labels_N, num_classes)
    support = cm.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)
    metrics = {
        "top1": topk_accuracy(scores_NL, labels_N, 1),
        "top5": topk_accuracy(scores_NL, labels_N, 5),
        "mean_class_accuracy": float(np.nanmean(per_class)) if np.any(support) else float("nan"),
        "num_samples": int(len(labels_N)),
        "per_class_accuracy": per_class,
        "confusion_matrix": cm,
    }
    if loss_N is not None:
        metrics["loss"] = float(np.mean(loss_N))
    return metrics


def read_class_names(path) -> list[str]:
    """One class name per line; blank lines and lines starting with '#' are skipped."""
    lines = Path(path).read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def class_subset_indices(subset_names, class_names) -> np.ndarray:
    """Indices (into `class_names`) of the classes in `subset_names`, e.g. Kinetics-Motion."""
    lookup = {name: i for i, name in enumerate(class_names)}
    missing = [n for n in subset_names if n not in lookup]
    if missing:
        raise ValueError(f"classes not in the label names: {missing[:5]}"
                         f"{' ...' if len(missing) > 5 else ''}")
    return np.asarray([lookup[n] for n in subset_names], np.int64)


def subset_metrics(scores_NL, labels_N, subset_idx) -> dict:
    """Metrics on the samples of a class subset (e.g. the 30 Kinetics-Motion classes).

    `top1`/`top5` use the full prediction; `top1_within_subset` ranks only the subset's classes.
    `per_class_accuracy` is ordered like `subset_idx`.
    """
    scores_NL, labels_N = np.asarray(scores_NL), np.asarray(labels_N)
    subset_idx = np.asarray(subset_idx)
    keep = np.isin(labels_N, subset_idx)
    s, y = scores_NL[keep], labels_N[keep]
    full = compute_metrics(s, y) if keep.any() else None
    remap = {c: i for i, c in enumerate(subset_idx)}
    y_sub = np.asarray([remap[c] for c in y], np.int64)
    return {
        "num_samples": int(keep.sum()),
        "top1": full["top1"] if full else float("nan"),
        "top5": full["top5"] if full else float("nan"),
        "top1_within_subset": topk_accuracy(s[:, subset_idx], y_sub, 1),
        "per_class_accuracy": (full["per_class_accuracy"][subset_idx] if full
                               else np.full(len(subset_idx), np.nan)),
    }


def save_scores(path, scores_NL, labels_N=None, indices_N=None) -> Path:
    """Writes scores as `.npy` (N, L), `.npz` (scores/labels/indices) or `.pkl` (pyskl `--out`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scores_NL = np.asarray(scores_NL, np.float32)
    if path.suffix == ".npy":
        np.save(path, scores_NL)
    elif path.suffix == ".npz":
        extra = {k: np.asarray(v) for k, v in (("labels", labels_N), ("indices", indices_N))
                 if v is not None}
        np.savez(path, scores=scores_NL, **extra)
    elif path.suffix == ".pkl":
        with path.open("wb") as f:
            pickle.dump([row for row in scores_NL], f, protocol=4)
    else:
        raise ValueError(f"{path}: unknown score file type (use .npy, .npz or .pkl)")
    return path


def load_scores(path) -> tuple[np.ndarray, np.ndarray | None]:
    """Reads a score file written by `save_scores` (or pyskl `--out`): `(scores_NL, labels|None)`.

    Pickles are read with the restricted unpickler (no code can run).
    """
    path = Path(path)
    if path.suffix == ".npy":
        scores, labels = np.load(path, allow_pickle=False), None
    elif path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            if "scores" not in z:
                raise ValueError(f"{path}: npz has no 'scores' array (keys: {list(z.keys())})")
            scores = z["scores"]
            labels = z["labels"] if "labels" in z else None
    elif path.suffix == ".pkl":
        obj = safe_pickle.load(path)
        if isinstance(obj, dict) and "scores" in obj:
            scores, labels = obj["scores"], obj.get("labels")
        elif isinstance(obj, (list, tuple)):
            scores, labels = obj, None
        else:
            raise ValueError(f"{path}: expected a list of per-sample score arrays, "
                             f"got {type(obj).__name__}")
    else:
        raise ValueError(f"{path}: unknown score file type (use .npy, .npz or .pkl)")
    try:
        scores = np.asarray(scores, np.float32)
    except ValueError as e:
        raise ValueError(f"{path}: per-sample scores have different lengths ({e})") from None
    if scores.ndim != 2:
        raise ValueError(f"{path}: expected scores of shape (samples, classes), got {scores.shape}")
    return scores, (None if labels is None else np.asarray(labels, np.int64))


def fuse_scores(scores_list, weights=None, *, softmax: bool = False) -> np.ndarray:
    """Weighted sum of several streams' scores (CTR-GCN `ensemble.py` / 2s-AGCN style).

    With `softmax=True` each stream's scores are turned into probabilities first.
    """
    scores_list = [np.asarray(s, np.float64) for s in scores_list]
    weights = [1.0] * len(scores_list) if weights is None else list(weights)
    if len(weights) != len(scores_list):
        raise ValueError(f"{len(scores_list)} score arrays but {len(weights)} weights")
    shapes = {s.shape for s in scores_list}
    if len(shapes) != 1:
        raise ValueError(f"score arrays differ in shape: {sorted(shapes)}; they must hold the "
                         "same samples in the same order")
    if softmax:
        scores_list = [np.exp(s - s.max(1, keepdims=True)) for s in scores_list]
        scores_list = [s / s.sum(1, keepdims=True) for s in scores_list]
    return sum(w * s for w, s in zip(weights, scores_list)).astype(np.float32)
