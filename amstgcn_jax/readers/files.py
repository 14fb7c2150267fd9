"""Reading skeleton files with typed errors that name the file (shared by the readers)."""

from __future__ import annotations

import json

from amstgcn_jax.readers.errors import SkeletonFormatError


def read_bytes(path) -> bytes:
    """The bytes of `path`; `SkeletonFormatError` naming it when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise SkeletonFormatError(path, f"cannot read file ({e.strerror or e})") from None


def read_ascii(path) -> str:
    """The text of an ASCII file (NTU .skeleton, KARD .txt); non-ASCII bytes are an error."""
    raw = read_bytes(path)
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError as e:
        raise SkeletonFormatError(path, f"not a text file (non-ASCII byte at offset {e.start})") \
            from None


def load_json(path, with_raw: bool = False):
    """The parsed JSON of `path` (and its raw bytes if `with_raw`).

    Raises `SkeletonFormatError` naming the file when it cannot be read, is empty or is not JSON.
    """
    raw = read_bytes(path)
    if not raw.strip():
        raise SkeletonFormatError(path, "empty file")
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError: ValueErrors
        raise SkeletonFormatError(path, f"invalid JSON ({e})") from None
    return (obj, raw) if with_raw else obj
