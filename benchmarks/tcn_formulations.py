"""The temporal conv's formulations side by side, one ST-GCN block shape at a time.

    python benchmarks/tcn_formulations.py --batch 4 --threads 2 --malloc keep

Times `layers._TCN_IMPLS` (matmul: 9 stacked slices and one GEMM; conv: `lax.conv`, stride 2
as phase convs; fft: spectra along T) on the V-major NTU block shapes (V = 25, N·M = 2·batch;
64 ch. at T, 128 ch. T → T/2 and T/2, 256 ch. T/2 → T/4 and T/4), jit-compiled, interleaved
(A, B, C, A, ...): the forward alone and forward+backward (value and input/kernel gradients of
a fixed linear probe), median milliseconds. Each formulation's output is checked against the
matmul's first. The last line printed is one JSON object.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_step_benchmark as harness  # (same directory; needs the sys.path entry above)


def parse_args(argv=None):
    p = harness.layer_benchmark_parser(__doc__.split("\n\n")[0], "matmul,conv,fft")
    return p.parse_args(argv)


def block_shapes(frames: int):
    """name -> (channels, input frames, stride) of ST-GCN's temporal convs (in = out channels)."""
    half, quarter = (frames - 1) // 2 + 1, ((frames - 1) // 2) // 2 + 1
    return {f"64ch_T{frames}": (64, frames, 1), f"128ch_T{frames}_s2": (128, frames, 2),
            f"128ch_T{half}": (128, half, 1), f"256ch_T{half}_s2": (256, half, 2),
            f"256ch_T{quarter}": (256, quarter, 1)}


def main(argv=None):
    args = parse_args(argv)
    harness.start_layer_benchmark(args)
    import jax
    import jax.numpy as jnp
    import numpy as np

    from amstgcn_jax import layers

    impls = [name for name in args.impls.split(",") if name]
    rs = np.random.default_rng(0)
    result = {}
    for name, (c, t, stride) in block_shapes(args.frames).items():
        x = jnp.asarray(rs.standard_normal((25, 2 * args.batch, t, c)), jnp.float32)
        w = jnp.asarray(rs.standard_normal((9, 1, c, c)) * 0.05, jnp.float32)
        ref = layers._TCN_IMPLS["matmul"](x, w, stride, 2)
        probe = jnp.asarray(rs.standard_normal(ref.shape), jnp.float32)
        calls, max_diff = {}, {}
        for impl in impls:
            fn = layers._TCN_IMPLS[impl]
            forward = jax.jit(lambda x, w, fn=fn, s=stride: fn(x, w, s, 2))
            both = jax.jit(jax.value_and_grad(
                lambda x, w, fn=fn, s=stride, p=probe: jnp.sum(fn(x, w, s, 2) * p),
                argnums=(0, 1)))
            y = forward(x, w)
            max_diff[impl] = float(jnp.max(jnp.abs(y - ref)) / jnp.max(jnp.abs(ref)))
            if max_diff[impl] > 1e-5:
                raise SystemExit(f"{name}: {impl} differs from the matmul by {max_diff[impl]:.1e}")
            jax.block_until_ready(both(x, w))  # compile
            calls[(impl, "fwd")] = lambda f=forward, x=x, w=w: jax.block_until_ready(f(x, w))
            calls[(impl, "fwd_bwd")] = lambda f=both, x=x, w=w: jax.block_until_ready(f(x, w))
        times = harness.timed_rounds(calls, args.iters)
        result[name] = {f"{impl}_{mode}_ms": round(1e3 * statistics.median(sec), 1)
                        for (impl, mode), sec in times.items()}
        result[name]["max_rel_diff_vs_matmul"] = max_diff
        print(f"{name:16s} " + "  ".join(f"{impl} fwd {result[name][f'{impl}_fwd_ms']:7.1f} / "
                                         f"fwd+bwd {result[name][f'{impl}_fwd_bwd_ms']:7.1f} ms"
                                         for impl in impls), flush=True)
    harness.emit_layer_benchmark(args, jax.__version__, result)


if __name__ == "__main__":
    main()
