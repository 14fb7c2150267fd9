"""Config -> data for the training loop: train iterator, eval batches, sizes and class names.

The loop needs only the `Data` fields; this module is the one place that maps `config.data` onto
the input pipeline (`amstgcn_jax.pipeline`, `amstgcn_jax.transforms`), so those stay config-free.

It also holds the NW-UCLA recipe of CTR-GCN (github.com/Uason-Chen/CTR-GCN @e1eef2d5,
`feeders/feeder_ucla.py`, `config/ucla/default.yaml`), used by `configs/nwucla.py`:
centre on joint 1 of the first frame, a random view change (rotation about x and y by integer
degrees in [−60, 60]; the random scale is dropped because the next step cancels it), per-sample
min-max normalisation of each axis to [−1, 1], then 52 frames: sorted random draws (train;
upstream samples without replacement from every frame repeated 100 times) or `linspace` indices
(test).
Deviation: an axis whose range is 0 is left at 0 instead of dividing by zero.
"""

import dataclasses
import functools
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import jax
import numpy as np
from absl import logging


@dataclasses.dataclass
class Data:
    train_iter: Any  # iterator of host-local batches, with get_state() / set_state(state)
    steps_per_epoch: int
    eval_batches: Callable[[], Iterable[dict]]  # fresh pass over the test set, padded + masked
    sample_x: np.ndarray  # x of one batch (only its shape is used)
    num_classes: int
    class_names: Sequence[str] | None = None


class RepeatedSource:
    """`times` passes over `source` as one epoch (CTR-GCN's `repeat` feeder argument)."""

    def __init__(self, source, times: int):
        self.source, self.times = source, int(times)
        self.file_backed = getattr(source, "file_backed", False)

    def __len__(self):
        return len(self.source) * self.times

    def __getitem__(self, i):
        return self.source[int(i) % len(self.source)]


# ----------------------------------------------------------------------------- NW-UCLA recipe


def _ucla_normalize(data_CTVM, agx_deg=0.0, agy_deg=0.0):
    x_TVC = data_CTVM[..., 0].transpose(1, 2, 0).astype(np.float64)
    x_TVC = x_TVC - x_TVC[0, 1]
    ax, ay = math.radians(agx_deg), math.radians(agy_deg)
    rx = np.array([[1, 0, 0], [0, math.cos(ax), math.sin(ax)], [0, -math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, -math.sin(ay)], [0, 1, 0], [math.sin(ay), 0, math.cos(ay)]])
    flat = x_TVC.reshape(-1, 3) @ (ry @ rx)
    lo, hi = flat.min(0), flat.max(0)
    span = np.where(hi > lo, hi - lo, 1.0)
    flat = np.where(hi > lo, (flat - lo) / span * 2 - 1, 0.0)
    return flat.reshape(x_TVC.shape)


def _ucla_output(example, x_TVC, inds):
    out = x_TVC[inds].transpose(2, 0, 1)[..., None].astype(np.float32)
    return {**example, "data": np.ascontiguousarray(out), "length": len(inds)}


def ucla_train(example: dict, rng: np.random.Generator, *, window: int = 52,
               max_angle: int = 60) -> dict:
    """CTR-GCN feeder_ucla, train branch (see module docstring)."""
    t = int(example.get("length", example["data"].shape[1]))
    agx, agy = rng.integers(-max_angle, max_angle, size=2, endpoint=True)
    x_TVC = _ucla_normalize(example["data"][:, :t], agx, agy)
    inds = np.sort(rng.choice(np.tile(np.arange(t), 100), window, replace=False))
    return _ucla_output(example, x_TVC, inds)


def ucla_test(example: dict, *, window: int = 52) -> dict:
    """CTR-GCN feeder_ucla, test branch: no view change, `linspace` frame indices."""
    t = int(example.get("length", example["data"].shape[1]))
    x_TVC = _ucla_normalize(example["data"][:, :t])
    return _ucla_output(example, x_TVC, np.linspace(0, t - 1, window).astype(np.int64))


# ----------------------------------------------------------------------------- config -> data


def make_source(dc, split: str, seed: int = 0):
    """`(source, class_names|None)` of one split ("train" or "test") of `config.data`."""
    from amstgcn_jax import pipeline
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if dc.name == "synthetic":
        source = pipeline.make_source(
            "synthetic", split=split, num_samples=dc.num_train if split == "train" else dc.num_test,
            seed=seed, min_frames=dc.synthetic_min_frames, max_frames=dc.synthetic_max_frames)
        return source, list(source.class_names)
    raw_dir = dc.raw_dir or (dc.root if dc.name == "nw_ucla" and not dc.use_tfds else "")
    if dc.name == "nw_ucla" and not (raw_dir or dc.root):
        raise ValueError("set --config.data.root to the NW-UCLA all_sqe JSON directory")
    part = dc.train_split if split == "train" else dc.test_split
    if raw_dir:  # read the raw files into memory with the readers: no tensorflow_datasets
        source = pipeline.make_source(dc.name, split=part, manual_dir=raw_dir)
        if len(source) == 0:
            raise FileNotFoundError(f"{raw_dir}: no {dc.name} {part} samples found")
    else:
        source = pipeline.make_source(dc.name, split=part, data_dir=dc.root or None)
    return source, class_names_of(dc)


def _make_transforms(dc, train: bool, layout):
    from amstgcn_jax import transforms
    window = dc.window if train or not dc.test_window else dc.test_window
    if dc.recipe == "ucla":
        mod = functools.partial(transforms.to_modality, modality=dc.modality, layout=layout)
        op = (functools.partial(ucla_train, window=window,
                                max_angle=round(math.degrees(dc.rotation)))
              if train else functools.partial(ucla_test, window=window))
        return [op, mod]
    if dc.recipe == "agcn":  # 2s-AGCN's own feeders (NTU pre-normalisation, Kinetics y-flip)
        from amstgcn_jax import agcn_preprocess
        ops = agcn_preprocess.make_agcn_transforms(
            "kinetics" if dc.score_channel else "ntu", train=train, modality=dc.modality,
            window=window)
    else:
        ops = transforms.make_transforms(
            dc.recipe, train=train, window=window, modality=dc.modality, layout=layout,
            score_channel=dc.score_channel, random_move_on=dc.random_move, rotation=dc.rotation,
            num_clips=dc.num_clips, p_interval=tuple(dc.p_interval) if dc.p_interval else None)
    return ops + [functools.partial(transforms.pad_persons, num_persons=dc.num_persons)]


def make_train_transforms(dc, layout=None) -> list:
    """The training transforms of `config.data` (what the train iterator applies)."""
    return _make_transforms(dc, True, layout)


def make_test_transforms(dc, layout=None) -> list:
    """The test-time transforms of `config.data` (evaluation and `predict`)."""
    return _make_transforms(dc, False, layout)


def class_names_of(dc):
    """Class names known without reading the data (built-in and NW-UCLA), else None."""
    if dc.name == "synthetic":
        from amstgcn_jax import synthetic
        return list(synthetic.CLASS_NAMES)
    if dc.name == "nw_ucla":  # actions 1-6, 8, 9, 11, 12 (Wang et al., CVPR 2014)
        return ["pick up with one hand", "pick up with two hands", "drop trash", "walk around",
                "sit down", "stand up", "donning", "doffing", "throw", "carry"]
    return None


def _shard():
    return dict(shard_index=jax.process_index(), shard_count=jax.process_count())


def num_workers_for(dc, source, what: str) -> int:
    """`config.data.num_workers`, with -1 ("auto") resolved by `pipeline.auto_num_workers`;
    the count is logged either way (benchmarks/epoch_benchmark.py reads the train line)."""
    from amstgcn_jax import pipeline
    if dc.num_workers >= 0:
        n, why = int(dc.num_workers), "set by config.data.num_workers"
    else:
        n, why = pipeline.auto_num_workers(source, backend=jax.default_backend(),
                                           cpus=pipeline.usable_cpus(),
                                           local_devices=jax.local_device_count())
        why = f"num_workers=-1: {why}"
    logging.info("%s input pipeline: %d grain worker process(es) (%s)", what, n, why)
    return n


def make_eval_data(dc, *, eval_batch_size: int, num_devices: int, layout=None, source=None):
    """`(eval_batches, sample_x, class_names)`: padded, masked test batches of `config.data`."""
    from amstgcn_jax import pipeline
    if eval_batch_size % num_devices:
        raise ValueError(f"eval_batch_size={eval_batch_size} is not divisible by the "
                         f"{num_devices} devices")
    if source is None:
        source, class_names = make_source(dc, "test")
    else:
        source, class_names = source
    test_ops = make_test_transforms(dc, layout)
    eval_iterable = pipeline.make_eval_batches(
        source, batch_size=eval_batch_size, transforms=test_ops,
        num_clips=dc.num_clips if dc.recipe == "pyskl" else 1,
        num_workers=num_workers_for(dc, source, "test"), **_shard())
    first = pipeline.make_eval_batches(source, batch_size=num_devices, transforms=test_ops,
                                       **_shard())
    return (lambda: iter(eval_iterable)), next(iter(first))["x"], class_names


def make_data(dc, *, batch_size: int, local_batch_size: int, seed: int, eval_batch_size: int,
              num_devices: int, layout=None) -> Data:
    """Builds the train iterator and eval batches described by `config.data` (`dc`)."""
    from amstgcn_jax import pipeline
    del local_batch_size  # the pipeline derives it from the global size and the process count
    train_src, class_names = make_source(dc, "train", seed)
    eval_batches, sample_x, _ = make_eval_data(
        dc, eval_batch_size=eval_batch_size, num_devices=num_devices, layout=layout,
        source=make_source(dc, "test", seed))
    num_classes = getattr(train_src, "num_classes", None) or len(class_names or ())
    if dc.repeat > 1:
        train_src = RepeatedSource(train_src, dc.repeat)
    train_iter = pipeline.make_train_iter(
        train_src, batch_size=batch_size, seed=seed,
        transforms=make_train_transforms(dc, layout),
        num_workers=num_workers_for(dc, train_src, "train"), **_shard())
    return Data(train_iter=train_iter,
                steps_per_epoch=pipeline.train_steps_per_epoch(len(train_src), batch_size),
                eval_batches=eval_batches, sample_x=sample_x, num_classes=num_classes,
                class_names=class_names)
