"""TFDS builder `kinetics_skeleton`: the ST-GCN Kinetics-skeleton JSON release.

Manual directory (ST-GCN layout): `kinetics_train/` + `kinetics_train_label.json` and/or
`kinetics_val/` + `kinetics_val_label.json` (→ splits "train" / "test"). Per sample: `data`
(3, T, 18, 2) = `readers.kinetics.read_kinetics_json` (the official `kinetics_gendata` row:
x−0.5, y−0.5, score; top-2 persons per frame by score; `frame_index` used as the row, so row 0
is empty) cut after the last non-empty frame; pad to 300 with `transforms.auto_pad` for the
upstream array. Clips with `has_skeleton: false` are left out as upstream; bad ones skipped.
"""

from __future__ import annotations

import tensorflow_datasets as tfds

from amstgcn_jax.datasets import examples
from amstgcn_jax.datasets._base import SkeletonBuilder, skeleton_features

_INSTRUCTIONS = """\
Download the Kinetics-skeleton release of ST-GCN (https://github.com/yysijie/st-gcn, "Kinetics-
skeleton" in OLD_README / the Google Drive / BaiduYun links) and extract it so that the manual
directory holds kinetics_train/ (one JSON per clip) with kinetics_train_label.json, and
kinetics_val/ with kinetics_val_label.json, then run
  python -m amstgcn_jax.datasets.build kinetics_skeleton --manual_dir <manual_dir> --data_dir <dir>
"""


class KineticsSkeleton(SkeletonBuilder):
    """Kinetics-400 OpenPose skeletons (18 joints, x/y/score, 2 persons), ST-GCN release."""

    name = "kinetics_skeleton"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: ST-GCN kinetics_gendata semantics, trimmed."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS

    def _info(self):
        return self._info_with(
            skeleton_features(3, 18, 2, num_classes=400),
            "Kinetics-skeleton (ST-GCN): OpenPose 18-joint poses of Kinetics-400 clips.",
            homepage="https://github.com/yysijie/st-gcn")

    def _split_generators(self, dl_manager):
        root = dl_manager.manual_dir
        parts = examples.kinetics_parts(root)
        return {split: self._generate_examples(split, self._make(root, split)) for split in parts}

    def _make(self, root, split):
        def make(log):
            yield from examples.kinetics_examples(root, split=split, log=log)
        return make
