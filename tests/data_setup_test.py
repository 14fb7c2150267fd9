"""`config.data` → transforms: the 2s-AGCN recipe of the agcn configs on a real NTU file."""

import numpy as np

from amstgcn_jax import agcn_preprocess, data_setup, transforms
from amstgcn_jax.readers import ntu
from configs import ntu60


def _ntu_example(shared_dir):
    path = sorted((shared_dir / "data" / "ntu60-raw-samples").rglob("*.skeleton"))[0]
    data = ntu.read_ntu_skeleton(path, max_frame=None)
    return {"data": data, "label": 0, "length": data.shape[1]}, path


def test_agcn_config_uses_2s_agcn_preprocessing(shared_dir):
    example, path = _ntu_example(shared_dir)
    c = ntu60.get_config("xsub,joint,backbone=agcn")
    assert c.data.recipe == "agcn"
    ops = data_setup.make_test_transforms(c.data, layout="ntu-rgb+d")
    x = transforms.to_model_input(transforms.apply_transforms(example, ops))["x"]
    assert x.shape == (2, 300, 25, 3) and np.isfinite(x).all()
    # The same sample through upstream-order functions: select bodies, pre-normalise, to MTVC.
    want = agcn_preprocess.read_ntu_agcn(path)
    np.testing.assert_allclose(x, want[:, :, :, :2].transpose(3, 1, 2, 0), rtol=0, atol=1e-6)


def test_stgcn_config_keeps_raw_coordinates(shared_dir):
    example, _ = _ntu_example(shared_dir)
    c = ntu60.get_config("xsub,joint")
    assert c.data.recipe == "stgcn"
    ops = data_setup.make_test_transforms(c.data, layout="ntu-rgb+d")
    x = transforms.to_model_input(transforms.apply_transforms(example, ops))["x"]
    t = example["length"]
    np.testing.assert_array_equal(x[:, :t], example["data"].transpose(3, 1, 2, 0)[:, :t])
