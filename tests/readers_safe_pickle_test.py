"""Restricted unpickler: everything numpy and plain containers pickle round-trips; nothing else."""

import collections
import pickle

import numpy as np
import pytest

from amstgcn_jax.readers import safe_pickle
from amstgcn_jax.readers.errors import SkeletonFormatError, UnsafePickleError

OBJ = {"f32": np.arange(6, dtype=np.float32).reshape(2, 3), "f16": np.ones((2, 2), np.float16),
       "strided": np.arange(9.0).reshape(3, 3)[:, ::2], "fortran": np.asfortranarray(np.eye(3)),
       "obj": np.array([None, 1, "x"], dtype=object), "str": np.array(["ab", "c"]),
       "rec": np.zeros(2, dtype=[("x", "f4"), ("y", "i8", (2,))]), "bool": np.array([True]),
       "scalar": np.float64(1.5), "int": np.int64(-3), "dtype": np.dtype("<f4"),
       "od": collections.OrderedDict(a=1), "set": {1, 2}, "fs": frozenset({3}),
       "bytes": b"\x00\xff", "nested": [("a", 1.0, None, True), {"k": [1, 2]}]}


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_roundtrip_every_protocol(protocol):
    got = safe_pickle.loads(pickle.dumps(OBJ, protocol=protocol))
    assert got.keys() == OBJ.keys()
    for k, v in OBJ.items():
        if isinstance(v, np.ndarray):
            assert got[k].dtype == v.dtype and got[k].shape == v.shape, k
            assert (got[k] == v).all() if v.dtype != object else list(got[k]) == list(v), k
        else:
            assert got[k] == v and type(got[k]) is type(v), k


def test_real_pickles(shared_dir):
    d = shared_dir / "data"
    ucf = safe_pickle.load(d / "array-format-samples" / "example_UCF101_skeleton.pkl")
    assert ucf["keypoint"].shape == (2, 163, 17, 2) and ucf["keypoint"].dtype == np.float16
    assert len(safe_pickle.load(d / "nw-ucla" / "val_label.pkl")) == 464


def test_errors_are_typed_and_name_the_file(tmp_path):
    assert issubclass(UnsafePickleError, SkeletonFormatError)
    with pytest.raises(UnsafePickleError, match="absent.pkl"):
        safe_pickle.load(tmp_path / "absent.pkl")
    (tmp_path / "e.pkl").write_bytes(b"")
    with pytest.raises(UnsafePickleError, match="e.pkl: empty"):
        safe_pickle.load(tmp_path / "e.pkl")


@pytest.mark.parametrize("raw,what", [
    (b"cnumpy\nndarray\n(I3\ntR.", "ndarray is called directly"),
    (b"cnumpy.core.multiarray\n_reconstruct\n(cnumpy\nndarray\n(I100000000000\ntS'b'\ntR.",
     "non-empty shape"),
    (b"cnumpy\ndtype\n((S'f8'\n(I100000\ntttR.", "non-string"),
    (b"c_codecs\nencode\n(S'x'\nS'zlib_codec'\ntR.", "_codecs.encode"),
    (b"\x80\x05\x96\x00\x00\x00\x00\x01\x00\x00\x00.", "corrupt"),
    (b"\x80\x04r\x00\x00\x00\x10N.", "memo index"),
])
def test_allowed_globals_cannot_be_abused(raw, what):
    with pytest.raises(UnsafePickleError, match=what):
        safe_pickle.loads(raw, "abuse.pkl")
