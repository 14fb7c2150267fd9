"""Train step and loop: data parallel on fake CPU devices, 1-vs-4 device parity, no recompiles,
loss going down, the non-finite-loss stop, and the end-to-end loop outputs."""

import functools
import json
import re

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from amstgcn_jax import checkpoint as checkpoint_lib
from amstgcn_jax import data_setup, optim, sharding, trainer
from amstgcn_jax import train_state as train_state_lib
from amstgcn_jax import train_step as train_step_lib
from configs import synthetic

NUM_CLASSES, T, V, M = 4, 16, 25, 1
TINY = dict(variant="stgcn", num_classes=NUM_CLASSES, layout="ntu-rgb+d", data_bn="MVC",
            blocks=((8, 1, False), (8, 2, True)), dropout=0.2)


def _batch(index, batch_size=8, nan=False):
    """Deterministic, learnable batch: the class sets which joints move along which axis."""
    rng = np.random.default_rng([7, index])
    label = rng.integers(0, NUM_CLASSES, batch_size).astype(np.int32)
    x = 0.3 * rng.standard_normal((batch_size, M, T, V, 3)).astype(np.float32)
    t = np.sin(np.linspace(0, 2 * np.pi, T, dtype=np.float32))
    for i, c in enumerate(label):
        x[i, :, :, c * 5:(c + 1) * 5, c % 3] += 2.0 * t[None, :, None]
    if nan:
        x[:] = np.nan
    return {"x": x, "label": label, "mask": np.ones(batch_size, bool),
            "index": np.arange(index * batch_size, (index + 1) * batch_size, dtype=np.int32)}


class _FakeIter:
    """Counter-based iterator with grain-style get_state/set_state."""

    def __init__(self, batch_size, nan_at=None):
        self.i, self.batch_size, self.nan_at = 0, batch_size, nan_at

    def __next__(self):
        b = _batch(self.i, self.batch_size, nan=self.i == self.nan_at)
        self.i += 1
        return b

    def get_state(self):
        return {"next_index": self.i}

    def set_state(self, state):
        self.i = state["next_index"]


def _fake_data(batch_size, nan_at=None, steps_per_epoch=4, num_test=20, eval_batch=8):
    def eval_batches():
        for start in range(0, num_test, eval_batch):
            b = _batch(1000 + start, eval_batch)
            n = min(eval_batch, num_test - start)
            b["mask"] = np.arange(eval_batch) < n
            b["index"] = np.arange(start, start + eval_batch, dtype=np.int32)
            yield b

    return data_setup.Data(train_iter=_FakeIter(batch_size, nan_at),
                           steps_per_epoch=steps_per_epoch,
                           eval_batches=eval_batches, sample_x=_batch(0, batch_size)["x"],
                           num_classes=NUM_CLASSES, class_names=[f"c{i}" for i in range(4)])


def _setup(devices, *, lr=0.05, steps_per_epoch=4):
    mesh = sharding.make_mesh(devices)
    model = trainer.make_model(TINY, batch_shards=mesh.size)  # as the trainer builds it
    lr_fn = optim.make_learning_rate_fn(learning_rate=lr, steps_per_epoch=steps_per_epoch,
                                        decay_epochs=(2,))
    tx = optim.make_optimizer(learning_rate_fn=lr_fn, momentum=0.9, nesterov=True,
                              weight_decay=1e-4)
    state = train_state_lib.create_train_state(jax.random.key(0), model, tx,
                                               _batch(0)["x"], mesh)
    state_sh = jax.tree.map(lambda x: x.sharding, state)
    rep = sharding.replicated_sharding(mesh)
    step = jax.jit(functools.partial(train_step_lib.train_step, learning_rate_fn=lr_fn),
                   in_shardings=(state_sh, sharding.batch_sharding(mesh), rep),
                   out_shardings=(state_sh, rep), donate_argnums=0)
    return mesh, state, step


def _run_losses(devices, num_steps, lr=0.05):
    mesh, state, step = _setup(devices, lr=lr)
    losses = []
    for i in range(num_steps):
        state, metrics = step(state, sharding.shard_batch(_batch(i), mesh), jax.random.key(1))
        losses.append(float(metrics["loss"]))  # sync every step (XLA:CPU all-reduce deadlock)
    return np.asarray(losses), state, step


def test_one_train_step_on_8_devices():
    assert jax.device_count() >= 8, "conftest should provide 8 fake CPU devices"
    mesh, state, step = _setup(jax.devices()[:8])
    batch = sharding.shard_batch(_batch(0), mesh)
    assert batch["x"].sharding.spec == P("data")
    assert len(batch["x"].addressable_shards) == 8
    assert batch["x"].addressable_shards[0].data.shape == (1, M, T, V, 3)
    old_kernel = np.asarray(state.params["head"]["kernel"])
    state, metrics = step(state, batch, jax.random.key(1))
    assert int(state.step) == 1
    assert np.isfinite(float(metrics["loss"]))
    assert float(metrics["learning_rate"]) == pytest.approx(0.05)
    kernel = state.params["head"]["kernel"]
    assert kernel.sharding.spec == P() and len(kernel.sharding.device_set) == 8
    assert not np.allclose(np.asarray(kernel), old_kernel)
    # A second step with new data reuses the compiled executable (no recompilation).
    state, _ = step(state, sharding.shard_batch(_batch(1), mesh), jax.random.key(1))
    jax.block_until_ready(state)
    assert step._cache_size() == 1


@pytest.fixture(scope="module")
def four_device_run():
    return _run_losses(jax.devices()[:4], 12, lr=0.2)


def test_same_loss_curve_on_1_and_4_devices(four_device_run):
    """The 4-device model runs other formulations (`model.mesh_auto`: NTVC, matmul) than
    the 1-device one (V-major, FFT conv on CPU); the dropout masks and the curve are the same."""
    losses4, state4, _ = four_device_run
    losses1, state1, _ = _run_losses(jax.devices()[:1], 12, lr=0.2)
    np.testing.assert_allclose(losses4, losses1, rtol=2e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(state4.params["head"]["kernel"]),
                               np.asarray(state1.params["head"]["kernel"]), rtol=1e-3, atol=1e-5)


def _all_gathers(model_config, batch_shards, num_devices=2):
    """All-gathers in the compiled `num_devices` train step and eval forward of
    `make_model(model_config, batch_shards)`."""
    mesh = sharding.make_mesh(jax.devices()[:num_devices])
    model = trainer.make_model(model_config, batch_shards=batch_shards)
    tx = optim.make_optimizer(learning_rate_fn=lambda step: 0.1, momentum=0.9, nesterov=True,
                              weight_decay=1e-4)
    batch = _batch(0)
    state = jax.eval_shape(lambda: train_state_lib.create_train_state(  # shapes: no init run
        jax.random.key(0), model, tx, batch["x"], mesh))
    rep = sharding.replicated_sharding(mesh)
    step = jax.jit(functools.partial(train_step_lib.train_step, learning_rate_fn=lambda s: 0.1),
                   in_shardings=(jax.tree.map(lambda x: x.sharding, state),
                                 sharding.batch_sharding(mesh), rep))
    batch = sharding.shard_batch(batch, mesh)
    train = step.lower(state, batch, jax.random.key(1)).compile().as_text()
    infer = jax.jit(functools.partial(model.apply, train=False)).lower(
        {"params": state.params, "batch_stats": state.batch_stats}, batch["x"]).compile()
    return [len(re.findall(r"\ball-gather(?:-start)?\(", hlo))
            for hlo in (train, infer.as_text())]


def test_mesh_model_keeps_the_batch_split():
    """On a mesh the trainer's model (`batch_shards` = mesh size) compiles to a train step
    and an eval forward with no all-gather: each device computes its own samples only. The
    1-device model's V-major graph convs, FFT convs and attention blocks of some sequences
    make XLA gather the global batch (the reason for `model.mesh_auto` and the blocked
    attention's `batch_shards`; 77 gathers in an AM-STGCN NTU step); 2s-AGCN's FFT convs
    as well."""
    # a non-local block after ConvT of layer 1, on the blocked path (a budget of 64 weights:
    # one query row of every sequence per block on the mesh, of one sequence otherwise)
    attended = dict(TINY, variant=None,
                    attention=(("nonlocal", "convt", 1, 1, {"chunk_elements": 64}),))
    assert _all_gathers(attended, batch_shards=2) == [0, 0]
    assert _all_gathers(attended, batch_shards=1)[0] > 0
    agcn = dict(TINY, backbone="agcn", variant=None, strategy="agcn")
    assert _all_gathers(agcn, batch_shards=2) == [0, 0]


def test_loss_decreases(four_device_run):
    losses, _, step = four_device_run
    assert step._cache_size() == 1  # 12 steps, one compilation
    # A model that does not learn stays at ~1.0x; with lr 0.2 and dropout 0.2 the ratio over
    # dropout keys 1..6 was 0.71-0.82 (layers.Dropout) and 0.71-0.75 (flax nn.Dropout).
    assert losses[-4:].mean() < 0.85 * losses[:4].mean(), losses


def _tiny_config(**overrides):
    c = synthetic.get_config()
    c.model = dict(TINY)
    c.batch_size, c.eval_batch_size, c.num_epochs = 8, 8, 2
    c.log_every_steps, c.eval_every_epochs, c.checkpoint_every_steps = 1, 1, 2
    c.tensorboard = True
    c.update(overrides)
    return c


def test_nan_loss_stops_with_step_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(data_setup, "make_data",
                        lambda *a, **k: _fake_data(8, nan_at=2, steps_per_epoch=8))
    config = _tiny_config(eval_every_epochs=0)
    with pytest.raises(trainer.NonFiniteLossError, match=r"at step 3\b.*last good checkpoint is "
                                                         r"step 2"):
        trainer.train_and_evaluate(config, tmp_path)
    assert checkpoint_lib.Checkpointer(tmp_path).latest_step() == 2
    _, step = checkpoint_lib.load_variables(tmp_path)
    assert step == 2


def test_train_and_evaluate_writes_everything(tmp_path, monkeypatch):
    monkeypatch.setattr(data_setup, "make_data", lambda *a, **k: _fake_data(8))
    summary = trainer.train_and_evaluate(_tiny_config(), tmp_path)
    assert summary["steps"] == 8 and summary["num_samples"] == 20
    assert 0.0 <= summary["top1"] <= 1.0 and summary["best_top1"] >= summary["top1"]
    assert json.loads((tmp_path / "config.json").read_text())["batch_size"] == 8
    assert json.loads((tmp_path / "summary.json").read_text())["steps"] == 8
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "train/loss" in r] == list(range(1, 9))
    assert [r["step"] for r in records if "eval/top1" in r] == [4, 8]
    assert list((tmp_path / "tb").iterdir()), "no TensorBoard event file"
    with np.load(tmp_path / "scores_test.npz") as z:
        assert z["scores"].shape == (20, NUM_CLASSES)
        np.testing.assert_array_equal(z["indices"], np.arange(20))
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["4", "6", "8"]
    assert len(list((tmp_path / "best").iterdir())) == 1
    for name in ("curves.png", "confusion_matrix.png", "per_class_accuracy.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_time_budget_stops_with_final_eval_and_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(data_setup, "make_data", lambda *a, **k: _fake_data(8))
    # Any positive budget is already spent once the first step has compiled and run.
    summary = trainer.train_and_evaluate(_tiny_config(time_budget_s=1e-9, tensorboard=False),
                                         tmp_path)
    assert summary["stopped_by_time_budget"] and summary["steps"] == 1
    assert summary["num_samples"] == 20  # the final eval still ran on every test sample
    assert checkpoint_lib.Checkpointer(tmp_path).latest_step() == 1
    assert json.loads((tmp_path / "summary.json").read_text())["stopped_by_time_budget"]


def test_bfloat16_compute_keeps_float32_params_and_bn_stats():
    mesh = sharding.make_mesh(jax.devices()[:2])
    model = trainer.make_model(dict(TINY, dtype="bfloat16"))
    lr_fn = optim.make_learning_rate_fn(learning_rate=0.1, steps_per_epoch=4)
    tx = optim.make_optimizer(learning_rate_fn=lr_fn)
    state = train_state_lib.create_train_state(jax.random.key(0), model, tx, _batch(0)["x"], mesh)
    step = jax.jit(functools.partial(train_step_lib.train_step, learning_rate_fn=lr_fn))
    state, metrics = step(state, sharding.shard_batch(_batch(0), mesh), jax.random.key(1))
    assert np.isfinite(float(metrics["loss"]))
    dtypes = {x.dtype for x in jax.tree.leaves((state.params, state.batch_stats, state.opt_state))
              if hasattr(x, "dtype") and x.ndim > 0}
    assert dtypes == {np.dtype("float32")}
    logits, out = model.apply({"params": state.params, "batch_stats": state.batch_stats},
                              _batch(1)["x"], train=False)
    assert logits.dtype == np.float32 and out["block1"].dtype == jax.numpy.bfloat16


def test_bfloat16_on_cpu_warns_that_float32_is_faster():
    message = trainer.slow_dtype_warning("cpu", "bfloat16")
    assert "float32" in message and "CPU" in message
    assert trainer.slow_dtype_warning("cpu", "float32") is None
    assert trainer.slow_dtype_warning("gpu", "bfloat16") is None
    assert trainer.slow_dtype_warning("cpu", None) is None


def test_builtin_data_loss_decreases_and_eval_reproduces_scores(tmp_path):
    config = synthetic.get_config("tiny")
    config.num_epochs, config.optim.decay_epochs = 4, (3,)
    config.eval_every_epochs, config.log_every_steps = 4, 12  # one mean loss per epoch
    summary = trainer.train_and_evaluate(config, tmp_path / "w")
    epoch_losses = [r["train/loss"] for r in map(json.loads, (tmp_path / "w" / "metrics.jsonl")
                                                  .read_text().splitlines()) if "train/loss" in r]
    assert len(epoch_losses) == 4
    assert epoch_losses[-1] < 0.9 * epoch_losses[0], epoch_losses
    # eval.py's path (checkpoint -> fresh model -> eval pipeline) reproduces the loop's scores.
    metrics = trainer.evaluate_checkpoint(config, tmp_path / "w", out=tmp_path / "s.npz")
    assert metrics["top1"] == summary["top1"] and metrics["num_samples"] == 40
    with np.load(tmp_path / "s.npz") as a, np.load(tmp_path / "w" / "scores_test.npz") as b:
        np.testing.assert_allclose(a["scores"], b["scores"], rtol=1e-5, atol=1e-5)


def _free_port() -> int:
    """A port no process listens on now: the jax.distributed coordinator's."""
    import socket
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


_JOIN_CHECK = """
import sys
import jax
from absl import app
from amstgcn_jax import sharding, trainer
import {entry} as entry

def library_call(*args, **kwargs):
    # What train_and_evaluate / evaluate_checkpoint do first: join the launch (raises if
    # something already started a backend), then use the devices.
    sharding.maybe_initialize_distributed()
    assert jax.distributed.is_initialized() and jax.process_count() == 1, "no launch joined"
    return dict(top1=0.5, top5=1.0, best_top1=0.5, mean_class_accuracy=0.5, num_samples=2,
                steps=0, wall_time_s=0.0, class_names=None, per_class_accuracy=[0.5, 0.5])

trainer.{fn} = library_call
sys.argv = [{entry!r}] + sys.argv[1:]
app.run(entry.main)
"""


@pytest.mark.parametrize("entry, fn, flag", [("train", "train_and_evaluate", "--workdir"),
                                             ("eval", "evaluate_checkpoint", "--checkpoint")])
def test_entry_points_join_a_multi_process_launch_before_starting_a_backend(tmp_path, entry, fn,
                                                                            flag):
    """train.py / eval.py under a (one-process) jax.distributed launch: `main` must join it
    before `host_malloc.apply_on_cpu` asks for the default backend, or `jax.distributed.initialize`
    refuses (the two-process test below runs a whole launch of train.py)."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    repo = Path(__file__).resolve().parents[1]
    port = _free_port()
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_COORDINATOR_ADDRESS=f"localhost:{port}",
               JAX_NUM_PROCESSES="1", JAX_PROCESS_ID="0")
    out = subprocess.run(
        [sys.executable, "-c", _JOIN_CHECK.format(entry=entry, fn=fn), "--config",
         "configs/synthetic.py:tiny", flag, str(tmp_path / "w"), "--compilation_cache_dir="],
        cwd=repo, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "top-1 50.00%" in out.stdout


def test_two_processes_with_jax_distributed_match_one_process(tmp_path):
    """Multi-host path on CPU: 2 processes x 1 device, each reading its own rows of every batch.

    In the default run (~25 s): while it was marked slow, train.py started the backend before
    joining the launch and the two checkpoint managers' multi-host commits collided, and no
    run noticed."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    repo = Path(__file__).resolve().parents[1]
    port = _free_port()
    cmd = [sys.executable, "train.py", "--config", "configs/synthetic.py:tiny",
           "--config.num_epochs=1"]
    base = dict(os.environ, JAX_PLATFORMS="cpu",
                XLA_FLAGS="--xla_force_host_platform_device_count=1")
    procs = [subprocess.Popen(cmd + ["--workdir", str(tmp_path / "multi")], cwd=repo,
                              env=dict(base, JAX_COORDINATOR_ADDRESS=f"localhost:{port}",
                                       JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(i)),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs[0][-2000:] + outs[1][-2000:]
    single = subprocess.run(cmd + ["--workdir", str(tmp_path / "single")], cwd=repo,
                            env=dict(base, XLA_FLAGS="--xla_force_host_platform_device_count=2"),
                            capture_output=True, text=True, timeout=600, check=False)
    assert single.returncode == 0, single.stderr[-2000:]

    def losses(workdir):
        records = map(json.loads, (workdir / "metrics.jsonl").read_text().splitlines())
        return [r["train/loss"] for r in records if "train/loss" in r]

    np.testing.assert_allclose(losses(tmp_path / "multi"), losses(tmp_path / "single"),
                               rtol=1e-4)
