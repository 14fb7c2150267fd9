"""Shared test set-up: 8 fake CPU devices, strict numerics, and the ../shared fixture root."""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

# Must happen before jax is imported anywhere: data-parallel tests need several devices.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# train.py / eval.py / predict started by tests keep their compilation cache
# (amstgcn_jax.compile_cache) under a throw-away XDG cache, not in the user's ~/.cache.
_CACHE_HOME = tempfile.mkdtemp(prefix="amstgcn-test-xdg-cache-")
os.environ["XDG_CACHE_HOME"] = _CACHE_HOME
atexit.register(shutil.rmtree, _CACHE_HOME, ignore_errors=True)

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")
jax.config.update("jax_numpy_rank_promotion", "raise")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("AMSTGCN_SHARED_DIR", REPO_ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only ../shared tree (paper, parity fixtures, real data samples)."""
    if not SHARED_DIR.is_dir():
        pytest.skip(f"../shared is absent ({SHARED_DIR}): real-data and parity fixtures "
                    "unavailable")
    return SHARED_DIR
