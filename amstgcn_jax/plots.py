"""PNG figures of a run (matplotlib, Agg backend): curves, per-class accuracy, confusion, attention.

`plot_per_class_accuracy` draws the paper's Fig. 4 style (grouped bars of two or more runs per
class). `plot_attention_map` shows which joints attend to which in a non-local block: the
attention matrix sown under "intermediates" is averaged over frames/positions to a joint-to-joint
(V, V) map, drawn beside the skeleton with the strongest links as lines (none of the PyTorch
toolkits shows this).
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from amstgcn_jax import metrics_log  # noqa: E402


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_training_curves(metrics_path, out_path) -> Path:
    """Train loss and learning rate per step, eval top-1/top-5 per evaluation."""
    records = metrics_log.read_metrics(metrics_path)
    train = [r for r in records if "train/loss" in r]
    evals = [r for r in records if "eval/top1" in r]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    if train:
        steps = [r["step"] for r in train]
        ax_loss.plot(steps, [r["train/loss"] for r in train], label="train loss")
        if evals:
            ax_loss.plot([r["step"] for r in evals], [r["eval/loss"] for r in evals], "o-",
                         label="eval loss")
        ax_lr = ax_loss.twinx()
        ax_lr.plot(steps, [r["train/learning_rate"] for r in train], "k:", lw=1)
        ax_lr.set_ylabel("learning rate (dotted)")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss")
    ax_loss.legend(loc="upper right")
    if evals:
        steps = [r["step"] for r in evals]
        ax_acc.plot(steps, [100 * r["eval/top1"] for r in evals], "o-", label="eval top-1")
        ax_acc.plot(steps, [100 * r["eval/top5"] for r in evals], "s--", label="eval top-5")
        ax_acc.legend(loc="lower right")
    if train and "train/top1" in train[0]:
        ax_acc.plot([r["step"] for r in train], [100 * r["train/top1"] for r in train],
                    alpha=0.5, label="train top-1 (batch)")
        ax_acc.legend(loc="lower right")
    ax_acc.set_xlabel("step")
    ax_acc.set_ylabel("accuracy (%)")
    ax_acc.grid(alpha=0.3)
    return _save(fig, out_path)


def plot_per_class_accuracy(runs: dict, class_names, out_path, *, title=None) -> Path:
    """Grouped bars of per-class accuracy, one colour per run (paper Fig. 4 style).

    `runs` maps a run name (e.g. "ST-GCN", "AM-STGCN") to an array of per-class accuracies
    in [0, 1] ordered like `class_names` (NaN for classes without test samples).
    """
    names = list(class_names) if class_names is not None else None
    num = len(next(iter(runs.values())))
    names = names or [str(i) for i in range(num)]
    width = 0.8 / len(runs)
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * num * len(runs) + 2), 4.5))
    x = np.arange(num)
    for i, (run, acc) in enumerate(runs.items()):
        acc = np.asarray(acc, np.float64)
        if len(acc) != num:
            raise ValueError(f"run {run!r} has {len(acc)} classes, expected {num}")
        ax.bar(x + (i - (len(runs) - 1) / 2) * width, 100 * np.nan_to_num(acc), width,
               label=f"{run} (mean {100 * np.nanmean(acc):.1f}%)")
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=70, ha="right", fontsize=8)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title or "per-class accuracy")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, out_path)


def plot_confusion_matrix(cm, class_names, out_path, *, normalize: bool = True) -> Path:
    """Rows: ground truth, columns: prediction; row-normalised by default."""
    cm = np.asarray(cm, np.float64)
    if normalize:
        cm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    num = cm.shape[0]
    size = min(4 + 0.3 * num, 30)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(im, ax=ax, fraction=0.046)
    if class_names is not None and num <= 60:
        ax.set_xticks(range(num))
        ax.set_yticks(range(num))
        ax.set_xticklabels(class_names, rotation=90, fontsize=7)
        ax.set_yticklabels(class_names, fontsize=7)
    if num <= 20:
        for i in range(num):
            for j in range(num):
                if cm[i, j] > 0.005:
                    ax.text(j, i, f"{cm[i, j]:.2f}" if normalize else int(cm[i, j]), ha="center",
                            va="center", fontsize=6,
                            color="white" if cm[i, j] > 0.5 * cm.max() else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    return _save(fig, out_path)


def _expand_pooled(a_QK, num_joints: int, pool: int, axis: int) -> np.ndarray:
    """Maps pooled joint windows (ceil mode, `pool` joints each) back to joints along `axis`."""
    size = a_QK.shape[axis]
    if size == num_joints:
        return a_QK
    if size != -(-num_joints // pool):
        raise ValueError(f"attention axis of size {size} is neither {num_joints} joints nor "
                         f"{-(-num_joints // pool)} pooled windows of {pool}")
    # Each joint shows the weight of the window it belongs to (so uniform attention looks
    # uniform; rows then sum to 1 over windows, not over joints).
    return np.take(a_QK, np.arange(num_joints) // pool, axis=axis)


def joint_attention(attn, num_joints: int, *, pool: int = 2) -> np.ndarray:
    """Reduces a sown non-local attention map to a (V, V) joint-to-joint map (rows: query joint).

    Accepts the `NonLocalBlock` sow layouts: spatial `(B, T, Vq, Vk)` or spatiotemporal
    `(B, Tq·Vq, Tk·Vk)` (t-major), where Vk (and Vq if queries were pooled) may be the
    `ceil(V / pool)` max-pooled joint windows. Batch and query frames are averaged, key frames
    summed; a pooled window's weight is shown on each of its joints.
    """
    attn = np.asarray(attn, np.float64)
    v = num_joints
    vp = -(-v // pool)
    if attn.ndim == 4:
        a = attn.mean(axis=(0, 1))
    elif attn.ndim == 3:
        p, q = attn.shape[1:]
        vq = v if p % v == 0 else vp
        vk = v if q % v == 0 and (q % vp or pool <= 1) else vp
        if p % vq or q % vk:
            raise ValueError(f"attention of shape {attn.shape} does not factor into frames x "
                             f"{v} joints (or {vp} pooled windows)")
        a = attn.reshape(attn.shape[0], p // vq, vq, q // vk, vk).mean(axis=(0, 1)).sum(axis=1)
    else:
        raise ValueError(f"attention of shape {attn.shape}: expected (B, T, V, V') or "
                         "(B, T*V, T'*V'); temporal-mode maps relate frames, not joints")
    return _expand_pooled(_expand_pooled(a, v, pool, 1), v, pool, 0)


def find_attention_maps(intermediates) -> dict:
    """`{"block3/attn_convt0": array, ...}`: every sown `attention` in an intermediates tree."""
    found = {}

    def walk(node, path):
        for key, value in node.items():
            if key == "attention":
                found["/".join(path)] = np.asarray(value[0] if isinstance(value, tuple) else value)
            elif hasattr(value, "items"):
                walk(value, path + (key,))

    walk(intermediates, ())
    return found


def plot_sample_attention(model, variables, x_MTVC, layout, out_path, *, block=None,
                          frame=None, pool: int = 2) -> Path:
    """Runs `model` on one sample, takes a sown attention map and draws it over the skeleton.

    `block` picks a map by path prefix (default: the first one); `frame` picks the frame whose
    joint positions are drawn (default: the middle one).
    """
    from amstgcn_jax import graph
    layout = graph.get_layout(layout)
    x = np.asarray(x_MTVC, np.float32)[None]
    _, state = model.apply(variables, x, train=False, mutable=["intermediates"])
    maps = find_attention_maps(state.get("intermediates", {}))
    if block is not None:
        maps = {k: v for k, v in maps.items() if k.startswith(block)}
    if not maps:
        raise ValueError("the model sowed no attention map (does it have non-local blocks?)")
    name, attn = next(iter(maps.items()))
    frames = x[0, 0]
    t = frames.shape[0] // 2 if frame is None else frame
    return plot_attention_map(attn[:1], frames[t], layout.edges, out_path, pool=pool,
                              title=f"non-local attention {name} (frame {t} drawn)")


def plot_attention_map(attn, joints_VC, edges, out_path, *, top_k: int = 2, pool: int = 2,
                       joint_names=None, title=None) -> Path:
    """Which joints attend to which: skeleton with each joint's `top_k` strongest links + matrix.

    Args:
      attn: the sown attention of one sample (see `joint_attention` for the accepted shapes).
      joints_VC: joint coordinates of one frame of that sample (x, y used), `V` rows.
      edges: the layout's bone list `(i, j)` used to draw the skeleton.
    """
    joints_VC = np.asarray(joints_VC, np.float64)
    num_joints = joints_VC.shape[0]
    a_VV = joint_attention(attn, num_joints, pool=pool)
    fig, (ax_sk, ax_m) = plt.subplots(1, 2, figsize=(13, 5.5), gridspec_kw={"wspace": 0.45})
    xy = joints_VC[:, :2]
    for i, j in edges:
        ax_sk.plot(xy[[i, j], 0], xy[[i, j], 1], color="0.6", lw=2, zorder=1)
    off = a_VV - np.diag(np.diag(a_VV))  # self-attention says little about relations
    strength = np.zeros(num_joints)
    peak = off.max() if off.max() > 0 else 1.0
    for v in range(num_joints):
        for w in np.argsort(-off[v])[:top_k]:
            alpha = float(off[v, w] / peak)
            strength[w] += off[v, w]
            ax_sk.annotate("", xy=xy[w], xytext=xy[v], zorder=2,
                           arrowprops=dict(arrowstyle="->", color="tab:red",
                                           alpha=max(alpha, 0.1), lw=0.5 + 2.5 * alpha,
                                           connectionstyle="arc3,rad=0.2"))
    sc = ax_sk.scatter(xy[:, 0], xy[:, 1], s=40 + 400 * strength / max(strength.max(), 1e-12),
                       c=strength, cmap="Reds", edgecolors="k", zorder=3)
    for v in range(num_joints):
        ax_sk.text(xy[v, 0], xy[v, 1], str(v), fontsize=7, ha="center", va="center", zorder=4)
    fig.colorbar(sc, ax=ax_sk, fraction=0.046, label="attention received")
    ax_sk.set_aspect("equal")
    ax_sk.set_title(f"each joint -> its {top_k} most attended joints")
    ax_sk.axis("off")
    im = ax_m.imshow(a_VV, cmap="viridis")
    fig.colorbar(im, ax=ax_m, fraction=0.046)
    ticks = joint_names if joint_names is not None else [str(v) for v in range(num_joints)]
    ax_m.set_xticks(range(num_joints))
    ax_m.set_yticks(range(num_joints))
    ax_m.set_xticklabels(ticks, rotation=90, fontsize=6)
    ax_m.set_yticklabels(ticks, fontsize=6)
    ax_m.set_xlabel("attended (key) joint")
    ax_m.set_ylabel("query joint")
    fig.suptitle(title or "non-local attention, averaged over frames")
    return _save(fig, out_path)


def compare_runs(score_files, names, out_path, *, class_names=None, subset_names=None) -> Path:
    """Per-class accuracy bars of several runs from their saved scores (`scores_test.npz` with
    labels), optionally restricted to a class subset such as Kinetics-Motion (paper Fig. 4)."""
    from amstgcn_jax import evaluate
    runs, labels0 = {}, None
    for path, name in zip(score_files, names):
        scores, labels = evaluate.load_scores(path)
        if labels is None:
            raise ValueError(f"{path}: no labels stored (use the .npz written by train/eval)")
        if labels0 is not None and not np.array_equal(labels, labels0):
            raise ValueError(f"{path}: different test samples than {score_files[0]}")
        labels0 = labels
        if subset_names is not None:
            idx = evaluate.class_subset_indices(subset_names, class_names)
            runs[name] = evaluate.subset_metrics(scores, labels, idx)["per_class_accuracy"]
        else:
            runs[name] = evaluate.compute_metrics(scores, labels)["per_class_accuracy"]
    shown = subset_names if subset_names is not None else class_names
    return plot_per_class_accuracy(runs, shown, out_path)


def main(argv=None) -> int:
    import argparse

    from amstgcn_jax import evaluate
    parser = argparse.ArgumentParser(
        description="Per-class accuracy of several runs (e.g. ST-GCN vs AM-STGCN), one PNG.")
    parser.add_argument("--scores", nargs="+", required=True,
                        help="scores_test.npz of each run (or eval.py --out .npz files)")
    parser.add_argument("--names", nargs="+", help="run names (default: the file paths)")
    parser.add_argument("--class_names", help="class names file, one per line")
    parser.add_argument("--subset", help="class-subset file (e.g. Kinetics-Motion)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    names = args.names or args.scores
    class_names = evaluate.read_class_names(args.class_names) if args.class_names else None
    subset = evaluate.read_class_names(args.subset) if args.subset else None
    if subset is not None and class_names is None:
        parser.error("--subset needs --class_names")
    print(compare_runs(args.scores, names, args.out, class_names=class_names,
                       subset_names=subset))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
