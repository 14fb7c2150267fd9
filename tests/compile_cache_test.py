"""compile_cache: train.py keeps its compiled steps on disk and a rerun loads them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from amstgcn_jax import compile_cache

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_cache_configured():
    """`enable` changes the global jax config: restore it (nothing compiles in between)."""
    before = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", None)
    yield
    jax.config.update("jax_compilation_cache_dir", before)


def test_enable_sets_the_directory_unless_one_is_configured(no_cache_configured, tmp_path):
    assert compile_cache.enable("") is None and compile_cache.enable(None) is None
    assert jax.config.jax_compilation_cache_dir is None
    assert compile_cache.enable(str(tmp_path / "c")) == str(tmp_path / "c")
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "c")
    # a directory JAX already has (JAX_COMPILATION_CACHE_DIR, the user's launcher) wins
    assert compile_cache.enable(str(tmp_path / "other")) == str(tmp_path / "c")
    assert compile_cache.enable("") == str(tmp_path / "c")


def test_default_dir_follows_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compile_cache.default_dir() == str(tmp_path / "amstgcn_jax" / "jax_cache")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert compile_cache.default_dir().startswith(os.path.expanduser("~"))


def test_a_rerun_of_train_py_loads_the_compiled_steps(tmp_path):
    cache = tmp_path / "cache"
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="",
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    env.pop("JAX_COMPILATION_CACHE_DIR", None)

    def run(workdir):
        out = subprocess.run(
            [sys.executable, "train.py", "--config", "configs/synthetic.py:tiny",
             "--config.num_epochs=1", "--workdir", str(workdir),
             f"--compilation_cache_dir={cache}"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
        assert out.returncode == 0, out.stderr[-3000:]
        assert f"JAX compilation cache: {cache}" in out.stderr
        records = map(json.loads, (workdir / "metrics.jsonl").read_text().splitlines())
        return [r["train/loss"] for r in records if "train/loss" in r]

    first = run(tmp_path / "a")
    entries = sorted(p.name for p in cache.iterdir())
    assert any(name.startswith("jit_train_step") for name in entries), entries
    second = run(tmp_path / "b")
    # every executable the rerun needed was there: nothing new was compiled and written
    assert sorted(p.name for p in cache.iterdir()) == entries
    assert first == second and len(first) > 0
