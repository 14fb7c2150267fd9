"""grain input pipeline: random-access source → per-example transforms → batches.

Sources are anything with `__len__` and `__getitem__(i) -> example dict` (upstream layout, see
`amstgcn_jax.transforms`): `make_source(...)` gives a TFDS `array_record` data source (read with
`tfds.data_source`, no TensorFlow) or an in-memory one (the built-in synthetic dataset, or a
reader over raw files) for machines without tensorflow_datasets.

Order and randomness are a pure function of (seed, position in the global stream), never of the
number of processes or workers:
- train: epoch e is `default_rng([seed, e]).permutation(N)`, cut into `N // batch_size` global
  batches (the remainder is dropped each epoch); process p of P takes rows
  `[p·B/P, (p+1)·B/P)` of every global batch, so `jax.make_array_from_process_local_data`
  reassembles the same global batch whatever P is. Example k of epoch e is augmented with
  `default_rng([seed, e, k, 1])`.
- eval: positions 0..N·num_clips−1 in order (sample-major, clip-minor), padded up to a whole
  number of global batches with `mask=False` rows, so every (sample, clip) counts exactly once.

Batches are dicts of numpy arrays `{"x": float32[B, M, T, V, C], "label": int32[B],
"mask": bool[B], "index": int32[B]}` (+ `"clip": int32[B]` for eval) with B the LOCAL batch.

Resuming: the train iterator is a grain `DatasetIterator`; `it.get_state()` / `it.set_state(s)`
(a small JSON-able dict) restore the exact stream position. With orbax, put
`grain.checkpoint.CheckpointSave(it)` / `grain.checkpoint.CheckpointRestore(it)` in the
`ocp.args.Composite` of the training checkpoint (STACK.md §5); this works with and without
worker processes. With workers, call `it.close()` when done (grain keeps shared-memory
buffers; the "leaked shared_memory" / `SharedMemoryArray.__del__` noise at interpreter exit is
harmless, STACK.md §2).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np

from amstgcn_jax.transforms import apply_transforms, to_model_input

_FOREVER_EPOCHS = 1 << 40


def _ensure_absl_flags_parsed() -> None:
    """grain's worker processes read an absl flag (google/grain#1355): mark flags parsed."""
    from absl import flags
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


# ----------------------------------------------------------------------------- sources


class TfdsSource:
    """A TFDS random-access data source with examples normalised to the readers' format."""

    # Pickled into each grain worker as a handle on the files, not as the data: cheap to share.
    file_backed = True

    def __init__(self, data_source):
        self._ds = data_source

    def __len__(self) -> int:
        return len(self._ds)

    def __getitem__(self, i: int) -> dict:
        ex = self._ds[int(i)]
        name = ex.get("name", b"")
        return {"data": np.asarray(ex["data"], np.float32), "label": int(ex["label"]),
                "name": name.decode() if isinstance(name, bytes) else str(name),
                "length": int(ex.get("length", np.shape(ex["data"])[1]))}

    def __repr__(self) -> str:
        return f"TfdsSource({self._ds!r})"


class ListSource:
    """An in-memory source over a list of example dicts (e.g. a reader's output)."""

    def __init__(self, examples: Sequence[dict]):
        self._examples = list(examples)

    def __len__(self) -> int:
        return len(self._examples)

    def __getitem__(self, i: int) -> dict:
        ex = self._examples[int(i)]
        return {**ex, "data": np.array(ex["data"], np.float32)}


def make_source(name: str, *, split: str, data_dir: str | os.PathLike | None = None,
                manual_dir: str | os.PathLike | None = None, **kwargs):
    """A random-access source of examples (upstream layout, see `amstgcn_jax.transforms`).

    - `"synthetic"`: the built-in dataset generated in memory (kwargs: `num_samples`, `seed`,
      `min_frames`, `max_frames`); needs no tensorflow_datasets.
    - `manual_dir=<raw files>`: read into memory straight from the raw files with the readers
      (`amstgcn_jax.datasets.examples.read_examples`; e.g. `"nw_ucla"` from the `all_sqe`
      folder, `"ntu_rgbd60/xsub"` from `.skeleton` files); bad samples are skipped and printed;
      no tensorflow_datasets either.
    - otherwise a TFDS dataset prepared under `data_dir` (`python -m amstgcn_jax.datasets.build`),
      e.g. `"ntu_rgbd60/xsub"`, read with `tfds.data_source` (imported here, lazily). The example
      order is the builder's (sorted by sample name), the same as the in-memory read.
    Splits are "train" and "test" (NTU's "val" part is "test").
    """
    if name == "synthetic":
        from amstgcn_jax.synthetic import SyntheticSource
        return SyntheticSource(split=split, **kwargs)
    if manual_dir is not None:
        from amstgcn_jax.datasets.examples import read_examples
        return ListSource(read_examples(name, manual_dir, split=split, **kwargs))
    if data_dir is not None and not os.path.isdir(data_dir):
        raise FileNotFoundError(f"TFDS data_dir {os.fspath(data_dir)!r} does not exist")
    import tensorflow_datasets as tfds
    return TfdsSource(tfds.data_source(name, split=split, data_dir=data_dir, download=False))


# ----------------------------------------------------------------------------- workers

AUTO_WORKERS_PER_DEVICE = 8


def auto_num_workers(source, *, backend: str, cpus: int,
                     local_devices: int) -> tuple[int, str]:
    """`(workers, why)`: the grain worker processes that `num_workers=-1` ("auto") stands for.

    - On the CPU backend, 0: the model step already uses every core, and a worker would take
      cores from it (the transforms cost ~0.1-3 ms per clip against a step of ~0.6 s per clip).
    - For an in-memory source (raw files read by the readers, the built-in synthetic set), 0:
      grain pickles the source into every worker, so each would hold a copy of the dataset.
    - On an accelerator with a file-backed (TFDS) source, `min(cpus - 1,
      AUTO_WORKERS_PER_DEVICE * local_devices)`: one H100 trains 1,800-5,500 clips/s and one
      core transforms 400-8,000 clips/s depending on the recipe (`benchmarks/
      pipeline_benchmark.py`; 2s-AGCN's NTU pre-normalisation is the slowest), so in-process
      loading would starve the device. One core is left to the training process.
    """
    if backend == "cpu":
        return 0, "the CPU backend's step uses every core"
    if not getattr(source, "file_backed", False):
        return 0, (f"the source ({type(source).__name__}) is in memory and would be copied "
                   "into each worker")
    n = max(1, min(cpus - 1, AUTO_WORKERS_PER_DEVICE * local_devices))
    return n, f"{backend} with {local_devices} local device(s) and {cpus} CPUs"


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which containers narrow), else all."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# ----------------------------------------------------------------------------- train


def train_steps_per_epoch(num_examples: int, batch_size: int) -> int:
    """Global batches per epoch (the remainder is dropped)."""
    return num_examples // batch_size


class _TrainElement:
    """Stream position (local) → transformed example; picklable for worker processes."""

    def __init__(self, source, transforms, seed, batch_size, shard_index, shard_count):
        self.source, self.transforms, self.seed = source, tuple(transforms), int(seed)
        self.local = batch_size // shard_count
        self.batch_size, self.shard_index = batch_size, shard_index
        self.n = len(source)
        self.per_epoch = train_steps_per_epoch(self.n, batch_size) * self.local
        self._perm_epoch, self._perm = -1, None

    def __call__(self, pos: int) -> dict:
        epoch, j = divmod(int(pos), self.per_epoch)
        step, row = divmod(j, self.local)
        k = step * self.batch_size + self.shard_index * self.local + row  # position in epoch
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            self._perm_epoch = epoch
        index = int(self._perm[k])
        ex = dict(self.source[index], index=index)
        rng = np.random.default_rng([self.seed, epoch, k, 1])
        out = _finish(apply_transforms(ex, self.transforms, rng))
        out["mask"] = np.bool_(True)
        return out


def _finish(example: dict) -> dict:
    """Applies `to_model_input` unless the transforms already did."""
    return example if "x" in example else to_model_input(example)


def _check_shard(batch_size: int, shard_index: int, shard_count: int) -> None:
    if shard_count < 1 or not 0 <= shard_index < shard_count:
        raise ValueError(f"bad shard {shard_index} of {shard_count}")
    if batch_size % shard_count:
        raise ValueError(f"global batch_size {batch_size} is not divisible by the "
                         f"{shard_count} processes")


def _to_iter(ds, num_workers: int, num_threads: int, prefetch: int):
    import grain
    it = ds.to_iter_dataset(grain.ReadOptions(num_threads=num_threads,
                                              prefetch_buffer_size=prefetch))
    if num_workers > 0:
        _ensure_absl_flags_parsed()
        it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers))
    return it


def make_train_iter(source, *, batch_size: int, seed: int, transforms: Sequence[Callable],
                    num_workers: int = 0, shard_index: int = 0, shard_count: int = 1,
                    num_epochs: int | None = None, num_threads: int = 1,
                    prefetch: int = 4):
    """Infinite (or `num_epochs`) iterator of local train batches, with get_state/set_state.

    `batch_size` is GLOBAL; this process (`shard_index` of `shard_count`, i.e.
    `jax.process_index()` / `jax.process_count()`) yields `batch_size // shard_count` rows.
    """
    import grain
    _check_shard(batch_size, shard_index, shard_count)
    if train_steps_per_epoch(len(source), batch_size) == 0:
        raise ValueError(f"batch_size {batch_size} is larger than the dataset ({len(source)} "
                         "examples): no full batch per epoch")
    elem = _TrainElement(source, transforms, seed, batch_size, shard_index, shard_count)
    epochs = _FOREVER_EPOCHS if num_epochs is None else int(num_epochs)
    ds = grain.MapDataset.range(epochs * elem.per_epoch).map(elem)
    ds = ds.batch(elem.local, drop_remainder=True)
    return iter(_to_iter(ds, num_workers, num_threads, prefetch))


# ----------------------------------------------------------------------------- eval


class _EvalElement:
    def __init__(self, source, transforms, num_clips, batch_size, shard_index, shard_count):
        self.source, self.transforms, self.num_clips = source, tuple(transforms), num_clips
        self.local = batch_size // shard_count
        self.batch_size, self.shard_index = batch_size, shard_index
        self.total = len(source) * num_clips

    def __call__(self, pos: int) -> dict:
        step, row = divmod(int(pos), self.local)
        k = step * self.batch_size + self.shard_index * self.local + row
        pad = k >= self.total
        index, clip = divmod(0 if pad else k, self.num_clips)
        ex = dict(self.source[index], index=index, clip=clip)
        out = _finish(apply_transforms(ex, self.transforms, None))
        out.setdefault("clip", np.int32(clip))
        out["mask"] = np.bool_(not pad)
        if pad:
            out["x"] = np.zeros_like(out["x"])
            out["index"] = np.int32(-1)
            out["label"] = np.int32(0)
        return out


def eval_num_batches(num_examples: int, batch_size: int, num_clips: int = 1) -> int:
    """Batches per eval pass (the same on every process)."""
    return -(-num_examples * num_clips // batch_size)


def make_eval_batches(source, *, batch_size: int, transforms: Sequence[Callable],
                      num_clips: int = 1, num_workers: int = 0, shard_index: int = 0,
                      shard_count: int = 1, num_threads: int = 1, prefetch: int = 4):
    """A re-iterable of local eval batches (each `iter()` is one full pass, in order).

    Deterministic transforms only (they get no rng). With `num_clips > 1`, each sample appears
    `num_clips` times with `clip = 0..num_clips-1` (the transforms read `example["clip"]`, e.g.
    `uniform_sample_frames_test`); average the logits per `index` over valid (`mask`) rows.
    """
    import grain
    _check_shard(batch_size, shard_index, shard_count)
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}")
    elem = _EvalElement(source, transforms, num_clips, batch_size, shard_index, shard_count)
    n_batches = eval_num_batches(len(source), batch_size, num_clips)
    ds = grain.MapDataset.range(n_batches * elem.local).map(elem).batch(elem.local)
    return _to_iter(ds, num_workers, num_threads, prefetch)
