"""host_malloc: large blocks come from the heap and stay there after free (subprocesses, so
the test runner's own allocator is untouched)."""

import subprocess
import sys
import textwrap

import pytest

from amstgcn_jax import host_malloc

pytestmark = pytest.mark.skipif(host_malloc._glibc() is None, reason="needs Linux with glibc")

_PROBE = textwrap.dedent("""
    import ctypes, json, sys
    import numpy as np
    from amstgcn_jax import host_malloc

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
            "fordblks", "keepcost")]

    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = MallInfo2
    applied = host_malloc.keep_freed_memory() if sys.argv[1] == "keep" else None
    before = libc.mallinfo2()
    block = np.ones(64 << 20, np.uint8)  # 64 MiB: above glibc's largest mmap threshold
    during = libc.mallinfo2()
    del block
    after = libc.mallinfo2()
    print(json.dumps({"applied": applied,
                      "mmapped_growth": during.hblkhd - before.hblkhd,
                      "heap_growth": during.arena - before.arena,
                      "heap_kept_after_free": after.arena - before.arena}))
""")


def _probe(mode: str) -> dict:
    import json

    out = subprocess.run([sys.executable, "-c", _PROBE, mode], check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_default_glibc_maps_large_blocks_and_keep_freed_memory_heaps_and_keeps_them():
    default = _probe("default")
    assert default["mmapped_growth"] >= 64 << 20  # the per-step fresh mapping we avoid
    kept = _probe("keep")
    assert kept["applied"] is True
    assert kept["mmapped_growth"] < 1 << 20
    assert kept["heap_growth"] >= 64 << 20
    assert kept["heap_kept_after_free"] >= 64 << 20  # not trimmed: the next step reuses it


def test_apply_on_cpu_respects_the_switch():
    assert host_malloc.apply_on_cpu(False) is False
