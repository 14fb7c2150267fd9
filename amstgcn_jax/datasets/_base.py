"""The shared part of the skeleton TFDS builders (imports tensorflow_datasets: load lazily).

Every builder stores, per sample: `data` float32 (C, T, V, M) with T the sample's true number
of frames (variable), `label` (ClassLabel), `name` (Text), `length` (int32), plus
dataset-specific integers (e.g. NTU subject/camera). Files are written as `array_record`, read
back with `tfds.data_source` / `builder_from_directory(...).as_data_source()` — no TensorFlow.
Skipped samples are kept in `builder.skipped[split]` and in the dataset's metadata
(`dataset_info.json`, key "skipped").
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from amstgcn_jax.datasets.examples import SkipLog


def skeleton_features(channels: int, joints: int, persons: int, num_classes: int | None = None,
                      names=None, extra_ints=()) -> tfds.features.FeaturesDict:
    label = (tfds.features.ClassLabel(names=list(names)) if names is not None
             else tfds.features.ClassLabel(num_classes=num_classes))
    feats = {"data": tfds.features.Tensor(shape=(channels, None, joints, persons),
                                          dtype=np.float32),
             "label": label, "name": tfds.features.Text(),
             "length": tfds.features.Scalar(dtype=np.int32)}
    feats.update({k: tfds.features.Scalar(dtype=np.int32) for k in extra_ints})
    return tfds.features.FeaturesDict(feats)


class SkeletonBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Collects skipped samples per split and saves them in the dataset metadata."""

    def __init__(self, *args, quiet: bool = False, **kwargs):
        self.skipped: dict[str, list[tuple[str, str]]] = {}
        self._quiet = quiet
        super().__init__(*args, **kwargs)

    def _info_with(self, features, description: str, **kw) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(builder=self, description=description, features=features,
                                     supervised_keys=("data", "label"),
                                     metadata=tfds.core.MetadataDict(), disable_shuffling=True,
                                     **kw)

    def _log(self, split: str) -> SkipLog:
        log = SkipLog(quiet=self._quiet)
        self.skipped[split] = log.skipped  # shared list, filled while generating
        return log

    def _generate_examples(self, split: str, make):
        """`make(log)` yields (key, example); records skips; stores them in the metadata."""
        yield from make(self._log(split))
        self.info.metadata["skipped"] = {s: [list(p) for p in v] for s, v in self.skipped.items()}
