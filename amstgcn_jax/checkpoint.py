"""Orbax checkpoints of the train state, the data-iterator state and loop metadata.

Layout under the workdir: `checkpoints/<step>/` (the last `max_to_keep`, saved every N steps and
at each epoch end) and `best/<step>/` (the single best by eval top-1), each a Composite of
`state` (params, batch_stats, opt_state, step), `data` (the input iterator's `get_state()` as
JSON, so a resumed run sees exactly the batches it would have seen) and `meta` (epoch, best top-1,
...). Saves are asynchronous and atomic (tmp dir + rename): a process killed with SIGKILL during a
save leaves the previous checkpoint intact, and `cleanup_tmp_directories` removes the debris on
the next start. Restores always use an abstract target so optax NamedTuples and shardings survive.
"""

from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from amstgcn_jax import train_state as train_state_lib

LATEST_DIR, BEST_DIR = "checkpoints", "best"


def _manager(directory: Path, max_to_keep: int, async_save: bool) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, create=True, cleanup_tmp_directories=True,
        enable_async_checkpointing=async_save)
    return ocp.CheckpointManager(directory.absolute(), options=options)


class Checkpointer:
    """Latest-k and best-1 checkpoint managers of one training run."""

    def __init__(self, workdir, *, max_to_keep: int = 3, async_save: bool = True):
        workdir = Path(workdir)
        self.latest = _manager(workdir / LATEST_DIR, max_to_keep, async_save)
        self.best = _manager(workdir / BEST_DIR, 1, async_save)

    def latest_step(self):
        return self.latest.latest_step()

    def save(self, step: int, state, *, data_state=None, meta=None, best: bool = False) -> bool:
        """Starts an async save of `state` at `step` (to `best/` as well when `best`)."""
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(train_state_lib.state_to_tree(state)),
            data=ocp.args.JsonSave({"iterator": data_state}),
            meta=ocp.args.JsonSave(dict(meta or {}, step=int(step))))
        # Across processes the two managers' saves take turns: orbax's multi-host commit uses
        # barriers of fixed names, and two managers committing at once collide ("Barrier
        # ThreadSaveMultiHostValueHolder:set_value_start is already ongoing"). One process
        # keeps them overlapping.
        take_turns = jax.process_count() > 1
        saved = False
        if step not in self.latest.all_steps():
            if take_turns:
                self.best.wait_until_finished()
            saved = self.latest.save(step, args=args)
        if best:
            if take_turns:
                self.latest.wait_until_finished()
            for old in self.best.all_steps():
                if old >= step:  # orbax refuses to save a step <= latest; a better run restarts it
                    self.best.delete(old)
            self.best.save(step, args=args)
        return saved

    def restore_latest(self, template_state):
        """Returns `(state, data_state, meta)` from the newest complete checkpoint, or None."""
        step = self.latest.latest_step()
        if step is None:
            return None
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct,
                                train_state_lib.state_to_tree(template_state))
        restored = self.latest.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), data=ocp.args.JsonRestore(),
            meta=ocp.args.JsonRestore()))
        logging.info("Restored checkpoint of step %d from %s", step, self.latest.directory)
        state = train_state_lib.tree_to_state(template_state, restored["state"])
        return state, restored["data"]["iterator"], restored["meta"]

    def wait_until_finished(self):
        self.latest.wait_until_finished()
        self.best.wait_until_finished()

    def close(self):
        self.latest.close()
        self.best.close()


def resolve_step_dir(path) -> Path:
    """A workdir, a `checkpoints/` or `best/` dir, or one step dir -> the step dir to load.

    For a workdir the latest checkpoint is used (pass `<workdir>/best` for the best one).
    """
    path = Path(path)
    if (path / "state").is_dir():
        return path
    if (path / LATEST_DIR).is_dir():
        path = path / LATEST_DIR
    steps = sorted(int(p.name) for p in path.iterdir() if p.name.isdigit()) if path.is_dir() else []
    steps = [s for s in steps if (path / str(s) / "state").is_dir()]
    if not steps:
        raise FileNotFoundError(
            f"{path}: no orbax checkpoint found (expected <workdir>/checkpoints/<step>/state, "
            "<workdir>/best/<step>/state or a step directory)")
    return path / str(steps[-1])


def load_variables(path) -> tuple[dict, int]:
    """`{"params", "batch_stats"}` (numpy trees) and the step of the checkpoint at `path`.

    Needs no model or optimizer template: made for evaluation and prediction.
    """
    step_dir = resolve_step_dir(path)
    checkpointer = ocp.PyTreeCheckpointer()
    metadata = checkpointer.metadata(step_dir / "state")
    tree = metadata.item_metadata.tree if hasattr(metadata, "item_metadata") else metadata.tree
    wanted = {k: tree[k] for k in ("params", "batch_stats", "step")}
    restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), wanted)
    restored = checkpointer.restore(
        step_dir / "state",
        args=ocp.args.PyTreeRestore(item=wanted, restore_args=restore_args, partial_restore=True))
    variables = {"params": restored["params"], "batch_stats": restored.get("batch_stats") or {}}
    return variables, int(restored["step"])
