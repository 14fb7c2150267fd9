"""Typed errors raised by every reader in `amstgcn_jax.readers`.

A reader never returns a silently wrong array: whatever is wrong with an input file (truncated,
garbage, NaN, wrong joint count, empty skeleton, bad JSON, forbidden pickle global) ends up as
one of these, with a message that names the file and what is wrong. Dataset builders catch
`SkeletonFormatError` to skip a sample and report it, and can tell "valid file, but no person in
it" (`EmptySkeletonError`) apart from a corrupt file.
"""

from __future__ import annotations

import os


class SkeletonFormatError(ValueError):
    """A skeleton file that cannot be read as its format says.

    Attributes:
      path: the file (or a name standing for it, e.g. ``"<bytes>"``).
      reason: what is wrong, in words.
    """

    def __init__(self, path: str | os.PathLike | None, reason: str):
        self.path = os.fspath(path) if path is not None else "<unknown>"
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # keeps the error picklable across multiprocessing workers
        return (type(self), (self.path, self.reason))


class EmptySkeletonError(SkeletonFormatError):
    """A well-formed file that holds no skeleton at all (no body in any frame, or no frame).

    The NTU RGB+D "samples with missing skeletons" and Kinetics clips with ``has_skeleton: false``
    are of this kind; the official pipelines leave them out of the dataset.
    """


class UnsafePickleError(SkeletonFormatError):
    """A pickle that asks for a global outside the allowed set, or that cannot be unpickled.

    Raised by `amstgcn_jax.readers.safe_pickle`; nothing in the pickle is ever executed.
    """
