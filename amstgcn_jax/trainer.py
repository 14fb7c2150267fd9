"""The training loop: `train_and_evaluate(config, workdir)`. The only place that reads the config.

Order of work per step follows nanodo/big_vision: fetch a host batch, record the iterator state,
dispatch the jitted step, then fetch the *previous* step's metrics (so the host rarely waits,
and at most two steps are in flight: XLA:CPU collectives deadlock when many sharded steps are
queued without a sync, STACK.md §3). A non-finite loss stops the run with `NonFiniteLossError`
naming the step; checkpoints are only written after their step's loss was checked, so the last
checkpoint on disk is always a good one. Restarting the same command resumes from it.
"""

import functools
import json
import math
import subprocess
import time
from pathlib import Path

import jax
import ml_collections
import numpy as np
from absl import logging

from amstgcn_jax import checkpoint as checkpoint_lib
from amstgcn_jax import compile_cache, data_setup, host_malloc, metrics_log, optim, xla_flags
from amstgcn_jax import evaluate as evaluate_lib
from amstgcn_jax import sharding as sharding_lib
from amstgcn_jax import train_state as train_state_lib
from amstgcn_jax import train_step as train_step_lib


class NonFiniteLossError(FloatingPointError):
    """Raised when the training loss becomes NaN/inf; the message names the step."""


def quiet_library_logs() -> None:
    """Hides orbax's per-save INFO chatter (warnings and errors still show)."""
    import logging as py_logging

    class _Filter(py_logging.Filter):
        def filter(self, record):
            return record.levelno >= py_logging.WARNING or "/orbax/" not in record.pathname

    for handler in py_logging.getLogger().handlers + py_logging.getLogger("absl").handlers:
        handler.addFilter(_Filter())
    logging.get_absl_handler().addFilter(_Filter())


def prepare_process(compilation_cache_dir: str | None, keep_freed_memory: bool) -> None:
    """What train.py and eval.py set up before any work, in the order it must happen: XLA's GPU
    workarounds (read when a backend starts), INFO logs without orbax's chatter, joining a
    multi-process launch (`jax.distributed.initialize` refuses once anything has started a
    backend), the compilation cache (before the first compile), then glibc's keep-freed-memory
    on the CPU backend (`host_malloc.apply_on_cpu` asks for the backend, which starts it)."""
    xla_flags.apply_gpu_workarounds()
    logging.set_verbosity(logging.INFO)
    quiet_library_logs()
    sharding_lib.maybe_initialize_distributed()
    compile_cache.enable(compilation_cache_dir)
    host_malloc.apply_on_cpu(keep_freed_memory)


def _git_sha() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=Path(__file__).parent, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _write_config(config, workdir: Path) -> None:
    if jax.process_index() != 0:
        return
    workdir.mkdir(parents=True, exist_ok=True)
    text = config.to_json_best_effort(indent=2, sort_keys=True)
    path = workdir / "config.json"
    if path.exists() and path.read_text() != text:
        logging.warning("%s differs from the current config; the old one is kept as "
                        "config.previous.json", path)
        path.replace(workdir / "config.previous.json")
    path.write_text(text)


def slow_dtype_warning(backend: str, dtype) -> str | None:
    """A warning for bfloat16 on the CPU backend, else None.

    XLA:CPU (jax 0.10) has no bfloat16 GEMM fast path even on AVX512-BF16 CPUs: the NTU train
    step ran at 0.76x its float32 speed, while PyTorch/oneDNN doubles (benchmarks/README.md,
    "bfloat16 on CPU"). Users coming from `torch.autocast` expect the opposite.
    """
    if backend == "cpu" and str(dtype) == "bfloat16":
        return ("model.dtype=bfloat16 on the CPU backend: XLA:CPU has no fast bfloat16 GEMMs, "
                "so this trains slower than float32 (0.76x measured on an AVX512-BF16 CPU); "
                "use float32 on CPU")
    return None


def make_model(model_config, batch_shards: int = 1):
    """`get_model(**config.model)`; `None` fields (unset placeholders) are left to the variant.

    `batch_shards`: the devices the batch is split over (the mesh size), for the models'
    "auto" formulations (`model.mesh_auto`) unless `config.model` sets it. It changes no
    params, dropout masks or (beyond float rounding) outputs.
    """
    from amstgcn_jax import model as model_lib  # the model zoo; imported late for light tests
    kwargs = {k: v for k, v in dict(model_config).items() if v is not None}
    kwargs.setdefault("batch_shards", batch_shards)
    return model_lib.get_model(**kwargs)


def _make_learning_rate_fn(optim_config, steps_per_epoch):
    return optim.make_learning_rate_fn(
        learning_rate=optim_config.learning_rate, steps_per_epoch=steps_per_epoch,
        decay_epochs=tuple(optim_config.decay_epochs), decay_rate=optim_config.decay_rate,
        warmup_epochs=optim_config.warmup_epochs)


def _run_eval(p_eval, state, data, mesh, step, logger):
    result = evaluate_lib.collect_scores(p_eval, state, data.eval_batches(), mesh)
    metrics = evaluate_lib.compute_metrics(result["scores"], result["labels"],
                                           loss_N=result["loss"])
    scalars = {f"eval/{k}": metrics[k] for k in ("top1", "top5", "loss", "mean_class_accuracy")}
    logger.write(step, scalars)
    logging.info("eval at step %d: top1 %.4f top5 %.4f loss %.4f (%d samples)", step,
                 metrics["top1"], metrics["top5"], metrics["loss"], metrics["num_samples"])
    return result, metrics


def train_and_evaluate(config: ml_collections.ConfigDict, workdir) -> dict:
    """Trains `config.model` on `config.data`, evaluating each `eval_every_epochs`.

    Returns the final eval metrics plus `best_top1`, `wall_time_s` and `steps`.
    """
    wall_start = time.time()
    workdir = Path(workdir)
    sharding_lib.maybe_initialize_distributed()
    mesh = sharding_lib.make_mesh()
    _write_config(config, workdir)
    logging.info("devices: %s; git %s", jax.devices(), _git_sha())
    if warning := slow_dtype_warning(jax.default_backend(), config.model.get("dtype")):
        logging.warning(warning)

    local_batch = sharding_lib.local_batch_size(config.batch_size, mesh)
    eval_batch_size = config.eval_batch_size or config.batch_size
    eval_batch_size = -(-eval_batch_size // mesh.size) * mesh.size  # padded rows are masked
    data = data_setup.make_data(config.data, batch_size=config.batch_size,
                                local_batch_size=local_batch, seed=config.seed,
                                eval_batch_size=eval_batch_size,
                                num_devices=mesh.size, layout=config.model.get("layout"))
    steps_per_epoch = data.steps_per_epoch
    total_steps = config.num_epochs * steps_per_epoch
    if config.get("max_steps", -1) and config.max_steps > 0:
        total_steps = min(total_steps, config.max_steps)

    model = make_model(config.model, batch_shards=mesh.size)
    learning_rate_fn = _make_learning_rate_fn(config.optim, steps_per_epoch)
    tx = optim.make_optimizer(learning_rate_fn=learning_rate_fn, momentum=config.optim.momentum,
                              nesterov=config.optim.nesterov,
                              weight_decay=config.optim.weight_decay)
    init_rng, train_rng = jax.random.split(jax.random.key(config.seed))
    state = train_state_lib.create_train_state(init_rng, model, tx, data.sample_x, mesh)
    logging.info("model parameters: %d", train_state_lib.count_params(state.params))

    checkpointer = checkpoint_lib.Checkpointer(workdir, max_to_keep=config.keep_checkpoints,
                                               async_save=config.async_checkpointing)
    best_top1 = -1.0
    restored = checkpointer.restore_latest(state)
    if restored is not None:
        state, iter_state, meta = restored
        data.train_iter.set_state(iter_state)
        best_top1 = meta.get("best_top1", -1.0)
    start_step = int(state.step)

    state_sharding = jax.tree.map(lambda x: x.sharding, state)
    replicated = sharding_lib.replicated_sharding(mesh)
    p_train = jax.jit(functools.partial(train_step_lib.train_step,
                                        learning_rate_fn=learning_rate_fn),
                      in_shardings=(state_sharding, sharding_lib.batch_sharding(mesh), replicated),
                      out_shardings=(state_sharding, replicated), donate_argnums=0)
    p_eval = jax.jit(train_step_lib.eval_step)
    logger = metrics_log.MetricsLogger(workdir, tensorboard=config.tensorboard)
    bar = metrics_log.progress_bar(total_steps, initial=start_step)

    history, pending = [], None
    tick, tick_step = time.time(), start_step
    # A wall-clock budget (e.g. a lent accelerator): stop at the first step past it, then run the
    # final eval and save, and say so in the summary rather than lose the run to a kill.
    time_budget_s = float(config.get("time_budget_s", 0) or 0)
    stopped_by_budget = False
    eval_result = eval_metrics = None

    def finish(pending_step, metrics):
        """Fetches one step's metrics (a sync point) and stops on a non-finite loss."""
        nonlocal tick, tick_step
        host = {k: float(v) for k, v in jax.device_get(metrics).items()}
        if not math.isfinite(host["loss"]):
            checkpointer.wait_until_finished()
            raise NonFiniteLossError(
                f"non-finite training loss ({host['loss']}) at step {pending_step}; stopping. The "
                f"last good checkpoint is step {checkpointer.latest_step()} in "
                f"{workdir / checkpoint_lib.LATEST_DIR} (try a lower learning rate).")
        history.append(host)
        bar.update(1)
        if pending_step % config.log_every_steps == 0 or pending_step == total_steps:
            now = time.time()
            clips_per_s = config.batch_size * (pending_step - tick_step) / max(now - tick, 1e-9)
            tick, tick_step = now, pending_step
            means = {f"train/{k}": float(np.mean([h[k] for h in history])) for k in host}
            means["train/learning_rate"] = host["learning_rate"]
            means["train/clips_per_s"] = clips_per_s
            means["train/epoch"] = pending_step / steps_per_epoch
            logger.write(pending_step, means)
            bar.set_postfix(loss=f"{means['train/loss']:.4f}", lr=f"{host['learning_rate']:.4g}",
                            clips_s=f"{clips_per_s:.1f}")
            logging.log_every_n_seconds(
                logging.INFO, "step %d/%d (epoch %.2f): loss %.4f, lr %.4g, %.1f clips/s", 30,
                pending_step, total_steps, means["train/epoch"], means["train/loss"],
                host["learning_rate"], clips_per_s)
            history.clear()

    try:
        for step in range(start_step, total_steps):
            batch = next(data.train_iter)
            iter_state = data.train_iter.get_state()  # state *after* this batch: resume point
            state, metrics = p_train(state, sharding_lib.shard_batch(batch, mesh), train_rng)
            if pending is not None:
                finish(*pending)
            pending = (step + 1, metrics)
            done = step + 1
            over_budget = time_budget_s > 0 and time.time() - wall_start > time_budget_s
            if over_budget and done < total_steps:
                logging.warning("time budget of %.0f s reached at step %d/%d: stopping early",
                                time_budget_s, done, total_steps)
                stopped_by_budget, total_steps = True, done
            epoch_end = done % steps_per_epoch == 0
            epoch = done // steps_per_epoch
            eval_due = config.eval_every_epochs > 0 and epoch % config.eval_every_epochs == 0
            do_eval = done == total_steps or (epoch_end and eval_due)
            do_save = (done == total_steps or epoch_end or do_eval
                       or (config.checkpoint_every_steps > 0
                           and done % config.checkpoint_every_steps == 0))
            if do_save or do_eval:
                finish(*pending)
                pending = None
            is_best = False
            if do_eval:
                eval_result, eval_metrics = _run_eval(p_eval, state, data, mesh, done, logger)
                is_best = eval_metrics["top1"] > best_top1
                best_top1 = max(best_top1, eval_metrics["top1"])
            if do_save:
                meta = {"epoch": done / steps_per_epoch, "best_top1": best_top1,
                        "top1": eval_metrics["top1"] if do_eval else None}
                checkpointer.save(done, state, data_state=iter_state, meta=meta, best=is_best)
            if stopped_by_budget:
                break
        if pending is not None:
            finish(*pending)
    finally:
        bar.close()
        checkpointer.wait_until_finished()
        logger.close()

    if eval_metrics is None:  # resumed a finished run: evaluate what is there
        eval_result, eval_metrics = _run_eval(p_eval, state, data, mesh, int(state.step), logger)
        best_top1 = max(best_top1, eval_metrics["top1"])
    checkpointer.close()
    wall_time = time.time() - wall_start
    summary = {k: eval_metrics[k] for k in ("top1", "top5", "loss", "mean_class_accuracy",
                                            "num_samples")}
    summary.update(best_top1=best_top1, wall_time_s=wall_time, steps=int(state.step),
                   stopped_by_time_budget=stopped_by_budget)
    if jax.process_index() == 0:
        evaluate_lib.save_scores(workdir / "scores_test.npz", eval_result["scores"],
                                 eval_result["labels"], eval_result.get("indices"))
        (workdir / "summary.json").write_text(json.dumps(summary, indent=2))
        _write_plots(workdir, eval_metrics, data.class_names)
        _write_attention_plot(workdir, model, state, data, config.model.get("layout"))
    logging.info("final eval top1 %.4f (best %.4f), wall time %.1f s", summary["top1"],
                 best_top1, wall_time)
    return summary


def _write_plots(workdir: Path, eval_metrics: dict, class_names) -> None:
    try:
        from amstgcn_jax import plots  # matplotlib is imported only when plots are written
        plots.plot_training_curves(workdir / metrics_log.METRICS_FILE, workdir / "curves.png")
        plots.plot_confusion_matrix(eval_metrics["confusion_matrix"], class_names,
                                    workdir / "confusion_matrix.png")
        plots.plot_per_class_accuracy({"this run": eval_metrics["per_class_accuracy"]},
                                      class_names, workdir / "per_class_accuracy.png")
    except Exception as e:  # noqa: BLE001 - a plotting failure must not lose a finished run
        logging.warning("could not write plots: %s", e)


def _write_attention_plot(workdir: Path, model, state, data, layout) -> None:
    """attention.png: the first test sample's non-local attention, if the model has any."""
    params = jax.device_get(state.params)
    if layout is None or not any("attn_" in "/".join(str(getattr(k, "key", k)) for k in path)
                                 for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]):
        return
    try:
        from amstgcn_jax import plots
        x_MTVC = next(iter(data.eval_batches()))["x"][0]
        plots.plot_sample_attention(model, {"params": params,
                                            "batch_stats": jax.device_get(state.batch_stats)},
                                    x_MTVC, layout, workdir / "attention.png")
    except (ValueError, ImportError) as e:  # e.g. only CBAM/SE blocks, or no matplotlib
        logging.info("no attention plot: %s", e)


def load_checkpoint_model(model_config, checkpoint, batch_shards: int = 1):
    """`(model, variables, model_config)` for evaluation from any supported checkpoint, with
    the batch split over `batch_shards` devices (`make_model`).

    `checkpoint`: one of our orbax checkpoints (a workdir, its `checkpoints/` or `best/`, or one
    step dir; the model comes from `model_config`), a PyTorch ST-GCN / 2s-AGCN `.pt` state dict
    (read without torch; the architecture is inferred from the tensors), or a directory written
    by `python -m amstgcn_jax.convert` (`model_config.json` + `variables/`).
    """
    path = Path(checkpoint)
    if path.is_file() and path.suffix in (".pt", ".pth", ".pkl"):
        from amstgcn_jax import convert
        variables, inferred = convert.load_pytorch_checkpoint(path)
        model_config = dict(inferred, dtype=model_config.get("dtype", "float32"))
    elif (path / "model_config.json").is_file():
        from amstgcn_jax import convert
        variables, inferred = convert.load_converted(path)
        model_config = dict(inferred, dtype=model_config.get("dtype", "float32"))
    elif path.exists():
        variables, _ = checkpoint_lib.load_variables(path)
        model_config = dict(model_config)
    else:
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return make_model(model_config, batch_shards), variables, model_config


def evaluate_checkpoint(config, checkpoint, *, out=None, motion_classes=None, label_names=None,
                        plots_dir=None) -> dict:
    """Evaluates `checkpoint` on `config.data`'s test split; optionally saves scores and plots.

    `motion_classes` + `label_names` (files of class names) add the class-subset metrics of the
    ST-GCN paper's Kinetics-Motion evaluation. Returns the metrics (incl. `subset` if asked).
    """
    import optax
    sharding_lib.maybe_initialize_distributed()
    mesh = sharding_lib.make_mesh()
    model, variables, model_config = load_checkpoint_model(config.model, checkpoint,
                                                           batch_shards=mesh.size)
    eval_batch_size = config.eval_batch_size or config.batch_size
    eval_batch_size = -(-eval_batch_size // mesh.size) * mesh.size
    eval_batches, _, class_names = data_setup.make_eval_data(
        config.data, eval_batch_size=eval_batch_size, num_devices=mesh.size,
        layout=model_config.get("layout"))
    state = train_state_lib.TrainState.create(
        apply_fn=model.apply, params=variables["params"], tx=optax.identity(),
        batch_stats=variables.get("batch_stats", {}))
    state = jax.device_put(state, sharding_lib.replicated_sharding(mesh))
    result = evaluate_lib.collect_scores(jax.jit(train_step_lib.eval_step), state,
                                         eval_batches(), mesh)
    metrics = evaluate_lib.compute_metrics(result["scores"], result["labels"],
                                           loss_N=result["loss"])
    if label_names:
        class_names = evaluate_lib.read_class_names(label_names)
    if class_names is not None and len(class_names) != result["scores"].shape[1]:
        logging.warning("%d class names for a %d-way model: class names not used",
                        len(class_names), result["scores"].shape[1])
        class_names = None
    if motion_classes:
        if class_names is None:
            raise ValueError("--motion_classes needs the dataset's class names (--label_names)")
        subset_names = evaluate_lib.read_class_names(motion_classes)
        subset_idx = evaluate_lib.class_subset_indices(subset_names, class_names)
        metrics["subset"] = evaluate_lib.subset_metrics(result["scores"], result["labels"],
                                                        subset_idx)
        metrics["subset"]["class_names"] = subset_names
    if out and jax.process_index() == 0:
        evaluate_lib.save_scores(out, result["scores"], result["labels"], result.get("indices"))
    if plots_dir and jax.process_index() == 0:
        from amstgcn_jax import plots
        plots_dir = Path(plots_dir)
        plots.plot_confusion_matrix(metrics["confusion_matrix"], class_names,
                                    plots_dir / "confusion_matrix.png")
        plots.plot_per_class_accuracy({"top-1": metrics["per_class_accuracy"]}, class_names,
                                      plots_dir / "per_class_accuracy.png")
        if "subset" in metrics:
            plots.plot_per_class_accuracy({"top-1": metrics["subset"]["per_class_accuracy"]},
                                          metrics["subset"]["class_names"],
                                          plots_dir / "per_class_accuracy_subset.png")
    metrics["class_names"] = class_names
    return metrics
