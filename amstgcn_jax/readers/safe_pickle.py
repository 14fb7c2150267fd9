"""Restricted unpickling: numpy arrays and plain containers, never code.

The annotation pickles of ST-GCN (``*_label.pkl``), pyskl / mmaction2, CTR-GCN (NW-UCLA
``val_label.pkl``) and DD-Net (JHMDB) hold only lists, dicts, tuples, strings, numbers and numpy
arrays. `pickle.load` would run any callable a pickle names, so every pickle in this package is
read here instead: `find_class` resolves a global only if it is in the fixed table below (mapped
to the object directly, no import by name), and refuses everything else with `UnsafePickleError`
naming the file and the global.

Allowed: ``numpy.ndarray``, ``numpy.dtype``, numpy's array/scalar reconstructors
(``numpy[._]core.multiarray._reconstruct`` / ``scalar``, ``numpy[._]core.numeric._frombuffer``
used by protocol 5), ``_codecs.encode`` (protocol 2 stores bytes through it),
``collections.OrderedDict``, and the builtins ``set``, ``frozenset``, ``complex``, ``bytearray``,
``slice``, ``range``. Persistent ids and out-of-band buffers are refused too.
"""

from __future__ import annotations

import _codecs
import collections
import io
import os
import pickle

import numpy as np

from amstgcn_jax.readers.errors import UnsafePickleError

_MULTIARRAY = np._core.multiarray  # the same functions pickles name as numpy.core.multiarray
_NUMERIC = np._core.numeric

_ALLOWED = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy._core.multiarray", "_reconstruct"): _MULTIARRAY._reconstruct,
    ("numpy.core.multiarray", "_reconstruct"): _MULTIARRAY._reconstruct,
    ("numpy._core.multiarray", "scalar"): _MULTIARRAY.scalar,
    ("numpy.core.multiarray", "scalar"): _MULTIARRAY.scalar,
    ("numpy._core.numeric", "_frombuffer"): _NUMERIC._frombuffer,
    ("numpy.core.numeric", "_frombuffer"): _NUMERIC._frombuffer,
    ("_codecs", "encode"): _codecs.encode,
    ("collections", "OrderedDict"): collections.OrderedDict,
}
for _module in ("builtins", "__builtin__"):  # protocol 2 pickles name builtins "__builtin__"
    for _name, _obj in (("set", set), ("frozenset", frozenset), ("complex", complex),
                        ("bytearray", bytearray), ("slice", slice), ("range", range)):
        _ALLOWED[(_module, _name)] = _obj

# numpy dtypes whose pickle could hold arbitrary objects are fine: their items are unpickled by
# this same restricted machinery.


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, name: str):
        super().__init__(file, encoding="latin1")  # latin1: py2 numpy pickles keep their bytes
        self._name = name

    def find_class(self, module, name):
        obj = _ALLOWED.get((module, name))
        if obj is None:
            raise UnsafePickleError(
                self._name,
                f"pickle refers to global {module}.{name}, which is not allowed (only numpy "
                "arrays and plain containers are read; nothing in a pickle is executed)",
            )
        return obj

    def persistent_load(self, pid):
        raise UnsafePickleError(self._name, "pickle uses persistent ids, which are not allowed")


def loads(data: bytes, name: str = "<bytes>"):
    """Unpickles `data` with the restricted unpickler; `name` names the source in errors."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise UnsafePickleError(name, f"expected bytes, got {type(data).__name__}")
    if len(data) == 0:
        raise UnsafePickleError(name, "empty file, not a pickle")
    stream = io.BytesIO(data)
    try:
        obj = _RestrictedUnpickler(stream, name).load()
    except UnsafePickleError:
        raise
    except RecursionError:
        raise UnsafePickleError(name, "pickle nests too deeply") from None
    except MemoryError:
        raise UnsafePickleError(name, "pickle asks for more memory than available") from None
    except Exception as e:  # noqa: BLE001 - any failure inside pickle means a corrupt file
        raise UnsafePickleError(name, f"corrupt or truncated pickle ({type(e).__name__}: {e})") \
            from None
    if stream.tell() != len(data) and data[stream.tell():].strip(b"\x00"):
        raise UnsafePickleError(name, f"trailing bytes after the pickle at offset {stream.tell()}")
    return obj


def load(path: str | os.PathLike):
    """Reads the pickle at `path` with the restricted unpickler (see module docstring)."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise UnsafePickleError(path, f"cannot read file ({e.strerror or e})") from None
    return loads(data, path)
