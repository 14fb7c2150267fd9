"""Checkpoints: save/restore round trip, best tracking, and exact resume after SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import optax
import pytest

from amstgcn_jax import checkpoint as checkpoint_lib
from amstgcn_jax import optim, sharding, trainer
from amstgcn_jax import train_state as train_state_lib

REPO = Path(__file__).resolve().parents[1]
TINY = dict(variant="stgcn", num_classes=3, layout="ntu-rgb+d", blocks=((4, 1, False),))


def _state():
    mesh = sharding.make_mesh(jax.devices()[:2])
    lr_fn = optim.make_learning_rate_fn(learning_rate=0.1, steps_per_epoch=2)
    tx = optim.make_optimizer(learning_rate_fn=lr_fn)
    x = np.zeros((2, 1, 8, 25, 3), np.float32)
    return train_state_lib.create_train_state(jax.random.key(0), trainer.make_model(TINY), tx,
                                              x, mesh)


def test_save_restore_round_trip_and_best(tmp_path):
    state = _state()
    # Make the state non-trivial: distinct params and a non-zero momentum trace.
    state = state.replace(step=state.step + 3, params=jax.tree.map(lambda p: p + 0.5, state.params),
                          opt_state=jax.tree.map(lambda o: o + 1 if o.dtype == np.float32 else o,
                                                 state.opt_state))
    ckpt = checkpoint_lib.Checkpointer(tmp_path, max_to_keep=2)
    for step in (1, 2, 3):
        ckpt.save(step, state, data_state={"next_index": step * 10}, meta={"epoch": step},
                  best=step == 2)
    ckpt.wait_until_finished()
    assert ckpt.latest.all_steps() == [2, 3]
    assert ckpt.best.all_steps() == [2]
    template = _state()
    restored, data_state, meta = ckpt.restore_latest(template)
    assert data_state == {"next_index": 30} and meta["epoch"] == 3 and meta["step"] == 3
    assert int(restored.step) == int(state.step)
    jax.tree.map(np.testing.assert_array_equal, restored.params, state.params)
    jax.tree.map(np.testing.assert_array_equal, restored.opt_state, state.opt_state)
    # optax NamedTuples and shardings survive (restore used the abstract target).
    assert isinstance(restored.opt_state[1][0], optax.TraceState)
    kernel = restored.params["head"]["kernel"]
    assert kernel.sharding == template.params["head"]["kernel"].sharding
    ckpt.close()
    variables, step = checkpoint_lib.load_variables(tmp_path / "best")
    assert step == int(state.step)
    np.testing.assert_array_equal(variables["params"]["head"]["kernel"],
                                  np.asarray(state.params["head"]["kernel"]))
    with pytest.raises(FileNotFoundError, match="no orbax checkpoint"):
        checkpoint_lib.load_variables(tmp_path / "nothing")


def _train_cmd(workdir):
    return [sys.executable, "train.py", "--config", "configs/synthetic.py:tiny", "--workdir",
            str(workdir), "--config.num_epochs=4", "--config.checkpoint_every_steps=5"]


def _env():
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=2")
    return env


def _losses(workdir):
    last = {}
    for line in (workdir / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if "train/loss" in rec:
            last[rec["step"]] = rec["train/loss"]
    return last


def _max_logged_step(workdir):
    try:
        text = (workdir / "metrics.jsonl").read_text()
    except FileNotFoundError:
        return 0
    steps = [json.loads(line)["step"] for line in text.splitlines() if line.endswith("}")]
    return max(steps, default=0)


def test_sigkill_then_restart_continues_exactly(tmp_path):
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    subprocess.run(_train_cmd(ref), cwd=REPO, env=_env(), check=True, capture_output=True,
                   timeout=600)
    log = (tmp_path / "killed.log").open("w")
    proc = subprocess.Popen(_train_cmd(killed), cwd=REPO, env=_env(), stdout=log, stderr=log)
    deadline = time.time() + 300
    while _max_logged_step(killed) < 22 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, "training finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    kill_step = _max_logged_step(killed)
    assert 22 <= kill_step < 48
    resumed = subprocess.run(_train_cmd(killed), cwd=REPO, env=_env(), capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Restored checkpoint of step" in resumed.stderr
    ref_losses, got = _losses(ref), _losses(killed)
    assert sorted(ref_losses) == sorted(got) == list(range(1, 49))
    np.testing.assert_array_equal([got[s] for s in range(1, 49)],
                                  [ref_losses[s] for s in range(1, 49)])
    with np.load(ref / "scores_test.npz") as a, np.load(killed / "scores_test.npz") as b:
        np.testing.assert_array_equal(a["scores"], b["scores"])
    assert not list(killed.glob("checkpoints/*orbax-checkpoint-tmp*"))
