"""The machine's ceilings for the train step: GEMM GFLOP/s per framework and dtype, and the
memory bandwidth of the elementwise and BatchNorm-statistics passes.

The model's FLOPs are ~70% the (9, 1) temporal conv. Written as one GEMM per block
(`layers._tcn_matmul`, CPU training's formulation before the FFT form replaced it in round 5,
and still bf16's) it is forward (M, 9C) @ (9C, C), input gradient (M, C) @ (C, 9C) and weight
gradient (9C, M) @ (M, C) with M = V·N·M·T. This script times exactly those shapes for NTU
(T=300 halved at the stride-2 blocks), plus a square 2048³ GEMM, in JAX (jit), numpy and
PyTorch (optional), interleaved, and prints the best achievable throughput: the roofline that
the model-FLOPs rates of `train_step_benchmark.py` should be read against.

    python benchmarks/gemm_ceiling.py --batch 4 --threads 2 --malloc keep

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_step_benchmark as harness  # (same directory; needs the sys.path entry above)

# (channels, frames) of the temporal-conv GEMMs of ST-GCN at T=300.
TCN_SHAPES = ((64, 300), (128, 150), (256, 75))
BANDWIDTH_REPEATS = 10


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=4, help="clips (NTU: 2 persons, 25 joints)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    p.add_argument("--malloc", choices=("default", "keep"), default="default")
    p.add_argument("--iters", type=int, default=5, help="interleaved timed rounds")
    p.add_argument("--dtypes", default="float32,bfloat16")
    p.add_argument("--pause-s", type=float, default=0.3,
                   help="idle time before each timed call (other libraries' threads stop "
                        "spinning)")
    p.add_argument("--skip-torch", action="store_true")
    p.add_argument("--out", default=None, help="also append the JSON line to this file")
    return p.parse_args(argv)


def gemm_cases(batch: int):
    """name -> (m, k, n, layout): C = A @ B, A (m, k), B (k, n); layout 'nn' or 'tn' (A stored
    (k, m) and transposed, as the weight gradient reads the stacked slices)."""
    cases = {"square_2048": (2048, 2048, 2048, "nn")}
    for c, t in TCN_SHAPES:
        m = 25 * 2 * batch * t
        cases[f"tcn{c}_fwd"] = (m, 9 * c, c, "nn")
        cases[f"tcn{c}_dinput"] = (m, c, 9 * c, "nn")
        cases[f"tcn{c}_dweight"] = (9 * c, m, c, "tn")
    return cases


def build_runners(args, cases):
    """{(framework, dtype, case): zero-arg callable that runs the GEMM once, synchronously}."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    rs = np.random.default_rng(0)
    runners = {}
    dtypes = [d for d in args.dtypes.split(",") if d]
    for name, (m, k, n, layout) in cases.items():
        a_np = rs.standard_normal((k, m) if layout == "tn" else (m, k)).astype(np.float32)
        b_np = rs.standard_normal((k, n)).astype(np.float32)
        for dt in dtypes:
            a, b = jnp.asarray(a_np, dt), jnp.asarray(b_np, dt)
            fn = jax.jit((lambda a, b: a.T @ b) if layout == "tn" else (lambda a, b: a @ b))
            runners[("jax", dt, name)] = (
                lambda fn=fn, a=a, b=b: fn(a, b).block_until_ready())
        if "float32" in dtypes:  # (numpy has no bfloat16)
            runners[("numpy", "float32", name)] = (
                (lambda a=a_np, b=b_np: a.T @ b) if layout == "tn"
                else (lambda a=a_np, b=b_np: a @ b))
        if not args.skip_torch:
            import os

            import torch

            torch.set_num_threads(len(os.sched_getaffinity(0)))
            for dt in dtypes:
                tdt = getattr(torch, dt)
                a, b = torch.from_numpy(a_np).to(tdt), torch.from_numpy(b_np).to(tdt)
                runners[("torch", dt, name)] = (
                    (lambda a=a, b=b: a.T @ b) if layout == "tn" else (lambda a=a, b=b: a @ b))
    return runners


def bandwidth_runners(batch: int):
    """Memory-bound passes on one NTU 64-channel activation (V, N·M, T, C) = (25, 2B, 300, 64),
    15 MB at batch 4: a fused BN-apply + ReLU (read + write) and the per-channel BN statistics
    (read)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    x = jnp.asarray(np.random.default_rng(1).standard_normal((25, 2 * batch, 300, 64)),
                    jnp.float32)
    scale, shift = jnp.ones(64), jnp.zeros(64)
    apply = jax.jit(lambda x, s, b: jnp.maximum(x * s + b, 0.0))
    stats = jax.jit(lambda x: (x.mean((0, 1, 2)), (x * x).mean((0, 1, 2))))
    nbytes = x.size * 4

    def repeated(fn):  # sub-millisecond ops: 10 back-to-back calls per timing, so that the
        def run():     # worker threads' wake-up after the pause is amortised
            for _ in range(BANDWIDTH_REPEATS):
                out = fn()
            jax.block_until_ready(out)
        return run

    return {"bn_apply_relu": (repeated(lambda: apply(x, scale, shift)), 2 * nbytes),
            "bn_statistics": (repeated(lambda: stats(x)), nbytes)}


def main(argv=None):
    args = parse_args(argv)
    harness.configure_process(argparse.Namespace(device="cpu", threads=args.threads,
                                                 triton_gemm=False, malloc=args.malloc))
    import jax

    cases = gemm_cases(args.batch)
    runners = build_runners(args, cases)
    bw = bandwidth_runners(args.batch)
    calls = runners | {name: fn for name, (fn, _) in bw.items()}
    for fn in calls.values():
        fn()  # compile / first call
    # OpenBLAS and OpenMP worker threads busy-wait for up to ~0.2 s after a call; the pause
    # keeps one library's spinning off the next one's timing.
    times = harness.timed_rounds(calls, args.iters, pause_s=args.pause_s)
    gemm = {}
    for (fw, dt, name), sec in ((k, v) for k, v in times.items() if isinstance(k, tuple)):
        m, k, n, _ = cases[name]
        med = statistics.median(sec)
        gemm.setdefault(name, {})[f"{fw}_{dt}"] = round(2 * m * k * n / med / 1e9, 1)
    bandwidth = {name: round(BANDWIDTH_REPEATS * nbytes / statistics.median(times[name]) / 1e9, 1)
                 for name, (_, nbytes) in bw.items()}
    best = max(v for row in gemm.values() for key, v in row.items() if key.endswith("float32"))
    result = {"host": {"cpu": harness._cpu_name(), "threads": args.threads,
                       "malloc": args.malloc},
              "versions": {"jax": jax.__version__}, "batch": args.batch,
              "gemm_gflop_per_s": gemm, "bandwidth_gb_per_s": bandwidth,
              "float32_gemm_ceiling_gflop_per_s": best}
    if not args.skip_torch:
        import torch

        result["versions"]["torch"] = torch.__version__
    columns = sorted({c for row in gemm.values() for c in row})
    print(f"{'GEMM (GFLOP/s)':18s}" + "".join(f"{c:>16s}" for c in columns))
    for name, row in gemm.items():
        print(f"{name:18s}" + "".join(f"{row.get(c, float('nan')):16.1f}" for c in columns))
    print("memory-bound passes (GB/s): "
          + ", ".join(f"{k} {v:.1f}" for k, v in bandwidth.items()))
    harness.emit_json(result, args.out)


if __name__ == "__main__":
    main()
