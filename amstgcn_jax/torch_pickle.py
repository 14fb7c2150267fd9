"""Read and write PyTorch ``.pt`` state_dict files without PyTorch and without running code.

Mirrors the container formats of ``torch/serialization.py`` (PyTorch 2.13, ``_save`` /
``_legacy_save`` / ``_load`` / ``_legacy_load``) and the tensor rebuild functions of
``torch/_utils.py`` (``_rebuild_tensor``, ``_rebuild_tensor_v2``, ``_rebuild_tensor_v3``,
``_rebuild_parameter``):

* zip format (PyTorch >= 1.6): ``<archive>/data.pkl`` (pickle protocol 2), raw storages in
  ``<archive>/data/<key>``, ``<archive>/byteorder`` ("little" when absent), ``<archive>/version``.
* legacy format (PyTorch < 1.6, or ``_use_new_zipfile_serialization=False``): five pickles and
  raw bytes in one stream: magic number, protocol version (1001), sys-info dict, the object
  pickle (storages as persistent ids), the list of storage keys, then for every key an 8-byte
  element count followed by the storage bytes.

Safety: every pickle is read by :class:`_RestrictedUnpickler`, whose ``find_class`` resolves only
an explicit allowlist of globals, each mapped to a function of THIS module that builds plain
numpy/python values. The real ``torch``/``numpy`` callables are never looked up, so a checkpoint
cannot run code; anything else raises :class:`UnsafePickleError` naming the file and the global.
Tensor views are bounds-checked against their storage before any strided read.

Deliberate choices: bf16 tensors load as float32 (exact widening) unless ``keep_bfloat16=True``;
float8/uint16/... tensors (``_rebuild_tensor_v3``) load via ml_dtypes / numpy. Checkpoints that
wrap the weights (mmaction2 / pyskl ``{"state_dict": ..., "meta": ...}``) are unwrapped by
:func:`load_state_dict`; non-tensor leaves there are skipped.
"""

from __future__ import annotations

import collections
import io
import logging
import os
import pickle
import struct
import zipfile
from collections.abc import Mapping
from typing import Any

import ml_dtypes
import numpy as np

_log = logging.getLogger(__name__)

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER
_LEGACY_PROTOCOL = 1001  # torch.serialization.PROTOCOL_VERSION
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "module", "state_dict_ema")
_ALIGN = 64  # torch writes storages 64-byte aligned inside the zip (".storage_alignment")

# Legacy typed-storage class name -> element dtype (little-endian), see
# torch/storage.py::_dtype_to_storage_type_map.
_STORAGE_DTYPES: dict[str, np.dtype] = {
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


class _StorageRef(_Frozen):
    __slots__ = ("key", "dtype", "numel", "view_offset", "view_numel")

    def __init__(self, key, dtype, numel, view_offset=0, view_numel=None):
        self.key, self.dtype, self.numel = key, dtype, numel
        self.view_offset = view_offset
        self.view_numel = numel if view_numel is None else view_numel


class _LazyTensor(_Frozen):
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
    if not isinstance(storage, _StorageRef):
        raise TorchFormatError(f"tensor storage must be a persistent storage, got {type(storage)}")
    if not isinstance(storage_offset, int) or storage_offset < 0:
        raise TorchFormatError(f"bad storage offset {storage_offset!r}")
    size, stride = _as_int_tuple(size, "size"), _as_int_tuple(stride, "stride")
    if len(size) != len(stride):
        raise TorchFormatError(f"tensor size {size} and stride {stride} differ in rank")
    return _LazyTensor(storage, storage_offset, size, stride)


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
    for name, dtype in _STORAGE_DTYPES.items():
        for mod in ("torch", "torch.cuda", "torch.storage"):
            allowed[(mod, name)] = _StorageType(name, dtype)
    for name, dtype in _TORCH_DTYPES.items():
        allowed[("torch", name)] = _TorchDType(name, dtype)
    return allowed


_ALLOWED = _make_allowlist()


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only allowlisted globals, each to a safe builder of this module."""

    def __init__(self, file, path: str, legacy: bool):
        super().__init__(file)
        self._path, self._legacy = path, legacy
        self.storages: dict[str, _StorageRef] = {}

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
        root = self.storages.setdefault(key, _StorageRef(key, storage_type.dtype, numel))
        view = pid[5] if self._legacy and len(pid) > 5 else None
        if view is None:
            return root
        # Legacy storage views: (view_key, offset, view_size), in elements of the root storage.
        _view_key, view_offset, view_numel = view
        if view_offset < 0 or view_offset + view_numel > root.numel:
            raise TorchFormatError(f"{self._path}: storage view exceeds storage {key}")
        return _StorageRef(key, root.dtype, root.numel, view_offset, view_numel)


# ---------------------------------------------------------------------------------------------
# Loading


def _materialise(obj, storage_bytes, path: str, keep_bfloat16: bool, big_endian: bool):
    """Replaces every _LazyTensor in nested containers by a numpy array."""
    cache: dict[str, np.ndarray] = {}

    def storage_array(ref: _StorageRef) -> np.ndarray:
        if ref.key not in cache:
            raw = storage_bytes(ref.key)
            nbytes = ref.numel * ref.dtype.itemsize
            if raw is None:
                raise TorchFormatError(f"{path}: storage '{ref.key}' is missing")
            if len(raw) < nbytes:
                raise TorchFormatError(
                    f"{path}: storage '{ref.key}' has {len(raw)} bytes, expected {nbytes} "
                    "(truncated file?)")
            raw = np.frombuffer(raw, dtype=np.uint8, count=nbytes)
            if big_endian and ref.dtype.itemsize > 1:
                swap = np.dtype(f">u{ref.dtype.itemsize}") if ref.dtype.kind != "c" else None
                raw = (raw.view(swap).astype(swap.newbyteorder("=")) if swap is not None else
                       raw.view(ref.dtype.newbyteorder(">")).astype(ref.dtype)).view(np.uint8)
            cache[ref.key] = raw
        return cache[ref.key]

    def tensor(t: _LazyTensor) -> np.ndarray:
        ref = t.storage
        raw = storage_array(ref)
        itemsize = t.dtype.itemsize
        # _rebuild_tensor_v3 may view a byte storage as a wider dtype.
        elems = (ref.view_numel * ref.dtype.itemsize) // itemsize
        base = raw[ref.view_offset * ref.dtype.itemsize:][: elems * itemsize].view(t.dtype)
        if 0 in t.size:
            arr = np.zeros(t.size, t.dtype)
        else:
            last = t.offset + sum((n - 1) * s for n, s in zip(t.size, t.stride))
            if last >= elems:
                raise TorchFormatError(
                    f"{path}: tensor view (offset {t.offset}, size {t.size}, stride {t.stride}) "
                    f"exceeds its storage '{ref.key}' of {elems} elements")
            arr = np.lib.stride_tricks.as_strided(
                base[t.offset:], shape=t.size, strides=tuple(s * itemsize for s in t.stride),
                writeable=False).copy()
        arr = arr.astype(arr.dtype.newbyteorder("="), copy=False)
        if arr.dtype == ml_dtypes.bfloat16 and not keep_bfloat16:
            arr = arr.astype(np.float32)
        return arr

    def walk(x):
        if isinstance(x, _LazyTensor):
            return tensor(x)
        if isinstance(x, collections.OrderedDict):
            return collections.OrderedDict((k, walk(v)) for k, v in x.items())
        if isinstance(x, dict):
            return {k: walk(v) for k, v in x.items()}
        if isinstance(x, list):
            return [walk(v) for v in x]
        if isinstance(x, tuple):
            return tuple(walk(v) for v in x)
        return x

    return walk(obj)


def _load_zip(path: str, keep_bfloat16: bool):
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise TorchFormatError(f"{path}: not a readable zip-format PyTorch file ({e})") from e
    with zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if len(pkl) != 1:
            raise TorchFormatError(f"{path}: zip archive without a single '<archive>/data.pkl' "
                                   "record: not a PyTorch checkpoint")
        prefix = pkl[0][: -len("data.pkl")]
        byteorder = "little"
        if prefix + "byteorder" in names:
            byteorder = zf.read(prefix + "byteorder").decode("ascii", "replace").strip()
        if byteorder not in ("little", "big"):
            raise TorchFormatError(f"{path}: unknown byteorder {byteorder!r}")
        try:
            unpickler = _RestrictedUnpickler(io.BytesIO(zf.read(pkl[0])), path, legacy=False)
            obj = unpickler.load()
        except (UnsafePickleError, TorchFormatError):
            raise
        except Exception as e:  # any other failure of a hostile or broken pickle
            raise TorchFormatError(f"{path}: corrupt data.pkl ({type(e).__name__}: {e})") from e
        name_set = set(names)

        def storage_bytes(key):
            name = f"{prefix}data/{key}"
            if name not in name_set:
                return None
            try:
                return zf.read(name)
            except (zipfile.BadZipFile, OSError, EOFError) as e:
                raise TorchFormatError(f"{path}: cannot read storage '{key}' ({e})") from e

        return _materialise(obj, storage_bytes, path, keep_bfloat16, byteorder == "big")


def _load_legacy(path: str, keep_bfloat16: bool):
    with open(path, "rb") as f:
        def load_one(what):
            try:
                return _RestrictedUnpickler(f, path, legacy=True).load()
            except (UnsafePickleError, TorchFormatError):
                raise
            except Exception as e:  # any other failure of a hostile or broken pickle
                raise TorchFormatError(f"{path}: cannot read the {what} ({e}): "
                                       "truncated or not a PyTorch checkpoint") from e

        if load_one("magic number") != _LEGACY_MAGIC:
            raise TorchFormatError(f"{path}: pickle without the PyTorch magic number: "
                                   "not a PyTorch checkpoint")
        protocol = load_one("protocol version")
        if protocol != _LEGACY_PROTOCOL:
            raise TorchFormatError(f"{path}: unsupported legacy protocol version {protocol!r}")
        sys_info = load_one("sys info")
        little = bool(sys_info.get("little_endian", True)) if isinstance(sys_info, dict) else True
        unpickler = _RestrictedUnpickler(f, path, legacy=True)
        try:
            obj = unpickler.load()
        except (UnsafePickleError, TorchFormatError):
            raise
        except Exception as e:  # any other failure of a hostile or broken pickle
            raise TorchFormatError(
                f"{path}: cannot read the object pickle ({type(e).__name__}: {e})") from e
        keys = load_one("storage key list")
        if not isinstance(keys, list):
            raise TorchFormatError(f"{path}: storage key list is {type(keys).__name__}")
        data: dict[str, bytes] = {}
        for key in keys:
            ref = unpickler.storages.get(str(key))
            if ref is None:
                raise TorchFormatError(f"{path}: storage '{key}' is listed but never referenced")
            header = f.read(8)
            if len(header) != 8:
                raise TorchFormatError(f"{path}: truncated before storage '{key}'")
            numel = int.from_bytes(header, "little" if little else "big")
            if numel != ref.numel:
                raise TorchFormatError(f"{path}: storage '{key}' holds {numel} elements, "
                                       f"the pickle says {ref.numel}")
            raw = f.read(numel * ref.dtype.itemsize)
            if len(raw) != numel * ref.dtype.itemsize:
                raise TorchFormatError(f"{path}: truncated inside storage '{key}'")
            data[str(key)] = raw
    return _materialise(obj, data.get, path, keep_bfloat16, not little)


def load(path: str | os.PathLike, *, keep_bfloat16: bool = False) -> Any:
    """Loads any ``torch.save``d object made of tensors and plain containers; tensors become
    numpy arrays. Raises UnsafePickleError / TorchFormatError (both ValueError)."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        head = f.read(512)
    try:
        if head[:4] == b"PK\x03\x04":
            return _load_zip(path, keep_bfloat16)
        if head[:1] == b"\x80":
            return _load_legacy(path, keep_bfloat16)
    except (UnsafePickleError, TorchFormatError) as e:
        if str(e).startswith(path):
            raise
        raise type(e)(f"{path}: {e}") from e  # errors raised by the builders lack the path
    if len(head) >= 262 and head[257:262] == b"ustar":
        raise TorchFormatError(f"{path}: tar-format checkpoint (PyTorch < 0.4) is not supported")
    raise TorchFormatError(f"{path}: not a PyTorch checkpoint (neither zip nor legacy pickle)")


def load_state_dict(path: str | os.PathLike, *, key: str | None = None,
                    keep_bfloat16: bool = False) -> dict[str, np.ndarray]:
    """Reads a PyTorch state_dict as ``{name: np.ndarray}`` (insertion order kept).

    Accepts a bare state_dict or a wrapper dict holding one under ``key`` (default: the first of
    "state_dict", "model_state_dict", "model", "net", "module", "state_dict_ema"), as written by
    mmaction2/pyskl. Non-tensor entries are skipped (logged at INFO level).
    """
    path = os.fspath(path)
    obj = load(path, keep_bfloat16=keep_bfloat16)
    if not isinstance(obj, Mapping):
        raise TorchFormatError(f"{path}: holds a {type(obj).__name__}, not a state_dict mapping")
    has_arrays = any(isinstance(v, np.ndarray) for v in obj.values())
    if key is None and not has_arrays:
        key = next((k for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if key is None:
            raise TorchFormatError(f"{path}: no tensors at the top level and none of the keys "
                                   f"{_WRAPPER_KEYS} holds a state_dict; keys: {list(obj)[:20]}")
    if key is not None:
        if not isinstance(obj.get(key), Mapping):
            raise TorchFormatError(f"{path}: key {key!r} does not hold a state_dict mapping")
        _log.info("%s: using the state_dict stored under key %r (other keys ignored: %s)",
                  path, key, [k for k in obj if k != key])
        obj = obj[key]
    out, skipped = {}, []
    for name, value in obj.items():
        if isinstance(value, np.ndarray):
            out[str(name)] = value
        else:
            skipped.append(name)
    if skipped:
        _log.info("%s: skipped %d non-tensor entries: %s", path, len(skipped), skipped[:20])
    if not out:
        raise TorchFormatError(f"{path}: the state_dict holds no tensors")
    return out


# ---------------------------------------------------------------------------------------------
# Saving


class _GlobalRef:
    """Pickled as the GLOBAL opcode ``module\\nname`` (the target is never imported here)."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def __call__(self, *args):
        raise TypeError("stand-in for a torch global; only for pickling")


_REBUILD_V2 = _GlobalRef("torch._utils", "_rebuild_tensor_v2")
_SAVE_STORAGE: dict[np.dtype, str] = {
    dt: name for name, dt in _STORAGE_DTYPES.items() if name != "UntypedStorage"}


class _StorageOut:
    def __init__(self, key: str, name: str, data: bytes, numel: int):
        self.key, self.name, self.data, self.numel = key, name, data, numel


class _TorchPickler(pickle._Pickler):  # pure-python pickler: lets us emit GLOBAL directly
    def __init__(self, file, legacy: bool):
        super().__init__(file, protocol=2)
        self.legacy = legacy
        self.storages: list[_StorageOut] = []

    def save(self, obj, save_persistent_id=True):
        if isinstance(obj, _GlobalRef):
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode("ascii"))
            return
        super().save(obj, save_persistent_id)

    def persistent_id(self, obj):
        if not isinstance(obj, _StorageOut):
            return None
        pid = ("storage", _GlobalRef("torch", obj.name), obj.key, "cpu", obj.numel)
        return pid + (None,) if self.legacy else pid

    def reducer_override(self, obj):
        if not isinstance(obj, (np.ndarray, np.generic)):
            return NotImplemented
        arr = np.asarray(obj)
        name = _SAVE_STORAGE.get(arr.dtype.newbyteorder("<") if arr.dtype.kind in "fiuc"
                                 else arr.dtype)
        if name is None:
            raise TypeError(f"cannot save dtype {arr.dtype} as a PyTorch tensor")
        if not arr.flags.c_contiguous:  # (np.ascontiguousarray would turn 0-d into 1-d)
            arr = arr.copy(order="C")
        if arr.dtype.kind in "fiuc":
            arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
        storage = _StorageOut(str(len(self.storages)), name, arr.tobytes(), arr.size)
        self.storages.append(storage)
        stride = tuple(s // arr.itemsize for s in arr.strides) if arr.size else (
            tuple(int(np.prod(arr.shape[i + 1:])) for i in range(arr.ndim)))
        args = (storage, 0, tuple(arr.shape), stride, False, collections.OrderedDict())
        return (_REBUILD_V2, args)


def _pickle_state_dict(sd: Mapping[str, Any], legacy: bool):
    bad = [k for k in sd if not isinstance(k, str)]
    if bad:
        raise TypeError(f"state_dict keys must be str, got {bad[:5]}")
    tensors = collections.OrderedDict((k, np.asarray(v)) for k, v in sd.items())
    buf = io.BytesIO()
    pickler = _TorchPickler(buf, legacy)
    pickler.dump(tensors)
    return buf.getvalue(), pickler.storages


def _write_aligned(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    header = 30 + len(name.encode("utf-8"))
    pad = (-(zf.fp.tell() + header + 4)) % _ALIGN
    info.extra = struct.pack("<HH", 0x4246, pad) + b"Z" * pad  # "FB" padding field, like torch
    zf.writestr(info, data)


def save_state_dict(sd: Mapping[str, Any], path: str | os.PathLike, *,
                    legacy: bool = False) -> None:
    """Writes ``{name: array}`` as a PyTorch state_dict file (an OrderedDict of CPU tensors)
    that ``torch.load(path, weights_only=True)`` reads. ``legacy=True`` writes the pre-1.6
    container. Arrays are stored C-contiguous, little-endian; ml_dtypes.bfloat16 arrays become
    bfloat16 tensors."""
    path = os.fspath(path)
    data_pkl, storages = _pickle_state_dict(sd, legacy)
    if legacy:
        with open(path, "wb") as f:
            for obj in (_LEGACY_MAGIC, _LEGACY_PROTOCOL,
                        {"protocol_version": _LEGACY_PROTOCOL, "little_endian": True,
                         "type_sizes": {"short": 2, "int": 4, "long": 4}}):
                pickle.dump(obj, f, protocol=2)
            f.write(data_pkl)
            pickle.dump([s.key for s in storages], f, protocol=2)
            for s in storages:
                f.write(struct.pack("<q", s.numel))
                f.write(s.data)
        return
    archive = "archive/"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        _write_aligned(zf, archive + "data.pkl", data_pkl)
        _write_aligned(zf, archive + ".format_version", b"1")
        _write_aligned(zf, archive + ".storage_alignment", str(_ALIGN).encode())
        _write_aligned(zf, archive + "byteorder", b"little")
        for s in storages:
            _write_aligned(zf, f"{archive}data/{s.key}", s.data)
        _write_aligned(zf, archive + "version", b"3\n")
