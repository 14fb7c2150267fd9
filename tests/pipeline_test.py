"""grain pipeline: per-epoch shuffling, sharding, eval padding/masks, exact resume, workers."""

import functools
import logging
import os

import ml_collections
import numpy as np
import pytest

from amstgcn_jax import pipeline
from amstgcn_jax import transforms as T
from benchmarks import epoch_benchmark
from configs import common as configs_common


class _ToySource:
    """n tiny examples whose data encodes the index (so batches can be checked by value)."""

    def __init__(self, n, t=6):
        self.n, self.t = n, t

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        data = np.full((3, self.t, 25, 2), float(i), np.float32)
        return {"data": data, "label": i % 5, "name": f"s{i}", "length": self.t}


TRAIN_OPS = [functools.partial(T.random_choose, size=4), T.random_move]


def _take(it, k):
    return [next(it) for _ in range(k)]


def test_train_batches_format_and_epochs():
    src = _ToySource(23)
    it = pipeline.make_train_iter(src, batch_size=4, seed=0, transforms=TRAIN_OPS)
    steps = pipeline.train_steps_per_epoch(len(src), 4)
    assert steps == 5
    batches = _take(it, 3 * steps)
    b = batches[0]
    assert b["x"].shape == (4, 2, 4, 25, 3) and b["x"].dtype == np.float32
    assert b["label"].dtype == np.int32 and b["index"].dtype == np.int32
    assert b["mask"].dtype == np.bool_ and b["mask"].all()
    np.testing.assert_array_equal(b["label"], b["index"] % 5)
    epochs = [np.concatenate([x["index"] for x in batches[e * steps:(e + 1) * steps]])
              for e in range(3)]
    for e in epochs:
        assert len(set(e.tolist())) == len(e) == 20  # no repeats, remainder dropped
    assert not np.array_equal(epochs[0], epochs[1])  # reshuffled every epoch
    again = _take(pipeline.make_train_iter(src, batch_size=4, seed=0, transforms=TRAIN_OPS),
                  2 * steps)
    for x, y in zip(batches, again):
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])
    other = next(pipeline.make_train_iter(src, batch_size=4, seed=1, transforms=TRAIN_OPS))
    assert not np.array_equal(other["index"], batches[0]["index"])


def test_num_epochs_ends():
    it = pipeline.make_train_iter(_ToySource(10), batch_size=3, seed=0, transforms=[],
                                  num_epochs=2)
    assert len(list(it)) == 2 * 3


def test_train_shards_reassemble_the_global_batch():
    src = _ToySource(37)
    full = _take(pipeline.make_train_iter(src, batch_size=8, seed=3, transforms=TRAIN_OPS), 6)
    shards = [_take(pipeline.make_train_iter(src, batch_size=8, seed=3, transforms=TRAIN_OPS,
                                             shard_index=p, shard_count=4), 6) for p in range(4)]
    for step in range(6):
        for key in ("x", "label", "index"):
            glued = np.concatenate([shards[p][step][key] for p in range(4)])
            np.testing.assert_array_equal(glued, full[step][key])
    with pytest.raises(ValueError, match="divisible"):
        pipeline.make_train_iter(src, batch_size=6, seed=0, transforms=[], shard_count=4)
    with pytest.raises(ValueError, match="larger than the dataset"):
        pipeline.make_train_iter(_ToySource(3), batch_size=4, seed=0, transforms=[])


def test_resume_from_state_gives_identical_batches():
    src = _ToySource(19)
    it = pipeline.make_train_iter(src, batch_size=4, seed=5, transforms=TRAIN_OPS)
    _take(it, 6)  # crosses an epoch boundary (4 steps per epoch)
    state = it.get_state()
    expected = _take(it, 5)
    fresh = pipeline.make_train_iter(src, batch_size=4, seed=5, transforms=TRAIN_OPS)
    fresh.set_state(state)
    for x, y in zip(expected, _take(fresh, 5)):
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])


@pytest.mark.parametrize("num_clips", [1, 3])
@pytest.mark.parametrize("shard_count", [1, 3])
def test_eval_counts_every_sample_once(num_clips, shard_count):
    src = _ToySource(11)
    ops = [functools.partial(T.uniform_sample_frames_test, clip_len=4, num_clips=num_clips)]
    seen = []
    n_batches = pipeline.eval_num_batches(len(src), 6, num_clips)
    for p in range(shard_count):
        batches = list(pipeline.make_eval_batches(src, batch_size=6, transforms=ops,
                                                  num_clips=num_clips, shard_index=p,
                                                  shard_count=shard_count))
        assert len(batches) == n_batches  # every process runs the same number of steps
        for b in batches:
            assert b["x"].shape[0] == 6 // shard_count
            valid = b["mask"]
            assert (b["index"][~valid] == -1).all() and (b["x"][~valid] == 0).all()
            np.testing.assert_array_equal(b["x"][valid][:, 0, 0, 0, 0], b["index"][valid])
            seen += list(zip(b["index"][valid].tolist(), b["clip"][valid].tolist()))
    assert sorted(seen) == [(i, c) for i in range(11) for c in range(num_clips)]


def test_eval_is_reiterable_and_rejects_random_ops():
    src = _ToySource(5)
    ev = pipeline.make_eval_batches(src, batch_size=2, transforms=[])
    a, b = list(ev), list(ev)
    assert len(a) == len(b) == 3
    np.testing.assert_array_equal(a[-1]["mask"], [True, False])
    with pytest.raises(ValueError, match="needs an rng"):
        list(pipeline.make_eval_batches(src, batch_size=2, transforms=[T.random_shift]))


def test_synthetic_source_end_to_end():
    src = pipeline.make_source("synthetic", split="train", num_samples=24, min_frames=20,
                               max_frames=30)
    ops = T.make_transforms("stgcn", train=True, window=16)
    b = next(pipeline.make_train_iter(src, batch_size=8, seed=0, transforms=ops))
    assert b["x"].shape == (8, 2, 16, 25, 3)


def test_worker_processes_match_in_process_and_resume():
    src = _ToySource(16)
    ref = _take(pipeline.make_train_iter(src, batch_size=4, seed=2, transforms=TRAIN_OPS), 6)
    it = pipeline.make_train_iter(src, batch_size=4, seed=2, transforms=TRAIN_OPS,
                                  num_workers=1)
    got = _take(it, 3)
    state = it.get_state()
    it2 = pipeline.make_train_iter(src, batch_size=4, seed=2, transforms=TRAIN_OPS,
                                   num_workers=1)
    it2.set_state(state)
    got += _take(it2, 3)
    for x, y in zip(ref, got):
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])


def test_iterator_state_through_orbax(tmp_path):
    """The trainer saves the iterator with grain.checkpoint.CheckpointSave inside orbax."""
    grain = pytest.importorskip("grain")
    ocp = pytest.importorskip("orbax.checkpoint")
    src = _ToySource(13)
    it = pipeline.make_train_iter(src, batch_size=4, seed=9, transforms=TRAIN_OPS)
    _take(it, 4)
    mngr = ocp.CheckpointManager(tmp_path / "ckpt")
    mngr.save(4, args=ocp.args.Composite(data_iter=grain.checkpoint.CheckpointSave(it)))
    mngr.wait_until_finished()
    expected = _take(it, 3)
    fresh = pipeline.make_train_iter(src, batch_size=4, seed=9, transforms=TRAIN_OPS)
    mngr.restore(4, args=ocp.args.Composite(data_iter=grain.checkpoint.CheckpointRestore(fresh)))
    for x, y in zip(expected, _take(fresh, 3)):
        np.testing.assert_array_equal(x["x"], y["x"])
        np.testing.assert_array_equal(x["index"], y["index"])


def test_auto_num_workers(caplog):
    from amstgcn_jax import data_setup

    class Files(_ToySource):
        file_backed = True

    files, memory = Files(8), _ToySource(8)
    auto = pipeline.auto_num_workers
    assert auto(files, backend="cpu", cpus=64, local_devices=1)[0] == 0  # the step's cores
    assert auto(memory, backend="gpu", cpus=16, local_devices=1)[0] == 0  # no dataset copies
    assert auto(files, backend="gpu", cpus=16, local_devices=1)[0] == 8
    assert auto(files, backend="gpu", cpus=16, local_devices=8)[0] == 15  # one core left
    assert auto(files, backend="tpu", cpus=1, local_devices=4)[0] == 1
    assert data_setup.RepeatedSource(files, 5).file_backed
    assert not data_setup.RepeatedSource(memory, 5).file_backed
    assert 1 <= pipeline.usable_cpus() <= (os.cpu_count() or 1)
    dc = ml_collections.ConfigDict(configs_common.data_config())
    assert dc.num_workers == -1  # the configs' default
    assert data_setup.num_workers_for(dc, files, "train") == 0  # this CPU backend
    dc.num_workers = 3
    with caplog.at_level(logging.INFO):
        assert data_setup.num_workers_for(dc, memory, "train") == 3  # an explicit count is kept
    # logged for every setting: benchmarks/epoch_benchmark.py reads the count from this line
    assert epoch_benchmark.WORKERS_LINE.search(caplog.text).group(1) == "3"
