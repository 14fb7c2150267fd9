"""The non-local block's attention formulations side by side, on AM-STGCN's default shape.

    python benchmarks/attention_formulations.py --batch 4 --threads 2 --malloc keep
    python benchmarks/attention_formulations.py --dataset kinetics --frames 150 --batch 4

Times the attention core of the spatio-temporal non-local block after ConvT of layer 3 (the
`am_stgcn` default): 2·batch sequences (batch clips of 2 persons) of T·V query positions against
⌈T/2⌉·⌈V/2⌉ pooled keys, head dim 32 (64 channels, `inner_ratio` 0.5). Formulations
(`--impls`): "reference" (`attention._attend_reference`, autodiff of the full softmax), "xla"
(`jax.nn.dot_product_attention`'s XLA path), and "chunkedN" (`attention._attend_chunked` with a
budget of 2^N weights per block; the CPU default is `attention.CPU_CHUNK_ELEMENTS`). Each is
jit-compiled, checked against the reference, and timed interleaved (A, B, C, A, ...): the
forward alone and forward+backward (value and q/k/v gradients of a fixed linear probe), median
milliseconds. The last line printed is one JSON object.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_step_benchmark as harness  # (same directory; needs the sys.path entry above)

JOINTS = {"ntu": 25, "kinetics": 18}
HEAD_DIM = 32


def parse_args(argv=None):
    p = harness.layer_benchmark_parser(__doc__.split("\n\n")[0], "reference,xla,chunked20,"
                                       "chunked21,chunked22")
    p.add_argument("--dataset", choices=sorted(JOINTS), default="ntu")
    return p.parse_args(argv)


def attention_shape(dataset: str, frames: int, batch: int) -> tuple[int, int, int]:
    """(sequences, query positions, pooled keys) of the ConvT non-local block of layer 3 (before
    the first stride-2 block, so at the input's T)."""
    v = JOINTS[dataset]
    return 2 * batch, frames * v, -(-frames // 2) * -(-v // 2)


def attend_fn(impl: str):
    """q, k, v -> out for one formulation name."""
    from amstgcn_jax import attention

    if impl == "reference":
        return lambda q, k, v: attention._attend_reference(q, k, v)[0]
    if impl == "xla":
        return lambda q, k, v: attention._attend_fused(q, k, v, "xla")
    if impl.startswith("chunked") and impl[len("chunked"):].isdigit():
        budget = 2 ** int(impl[len("chunked"):])
        return lambda q, k, v: attention._attend_chunked(q, k, v, budget)
    raise SystemExit(f"unknown formulation {impl!r}: reference | xla | chunkedN (budget 2^N)")


def main(argv=None):
    args = parse_args(argv)
    harness.start_layer_benchmark(args)
    import jax
    import jax.numpy as jnp
    import numpy as np

    impls = [name for name in args.impls.split(",") if name]
    b, p, s = attention_shape(args.dataset, args.frames, args.batch)
    rs = np.random.default_rng(0)
    # Logits of order 1-10, as in a trained block (the scale only changes the exp's inputs).
    q, k = (jnp.asarray(rs.standard_normal((b, n, HEAD_DIM)) * 0.3, jnp.float32) for n in (p, s))
    v = jnp.asarray(rs.standard_normal((b, s, HEAD_DIM)), jnp.float32)
    probe = jnp.asarray(rs.standard_normal((b, p, HEAD_DIM)), jnp.float32)
    fns = {impl: attend_fn(impl) for impl in impls}
    forwards = {impl: jax.jit(fn) for impl, fn in fns.items()}
    # the reference's compiled forward serves both the check and the timing when it is timed
    ref = forwards.get("reference", jax.jit(attend_fn("reference")))(q, k, v)
    calls, max_diff = {}, {}
    for impl, fn in fns.items():
        forward = forwards[impl]
        both = jax.jit(jax.value_and_grad(lambda q, k, v, fn=fn: jnp.sum(fn(q, k, v) * probe),
                                          argnums=(0, 1, 2)))
        y = forward(q, k, v)
        max_diff[impl] = float(jnp.max(jnp.abs(y - ref)) / jnp.max(jnp.abs(ref)))
        if max_diff[impl] > 1e-5:
            raise SystemExit(f"{impl} differs from the reference by {max_diff[impl]:.1e}")
        jax.block_until_ready(both(q, k, v))  # compile
        calls[(impl, "fwd")] = lambda f=forward: jax.block_until_ready(f(q, k, v))
        calls[(impl, "fwd_bwd")] = lambda f=both: jax.block_until_ready(f(q, k, v))
    times = harness.timed_rounds(calls, args.iters)
    name = f"{args.dataset}_T{args.frames}_{b}x{p}x{s}"
    result = {f"{impl}_{mode}_ms": round(1e3 * statistics.median(sec), 1)
              for (impl, mode), sec in times.items()}
    result["max_rel_diff_vs_reference"] = max_diff
    for impl in impls:
        print(f"{name}  {impl:10s} fwd {result[f'{impl}_fwd_ms']:8.1f} / fwd+bwd "
              f"{result[f'{impl}_fwd_bwd_ms']:8.1f} ms", flush=True)
    harness.emit_layer_benchmark(args, jax.__version__, {name: result})


if __name__ == "__main__":
    main()
