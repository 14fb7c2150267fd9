"""Pure, jittable train and eval steps. They take plain arguments and never read the config.

The training loss is ST-GCN's `nn.CrossEntropyLoss` (mean over the batch); logits are cast to
float32 before the softmax so a bfloat16 compute dtype does not degrade the loss.
"""

import jax
import jax.numpy as jnp
import optax


def _cross_entropy_N(logits_NL, labels_N):
    return optax.softmax_cross_entropy_with_integer_labels(logits_NL.astype(jnp.float32), labels_N)


def train_step(state, batch, rng, *, learning_rate_fn):
    """One SGD step on a (global) batch. Returns `(new_state, metrics)` with scalar metrics.

    Dropout randomness is `fold_in(rng, step)`, so a resumed run draws the same masks.
    """
    dropout_rng = jax.random.fold_in(rng, state.step)
    labels_N = batch["label"]

    def loss_fn(params):
        variables = {"params": params, "batch_stats": state.batch_stats}
        (logits_NL, _), new_vars = state.apply_fn(
            variables, batch["x"], train=True, mutable=["batch_stats"],
            rngs={"dropout": dropout_rng})
        loss = jnp.mean(_cross_entropy_N(logits_NL, labels_N))
        return loss, (logits_NL, new_vars)

    (loss, (logits_NL, new_vars)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    new_state = state.apply_gradients(grads=grads, batch_stats=new_vars["batch_stats"])
    metrics = {
        "loss": loss,
        "top1": jnp.mean(jnp.argmax(logits_NL, -1) == labels_N),
        "learning_rate": learning_rate_fn(state.step),
        "grad_norm": jnp.sqrt(sum(jnp.sum(jnp.square(g.astype(jnp.float32)))
                                  for g in jax.tree.leaves(grads))),
    }
    return new_state, metrics


def eval_step(state, batch):
    """Per-sample float32 logits (clips averaged as probabilities) and loss, for host-side metrics.

    `batch["x"]` is `x_NMTVC`, or `x_NSMTVC` with S test clips per sample (multi-clip testing, as
    pyskl's `average_clips='prob'`): logits of the clips are turned into probabilities, averaged,
    and returned as log-probabilities so top-k and fusion use the averaged probabilities.
    """
    x = batch["x"]
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    if x.ndim == 6:
        n, s = x.shape[:2]
        logits_XL, _ = state.apply_fn(variables, x.reshape((n * s,) + x.shape[2:]), train=False)
        probs_NSL = jax.nn.softmax(logits_XL.astype(jnp.float32), -1).reshape(n, s, -1)
        logits_NL = jnp.log(jnp.mean(probs_NSL, axis=1) + 1e-20)
    else:
        logits_NL, _ = state.apply_fn(variables, x, train=False)
        logits_NL = logits_NL.astype(jnp.float32)
    return {"logits": logits_NL, "loss": _cross_entropy_N(logits_NL, batch["label"])}
