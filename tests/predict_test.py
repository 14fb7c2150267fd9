"""predict: probabilities for users' own skeleton files/arrays (function and CLI)."""

import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from amstgcn_jax import predict, trainer
from configs import synthetic

REPO = Path(__file__).resolve().parents[1]


def test_predict_function_gives_probabilities():
    model = trainer.make_model(dict(variant="stgcn", num_classes=4, layout="ntu-rgb+d",
                                    blocks=((8, 1, False),)))
    x = np.random.default_rng(0).normal(size=(3, 2, 8, 25, 3)).astype(np.float32)
    variables = model.init({"params": jax.random.key(0)}, x[:1], train=False)
    probs = predict.predict(model, variables, x, batch_size=2)
    assert probs.shape == (3, 4)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    logits, _ = model.apply(variables, x, train=False)
    np.testing.assert_allclose(probs, jax.nn.softmax(logits), rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match=r"\(N, M, T, V, C\)"):
        predict.predict(model, variables, x[0])


def test_read_skeleton_formats(shared_dir, tmp_path):
    data = shared_dir / "data"
    ntu = predict.read_skeleton(data / "ntu60-raw-samples/gardiens/S001C001P001R001A001.skeleton")
    assert ntu.shape[0] == 3 and ntu.shape[2:] == (25, 2)
    ucla = predict.read_skeleton(data / "nw-ucla/all_sqe/a01_s01_e00_v03.json")
    assert ucla.shape == (3, 27, 20, 1)
    kinetics_dir = data / "kinetics-skeleton-samples" / "kinetics_train"
    kin = predict.read_skeleton(sorted(kinetics_dir.glob("*.json"))[0])
    assert kin.shape == (3, 300, 18, 2)
    np.save(tmp_path / "tvc.npy", np.zeros((10, 25, 3), np.float32))
    assert predict.read_skeleton(tmp_path / "tvc.npy").shape == (3, 10, 25, 1)
    with pytest.raises(ValueError, match="unsupported skeleton file"):
        predict.read_skeleton(tmp_path / "clip.csv")


def test_predict_arrays_and_cli_with_a_pytorch_checkpoint(shared_dir, tmp_path):
    pt = shared_dir / "parity" / "stgcn_ntu_seed0.pt"
    config = synthetic.get_config("tiny")
    clip = predict.read_skeleton(
        shared_dir / "data/ntu60-raw-samples/LevelCA/S001C001P001R001A011.skeleton")
    probs = predict.predict_arrays(config, pt, [clip, clip[:, :40]])
    assert probs.shape == (2, 60)  # the architecture comes from the checkpoint (60 classes)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    np.save(tmp_path / "clip.npy", clip)
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="")
    out = subprocess.run(
        [sys.executable, "-m", "amstgcn_jax.predict", "--config", "configs/synthetic.py:tiny",
         "--checkpoint", str(pt), "--top_k", "2", "--out", str(tmp_path / "p.npy"),
         str(tmp_path / "clip.npy")], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith(str(tmp_path / "clip.npy") + ": ")
    np.testing.assert_allclose(np.load(tmp_path / "p.npy")[0], probs[0], rtol=1e-4, atol=1e-6)
