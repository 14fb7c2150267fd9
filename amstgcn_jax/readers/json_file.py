"""Reading a JSON skeleton file with typed errors (Kinetics-skeleton and NW-UCLA readers)."""

from __future__ import annotations

import json

from amstgcn_jax.readers.errors import SkeletonFormatError


def load_json(path, with_raw: bool = False):
    """The parsed JSON of `path` (and its raw bytes if `with_raw`).

    Raises `SkeletonFormatError` naming the file when it cannot be read, is empty or is not JSON.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise SkeletonFormatError(path, f"cannot read file ({e.strerror or e})") from None
    if not raw.strip():
        raise SkeletonFormatError(path, "empty file")
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError: ValueErrors
        raise SkeletonFormatError(path, f"invalid JSON ({e})") from None
    return (obj, raw) if with_raw else obj
