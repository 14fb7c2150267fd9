"""TFDS builder `skeleton_arrays`: already-preprocessed arrays (configs `stgcn`, `pyskl`).

- `stgcn`: a manual directory with ST-GCN / 2s-AGCN `train_data.npy` + `train_label.pkl` and/or
  `val_data.npy` + `val_label.pkl` (N, C, T, V, M) → splits "train" / "test". Rows are cut after
  their last non-empty frame (`length`); pad back with `transforms.auto_pad`.
- `pyskl`: a manual directory holding one pyskl / mmaction2 annotation pickle (`*.pkl`); every
  entry of its `split` dict becomes a TFDS split of the same name (e.g. "xsub_train"), or a
  single "train" split without one. `data` is (C[+score], T, V, M) as `readers.arrays`.
- `ctrgcn`: a manual directory holding one CTR-GCN `NTU60_CS.npz`-style file (`x_train`,
  `y_train`, `x_test`, `y_test`) → splits "train" / "test", names `{split}_{i:06d}`.
Shapes vary by dataset, so `data` is stored with all four dimensions dynamic (zlib-encoded);
`label` is a plain integer. Pickles are read with the restricted unpickler only.
"""

from __future__ import annotations

import glob
import os

import numpy as np
import tensorflow_datasets as tfds

from amstgcn_jax.datasets import examples
from amstgcn_jax.datasets._base import SkeletonBuilder

_INSTRUCTIONS = """\
stgcn: put train_data.npy/train_label.pkl and/or val_data.npy/val_label.pkl (the output of
ST-GCN's tools/ntu_gendata.py or kinetics_gendata.py, or 2s-AGCN's gen_*_data.py) in the manual
directory. pyskl: put one annotation pickle (e.g. ntu60_3danno.pkl) in the manual directory.
  python -m amstgcn_jax.datasets.build skeleton_arrays/stgcn --manual_dir <dir> --data_dir <dir>
"""


class SkeletonArrays(SkeletonBuilder):
    """Preprocessed skeleton arrays (ST-GCN .npy + .pkl, or a pyskl annotation pickle)."""

    name = "skeleton_arrays"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS
    BUILDER_CONFIGS = [
        tfds.core.BuilderConfig(name="stgcn", description="ST-GCN {part}_data.npy + label.pkl"),
        tfds.core.BuilderConfig(name="pyskl", description="pyskl / mmaction2 annotation pickle"),
        tfds.core.BuilderConfig(name="ctrgcn", description="CTR-GCN NTU*_C*.npz"),
    ]

    def _info(self):
        feats = tfds.features.FeaturesDict({
            "data": tfds.features.Tensor(shape=(None, None, None, None), dtype=np.float32,
                                         encoding="zlib"),
            "label": tfds.features.Scalar(dtype=np.int64), "name": tfds.features.Text(),
            "length": tfds.features.Scalar(dtype=np.int32)})
        return self._info_with(feats, "Preprocessed skeleton arrays, upstream (C, T, V, M).")

    def _split_generators(self, dl_manager):
        root = os.fspath(dl_manager.manual_dir)
        if self.builder_config.name == "stgcn":
            splits = [s for s, p in (("train", "train"), ("test", "val"))
                      if os.path.isfile(os.path.join(root, f"{p}_data.npy"))]
            if not splits:
                raise FileNotFoundError(f"no train_data.npy or val_data.npy in {root}")
            return {s: self._generate_examples(s, self._stgcn(root, s)) for s in splits}
        if self.builder_config.name == "ctrgcn":
            return {s: self._generate_examples(s, self._ctrgcn(root, s)) for s in ("train", "test")}
        pkls = sorted(glob.glob(os.path.join(root, "*.pkl")))
        if len(pkls) != 1:
            raise FileNotFoundError(f"expected exactly one annotation .pkl in {root}, found "
                                    f"{len(pkls)}")
        from amstgcn_jax.readers import arrays
        split_dict, _ = arrays.read_pyskl_pickle(pkls[0])
        names = sorted(split_dict) if split_dict else ["train"]
        return {s: self._generate_examples(s, self._pyskl(pkls[0], s)) for s in names}

    def _stgcn(self, root, split):
        def make(log):
            yield from examples.stgcn_array_examples(root, split=split, log=log)
        return make

    def _ctrgcn(self, root, split):
        def make(log):
            yield from examples.ctrgcn_npz_examples(root, split=split, log=log)
        return make

    def _pyskl(self, path, split):
        def make(log):
            yield from examples.pyskl_examples(path, split=split, log=log)
        return make
