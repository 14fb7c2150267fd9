"""TFDS builder `amstgcn_synthetic`: the built-in procedural dataset (`amstgcn_jax.synthetic`).

Configs are sizes (train/test samples); the data is deterministic from `seed`, and
`amstgcn_jax.synthetic.SyntheticSource` with the same arguments gives the same examples.
"""

from __future__ import annotations

import dataclasses

import tensorflow_datasets as tfds

from amstgcn_jax import synthetic
from amstgcn_jax.datasets._base import SkeletonBuilder, skeleton_features


@dataclasses.dataclass
class SyntheticConfig(tfds.core.BuilderConfig):
    num_train: int = 1200
    num_test: int = 480
    seed: int = 0
    min_frames: int = 48
    max_frames: int = 96


class AmstgcnSynthetic(SkeletonBuilder):
    """12 procedural actions on the NTU 25-joint skeleton, 1–2 persons (no download)."""

    name = "amstgcn_synthetic"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = [
        SyntheticConfig(name="tiny", description="120 train / 60 test", num_train=120,
                        num_test=60),
        SyntheticConfig(name="small", description="1,200 train / 480 test"),
        SyntheticConfig(name="medium", description="6,000 train / 2,400 test", num_train=6000,
                        num_test=2400),
    ]
    DEFAULT_CONFIG_NAME = "small"

    def _info(self):
        return self._info_with(
            skeleton_features(3, synthetic.NUM_JOINTS, synthetic.NUM_PERSONS,
                              names=synthetic.CLASS_NAMES),
            "Built-in procedural skeleton actions (amstgcn_jax.synthetic).")

    def _split_generators(self, dl_manager):
        cfg = self.builder_config
        return {split: self._generate_examples(split, self._make(split, n))
                for split, n in (("train", cfg.num_train), ("test", cfg.num_test))}

    def _make(self, split, n):
        cfg = self.builder_config

        def make(log):
            for ex in synthetic.generate(n, split=split, seed=cfg.seed,
                                         min_frames=cfg.min_frames, max_frames=cfg.max_frames):
                yield ex["name"], ex
        return make
