"""Tests for amstgcn_jax.torch_pickle: torch-free reading/writing of PyTorch .pt files."""

import builtins
import collections
import os
import pickle
import struct
import zipfile

import ml_dtypes
import numpy as np
import pytest

from amstgcn_jax import torch_pickle as tp

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def _fixture(shared_dir, rel):
    path = shared_dir / rel
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return path


# --------------------------------------------------------------------------------------------
# Real fixtures, no torch needed


def test_zip_and_legacy_fixture_give_identical_dicts(shared_dir):
    zipped = tp.load_state_dict(_fixture(shared_dir, "parity/stgcn_ntu_seed0.pt"))
    legacy = tp.load_state_dict(_fixture(shared_dir, "parity/stgcn_ntu_seed0_legacy.pt"))
    assert list(zipped) == list(legacy)
    assert len(zipped) == 172
    for key, value in zipped.items():
        assert value.dtype == legacy[key].dtype and value.shape == legacy[key].shape, key
        np.testing.assert_array_equal(value, legacy[key], err_msg=key)
    assert zipped["A"].shape == (3, 25, 25) and zipped["A"].dtype == np.float32
    assert zipped["data_bn.num_batches_tracked"].dtype == np.int64
    assert zipped["data_bn.num_batches_tracked"].shape == ()
    assert zipped["fcn.weight"].shape == (60, 256, 1, 1)
    # The graph buffer equals the A stored beside the checkpoint by the reference run.
    ref = np.load(_fixture(shared_dir, "parity/stgcn_ntu_seed0.npz"))
    np.testing.assert_array_equal(zipped["A"], ref["A"])


@pytest.mark.parametrize("name", ["agcn_ntu_seed0", "agcn_kinetics_seed0"])
def test_agcn_fixtures_load(shared_dir, name):
    sd = tp.load_state_dict(_fixture(shared_dir, f"parity-agcn/{name}.pt"))
    assert all(isinstance(v, np.ndarray) for v in sd.values())
    assert any(k.endswith("num_batches_tracked") for k in sd)
    assert all(v.flags.c_contiguous and v.flags.writeable for v in sd.values())
    assert all(np.isfinite(v).all() for v in sd.values() if v.dtype.kind == "f")


def test_round_trip_without_torch(tmp_path):
    rng = np.random.default_rng(0)
    sd = {
        "w": rng.standard_normal((4, 3, 9, 1)).astype(np.float32),
        "w_t": rng.standard_normal((5, 7)).astype(np.float64).T,  # non-contiguous input
        "big_endian": np.arange(6, dtype=">i4").reshape(2, 3),
        "n": np.array(7, np.int64),
        "mask": np.array([True, False, True]),
        "half": np.array([1.5, -2.25], np.float16),
        "bf16": np.array([1.0, -3.5, 1e30], ml_dtypes.bfloat16),
        "empty": np.zeros((0, 3), np.float32),
        "u8": np.arange(5, dtype=np.uint8),
        "c64": np.array([1 + 2j], np.complex64),
    }
    for legacy in (False, True):
        path = tmp_path / f"rt_{legacy}.pt"
        tp.save_state_dict(sd, path, legacy=legacy)
        back = tp.load_state_dict(path, keep_bfloat16=True)
        assert list(back) == list(sd)
        for k, v in sd.items():
            assert back[k].dtype == v.dtype.newbyteorder("=") and back[k].shape == v.shape, k
            np.testing.assert_array_equal(back[k], v, err_msg=k)
        widened = tp.load_state_dict(path)["bf16"]
        assert widened.dtype == np.float32
        np.testing.assert_array_equal(widened, sd["bf16"].astype(np.float32))


def test_zip_storages_are_aligned(tmp_path):
    path = tmp_path / "a.pt"
    tp.save_state_dict({"x": np.ones((3, 5), np.float32), "y": np.ones(7, np.int8)}, path)
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            start = info.header_offset + 30 + len(info.filename) + len(info.extra)
            assert start % 64 == 0, info.filename


# --------------------------------------------------------------------------------------------
# Malicious and broken files


class _Evil:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return (self.func, (self.arg,))


def _zip_with_pickle(path, data_pkl, storages=()):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", data_pkl)
        zf.writestr("archive/byteorder", b"little")
        for key, raw in storages:
            zf.writestr(f"archive/data/{key}", raw)
        zf.writestr("archive/version", b"3\n")


def _legacy_with_pickle(path, obj_pickle):
    with open(path, "wb") as f:
        for obj in (_LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True}):
            pickle.dump(obj, f, protocol=2)
        f.write(obj_pickle)
        pickle.dump([], f, protocol=2)


@pytest.mark.parametrize("container", ["zip", "legacy"])
@pytest.mark.parametrize("attack", ["os.system", "builtins.eval", "builtins.exec"])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, container, attack):
    marker = tmp_path / "pwned"
    if attack == "os.system":
        payload = _Evil(os.system, f"touch {marker}")
    else:
        func = getattr(builtins, attack.split(".")[1])
        payload = _Evil(func, f"open({str(marker)!r}, 'w').close()")
    evil = pickle.dumps(collections.OrderedDict(w=payload), protocol=2)
    path = tmp_path / "evil.pt"
    (_zip_with_pickle if container == "zip" else _legacy_with_pickle)(path, evil)
    with pytest.raises(tp.UnsafePickleError) as err:
        tp.load_state_dict(path)
    message = str(err.value)
    assert str(path) in message
    # protocol 2 spells os.system as posix.system and builtins as __builtin__
    assert f".{attack.split('.')[1]}'" in message
    assert not marker.exists()


def test_refused_global_inside_persistent_id(tmp_path):
    # A storage "type" must itself pass the allowlist.
    data = (b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storage"
            b"cposix\nsystem\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x01tQK\x00K\x01\x85"
            b"K\x01\x85\x89}tR.")
    path = tmp_path / "evil_pid.pt"
    _zip_with_pickle(path, data, [("0", b"\x00" * 4)])
    with pytest.raises(tp.UnsafePickleError, match="posix.system"):
        tp.load(path)


def test_hostile_but_allowlisted_constructs_fail_cleanly(tmp_path):
    cases = {
        # numpy.ndarray is only a marker for _reconstruct, never a callable constructor
        "ndarray_call": b"\x80\x02cnumpy\nndarray\nK\x01\x85R.",
        # BUILD on an internal stand-in object is refused
        "build_storage_type": b"\x80\x02ctorch\nFloatStorage\n}X\x01\x00\x00\x00aK\x01sb.",
        # _reconstruct of anything but ndarray
        "reconstruct_other": b"\x80\x02cnumpy.core.multiarray\n_reconstruct\n"
                             b"c__builtin__\nset\nK\x00\x85X\x01\x00\x00\x00b\x87R.",
    }
    for name, data in cases.items():
        path = tmp_path / f"{name}.pt"
        _zip_with_pickle(path, data)
        with pytest.raises(ValueError) as err:
            tp.load(path)
        assert str(err.value).startswith(str(path)), name


def test_tensor_view_outside_storage_is_rejected(tmp_path):
    def make(numel, offset, size, stride):
        ops = (b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n(("
               b"X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000"
               b"X\x03\x00\x00\x00cpu" + struct.pack("<BI", ord("J"), numel) + b"tQ"
               + struct.pack("<BI", ord("J"), offset)
               + b"(" + b"".join(struct.pack("<BI", ord("J"), s) for s in size) + b"t"
               + b"(" + b"".join(struct.pack("<BI", ord("J"), s) for s in stride) + b"t"
               + b"\x89}tR.")
        return ops

    ok = tmp_path / "ok.pt"
    _zip_with_pickle(ok, make(4, 1, (3,), (1,)), [("0", np.arange(4, dtype="<f4").tobytes())])
    np.testing.assert_array_equal(tp.load(ok), [1.0, 2.0, 3.0])
    for name, (offset, size, stride) in {"long": (0, (10,), (1,)), "offset": (2, (3,), (1,)),
                                         "stride": (0, (2, 2), (3, 1))}.items():
        path = tmp_path / f"{name}.pt"
        _zip_with_pickle(path, make(4, offset, size, stride),
                         [("0", np.arange(4, dtype="<f4").tobytes())])
        with pytest.raises(tp.TorchFormatError, match="exceeds its storage"):
            tp.load(path)


def test_missing_storage_and_short_storage(tmp_path):
    sd_path = tmp_path / "good.pt"
    tp.save_state_dict({"x": np.arange(8, dtype=np.float32)}, sd_path)
    with zipfile.ZipFile(sd_path) as zf:
        data_pkl = zf.read("archive/data.pkl")
    missing = tmp_path / "missing.pt"
    _zip_with_pickle(missing, data_pkl)
    with pytest.raises(tp.TorchFormatError, match="storage '0' is missing"):
        tp.load_state_dict(missing)
    short = tmp_path / "short.pt"
    _zip_with_pickle(short, data_pkl, [("0", b"\x00" * 12)])
    with pytest.raises(tp.TorchFormatError, match="truncated"):
        tp.load_state_dict(short)


def test_truncated_and_garbage_files(tmp_path):
    sd = {"x": np.arange(1000, dtype=np.float32), "y": np.ones((10, 10), np.float64)}
    for legacy in (False, True):
        good = tmp_path / f"good_{legacy}.pt"
        tp.save_state_dict(sd, good, legacy=legacy)
        raw = good.read_bytes()
        for cut in (len(raw) // 2, len(raw) - 3, 40):
            bad = tmp_path / f"cut_{legacy}_{cut}.pt"
            bad.write_bytes(raw[:cut])
            with pytest.raises(tp.TorchFormatError) as err:
                tp.load_state_dict(bad)
            assert str(bad) in str(err.value)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(tp.TorchFormatError, match="not a PyTorch checkpoint"):
        tp.load_state_dict(garbage)
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    with pytest.raises(tp.TorchFormatError, match="magic number"):
        tp.load_state_dict(plain)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(tp.TorchFormatError):
        tp.load_state_dict(empty)
    other_zip = tmp_path / "other.zip"
    with zipfile.ZipFile(other_zip, "w") as zf:
        zf.writestr("readme.txt", "hi")
    with pytest.raises(tp.TorchFormatError, match="data.pkl"):
        tp.load_state_dict(other_zip)
    assert issubclass(tp.TorchFormatError, ValueError)
    assert issubclass(tp.UnsafePickleError, ValueError)


def test_save_rejects_bad_input(tmp_path):
    with pytest.raises(TypeError, match="keys must be str"):
        tp.save_state_dict({1: np.zeros(2)}, tmp_path / "a.pt")
    with pytest.raises(TypeError, match="cannot save dtype"):
        tp.save_state_dict({"s": np.array(["a"])}, tmp_path / "b.pt")


# --------------------------------------------------------------------------------------------
# Cross-checks against torch itself (optional extra)


@pytest.fixture()
def torch():
    return pytest.importorskip("torch")


def _assert_same(ours: np.ndarray, ref, key):
    torch = pytest.importorskip("torch")
    if ref.dtype == torch.bfloat16:
        ref = ref.float()
    ref_np = ref.detach().numpy()
    assert ours.dtype == ref_np.dtype and ours.shape == ref_np.shape, key
    assert ours.tobytes() == np.ascontiguousarray(ref_np).tobytes(), key


@pytest.mark.torch
@pytest.mark.parametrize("rel", ["parity/stgcn_ntu_seed0.pt", "parity/stgcn_ntu_seed0_legacy.pt",
                                 "parity-agcn/agcn_ntu_seed0.pt"])
def test_fixtures_match_torch_load(shared_dir, torch, rel):
    path = _fixture(shared_dir, rel)
    ours = tp.load_state_dict(path)
    ref = torch.load(path, weights_only=True)
    assert list(ours) == list(ref)
    for key in ours:
        _assert_same(ours[key], ref[key], key)


def _exotic_state_dict(torch):
    g = torch.Generator().manual_seed(0)
    base = torch.randn(6, 8, generator=g)
    shared = torch.arange(20, dtype=torch.float32)
    return collections.OrderedDict(
        transposed=base.t(),  # non-contiguous
        strided=base[::2, 1::3],  # strides (16, 3), offset 1
        offset_view=shared[5:12],  # shares storage with `shared`, offset 5
        shared=shared,
        expanded=torch.tensor([1.0, 2.0]).expand(3, 2),  # stride 0
        i64=torch.arange(-3, 3, dtype=torch.int64),
        i32=torch.tensor([[1, -2]], dtype=torch.int32),
        i16=torch.tensor([7], dtype=torch.int16),
        i8=torch.tensor([-8], dtype=torch.int8),
        u8=torch.tensor([255, 0], dtype=torch.uint8),
        flags=torch.tensor([True, False, True]),
        f16=torch.randn(3, 4, generator=g).half()[:, ::2],
        bf16=torch.randn(5, generator=g).bfloat16(),
        f64=torch.randn(2, 2, generator=g, dtype=torch.float64),
        c64=torch.randn(3, generator=g, dtype=torch.complex64),
        scalar=torch.tensor(3.5),
        count=torch.tensor(0, dtype=torch.int64),
        empty=torch.zeros(0, 4),
        u16=torch.tensor([1, 65535], dtype=torch.uint16),
        param=torch.nn.Parameter(torch.ones(2, 2)),
    )


@pytest.mark.torch
@pytest.mark.parametrize("zipped", [True, False])
def test_torch_save_then_load_exotic_tensors(tmp_path, torch, zipped):
    sd = _exotic_state_dict(torch)
    if not zipped:
        sd.pop("u16")  # new dtypes have no legacy storage class
    path = tmp_path / "exotic.pt"
    torch.save(sd, path, _use_new_zipfile_serialization=zipped)
    ours = tp.load_state_dict(path)
    ref = torch.load(path, weights_only=True)
    assert list(ours) == list(sd)
    for key in ours:
        _assert_same(ours[key], ref[key], key)
    kept = tp.load_state_dict(path, keep_bfloat16=True)["bf16"]
    assert kept.dtype == ml_dtypes.bfloat16
    assert kept.view(np.uint16).tobytes() == sd["bf16"].view(torch.int16).numpy().tobytes()


@pytest.mark.torch
@pytest.mark.parametrize("legacy", [False, True])
def test_our_files_load_in_torch(tmp_path, torch, legacy):
    sd = {k: (v.detach().numpy() if v.dtype != torch.bfloat16 else
              v.float().numpy().astype(ml_dtypes.bfloat16))
          for k, v in _exotic_state_dict(torch).items() if k != "u16"}
    sd["param"] = sd["param"].copy()
    path = tmp_path / "ours.pt"
    tp.save_state_dict(sd, path, legacy=legacy)
    ref = torch.load(path, weights_only=True)
    assert isinstance(ref, collections.OrderedDict) and list(ref) == list(sd)
    for key, value in sd.items():
        t = ref[key]
        assert tuple(t.shape) == value.shape, key
        if value.dtype == ml_dtypes.bfloat16:
            assert t.dtype == torch.bfloat16
            assert t.view(torch.int16).numpy().tobytes() == value.view(np.int16).tobytes()
        else:
            np.testing.assert_array_equal(t.numpy(), value, err_msg=key)
            assert t.numpy().dtype == value.dtype, key
    # And a torch module accepts the file as its state_dict.
    conv = torch.nn.Conv2d(3, 4, (9, 1))
    conv_sd = {k: v.detach().numpy() + 1.0 for k, v in conv.state_dict().items()}
    tp.save_state_dict(conv_sd, tmp_path / "conv.pt", legacy=legacy)
    conv.load_state_dict(torch.load(tmp_path / "conv.pt", weights_only=True))
    np.testing.assert_array_equal(conv.weight.detach().numpy(), conv_sd["weight"])


@pytest.mark.torch
def test_wrapped_checkpoint_is_unwrapped(tmp_path, torch, caplog):
    inner = collections.OrderedDict(
        [("backbone.w", torch.ones(2, 3)), ("cls_head.fc.bias", torch.zeros(4))])
    wrapped = {
        "meta": {"epoch": 12, "iter": 3000, "mmcv_version": "1.3.0", "config": "model=dict()",
                 "best_score": np.float64(0.75), "hist": np.arange(3)},
        "state_dict": inner,
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "params": [0, 1]}]},
    }
    path = tmp_path / "epoch_12.pth"
    torch.save(wrapped, path)
    with caplog.at_level("INFO", logger="amstgcn_jax.torch_pickle"):
        sd = tp.load_state_dict(path)
    assert list(sd) == list(inner)
    assert "'state_dict'" in caplog.text
    np.testing.assert_array_equal(sd["backbone.w"], np.ones((2, 3), np.float32))
    everything = tp.load(path)
    assert everything["meta"]["epoch"] == 12 and everything["meta"]["best_score"] == 0.75
    np.testing.assert_array_equal(everything["meta"]["hist"], np.arange(3))
    with pytest.raises(tp.TorchFormatError, match="'optimizer' does not hold|no tensors"):
        tp.load_state_dict(path, key="optimizer")
    torch.save({"epoch": 1, "other": {"a": 1}}, tmp_path / "no_sd.pt")
    with pytest.raises(tp.TorchFormatError, match="none of the keys"):
        tp.load_state_dict(tmp_path / "no_sd.pt")


@pytest.mark.torch
def test_whole_model_pickle_is_refused(tmp_path, torch):
    # torch.save(model) pickles the module class: never loadable here.
    path = tmp_path / "model.pt"
    torch.save(torch.nn.Linear(2, 2), path)
    with pytest.raises(tp.UnsafePickleError, match="torch.nn.modules.linear.Linear"):
        tp.load(path)
