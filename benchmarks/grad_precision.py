"""float32 gradients of each execution formulation against a float64 computation (one step).

    python benchmarks/grad_precision.py --seeds 0-8     # configs/synthetic.py's model
    python benchmarks/grad_precision.py --config-arg variant=stgcn --batch 8

Builds the model of `configs/synthetic.py` (or `--config-arg`), takes the cross-entropy
gradient of one training-mode forward pass on a fixed random batch at the initial parameters,
once in float64 and once in float32 per `activation_layout` / `tcn_impl`, and prints, per
formulation and seed, the largest |g32 − g64| / max|g64| over the conv kernels (biases that feed
a BatchNorm have exactly-zero gradients and are left out), then per formulation the number of
seeds at float32 round-off (< 1e-5) and the median. The last line is one JSON object.

Read the errors per seed, not one seed alone: at the upstream initialisation the gradient is
discontinuous at the scale of float32 rounding (a ReLU input or a max-pool pair within rounding
of a tie flips), so any float32 formulation lands on the other side of such a kink now and then
and its error jumps to 1e-3-1e-2. Those jumps are the same event in every formulation that hits
it (identical errors, the same kernel), not a less accurate formulation (benchmarks/README.md,
"Gradient precision").
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FORMULATIONS = {f"{layout} {tcn}": {"activation_layout": layout, "tcn_impl": tcn}
                for layout in ("VNTC", "NTVC") for tcn in ("matmul", "conv", "fft")}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config-arg", default=None, help="configs/synthetic.py argument string")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seeds", default="0", help="seeds: '3', '0,4,7' or a range '0-8'")
    args = p.parse_args(argv)
    lo, _, hi = args.seeds.partition("-")
    seeds = (list(range(int(lo), int(hi) + 1)) if hi
             else [int(v) for v in args.seeds.split(",")])

    import jax

    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_platforms", "cpu")
    from configs import synthetic

    config = synthetic.get_config(args.config_arg)
    kwargs = {k: v for k, v in dict(config.model).items() if v is not None}
    result = {name: {} for name in FORMULATIONS}
    for seed in seeds:
        for name, (error, worst) in seed_errors(config, kwargs, seed, args.batch).items():
            result[name][seed] = {"max_rel_error": error, "worst": worst}
            print(f"seed {seed} {name:11s} max |g32 - g64| / max|g64| over kernels: "
                  f"{error:.2e} ({worst})", flush=True)
    summary = {}
    for name, per_seed in result.items():
        errors = sorted(r["max_rel_error"] for r in per_seed.values())
        summary[name] = {"seeds_at_round_off": sum(e < 1e-5 for e in errors),
                         "median": errors[len(errors) // 2], "max": errors[-1]}
        print(f"{name:11s} at round-off (< 1e-5) for {summary[name]['seeds_at_round_off']} of "
              f"{len(errors)} seeds; median {summary[name]['median']:.2e}, "
              f"max {summary[name]['max']:.2e}")
    print(json.dumps({"config_arg": args.config_arg, "batch": args.batch, "seeds": seeds,
                      "summary": summary, "formulations": result}))


def seed_errors(config, kwargs, seed, batch):
    """{formulation: (max relative kernel-gradient error, worst kernel)} for one seed."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from amstgcn_jax.model import get_model

    rs = np.random.default_rng(seed)
    x = rs.standard_normal((batch, 2, config.data.window, 25, 3))
    labels = jnp.asarray(rs.integers(0, config.model.num_classes, batch), jnp.int32)
    init = get_model(**kwargs).init({"params": jax.random.key(seed)},
                                    jnp.asarray(x, jnp.float32), train=False)

    def grads(dtype, **extra):
        model = get_model(**(kwargs | {"dtype": dtype} | extra))
        variables = jax.tree.map(lambda a: a.astype(dtype), init)

        def loss(params):
            (logits, _), _ = model.apply({"params": params,
                                          "batch_stats": variables["batch_stats"]},
                                         jnp.asarray(x, dtype), train=True,
                                         mutable=["batch_stats"])
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

        return jax.jit(jax.grad(loss))(variables["params"])

    reference = grads("float64", activation_layout="NTVC", tcn_impl="matmul")
    out = {}
    for name, extra in FORMULATIONS.items():
        g = grads("float32", **extra)
        errors = {
            jax.tree_util.keystr(path): float(jnp.max(jnp.abs(a.astype(jnp.float64) - b))
                                              / jnp.max(jnp.abs(b)))
            for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(g),
                                    jax.tree.leaves(reference))
            if "kernel" in jax.tree_util.keystr(path)}
        worst = max(errors, key=errors.get)
        out[name] = (errors[worst], worst)
    return out


if __name__ == "__main__":
    main()
