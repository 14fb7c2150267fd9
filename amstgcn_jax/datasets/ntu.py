"""TFDS builders `ntu_rgbd60` (configs xsub, xview) and `ntu_rgbd120` (xsub, xset).

From a directory of raw `.skeleton` files (manual download). Per sample: `data` (3, T, 25, 2)
= `readers.ntu.read_ntu_skeleton(path, max_frame=None)` (ST-GCN's `ntu_gendata` row without
the padding to 300 frames; pad with `transforms.auto_pad(size=300)` for the upstream array),
`label` (action − 1), `name`, `length`, `setup`, `camera`, `subject`, `replication`. Splits
"train" / "test" (upstream "val"). Samples on the official missing-skeleton list are left out;
unreadable files are skipped and reported.
"""

from __future__ import annotations

import dataclasses

import tensorflow_datasets as tfds

from amstgcn_jax.datasets import examples
from amstgcn_jax.datasets._base import SkeletonBuilder, skeleton_features

_INSTRUCTIONS = """\
Request NTU RGB+D at https://rose1.ntu.edu.sg/dataset/actionRecognition/ and download the
skeleton archives ("nturgbd_skeletons_s001_to_s017.zip" for NTU-60; also
"nturgbd_skeletons_s018_to_s032.zip" for NTU-120). Unzip them into the manual directory, so that
it holds the .skeleton files directly or in sub-folders (e.g. <manual_dir>/nturgb+d_skeletons/
S001C001P001R001A001.skeleton), then run
  python -m amstgcn_jax.datasets.build ntu_rgbd60/xsub --manual_dir <manual_dir> --data_dir <dir>
"""

_CITATION = """\
@inproceedings{shahroudy2016ntu, title={NTU RGB+D: A Large Scale Dataset for 3D Human Activity
Analysis}, author={Shahroudy, Amir and Liu, Jun and Ng, Tian-Tsong and Wang, Gang},
booktitle={CVPR}, year={2016}}
"""


@dataclasses.dataclass
class NtuConfig(tfds.core.BuilderConfig):
    benchmark: str = "xsub"


class _NtuBuilder(SkeletonBuilder, skip_registration=True):
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: ST-GCN ntu_gendata semantics, unpadded."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS
    DATASET = "ntu60"

    def _info(self):
        n = 60 if self.DATASET == "ntu60" else 120
        return self._info_with(
            skeleton_features(3, 25, 2, num_classes=n,
                              extra_ints=("setup", "camera", "subject", "replication")),
            f"NTU RGB+D {n} skeletons, benchmark {self.builder_config.benchmark}.",
            homepage="https://rose1.ntu.edu.sg/dataset/actionRecognition/", citation=_CITATION)

    def _split_generators(self, dl_manager):
        root = dl_manager.manual_dir
        examples.ntu_dirs(root)  # fails early, with one sentence, on a wrong directory
        return {split: self._generate_examples(split, self._make(root, split))
                for split in ("train", "test")}

    def _make(self, root, split):
        def make(log):
            yield from examples.ntu_examples(root, dataset=self.DATASET,
                                             benchmark=self.builder_config.benchmark,
                                             split=split, log=log)
        return make


class NtuRgbd60(_NtuBuilder):
    """NTU RGB+D 60 (cross-subject / cross-view)."""

    name = "ntu_rgbd60"
    DATASET = "ntu60"
    BUILDER_CONFIGS = [NtuConfig(name="xsub", description="cross-subject", benchmark="xsub"),
                       NtuConfig(name="xview", description="cross-view", benchmark="xview")]


class NtuRgbd120(_NtuBuilder):
    """NTU RGB+D 120 (cross-subject / cross-setup)."""

    name = "ntu_rgbd120"
    DATASET = "ntu120"
    BUILDER_CONFIGS = [NtuConfig(name="xsub", description="cross-subject", benchmark="xsub"),
                       NtuConfig(name="xset", description="cross-setup", benchmark="xset")]
