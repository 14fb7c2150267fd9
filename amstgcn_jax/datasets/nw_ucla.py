"""TFDS builder `nw_ucla`: NW-UCLA Multiview Action 3D, CTR-GCN JSON release, cross-view.

Manual directory: the `all_sqe` folder of JSON files, or its parent. Per sample: `data`
(3, T, 20, 1) = `readers.nwucla.read_nwucla_json` (raw frames, metres), `label` 0..9, `name`,
`length`, `view`, `subject`. Splits: "train" = views 1 and 2, "test" = view 3 (CTR-GCN
`val_label.pkl`). Bad files are skipped and reported.
"""

from __future__ import annotations

import tensorflow_datasets as tfds

from amstgcn_jax.datasets import examples
from amstgcn_jax.datasets._base import SkeletonBuilder, skeleton_features

_INSTRUCTIONS = """\
Download NW-UCLA in the CTR-GCN format ("all_sqe", see https://github.com/Uason-Chen/CTR-GCN
README, "NW-UCLA") and extract it so that the manual directory is all_sqe/ (or holds it), then
  python -m amstgcn_jax.datasets.build nw_ucla --manual_dir <manual_dir> --data_dir <dir>
"""


class NwUcla(SkeletonBuilder):
    """NW-UCLA (10 actions, 20 Kinect v1 joints, 1 person, 3 views)."""

    name = "nw_ucla"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: cross-view (train views 1+2, test view 3)."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name="xview",
                                               description="train views 1+2, test view 3")]

    def _info(self):
        from amstgcn_jax.readers import nwucla
        return self._info_with(
            skeleton_features(3, nwucla.NUM_JOINTS, 1, num_classes=nwucla.NUM_CLASSES,
                              extra_ints=("view", "subject")),
            "NW-UCLA Multiview Action 3D skeletons (CTR-GCN all_sqe JSON).",
            homepage="https://github.com/Uason-Chen/CTR-GCN")

    def _split_generators(self, dl_manager):
        from amstgcn_jax.readers import nwucla
        root = dl_manager.manual_dir
        if not nwucla.list_nwucla_files(root):
            raise FileNotFoundError(f"no NW-UCLA JSON files (a01_s01_e00_v01.json ...) in {root}")
        return {split: self._generate_examples(split, self._make(root, split))
                for split in ("train", "test")}

    def _make(self, root, split):
        def make(log):
            yield from examples.nwucla_examples(root, split=split, log=log)
        return make
