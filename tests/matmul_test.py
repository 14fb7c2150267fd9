"""`matmul`: jnp.dot's values and gradients, and a backward XLA:CPU runs without transposes."""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from amstgcn_jax import matmul as matmul_module
from amstgcn_jax.matmul import matmul


def _rand(key, shape, dtype=jnp.float32):
    return jax.random.normal(jax.random.key(key), shape, jnp.float32).astype(dtype)


@pytest.fixture
def written_out(monkeypatch):
    """The written-out VJP on any backend (switched off, `matmul` is `jnp.dot` itself)."""
    monkeypatch.setattr(matmul_module, "WRITTEN_OUT_VJP", True)


@pytest.mark.parametrize("batch_major", [False, True])
@pytest.mark.parametrize("shape", [(7, 5), (3, 7, 5), (2, 3, 4, 5), (2, 9, 3, 5)])
def test_values_and_gradients_are_jnp_dots(written_out, shape, batch_major):
    x, kernel = _rand(0, shape), _rand(1, (shape[-1], 6))
    cot = _rand(2, shape[:-1] + (6,))

    ours = functools.partial(matmul, batch_major=batch_major)

    def loss(dot, x, kernel):
        # a strided slice as the operand, as `Conv1x1` with a stride passes
        return jnp.sum(dot(x[..., ::2, :] if x.ndim > 2 else x, kernel) ** 2
                       * (cot[..., ::2, :] if x.ndim > 2 else cot))

    np.testing.assert_allclose(ours(x, kernel), jnp.dot(x, kernel), rtol=1e-6, atol=1e-6)
    got = jax.grad(loss, argnums=(1, 2))(ours, x, kernel)
    want = jax.grad(loss, argnums=(1, 2))(jnp.dot, x, kernel)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def test_bfloat16_gradients_keep_their_dtypes(written_out):
    x, kernel = _rand(0, (4, 6, 8), jnp.bfloat16), _rand(1, (8, 3), jnp.bfloat16)
    dx, dk = jax.grad(lambda x, k: jnp.sum(matmul(x, k).astype(jnp.float32) ** 2),
                      argnums=(0, 1))(x, kernel)
    wx, wk = jax.grad(lambda x, k: jnp.sum(jnp.dot(x, k).astype(jnp.float32) ** 2),
                      argnums=(0, 1))(x, kernel)
    assert dx.dtype == dk.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(dx, np.float32), np.asarray(wx, np.float32),
                               rtol=0.02, atol=0.05)
    np.testing.assert_allclose(np.asarray(dk, np.float32), np.asarray(wk, np.float32),
                               rtol=0.02, atol=0.05)


def test_kernel_gradient_reads_a_graph_aggregated_cotangent_without_transposing_it():
    """The 2s-AGCN NVTC unit's pattern: per-sample rows `(N, V, T·C)` out of a joint
    aggregation, then the 1×1 conv's kernel gradient. With autodiff XLA:CPU fed that GEMM a
    transposed copy of the whole `(rows, C)` cotangent; written out it reads it as stored."""
    if jax.default_backend() != "cpu":
        pytest.skip("the XLA:CPU program is the subject")
    x, kernel = _rand(0, (2, 5, 12, 8)), _rand(1, (8, 16))
    graph_NVV, cot = _rand(2, (2, 5, 5)), _rand(3, (2, 5, 12 * 16))

    def loss(x, kernel, graph_NVV):
        rows = matmul(x, kernel, batch_major=True).reshape(2, 5, -1)
        y = lax.dot_general(graph_NVV, rows, (((1,), (1,)), ((0,), (0,))))
        return jnp.sum(y * cot)

    text = jax.jit(jax.grad(loss, argnums=(0, 1, 2))).lower(x, kernel, graph_NVV).compile()
    assert re.search(r"= \S+ dot\(", text.as_text())
    assert not re.findall(r"= \S+ transpose\(", text.as_text())


@pytest.mark.parametrize("batch_major, spec", [(True, ("data",)), (False, (None, "data"))])
def test_gradients_stay_sharded_over_the_batch_axis(batch_major, spec):
    """Data parallelism: with x's batch axis sharded (leading with `batch_major`, second as in
    `x_VNTC` without), the input gradient keeps that sharding and the values are unchanged."""
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    mesh = Mesh(np.array(jax.devices()[:4]), ("data",))
    shape = (8, 3, 5, 6) if batch_major else (5, 8, 3, 6)
    x, kernel = _rand(0, shape), _rand(1, (6, 4))
    cot = _rand(2, shape[:-1] + (4,))

    def loss(x, kernel, cot):
        return jnp.sum(matmul(x, kernel, batch_major=batch_major) * cot)

    grads = jax.jit(jax.grad(loss, argnums=(0, 1)))
    want = grads(x, kernel, cot)
    batch = NamedSharding(mesh, P(*spec))
    got = grads(jax.device_put(x, batch), kernel, jax.device_put(cot, batch))
    assert got[0].sharding.spec == P(*spec)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
