"""The built-in procedural dataset: format, determinism, balance, learnable-but-not-trivial."""

import numpy as np
import pytest

from amstgcn_jax import synthetic


def _examples(n, **kw):
    return list(synthetic.generate(n, **kw))


def test_format_and_variable_length():
    exs = _examples(30, min_frames=20, max_frames=40)
    lengths = set()
    for i, ex in enumerate(exs):
        c, t, v, m = ex["data"].shape
        assert (c, v, m) == (3, 25, 2) and ex["data"].dtype == np.float32
        assert t == ex["length"] and 20 <= t <= 40
        assert ex["label"] == i % synthetic.NUM_CLASSES
        assert ex["name"] == f"synthetic_train_{i:06d}"
        assert np.isfinite(ex["data"]).all()
        assert np.abs(ex["data"][..., 0]).sum() > 0  # the main person is always present
        lengths.add(t)
    assert len(lengths) > 5
    assert len(synthetic.CLASS_NAMES) == synthetic.NUM_CLASSES >= 10


def test_deterministic_and_prefix_stable():
    a = _examples(20, seed=3)
    b = _examples(300, seed=3)[:20]  # a longer run starts with the same samples
    c = _examples(20, seed=4)
    t = _examples(20, seed=3, split="test")
    for x, y, z, w in zip(a, b, c, t):
        np.testing.assert_array_equal(x["data"], y["data"])
        assert x["data"].shape != z["data"].shape or not np.array_equal(x["data"], z["data"])
        assert x["data"].shape != w["data"].shape or not np.array_equal(x["data"], w["data"])


def test_class_balance_and_persons():
    exs = _examples(240)
    counts = np.bincount([e["label"] for e in exs], minlength=synthetic.NUM_CLASSES)
    assert (counts == 240 // synthetic.NUM_CLASSES).all()
    two = [np.abs(e["data"][..., 1]).sum() > 0 or np.abs(e["data"][..., 0]).sum() == 0
           for e in exs]
    assert 0.2 < np.mean(two) < 0.6  # 1–2 persons
    hs = [e for e in exs if synthetic.CLASS_NAMES[e["label"]] == "handshake"]
    assert all(np.abs(e["data"]).sum(axis=(0, 1, 2)).min() > 0 for e in hs)


def test_source_random_access():
    src = synthetic.SyntheticSource(13, split="test", seed=1)
    assert len(src) == 13
    ref = _examples(13, split="test", seed=1)
    np.testing.assert_array_equal(src[12]["data"], ref[12]["data"])
    src[0]["data"][:] = 0  # a copy: the source is not modified
    assert np.abs(src[0]["data"]).sum() > 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        next(synthetic.generate(1, split="val"))
    with pytest.raises(ValueError, match="min_frames"):
        next(synthetic.generate(1, min_frames=10, max_frames=5))


def _logreg_accuracy(xtr, ytr, xte, yte, k, steps=300, lr=0.5):
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    w, b, y1 = np.zeros((xtr.shape[1], k)), np.zeros(k), np.eye(k)[ytr]
    for _ in range(steps):
        z = xtr @ w + b
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        g = (p - y1) / len(y1)
        w -= lr * (xtr.T @ g + 1e-3 * w)
        b -= lr * g.sum(0)
    return float(((xte @ w + b).argmax(1) == yte).mean())


def test_learnable_but_not_trivial():
    """Linear probes: time-means of the raw joints are far from perfect; adding per-joint motion
    energy (std over time) does much better, so the labels live in the dynamics."""
    tr, te = _examples(600), _examples(240, split="test")
    k = synthetic.NUM_CLASSES
    ytr, yte = np.array([e["label"] for e in tr]), np.array([e["label"] for e in te])
    mean = lambda e: e["data"][..., 0].mean(1).ravel()  # noqa: E731
    both = lambda e: np.concatenate([mean(e), e["data"][..., 0].std(1).ravel()])  # noqa: E731
    acc_mean = _logreg_accuracy(np.stack([mean(e) for e in tr]), ytr,
                                np.stack([mean(e) for e in te]), yte, k)
    acc_both = _logreg_accuracy(np.stack([both(e) for e in tr]), ytr,
                                np.stack([both(e) for e in te]), yte, k)
    assert 2.0 / k < acc_mean < 0.8, acc_mean
    assert acc_both > acc_mean + 0.1, (acc_mean, acc_both)
