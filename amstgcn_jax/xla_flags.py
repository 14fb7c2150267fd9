"""XLA flags the entry points set before JAX starts its backend."""

import os

# XLA:GPU's Triton GEMM fusion aborts while compiling this model with jax 0.11.2 on an H100
# ("triton_tiling_propagation.cc Check failed: subdim_size_accumulator == dim_size",
# openxla/xla#47381); with it off the GEMMs go to cuBLAS. Harmless on CPU.
GPU_WORKAROUNDS = ("--xla_gpu_enable_triton_gemm=false",)


def apply_gpu_workarounds() -> None:
    """Adds `GPU_WORKAROUNDS` to XLA_FLAGS unless the user already set those flags."""
    flags = os.environ.get("XLA_FLAGS", "")
    for flag in GPU_WORKAROUNDS:
        if flag.split("=")[0] not in flags:
            flags = f"{flags} {flag}".strip()
    os.environ["XLA_FLAGS"] = flags
