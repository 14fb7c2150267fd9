"""The graph conv's formulations side by side, one ST-GCN block shape at a time.

    python benchmarks/gcn_formulations.py --batch 4 --threads 2 --malloc keep

Times `layers.GraphConv` on V-major activations (`x_VNTC`) with `impl="factored"` (dense GEMMs,
aggregating on the narrower side) and `impl="sparse"` (the adjacency's non-zeros only,
`amstgcn_jax.graph_sparse`) on the NTU block shapes (V = 25, N·M = 2·batch; Cin -> Cout at T:
3 -> 64 and 64 -> 64 at T, 64 -> 128 at T, 128 -> 128 and 128 -> 256 at T/2, 256 -> 256 at
T/4), jit-compiled, interleaved (A, B, A, ...): forward+backward (value and gradients w.r.t.
the params, the input and the edge-importance mask of a fixed linear probe), median
milliseconds, and the compile seconds of that function. Each formulation's forward is checked
against the factored one first. The last line printed is one JSON object.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_step_benchmark as harness  # (same directory; needs the sys.path entry above)


def parse_args(argv=None):
    p = harness.layer_benchmark_parser(__doc__.split("\n\n")[0], "factored,sparse")
    p.add_argument("--blocks", default=None, help="comma-separated `block_shapes` names "
                   "(default: all)")
    return p.parse_args(argv)


def block_shapes(frames: int):
    """name -> (in channels, out channels, frames) of ST-GCN's graph convs (before the stride)."""
    half, quarter = (frames - 1) // 2 + 1, ((frames - 1) // 2) // 2 + 1
    return {f"3to64_T{frames}": (3, 64, frames), f"64_T{frames}": (64, 64, frames),
            f"64to128_T{frames}": (64, 128, frames), f"128_T{half}": (128, 128, half),
            f"128to256_T{half}": (128, 256, half), f"256_T{quarter}": (256, 256, quarter)}


def main(argv=None):
    args = parse_args(argv)
    harness.start_layer_benchmark(args)
    import jax
    import jax.numpy as jnp
    import numpy as np

    from amstgcn_jax import graph, graph_sparse
    from amstgcn_jax.layers import GraphConv

    impls = [name for name in args.impls.split(",") if name]
    adj = graph.build_adjacency("ntu-rgb+d")
    support = graph_sparse.support_of(adj)
    k, v, _ = adj.shape
    rs = np.random.default_rng(0)
    result = {}
    shapes = block_shapes(args.frames)
    names = args.blocks.split(",") if args.blocks else list(shapes)
    for name in names:
        c_in, c_out, t = shapes[name]
        x = jnp.asarray(rs.standard_normal((v, 2 * args.batch, t, c_in)), jnp.float32)
        mask = jnp.asarray(rs.uniform(0.5, 1.5, adj.shape), jnp.float32)
        probe = jnp.asarray(rs.standard_normal((v, 2 * args.batch, t, c_out)), jnp.float32)
        calls, max_diff, compile_s, ref = {}, {}, {}, None
        for impl in impls:
            layer = GraphConv(c_out, k, impl=impl, layout="VNTC",
                              support=support if impl == "sparse" else None)
            params = layer.init(jax.random.key(0), x, adj)["params"]
            forward = jax.jit(lambda p, x, m, layer=layer: layer.apply({"params": p}, x, adj * m))
            y = forward(params, x, mask)
            ref = y if ref is None else ref
            max_diff[impl] = float(jnp.max(jnp.abs(y - ref)) / jnp.max(jnp.abs(ref)))
            if max_diff[impl] > 1e-5:
                raise SystemExit(f"{name}: {impl} differs from {impls[0]} by "
                                 f"{max_diff[impl]:.1e}")
            both = jax.jit(jax.value_and_grad(
                lambda p, x, m, probe, forward=forward: jnp.sum(forward(p, x, m) * probe),
                argnums=(0, 1, 2)))
            t0 = time.perf_counter()
            compiled = both.lower(params, x, mask, probe).compile()
            compile_s[impl] = round(time.perf_counter() - t0, 2)
            calls[impl] = lambda f=compiled, p=params, x=x, m=mask, probe=probe: (
                jax.block_until_ready(f(p, x, m, probe)))
            calls[impl]()
        times = harness.timed_rounds(calls, args.iters)
        result[name] = {f"{impl}_fwd_bwd_ms": round(1e3 * statistics.median(sec), 1)
                        for impl, sec in times.items()}
        result[name]["compile_s"] = compile_s
        result[name]["max_rel_diff"] = max_diff
        print(f"{name:16s} " + "  ".join(
            f"{impl} {result[name][f'{impl}_fwd_bwd_ms']:7.1f} ms (compile {compile_s[impl]} s)"
            for impl in impls), flush=True)
    harness.emit_layer_benchmark(args, jax.__version__, result)


if __name__ == "__main__":
    main()
