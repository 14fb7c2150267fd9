"""Restricted unpickler for PyTorch checkpoint pickles: builds numpy-ready stand-ins, runs no code.

`find_class` resolves only an explicit allowlist of globals, each mapped to a builder of THIS
module (never the real `torch` / `numpy` callable): `collections.OrderedDict`, the tensor and
parameter rebuild functions of `torch/_utils.py` (PyTorch 2.13: `_rebuild_tensor`,
`_rebuild_tensor_v2`, `_rebuild_tensor_v3`, `_rebuild_parameter[_with_state]`), the typed-storage
class names (`torch.FloatStorage`, ..., also under `torch.cuda`), `torch.<dtype>`, `torch.Size`,
a few builtins for plain containers (set, frozenset, bytearray, complex, `_codecs.encode` for
protocol-2 bytes) and numpy scalars/arrays/dtypes as pickled by numpy. Anything else raises
:class:`UnsafePickleError`. Tensors come out as :class:`LazyTensor` records (storage, offset,
size, stride, dtype) that `amstgcn_jax.torch_pickle` materialises once the storage bytes are
known; every stand-in refuses BUILD so a pickle cannot mutate it.
"""

from __future__ import annotations

import collections
import pickle
from typing import Any

import ml_dtypes
import numpy as np

# Legacy typed-storage class name -> element dtype (little-endian), see
# torch/storage.py::_dtype_to_storage_type_map.
STORAGE_DTYPES: dict[str, np.dtype] = {
    "DoubleStorage": np.dtype("<f8"),
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype(ml_dtypes.bfloat16),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
    "ComplexDoubleStorage": np.dtype("<c16"),
    "ComplexFloatStorage": np.dtype("<c8"),
    "UntypedStorage": np.dtype("u1"),
}

# torch.<dtype> globals used by _rebuild_tensor_v3 (dtypes without a legacy storage class).
_TORCH_DTYPES: dict[str, np.dtype] = {
    "float64": np.dtype("<f8"), "float32": np.dtype("<f4"), "float16": np.dtype("<f2"),
    "bfloat16": np.dtype(ml_dtypes.bfloat16), "int64": np.dtype("<i8"),
    "int32": np.dtype("<i4"), "int16": np.dtype("<i2"), "int8": np.dtype("i1"),
    "uint8": np.dtype("u1"), "uint16": np.dtype("<u2"), "uint32": np.dtype("<u4"),
    "uint64": np.dtype("<u8"), "bool": np.dtype("?"), "complex64": np.dtype("<c8"),
    "complex128": np.dtype("<c16"),
    "float8_e4m3fn": np.dtype(ml_dtypes.float8_e4m3fn),
    "float8_e5m2": np.dtype(ml_dtypes.float8_e5m2),
    "float8_e4m3fnuz": np.dtype(ml_dtypes.float8_e4m3fnuz),
    "float8_e5m2fnuz": np.dtype(ml_dtypes.float8_e5m2fnuz),
}


class UnsafePickleError(ValueError):
    """A checkpoint pickle references a global outside the allowlist (it could run code)."""


class TorchFormatError(ValueError):
    """The file is not a readable PyTorch checkpoint (wrong format, truncated, inconsistent)."""


# ---------------------------------------------------------------------------------------------
# Stand-ins produced while unpickling. They refuse BUILD so a pickle cannot mutate them.


class _Frozen:
    __slots__ = ()

    def __setstate__(self, state):
        raise UnsafePickleError(f"BUILD on internal object {type(self).__name__} refused")


class _StorageType(_Frozen):
    __slots__ = ("name", "dtype")

    def __init__(self, name: str, dtype: np.dtype):
        self.name, self.dtype = name, dtype


class _TorchDType(_Frozen):
    __slots__ = ("name", "dtype")

    def __init__(self, name: str, dtype: np.dtype):
        self.name, self.dtype = name, dtype


class StorageRef(_Frozen):
    __slots__ = ("key", "dtype", "numel", "view_offset", "view_numel")

    def __init__(self, key, dtype, numel, view_offset=0, view_numel=None):
        self.key, self.dtype, self.numel = key, dtype, numel
        self.view_offset = view_offset
        self.view_numel = numel if view_numel is None else view_numel


class LazyTensor(_Frozen):
    """A tensor whose storage bytes are materialised after unpickling (legacy storages follow
    the pickle in the stream)."""

    __slots__ = ("storage", "offset", "size", "stride", "dtype")

    def __init__(self, storage, offset, size, stride, dtype=None):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride
        self.dtype = storage.dtype if dtype is None else dtype


def _as_int_tuple(value, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        raise TorchFormatError(f"tensor {what} must be a tuple of non-negative ints, got {value!r}")
    return value


def _rebuild_tensor(storage, storage_offset, size, stride, *_unused):
    if not isinstance(storage, StorageRef):
        raise TorchFormatError(f"tensor storage must be a persistent storage, got {type(storage)}")
    if not isinstance(storage_offset, int) or storage_offset < 0:
        raise TorchFormatError(f"bad storage offset {storage_offset!r}")
    size, stride = _as_int_tuple(size, "size"), _as_int_tuple(stride, "stride")
    if len(size) != len(stride):
        raise TorchFormatError(f"tensor size {size} and stride {stride} differ in rank")
    return LazyTensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, hooks, dtype, *_):
    if not isinstance(dtype, _TorchDType):
        raise TorchFormatError(f"_rebuild_tensor_v3 needs a torch dtype, got {dtype!r}")
    t = _rebuild_tensor(storage, storage_offset, size, stride)
    t.dtype = dtype.dtype
    return t


def _rebuild_parameter(data, *_unused):
    return data


def _codecs_encode(text, encoding="utf-8"):
    # Protocol-2 pickles spell `bytes` objects as _codecs.encode(str, "latin1").
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise UnsafePickleError(f"_codecs.encode({type(text).__name__}, {encoding!r}) refused")
    return text.encode(encoding)


def _np_dtype(spec, align=False, copy=False):
    if not isinstance(spec, str):
        raise UnsafePickleError(f"numpy.dtype({spec!r}) refused: only dtype strings")
    return np.dtype(spec)


def _np_scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype):
        raise UnsafePickleError(f"numpy scalar with dtype {dtype!r} refused")
    if dtype.hasobject:
        return data
    if isinstance(data, str):
        data = data.encode("latin1")
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise TorchFormatError(f"numpy scalar of {dtype} needs {dtype.itemsize} bytes")
    return np.frombuffer(data, dtype=dtype)[0]


class _NDArrayClass(_Frozen):
    """Stands for `numpy.ndarray` as an argument of `_reconstruct`; deliberately not callable
    (the real constructor accepts buffers, offsets and strides)."""

    __slots__ = ()


_NDARRAY = _NDArrayClass()


def _np_reconstruct(subtype, shape, dtype):
    if subtype is not _NDARRAY:
        raise UnsafePickleError(f"numpy _reconstruct of {subtype!r} refused")
    # numpy always pickles `_reconstruct(ndarray, (0,), b"b")`; the array's shape, dtype and
    # bytes arrive through BUILD -> ndarray.__setstate__, which checks their sizes.
    return np.ndarray.__new__(np.ndarray, (0,), np.dtype("b"))


def _make_allowlist() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("torch", "Size"): tuple,
        ("_codecs", "encode"): _codecs_encode,
        ("numpy", "dtype"): _np_dtype,
        ("numpy", "ndarray"): _NDARRAY,
    }
    for builtins_name in ("builtins", "__builtin__"):
        for name, value in (("set", set), ("frozenset", frozenset), ("bytearray", bytearray),
                            ("complex", complex)):
            allowed[(builtins_name, name)] = value
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "scalar")] = _np_scalar
        allowed[(mod, "_reconstruct")] = _np_reconstruct
    for name, dtype in STORAGE_DTYPES.items():
        for mod in ("torch", "torch.cuda", "torch.storage"):
            allowed[(mod, name)] = _StorageType(name, dtype)
    for name, dtype in _TORCH_DTYPES.items():
        allowed[("torch", name)] = _TorchDType(name, dtype)
    return allowed


_ALLOWED = _make_allowlist()


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only allowlisted globals, each to a safe builder of this module."""

    def __init__(self, file, path: str, legacy: bool):
        super().__init__(file)
        self._path, self._legacy = path, legacy
        self.storages: dict[str, StorageRef] = {}

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self._path}: refusing to load global '{module}.{name}' (not a tensor, storage "
                "or plain container; the checkpoint could run code)") from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] in ("storage", b"storage")):
            raise TorchFormatError(f"{self._path}: unexpected persistent id {pid!r}")
        storage_type, key, _location, numel = pid[1:5]
        if not isinstance(storage_type, _StorageType):
            raise TorchFormatError(f"{self._path}: bad storage type {storage_type!r}")
        if not isinstance(numel, int) or numel < 0:
            raise TorchFormatError(f"{self._path}: bad storage size {numel!r}")
        key = str(key)
        root = self.storages.setdefault(key, StorageRef(key, storage_type.dtype, numel))
        view = pid[5] if self._legacy and len(pid) > 5 else None
        if view is None:
            return root
        # Legacy storage views: (view_key, offset, view_size), in elements of the root storage.
        _view_key, view_offset, view_numel = view
        if view_offset < 0 or view_offset + view_numel > root.numel:
            raise TorchFormatError(f"{self._path}: storage view exceeds storage {key}")
        return StorageRef(key, root.dtype, root.numel, view_offset, view_numel)
