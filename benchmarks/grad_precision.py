"""float32 gradients of each execution formulation against a float64 computation (one step).

    python benchmarks/grad_precision.py                 # configs/synthetic.py's model
    python benchmarks/grad_precision.py --config-arg variant=stgcn --batch 8

Builds the model of `configs/synthetic.py` (or `--config-arg`), takes the cross-entropy
gradient of one training-mode forward pass on a fixed random batch at the initial parameters,
once in float64 and once in float32 per `activation_layout` / `tcn_impl`, and prints, per
formulation, the largest |g32 − g64| / max|g64| over the conv kernels (biases that feed a
BatchNorm have exactly-zero gradients and are left out). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FORMULATIONS = {f"{layout} {tcn}": {"activation_layout": layout, "tcn_impl": tcn}
                for layout in ("VNTC", "NTVC") for tcn in ("matmul", "conv")}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config-arg", default=None, help="configs/synthetic.py argument string")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import jax

    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_platforms", "cpu")
    import jax.numpy as jnp
    import numpy as np
    import optax

    from amstgcn_jax.model import get_model
    from configs import synthetic

    config = synthetic.get_config(args.config_arg)
    kwargs = {k: v for k, v in dict(config.model).items() if v is not None}
    rs = np.random.default_rng(args.seed)
    x = rs.standard_normal((args.batch, 2, config.data.window, 25, 3))
    labels = jnp.asarray(rs.integers(0, config.model.num_classes, args.batch), jnp.int32)
    init = get_model(**kwargs).init({"params": jax.random.key(args.seed)},
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

    reference = grads("float64", activation_layout="NTVC")
    result = {}
    for name, extra in FORMULATIONS.items():
        g = grads("float32", **extra)
        errors = {
            jax.tree_util.keystr(path): float(jnp.max(jnp.abs(a.astype(jnp.float64) - b))
                                              / jnp.max(jnp.abs(b)))
            for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(g),
                                    jax.tree.leaves(reference))
            if "kernel" in jax.tree_util.keystr(path)}
        worst = max(errors, key=errors.get)
        result[name] = {"max_rel_error": errors[worst], "worst": worst}
        print(f"{name:11s} max |g32 - g64| / max|g64| over kernels: {errors[worst]:.2e} "
              f"({worst})")
    print(json.dumps({"config_arg": args.config_arg, "batch": args.batch, "seed": args.seed,
                      "formulations": result}))


if __name__ == "__main__":
    main()
