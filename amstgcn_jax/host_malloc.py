"""glibc malloc settings for XLA:CPU: keep freed memory for reuse instead of unmapping it.

XLA:CPU takes each step's temporaries from `malloc` (2.95 GiB for an NTU T=300 batch-4 train
step). glibc serves blocks above its mmap threshold (32 MiB at most) with fresh `mmap` pages and
unmaps them on `free`, so every step page-faults and zeroes its whole working set again: 0.8 s
of a 4.2 s CPU train step (benchmarks/README.md, "glibc malloc"). `keep_freed_memory` sets

- `M_MMAP_MAX = 0`: large blocks come from the heap, not from `mmap`;
- `M_TRIM_THRESHOLD = -1`: freed heap memory is never given back, so the next step reuses it;
- `M_ARENA_MAX = 1`: one heap (per-thread arenas are 64 MiB heaps that cannot hold such blocks),

the same as `GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=<huge>:
glibc.malloc.arena_max=1`. The cost: the process keeps its peak heap until it exits. `train.py`
and `eval.py` call it on the CPU backend (`--keep_freed_memory`, default on); the library never
changes the allocator on import.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1  # <malloc.h>
M_MMAP_MAX = -4
M_ARENA_MAX = -8


def _glibc():
    """The process's glibc, or None (not Linux, or another libc such as musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        libc.gnu_get_libc_version()
        libc.mallopt  # noqa: B018 (attribute lookup = symbol check)
    except (OSError, AttributeError):
        return None
    return libc


def keep_freed_memory() -> bool:
    """Applies the settings above; True if glibc accepted all three, False where there is no
    glibc (nothing is changed then)."""
    libc = _glibc()
    if libc is None:
        return False
    ok = [libc.mallopt(param, value) == 1
          for param, value in ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, -1), (M_ARENA_MAX, 1))]
    return all(ok)


def define_flag() -> None:
    """Defines `--keep_freed_memory` (absl, default on) for an entry point (train.py, eval.py);
    its `main` passes the value to `apply_on_cpu`."""
    from absl import flags

    flags.DEFINE_bool("keep_freed_memory", True, "CPU backend on glibc: reuse freed memory "
                      "across steps instead of re-faulting it (amstgcn_jax.host_malloc).")


def apply_on_cpu(enabled: bool) -> bool:
    """`keep_freed_memory()` when `enabled` and JAX's default backend is the CPU (accelerator
    hosts keep their step buffers on the device), logged when applied. Returns whether it was
    applied. Asking for the backend starts it, so a multi-process launch calls
    `sharding.maybe_initialize_distributed()` first."""
    if not enabled:
        return False
    import jax  # lazy: the caller sets XLA flags before the backend starts
    from absl import logging

    applied = jax.default_backend() == "cpu" and keep_freed_memory()
    if applied:
        logging.info("CPU backend: glibc malloc keeps freed memory for reuse "
                     "(--nokeep_freed_memory to turn off)")
    return applied
