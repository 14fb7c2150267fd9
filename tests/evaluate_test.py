"""Evaluation: masked/padded batches count each sample once, multi-clip averaging, exact metrics,
class subsets (Kinetics-Motion), score files and stream fusion (function + CLI)."""

import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amstgcn_jax import evaluate, fuse, sharding
from amstgcn_jax.readers.errors import UnsafePickleError

L = 5


def _logits_for(index_N):
    """Fixed per-sample logits: sample i predicts class (i % L), runner-up (i + 1) % L."""
    idx = jnp.maximum(index_N, 0)
    return (jax.nn.one_hot(idx % L, L) * 3.0 + jax.nn.one_hot((idx + 1) % L, L) * 2.0
            - 0.01 * idx[:, None])


def _fake_eval_fn(state, batch):
    del state
    logits = _logits_for(batch["index"])
    loss = -jax.nn.log_softmax(logits)[jnp.arange(len(logits)), batch["label"]]
    return {"logits": logits, "loss": loss}


def _batches(num, batch, labels, clips=1):
    """Eval batches in the pipeline's format: padded with mask=False, index=-1 rows."""
    rows = [(i, c) for i in range(num) for c in range(clips)]
    for start in range(0, len(rows), batch):
        chunk = rows[start:start + batch]
        pad = batch - len(chunk)
        index = np.array([r[0] for r in chunk] + [-1] * pad, np.int32)
        yield {"x": np.zeros((batch, 1, 2, 3, 3), np.float32),
               "label": np.array([labels[i] for i, _ in chunk] + [0] * pad, np.int32),
               "mask": np.array([True] * len(chunk) + [False] * pad),
               "index": index,
               "clip": np.array([r[1] for r in chunk] + [0] * pad, np.int32)}


def test_masked_padding_counts_each_sample_once():
    mesh = sharding.make_mesh(jax.devices()[:4])
    labels = np.arange(10) % L
    labels[[3, 7]] = (labels[[3, 7]] + 1) % L  # samples 3 and 7: top-2 hits, not top-1
    result = evaluate.collect_scores(_fake_eval_fn, None, _batches(10, 8, labels), mesh)
    assert result["scores"].shape == (10, L)  # 16 rows seen, 6 of them padding
    np.testing.assert_array_equal(result["indices"], np.arange(10))
    np.testing.assert_array_equal(result["labels"], labels)
    m = evaluate.compute_metrics(result["scores"], result["labels"], loss_N=result["loss"])
    assert m["top1"] == pytest.approx(0.8) and m["top5"] == 1.0 and m["num_samples"] == 10
    assert m["confusion_matrix"].sum() == 10


def test_multi_clip_probabilities_are_averaged():
    mesh = sharding.make_mesh(jax.devices()[:2])

    def eval_fn(state, batch):  # clip-dependent logits
        logits = _logits_for(batch["index"]) * (1.0 + batch["clip"][:, None])
        return {"logits": logits, "loss": jnp.zeros(len(logits))}

    labels = np.arange(3) % L
    result = evaluate.collect_scores(eval_fn, None, _batches(3, 4, labels, clips=2), mesh)
    assert result["scores"].shape == (3, L)
    base = np.asarray(_logits_for(jnp.arange(3)))
    expected = np.log(np.mean([jax.nn.softmax(base * k) for k in (1.0, 2.0)], axis=0))
    np.testing.assert_allclose(result["scores"], expected, rtol=1e-5, atol=1e-6)


def test_repeated_sample_is_an_error():
    mesh = sharding.make_mesh(jax.devices()[:2])
    labels = np.zeros(4, int)
    twice = list(_batches(4, 4, labels)) * 2
    with pytest.raises(ValueError, match="each must be seen once"):
        evaluate.collect_scores(_fake_eval_fn, None, twice, mesh)


def test_metrics_by_hand():
    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1], [0.1, 0.2, 0.7]])
    labels = np.array([0, 1, 1, 1])
    m = evaluate.compute_metrics(scores, labels)
    assert m["top1"] == 0.5 and m["top5"] == 1.0
    np.testing.assert_array_equal(m["confusion_matrix"], [[1, 0, 0], [1, 1, 1], [0, 0, 0]])
    np.testing.assert_allclose(m["per_class_accuracy"], [1.0, 1 / 3, np.nan])
    assert m["mean_class_accuracy"] == pytest.approx((1 + 1 / 3) / 2)
    assert evaluate.topk_accuracy(scores, labels, 2) == 1.0
    sub = evaluate.subset_metrics(scores, labels, [1, 2])  # samples of classes 1, 2 only
    assert sub["num_samples"] == 3 and sub["top1"] == pytest.approx(1 / 3)
    assert sub["top1_within_subset"] == pytest.approx(2 / 3)  # class 0 no longer competes


def test_kinetics_motion_subset_from_shared_lists(shared_dir):
    ref = shared_dir / "data" / "reference-preprocessing" / "kinetics_motion_classes.txt"
    names_path = shared_dir / "data" / "kinetics-skeleton-samples" / "label_name.txt"
    subset = evaluate.read_class_names(ref)
    names = evaluate.read_class_names(names_path)
    idx = evaluate.class_subset_indices(subset, names)
    assert len(subset) == 30 and len(names) == 400 and len(set(idx)) == 30
    assert names[idx[0]] == subset[0]
    with pytest.raises(ValueError, match="not in the label names"):
        evaluate.class_subset_indices(["no such class"], names)


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".pkl"])
def test_score_files_round_trip(tmp_path, suffix):
    scores = np.random.default_rng(0).normal(size=(7, L)).astype(np.float32)
    labels = np.arange(7) % L
    path = evaluate.save_scores(tmp_path / f"s{suffix}", scores, labels, np.arange(7))
    got, got_labels = evaluate.load_scores(path)
    np.testing.assert_array_equal(got, scores)
    if suffix == ".npz":
        np.testing.assert_array_equal(got_labels, labels)


def test_malicious_score_pickle_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps([Evil()]))
    with pytest.raises(UnsafePickleError, match="builtins.print"):
        evaluate.load_scores(path)


def test_fusion_beats_each_stream(tmp_path, capsys):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, L, 200)
    onehot = np.eye(L)[labels]
    joint = onehot + rng.normal(scale=0.9, size=onehot.shape)
    bone = onehot + rng.normal(scale=0.9, size=onehot.shape)
    fused = evaluate.fuse_scores([joint, bone], [1, 1])
    np.testing.assert_allclose(fused, joint + bone, rtol=1e-6)
    evaluate.save_scores(tmp_path / "joint.npz", joint, labels)
    evaluate.save_scores(tmp_path / "bone.pkl", bone)
    np.save(tmp_path / "labels.npy", labels)
    _, _, report = fuse.fuse_files([tmp_path / "joint.npz", tmp_path / "bone.pkl"], [1, 1])
    assert report["fused"][0] > max(report[str(tmp_path / "joint.npz")][0],
                                    report[str(tmp_path / "bone.pkl")][0])
    rc = fuse.main(["--scores", str(tmp_path / "joint.npz"), str(tmp_path / "bone.pkl"),
                    "--weights", "1", "0.5", "--labels", str(tmp_path / "labels.npy"),
                    "--out", str(tmp_path / "fused.npy")])
    assert rc == 0 and "fused: top1" in capsys.readouterr().out
    np.testing.assert_allclose(np.load(tmp_path / "fused.npy"), joint + 0.5 * bone, rtol=1e-5,
                               atol=1e-5)
    with pytest.raises(ValueError, match="2 score arrays but 1 weights"):
        evaluate.fuse_scores([joint, bone], [1])
    assert fuse.main(["--scores", str(tmp_path / "bone.pkl")]) == 2  # no labels anywhere


def test_eval_cli_on_a_pytorch_stgcn_checkpoint(shared_dir, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path
    repo = Path(__file__).resolve().parents[1]
    pt = shared_dir / "parity" / "stgcn_ntu_seed0.pt"
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="")
    out = subprocess.run(
        [sys.executable, "eval.py", "--config", "configs/synthetic.py:tiny", "--checkpoint",
         str(pt), "--out", str(tmp_path / "s.npz"), "--plots_dir", str(tmp_path / "p")],
        cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "(40 samples)" in out.stdout and out.stdout.startswith("top-1 ")
    scores, labels = evaluate.load_scores(tmp_path / "s.npz")
    assert scores.shape == (40, 60) and labels.max() < 12  # 60-way head on the 12-class data
    assert (tmp_path / "p" / "confusion_matrix.png").exists()
