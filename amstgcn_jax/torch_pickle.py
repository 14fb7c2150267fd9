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

Safety: every pickle is read by ``torch_unpickler.RestrictedUnpickler``, whose ``find_class``
resolves only an explicit allowlist of globals, each mapped to a safe builder of that module that
makes plain numpy/python values. The real ``torch``/``numpy`` callables are never looked up, so
a checkpoint cannot run code; anything else raises :class:`UnsafePickleError` naming the file and
the global. Tensor views are bounds-checked against their storage before any strided read.

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

from amstgcn_jax.torch_unpickler import (
    STORAGE_DTYPES,
    LazyTensor,
    RestrictedUnpickler,
    StorageRef,
    TorchFormatError,
    UnsafePickleError,
)

_log = logging.getLogger(__name__)

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER
_LEGACY_PROTOCOL = 1001  # torch.serialization.PROTOCOL_VERSION
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "module", "state_dict_ema")
_ALIGN = 64  # torch writes storages 64-byte aligned inside the zip (".storage_alignment")

# ---------------------------------------------------------------------------------------------
# Loading


def _materialise(obj, storage_bytes, path: str, keep_bfloat16: bool, big_endian: bool):
    """Replaces every LazyTensor in nested containers by a numpy array."""
    cache: dict[str, np.ndarray] = {}

    def storage_array(ref: StorageRef) -> np.ndarray:
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

    def tensor(t: LazyTensor) -> np.ndarray:
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
        if isinstance(x, LazyTensor):
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
            unpickler = RestrictedUnpickler(io.BytesIO(zf.read(pkl[0])), path, legacy=False)
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
                return RestrictedUnpickler(f, path, legacy=True).load()
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
        unpickler = RestrictedUnpickler(f, path, legacy=True)
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
    dt: name for name, dt in STORAGE_DTYPES.items() if name != "UntypedStorage"}


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
