"""JAX's persistent compilation cache for the command-line tools (train.py, eval.py, predict).

Every run of `train.py` compiles the train and eval steps again: 10-17 s for the NTU T=300
train step on the 2-core CPU, ~25 s on an H100 (benchmarks/README.md). JAX can keep compiled
executables on disk, keyed by the computation, its compile options and XLA flags, the jax and
jaxlib versions and the device; a later process with the same model, shapes and flags loads
them instead of compiling. Measured on the CPU (NTU T=300 batch-4 train step, jax 0.10.2):
16.6 s from lowering to a ready executable without the cache, 4.2 s with it, the same loss to
the last digit (a loaded executable is the compiled one).

Only the tools turn it on (`--compilation_cache_dir`, default `DEFAULT_DIR`; "" turns it
off): the library never writes to disk on import, and the benchmarks report compile time
without it. A directory the user already gave JAX (`JAX_COMPILATION_CACHE_DIR`, or
`jax.config` in their own launcher) wins over the flag. JAX caches only computations that took
at least `jax_persistent_cache_min_compile_time_secs` (1 s) to compile. The cache is not
pruned: JAX evicts least-recently-used entries only when `JAX_COMPILATION_CACHE_MAX_SIZE` is
set, and that needs the `filelock` package. Only process 0 of a multi-host job writes. An entry
JAX cannot read (e.g. one cut short by a killed process) costs a warning and a normal compile,
never a wrong result; JAX does not rewrite it, so delete the directory if the warning repeats.
"""

from __future__ import annotations

import os

from absl import logging


def default_dir() -> str:
    """`$XDG_CACHE_HOME/amstgcn_jax/jax_cache`, `~/.cache/...` when XDG_CACHE_HOME is unset."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "amstgcn_jax", "jax_cache")


DEFAULT_DIR = default_dir()


def define_flag() -> None:
    """Defines `--compilation_cache_dir` (absl) for an entry point (train.py, eval.py, predict);
    its `main` passes the value to `enable`."""
    from absl import flags

    flags.DEFINE_string(
        "compilation_cache_dir", DEFAULT_DIR,
        "Keep compiled XLA executables here, so a rerun with the same model, shapes and flags "
        "loads them instead of compiling (amstgcn_jax.compile_cache); '' turns it off. "
        "JAX_COMPILATION_CACHE_DIR, if set, wins.")


def enable(directory: str | None) -> str | None:
    """Points JAX's persistent compilation cache at `directory` (`~` expanded, created on the
    first write by JAX) unless JAX already has one, and logs the directory in use; returns it,
    or None when the cache is off (`directory` empty or None and none configured). Call before
    the first compilation: JAX opens the cache then."""
    import jax  # lazy, as in host_malloc: callers set XLA flags before the backend starts

    path = jax.config.jax_compilation_cache_dir
    if not path and directory:
        path = os.path.abspath(os.path.expanduser(directory))
        jax.config.update("jax_compilation_cache_dir", path)
    if path:
        logging.info("JAX compilation cache: %s (--compilation_cache_dir= turns it off)", path)
    return path or None
