"""The train state (params, BN statistics, optimizer state, step) and its sharded creation.

Follows the flax imagenet example's `TrainState` (+ `batch_stats`) and nanodo's init pattern:
`jax.eval_shape(init)` for the structure, then a jitted init whose outputs land replicated.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax.training import train_state

from amstgcn_jax import sharding as sharding_lib


class TrainState(train_state.TrainState):
    batch_stats: Any = None


def create_train_state(rng, model: nn.Module, tx: optax.GradientTransformation,
                       sample_x_NMTVC, mesh) -> TrainState:
    """Initialises model variables and optimizer state, replicated over `mesh`.

    `sample_x_NMTVC` only fixes the shapes (any batch size); it is not part of the state.
    """
    sample = jnp.zeros((1,) + tuple(sample_x_NMTVC.shape[1:]), jnp.float32)

    def init(rng):
        params_rng, dropout_rng = jax.random.split(rng)
        variables = model.init({"params": params_rng, "dropout": dropout_rng}, sample, train=False)
        return TrainState.create(apply_fn=model.apply, params=variables["params"], tx=tx,
                                 batch_stats=variables.get("batch_stats", {}))

    replicated = sharding_lib.replicated_sharding(mesh)
    abstract = jax.eval_shape(init, rng)
    out_shardings = jax.tree.map(lambda _: replicated, abstract)
    return jax.jit(init, out_shardings=out_shardings)(rng)


def state_to_tree(state: TrainState) -> dict:
    """The checkpointed part of the state (no functions), as a plain dict."""
    return {"step": state.step, "params": state.params, "batch_stats": state.batch_stats,
            "opt_state": state.opt_state}


def tree_to_state(template: TrainState, tree: dict) -> TrainState:
    return template.replace(step=tree["step"], params=tree["params"],
                            batch_stats=tree["batch_stats"], opt_state=tree["opt_state"])


def count_params(params) -> int:
    return sum(int(x.size) for x in jax.tree.leaves(params))
