"""`matmul`: a GEMM over the last axis (the 1×1 convs' and projections' products) whose
backward XLA:CPU runs without transposing the output cotangent."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax


@jax.custom_vjp
def _matmul_rows(x, kernel_IO):
    return jnp.dot(x, kernel_IO)


def _matmul_rows_fwd(x, kernel_IO):
    return jnp.dot(x, kernel_IO), (x, kernel_IO)


def _matmul_rows_bwd(residuals, dy):
    x, kernel_IO = residuals
    # dW = xᵀ dy, contracting the rows of both as stored. For a 2-D x XLA:CPU runs that
    # without copies; over several row axes it transposes x (2s-AGCN's NTU step +16% when its
    # 4-D x came here), but merging them here could put the sharded batch axis below an
    # unsharded one, which the SPMD partitioner answers by replicating x and its gradient.
    rows = tuple(range(x.ndim - 1))
    dkernel = lax.dot_general(x, dy, ((rows, rows), ((), ())))
    dx = lax.dot_general(dy, kernel_IO, (((dy.ndim - 1,), (1,)), ((), ())))
    return dx.astype(x.dtype), dkernel.astype(kernel_IO.dtype)


_matmul_rows.defvjp(_matmul_rows_fwd, _matmul_rows_bwd)

# Whether `matmul` writes out its VJP: True, False, or None (on the CPU backend only).
WRITTEN_OUT_VJP = None


def matmul(x, kernel_IO, batch_major: bool = False):
    """`x @ kernel_IO` over the last axis (a 1×1 conv's GEMM), with the VJP written out on CPU.

    The values and gradients are `jnp.dot`'s. Why: autodiff forms the kernel gradient as
    `(dyᵀ x)ᵀ`, and XLA:CPU then feeds its GEMM `dy` transposed, a copy it fuses with whatever
    transpose produced `dy`: for 2s-AGCN's θ/φ projections, a 5-D transpose of the attention
    logits' cotangent reading single floats (~100 ms for one 23-MB tensor of block 7 in the NTU
    T=300 train step). Written as `x_rowsᵀ dy_rows` with 2-D rows, the GEMM reads both as
    stored (2s-AGCN's step −10%, benchmarks/README.md "Round 20").

    `batch_major=True` says x's leading axis is the batch (`x_NTVC`, `x_NVTC`): its leading
    axes are then merged into those 2-D rows. Otherwise they are not (x over several row axes
    costs XLA:CPU a transpose of x in the kernel gradient): merging a sharded batch axis below
    an unsharded one (`x_VNTC`) would make the SPMD partitioner replicate x and its gradient.
    """
    on = WRITTEN_OUT_VJP if WRITTEN_OUT_VJP is not None else jax.default_backend() == "cpu"
    if not on:
        return jnp.dot(x, kernel_IO)
    if batch_major and x.ndim > 2:
        y = _matmul_rows(x.reshape(-1, x.shape[-1]), kernel_IO)
        return y.reshape(*x.shape[:-1], y.shape[-1])
    return _matmul_rows(x, kernel_IO)
