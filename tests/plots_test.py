"""PNG figures: training curves, per-class bars of two runs, confusion matrix, attention map."""

import json

import jax
import matplotlib.image as mpimg
import numpy as np
import pytest

from amstgcn_jax import graph, plots, trainer

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _assert_png(path):
    assert path.read_bytes()[:8] == PNG_MAGIC, path
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert img[..., :3].std() > 0.01  # not a blank canvas


def test_training_curves(tmp_path):
    with (tmp_path / "metrics.jsonl").open("w") as f:
        for step in range(1, 21):
            f.write(json.dumps({"step": step, "train/loss": 2.0 / step, "train/top1": step / 20,
                                "train/learning_rate": 0.1 if step < 10 else 0.01}) + "\n")
            if step % 10 == 0:
                f.write(json.dumps({"step": step, "eval/top1": 0.5, "eval/top5": 0.9,
                                    "eval/loss": 1.0}) + "\n")
    _assert_png(plots.plot_training_curves(tmp_path / "metrics.jsonl", tmp_path / "c.png"))


def test_per_class_bars_and_confusion(tmp_path):
    names = [f"class {i}" for i in range(30)]
    rng = np.random.default_rng(0)
    runs = {"ST-GCN": rng.uniform(0.2, 0.8, 30), "AM-STGCN": rng.uniform(0.3, 0.9, 30)}
    runs["ST-GCN"][3] = np.nan  # a class without test samples
    _assert_png(plots.plot_per_class_accuracy(runs, names, tmp_path / "bars.png"))
    cm = rng.integers(0, 20, (12, 12))
    _assert_png(plots.plot_confusion_matrix(cm, names[:12], tmp_path / "cm.png"))
    with pytest.raises(ValueError, match="has 3 classes"):
        plots.plot_per_class_accuracy({"a": np.ones(4), "b": np.ones(3)}, None, tmp_path / "x.png")


def test_joint_attention_reduction():
    v, t = 5, 4  # pooled keys: ceil(5 / 2) = 3 windows
    attn = np.zeros((1, t * v, 2 * 3))
    attn[:, :, 1] = 1.0  # every query attends to window 1 = joints 2, 3 of frame 0
    a = plots.joint_attention(attn, v)
    np.testing.assert_allclose(a[:, [2, 3]], 1.0)
    np.testing.assert_allclose(a[:, [0, 1, 4]], 0.0)
    spatial = np.full((2, t, v, v), 1.0 / v)  # per-frame, unpooled
    np.testing.assert_allclose(plots.joint_attention(spatial, v), 1.0 / v)
    with pytest.raises(ValueError, match="temporal-mode"):
        plots.joint_attention(np.zeros((2, 3)), v)


def test_attention_map_of_a_real_model(tmp_path):
    model = trainer.make_model(dict(variant="convt_l1x1", num_classes=3, layout="ntu-rgb+d",
                                    blocks=((8, 1, False), (8, 1, True))))
    x_MTVC = np.random.default_rng(0).normal(size=(1, 8, 25, 3)).astype(np.float32)
    variables = model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)},
                           x_MTVC[None], train=False)
    _, state = model.apply(variables, x_MTVC[None], train=False, mutable=["intermediates"])
    maps = plots.find_attention_maps(state["intermediates"])
    assert list(maps) == ["block1/attn_convt0"]
    a_VV = plots.joint_attention(maps["block1/attn_convt0"], 25)
    assert a_VV.shape == (25, 25) and np.all(a_VV >= 0)
    out = plots.plot_sample_attention(model, variables, x_MTVC, "ntu-rgb+d", tmp_path / "a.png")
    _assert_png(out)
    plain = trainer.make_model(dict(variant="stgcn", num_classes=3, layout="ntu-rgb+d",
                                    blocks=((8, 1, False),)))
    plain_vars = plain.init({"params": jax.random.key(0)}, x_MTVC[None], train=False)
    with pytest.raises(ValueError, match="sowed no attention"):
        plots.plot_sample_attention(plain, plain_vars, x_MTVC, graph.get_layout("ntu-rgb+d"),
                                    tmp_path / "b.png")


def test_compare_runs_cli(tmp_path):
    from amstgcn_jax import evaluate
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 50)
    for name in ("st", "am"):
        evaluate.save_scores(tmp_path / f"{name}.npz", rng.normal(size=(50, 4)), labels)
    (tmp_path / "names.txt").write_text("a\nb\nc\nd\n")
    (tmp_path / "subset.txt").write_text("# two of them\nd\nb\n")
    rc = plots.main(["--scores", str(tmp_path / "st.npz"), str(tmp_path / "am.npz"), "--names",
                     "ST-GCN", "AM-STGCN", "--class_names", str(tmp_path / "names.txt"),
                     "--subset", str(tmp_path / "subset.txt"), "--out", str(tmp_path / "f.png")])
    assert rc == 0
    _assert_png(tmp_path / "f.png")
