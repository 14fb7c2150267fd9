"""Restricted unpickling: numpy arrays and plain containers, never code.

The annotation pickles of ST-GCN (``*_label.pkl``), pyskl / mmaction2, CTR-GCN (NW-UCLA
``val_label.pkl``) and DD-Net (JHMDB) hold only lists, dicts, tuples, strings, numbers and numpy
arrays. `pickle.load` would run any callable a pickle names, so every pickle in this package is
read here instead: `find_class` resolves a global only if it is in the fixed table below (mapped
to the object directly, no import by name), and refuses everything else with `UnsafePickleError`
naming the file and the global.

Allowed: ``numpy.ndarray`` (only as the argument of ``_reconstruct``), ``numpy.dtype`` (from a
type string), numpy's array/scalar reconstructors (``numpy[._]core.multiarray._reconstruct`` with
an empty shape, as numpy writes it, / ``scalar``, ``numpy[._]core.numeric._frombuffer`` used by
protocol 5), ``_codecs.encode`` to latin1 (protocol 2 stores bytes through it),
``collections.OrderedDict``, ``set`` and ``frozenset``. Persistent ids, out-of-band buffers and
the INST/OBJ/EXT opcodes are refused.

Resource bounds: before unpickling, the opcode stream is walked with `pickletools.genops` (no
execution) so that every declared length must fit in the bytes present — the C unpickler would
otherwise allocate a garbage length up front — and the allowed callables are wrapped so that
none can be made to allocate more than the data holds. Reading is therefore bounded by the file
size.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import pickletools

import numpy as np

from amstgcn_jax.readers.errors import UnsafePickleError

_MULTIARRAY = np._core.multiarray  # the same functions pickles name as numpy.core.multiarray
_NUMERIC = np._core.numeric


class _NdarrayRef:
    """Stands for ``numpy.ndarray`` inside a pickle: numpy's pickles only pass the class to
    ``_reconstruct``; calling it directly (which could allocate any size) is refused."""

    def __call__(self, *args, **kwargs):
        raise _Refused("numpy.ndarray is called directly (numpy pickles never do that)")


_NDARRAY = _NdarrayRef()


class _Refused(Exception):
    pass


def _reconstruct(subtype, shape, dtype):
    # numpy's ndarray.__reduce__ always emits _reconstruct(ndarray, (0,), b"b"); the real shape
    # and data come with the BUILD state, whose size numpy checks against the bytes present.
    if subtype is not _NDARRAY:
        raise _Refused("_reconstruct of something other than numpy.ndarray")
    if not (isinstance(shape, tuple) and all(isinstance(n, int) for n in shape)
            and np.prod(shape, dtype=np.float64) == 0):
        raise _Refused(f"_reconstruct with a non-empty shape {shape!r:.40}")
    return _MULTIARRAY._reconstruct(np.ndarray, shape, dtype)


def _dtype(obj, align=False, copy=False):
    if not isinstance(obj, str):  # numpy pickles a dtype as dtype("f8", False, True) + state
        raise _Refused(f"numpy.dtype from a non-string {type(obj).__name__}")
    return np.dtype(obj, align=bool(align), copy=bool(copy))


def _encode(obj, encoding="utf-8"):
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1"):
        raise _Refused("_codecs.encode other than str -> latin1 bytes")
    return obj.encode(encoding)


_ALLOWED = {
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _dtype,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "scalar"): _MULTIARRAY.scalar,
    ("numpy.core.multiarray", "scalar"): _MULTIARRAY.scalar,
    ("numpy._core.numeric", "_frombuffer"): _NUMERIC._frombuffer,
    ("numpy.core.numeric", "_frombuffer"): _NUMERIC._frombuffer,
    ("_codecs", "encode"): _encode,
    ("collections", "OrderedDict"): collections.OrderedDict,
}
for _module in ("builtins", "__builtin__"):  # protocol 2 pickles name builtins "__builtin__"
    for _name, _obj in (("set", set), ("frozenset", frozenset)):
        _ALLOWED[(_module, _name)] = _obj


def _prescan(data: bytes, name: str) -> None:
    """Walks the opcode stream without executing it: every length field must fit in the bytes
    present (the C unpickler allocates a declared length before reading it), every global must
    be allowed, and the stream must end with STOP."""
    last = None
    try:
        for op, arg, _ in pickletools.genops(data):
            last = op.name
            if op.name == "GLOBAL":
                module, _, attr = arg.partition(" ")
                if (module, attr) not in _ALLOWED:
                    raise UnsafePickleError(name, f"pickle refers to global {module}.{attr}, "
                                                  "which is not allowed" + _WHY)
            elif op.name in ("PUT", "BINPUT", "LONG_BINPUT") and not 0 <= int(arg) <= len(data):
                # the C unpickler grows its memo table to the index: a garbage index = GiBs
                raise UnsafePickleError(name, f"corrupt pickle (memo index {arg} beyond the data)")
            elif op.name in ("PERSID", "BINPERSID"):
                raise UnsafePickleError(name, "pickle uses persistent ids, which are not allowed")
            elif op.name in ("INST", "OBJ", "EXT1", "EXT2", "EXT4", "NEXT_BUFFER",
                             "READONLY_BUFFER"):
                raise UnsafePickleError(name, f"pickle uses the {op.name} opcode, which is not "
                                              "allowed")
    except UnsafePickleError:
        raise
    except Exception as e:  # noqa: BLE001 - genops raises ValueError and friends on garbage
        raise UnsafePickleError(name, f"corrupt or truncated pickle ({e})") from None
    if last != "STOP":
        raise UnsafePickleError(name, "truncated pickle (no STOP opcode)")


_WHY = " (only numpy arrays and plain containers are read; nothing in a pickle is executed)"


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, name: str):
        super().__init__(file, encoding="latin1")  # latin1: py2 numpy pickles keep their bytes
        self._name = name

    def find_class(self, module, name):
        obj = _ALLOWED.get((module, name))
        if obj is None:
            raise UnsafePickleError(
                self._name,
                f"pickle refers to global {module}.{name}, which is not allowed" + _WHY,
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
    data = bytes(data)
    _prescan(data, name)
    stream = io.BytesIO(data)
    try:
        obj = _RestrictedUnpickler(stream, name).load()
    except UnsafePickleError:
        raise
    except _Refused as e:
        raise UnsafePickleError(name, f"pickle calls an allowed global in a way numpy never does: "
                                      f"{e}") from None
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
