"""Optimizer and learning-rate schedule of the PyTorch skeleton recipes, in optax.

Mirrors the ST-GCN processor (github.com/yysijie/st-gcn @221c0e15, `processor/recognition.py`
`adjust_lr`: lr = base_lr * 0.1 ** sum(epoch >= step)) and CTR-GCN's warm-up
(github.com/Uason-Chen/CTR-GCN @e13d7582, `main.py` `adjust_learning_rate`:
lr = base_lr * (epoch + 1) / warm_up_epoch while epoch < warm_up_epoch). Both change the rate once
per *epoch*; here the schedule is a function of the optimizer step, evaluated at the epoch the step
belongs to, so the values are the same staircase as the references.

PyTorch `SGD(weight_decay=wd, momentum=m, nesterov=True)` adds `wd * p` to the gradient of every
parameter (BN scales and biases included) *before* momentum; optax's equivalent is
`add_decayed_weights` chained before `sgd` (coupled L2, not AdamW-style decoupled decay).
"""

from collections.abc import Callable, Sequence

import jax.numpy as jnp
import optax


def make_learning_rate_fn(
    *,
    learning_rate: float,
    steps_per_epoch: int,
    decay_epochs: Sequence[float] = (),
    decay_rate: float = 0.1,
    warmup_epochs: float = 0,
) -> Callable[[jnp.ndarray], jnp.ndarray]:
    """Returns `step -> lr`: per-epoch staircase warm-up, then ×decay_rate at each decay epoch."""
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
    decay_epochs_E = jnp.asarray(sorted(decay_epochs) or [jnp.inf], jnp.float32)
    has_decay = len(decay_epochs) > 0

    def learning_rate_fn(step):
        epoch = jnp.floor_divide(jnp.asarray(step, jnp.int32), steps_per_epoch).astype(jnp.float32)
        num_decays = jnp.sum(epoch >= decay_epochs_E) if has_decay else 0
        lr = learning_rate * jnp.power(decay_rate, num_decays)
        if warmup_epochs > 0:
            lr = jnp.where(epoch < warmup_epochs, learning_rate * (epoch + 1) / warmup_epochs, lr)
        return jnp.asarray(lr, jnp.float32)

    return learning_rate_fn


def make_optimizer(
    *,
    learning_rate_fn: Callable,
    momentum: float = 0.9,
    nesterov: bool = True,
    weight_decay: float = 1e-4,
) -> optax.GradientTransformation:
    """SGD with (Nesterov) momentum and PyTorch-style coupled L2 weight decay on all params."""
    parts = []
    if weight_decay:
        parts.append(optax.add_decayed_weights(weight_decay))
    parts.append(optax.sgd(learning_rate_fn, momentum=momentum or None, nesterov=nesterov))
    return optax.chain(*parts)
