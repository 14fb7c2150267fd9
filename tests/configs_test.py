"""Configs: every file builds, is locked against typos, reproduces the reference model sizes,
and the NW-UCLA config trains a step on a few real files without tensorflow_datasets."""

import importlib
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from absl import flags
from ml_collections import config_flags

from amstgcn_jax import model as model_lib
from amstgcn_jax import trainer
from configs import common

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {
    "synthetic": ["", "tiny", "variant=stgcn,bone", "full,bf16", "seed=3", "tiny,backbone=agcn"],
    "ntu60": ["", "xview,bone,variant=stgcn", "backbone=agcn,bone", "bf16"],
    "ntu120": ["", "xset,joint_motion", "backbone=agcn"],
    "kinetics": ["", "variant=stgcn", "backbone=agcn"],
    "nwucla": ["", "variant=stgcn", "epochs=20,bone", "backbone=agcn,bone"],
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_configs_build_and_document_themselves(name):
    module = importlib.import_module(f"configs.{name}")
    assert "python train.py --config configs/" in module.__doc__
    assert "Expected" in module.__doc__
    for arg in CONFIGS[name]:
        c = module.get_config(arg or None)
        assert c.batch_size > 0 and c.num_epochs > 0 and c.model.num_classes > 0
        assert set(c.data.keys()) == set(common.DATA_DEFAULTS)
        trainer.make_model(c.model)  # the model fields are all valid get_model kwargs


def _parse(argv):
    fv = flags.FlagValues()
    argv = ["prog"] + argv  # override flags are declared from the argv, as train.py's are
    config_flags.DEFINE_config_file("config", None, "", flag_values=fv, lock_config=True,
                                    sys_argv=argv)
    fv(argv)
    return fv.config


def test_locked_config_rejects_misspelt_keys():
    c = _parse(["--config=configs/synthetic.py:tiny", "--config.batch_size=16",
                "--config.model.attention=convt_l1x2", "--config.data.rotation=0.1"])
    assert c.batch_size == 16 and c.model.attention == "convt_l1x2"
    with pytest.raises((AttributeError, flags.Error), match="batch_sise"):
        _parse(["--config=configs/synthetic.py", "--config.batch_sise=16"])
    with pytest.raises((AttributeError, flags.Error), match="windw"):
        _parse(["--config=configs/ntu60.py:xsub", "--config.data.windw=100"])
    c = _parse(["--config=configs/synthetic.py"])
    with pytest.raises(AttributeError):
        c.optim.learning_rat = 0.1
    # the execution formulations are settable for both backbones and reach the model
    c = _parse(["--config=configs/synthetic.py:tiny,backbone=agcn", "--config.model.tcn_impl=conv",
                "--config.model.bn_impl=autodiff", "--config.model.block_output=fused"])
    model = trainer.make_model(c.model)
    assert (model.tcn_impl, model.bn_impl, model.block_output) == ("conv", "autodiff", "fused")
    assert trainer.make_model(_parse(["--config=configs/ntu60.py:backbone=agcn"]).model
                              ).block_output == "auto"


def test_parse_arg():
    a = common.parse_arg("xview,bone,seed=4,bf16", split="xsub", modality="joint", seed=0,
                         bf16=False, choices={"split": ("xsub", "xview"),
                                              "modality": common.MODALITIES})
    assert (a.split, a.modality, a.seed, a.bf16) == ("xview", "bone", 4, True)
    with pytest.raises(ValueError, match="unknown config word 'xveiw'"):
        common.parse_arg("xveiw", split="xsub", choices={"split": ("xsub", "xview")})
    with pytest.raises(ValueError, match="unknown config arg 'sede'"):
        common.parse_arg("sede=1", seed=0)
    with pytest.raises(ValueError, match="choose from"):
        common.parse_arg("split=xset", split="xsub", choices={"split": ("xsub", "xview")})


@pytest.mark.parametrize("name, arg, num_params", [
    ("ntu60", "xsub,variant=stgcn", 3_098_832),  # upstream st_gcn.ntu-xsub
    ("kinetics", "variant=stgcn", 3_177_140),  # upstream st_gcn.kinetics
])
def test_stgcn_recipes_have_the_reference_parameter_count(name, arg, num_params):
    c = importlib.import_module(f"configs.{name}").get_config(arg)
    model = trainer.make_model(c.model)
    v = {"ntu-rgb+d": 25, "openpose": 18}[c.model.layout]
    x = np.zeros((1, 2, 16, v, 3), np.float32)
    shapes = jax.eval_shape(lambda: model.init({"params": jax.random.key(0)}, x, train=False))
    assert model_lib.count_params(shapes["params"]) == num_params


def _ucla_subset(shared_dir, tmp_path):
    root = tmp_path / "all_sqe"
    root.mkdir()
    names = ["a01_s01_e00_v01", "a02_s01_e00_v02", "a03_s01_e00_v01", "a04_s01_e00_v02",
             "a01_s01_e00_v03", "a02_s01_e00_v03", "a03_s01_e00_v03"]
    for name in names:
        (root / f"{name}.json").symlink_to(shared_dir / "data" / "nw-ucla" / "all_sqe" /
                                           f"{name}.json")
    return root


_NO_TFDS = ("import sys, runpy; sys.modules['tensorflow_datasets'] = None; "
            "sys.modules['tensorflow'] = None; sys.argv = ['train.py'] + sys.argv[1:]; "
            "runpy.run_path('train.py', run_name='__main__')")


def _run_ucla(root, workdir, *extra):
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="")
    return subprocess.run(
        [sys.executable, "-c", _NO_TFDS, "--config", "configs/nwucla.py:variant=am_stgcn",
         "--workdir", str(workdir), f"--config.data.root={root}", "--config.num_epochs=2",
         *extra], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


def test_nwucla_config_trains_on_real_files_without_tfds(shared_dir, tmp_path):
    root = _ucla_subset(shared_dir, tmp_path)
    out = _run_ucla(root, tmp_path / "w",
                    "--config.model.blocks=((8,1,False),(16,2,True),(16,1,True),(16,1,True))")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "final top-1" in out.stdout and "wall time" in out.stdout
    assert "on 3 test samples after 2 steps" in out.stdout  # 4 clips x repeat 5 // 16 = 1/epoch
    assert (tmp_path / "w" / "attention.png").exists()


@pytest.mark.slow
def test_nwucla_config_full_model_steps(shared_dir, tmp_path):
    root = _ucla_subset(shared_dir, tmp_path)
    out = _run_ucla(root, tmp_path / "w")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "after 2 steps" in out.stdout
