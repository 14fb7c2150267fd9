"""Input-pipeline throughput (clips/s) with 0/1/2 worker processes, optionally vs the train step.

Synthetic NTU-shaped clips (`amstgcn_jax.synthetic`, zero-padded to (3, 300, 25, 2) like the
NTU/Kinetics arrays) go through `amstgcn_jax.pipeline.make_train_iter` with the training
transforms of a recipe (default: the paper's Kinetics recipe, ST-GCN random_choose(150) +
random_move). With `--model`, the same machine also times a jitted ST-GCN/AM-STGCN train step
(forward + backward + SGD) on batches of the pipeline's shape, and prints the ratio
pipeline/train (issue: the pipeline must feed ≥ 10× the step's rate).

    python benchmarks/pipeline_benchmark.py --workers 0,1,2 --batches 30
    python benchmarks/pipeline_benchmark.py --model stgcn --batch_size 16

With `--config` (repeatable), the pipeline is the training transforms of that experiment config
instead (e.g. 2s-AGCN's NTU pre-normalisation, the pyskl recipe), fed random clips of the config's
skeleton (joints, persons, a score channel for Kinetics), 60-300 stored frames; each op's cost
per clip is printed too, from an in-process pass:

    python benchmarks/pipeline_benchmark.py --workers 0,2 --config configs/kinetics.py \
        --config configs/ntu60.py:xsub,backbone=agcn --config configs/synthetic.py

Measured figures are printed as they come; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", default="0,1,2", help="comma-separated worker counts")
    p.add_argument("--num_samples", type=int, default=256, help="distinct synthetic clips")
    p.add_argument("--min_frames", type=int, default=100)
    p.add_argument("--max_frames", type=int, default=300)
    p.add_argument("--pad_to", type=int, default=300, help="0: keep the unpadded length")
    p.add_argument("--recipe", default="stgcn", choices=("stgcn", "pyskl", "ctrgcn"))
    p.add_argument("--window", type=int, default=150)
    p.add_argument("--modality", default="joint")
    p.add_argument("--rotation", type=float, default=0.0)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--batches", type=int, default=30, help="timed batches per setting")
    p.add_argument("--warmup", type=int, default=3, help="untimed batches (worker start-up)")
    p.add_argument("--threads", type=int, default=1, help="grain read threads per process")
    p.add_argument("--config", action="append", default=[],
                   help="an experiment config (path[:args]) whose train transforms to time "
                        "(repeatable; overrides --recipe/--window/--modality/--rotation)")
    p.add_argument("--op_clips", type=int, default=200,
                   help="clips of the in-process per-op pass (--config)")
    p.add_argument("--out", help="append the JSON line (with the checkout's commit) here")
    p.add_argument("--model", choices=("none", "stgcn", "am_stgcn"), default="none",
                   help="also time the train step of this model on the same machine")
    p.add_argument("--model_batches", type=int, default=3)
    return p.parse_args(argv)


def time_pipeline(src, ops, *, batch_size, workers, threads, batches, warmup):
    from amstgcn_jax import pipeline
    t0 = time.perf_counter()
    it = pipeline.make_train_iter(src, batch_size=batch_size, seed=0, transforms=ops,
                                  num_workers=workers, num_threads=threads)
    for _ in range(warmup):
        next(it)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    n = 0
    for _ in range(batches):
        n += next(it)["x"].shape[0]
    dt = time.perf_counter() - t0
    shape = next(it)["x"].shape
    del it
    return {"workers": workers, "clips_per_s": n / dt, "startup_s": first,
            "batch_shape": list(shape)}


def time_train_step(model_name, x_shape, *, batches):
    """The project's train step (`amstgcn_jax.train_step`, the state donated, as `train.py`
    runs it) on one resident batch of the pipeline's shape: (compile s, clips/s)."""
    import jax
    import jax.numpy as jnp

    from amstgcn_jax.model import get_model
    from benchmarks.train_step_benchmark import make_train_step
    kw = {"backbone": "stgcn", "num_classes": 60, "layout": "ntu-rgb+d"}
    if model_name == "am_stgcn":
        kw["variant"] = "am_stgcn"
    model = get_model(**kw)
    batch = {"x": jnp.asarray(np.random.default_rng(0).normal(size=x_shape).astype(np.float32)),
             "label": jnp.zeros((x_shape[0],), jnp.int32)}
    variables = model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)},
                           batch["x"], train=False)
    step_fn, state = make_train_step(model, variables, 0.1)
    step = jax.jit(step_fn, donate_argnums=0)
    rng = jax.random.key(2)
    t0 = time.perf_counter()
    state, metrics = step(state, batch, rng)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(batches):
        state, metrics = step(state, batch, rng)
    jax.block_until_ready(metrics)
    dt = time.perf_counter() - t0
    return {"model": model_name, "device": str(jax.devices()[0]), "compile_s": compile_s,
            "clips_per_s": batches * x_shape[0] / dt, "step_s": dt / batches,
            "state_step": int(state.step)}


def random_clip(rng, i, *, joints, persons, score_channel, min_frames, max_frames):
    """Clip `i` of a random source in the upstream layout (3, L, V, M): L uniform in
    [min_frames, max_frames], one person in even clips and `persons` in odd ones, coordinates
    normal(0, 0.3); channel 2 is a [0, 1] score when `score_channel` (OpenPose)."""
    t = int(rng.integers(min_frames, max_frames + 1))
    data = np.zeros((3, t, joints, persons), np.float32)
    for m in range(1 if i % 2 == 0 else persons):
        data[..., m] = rng.normal(0.0, 0.3, size=(3, t, joints))
    if score_channel:
        data[2] = np.abs(data[2]).clip(0, 1)
    return data


class RandomClips:
    """`n` clips of `random_clip` held in memory with their labels. Picklable, so worker
    processes get it (it is small)."""

    def __init__(self, n, *, joints, persons, score_channel, min_frames, max_frames, seed=0):
        rng = np.random.default_rng(seed)
        self.examples = []
        for i in range(n):
            data = random_clip(rng, i, joints=joints, persons=persons,
                               score_channel=score_channel, min_frames=min_frames,
                               max_frames=max_frames)
            self.examples.append({"data": data, "label": i % 10, "length": data.shape[1],
                                  "name": f"r{i}"})

    def __len__(self):
        return len(self.examples)

    def __getitem__(self, i):
        return dict(self.examples[int(i)])


def load_config(spec):
    """`path[:args]` -> the ConfigDict of that config file's `get_config(args)`."""
    import importlib.util
    path, _, arg = spec.partition(":")
    module_spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(arg) if arg else module.get_config()


def time_ops(src, ops, n):
    """In-process pass over `n` clips: (seconds per clip, {op name: seconds per clip}), after
    an untimed pass over 5 (first calls pay for imports and caches)."""
    from amstgcn_jax import transforms
    for k in range(5):
        ex = transforms.apply_transforms(dict(src[k % len(src)], index=k), ops,
                                         np.random.default_rng(k))
    per_op = {}
    t_all = time.perf_counter()
    for k in range(n):
        ex = dict(src[k % len(src)], index=k)
        rng = np.random.default_rng(k)
        for op in ops:
            name = getattr(op, "func", op).__name__
            t0 = time.perf_counter()
            ex = op(ex, rng) if transforms.takes_rng(op) else op(ex)
            per_op[name] = per_op.get(name, 0.0) + time.perf_counter() - t0
        transforms.to_model_input(ex)
    total = (time.perf_counter() - t_all) / n
    return total, {k: v / n for k, v in per_op.items()}


def config_pipeline(spec, args):
    """(source, train transforms, description) of an experiment config."""
    from amstgcn_jax import data_setup, graph
    config = load_config(spec)
    dc, layout = config.data, config.model.layout
    src = RandomClips(args.num_samples, joints=graph.get_layout(layout).num_nodes,
                      persons=max(1, dc.num_persons), score_channel=bool(dc.score_channel),
                      min_frames=args.min_frames, max_frames=args.max_frames)
    ops = data_setup.make_train_transforms(dc, layout)
    return src, ops, {"config": spec, "recipe": dc.recipe, "modality": dc.modality,
                      "window": dc.window, "layout": layout, "batch_size": config.batch_size}


def time_workers(src, ops, args, indent=""):
    """`time_pipeline` for each worker count in `--workers`, printed as it comes."""
    results = []
    for w in (int(s) for s in args.workers.split(",")):
        r = time_pipeline(src, ops, batch_size=args.batch_size, workers=w,
                          threads=args.threads, batches=args.batches, warmup=args.warmup)
        print(f"{indent}workers={w}: {r['clips_per_s']:.0f} clips/s (start-up "
              f"{r['startup_s']:.2f} s, batch {r['batch_shape']})", flush=True)
        results.append(r)
    return results


def run_config(spec, args):
    src, ops, info = config_pipeline(spec, args)
    per_clip, per_op = time_ops(src, ops, args.op_clips)
    print(f"{spec}: in-process {1e3 * per_clip:.2f} ms/clip ({1 / per_clip:.0f} clips/s); "
          + ", ".join(f"{k} {1e3 * v:.2f}" for k, v in per_op.items()), flush=True)
    results = time_workers(src, ops, args, indent="  ")
    return dict(info, in_process_ms_per_clip=1e3 * per_clip,
                op_ms_per_clip={k: 1e3 * v for k, v in per_op.items()}, pipeline=results)


def main(argv=None):
    from benchmarks.train_step_benchmark import emit_json
    args = parse_args(argv)
    head = {"benchmark": "pipeline", "host": platform.node(), "cpus": os.cpu_count(),
            "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "batch_size": args.batch_size}
    if args.config:
        configs = [run_config(spec, args) for spec in args.config]
        emit_json(head | {"configs": configs}, args.out)
        return
    from amstgcn_jax import synthetic, transforms
    t0 = time.perf_counter()
    src = synthetic.SyntheticSource(args.num_samples, min_frames=args.min_frames,
                                    max_frames=args.max_frames)
    gen_s = time.perf_counter() - t0
    print(f"generated {len(src)} synthetic clips in {gen_s:.2f} s")
    ops = transforms.make_transforms(args.recipe, train=True, window=args.window,
                                     modality=args.modality, layout="ntu-rgb+d",
                                     rotation=args.rotation, pad_to=args.pad_to or None)
    print("transforms:", [getattr(o, "func", o).__name__ for o in ops])
    results = time_workers(src, ops, args)
    out = head | {"recipe": args.recipe, "window": args.window,
                  "synthetic_generation_s": gen_s, "pipeline": results}
    if args.model != "none":
        t = time_train_step(args.model, tuple(results[0]["batch_shape"]),
                            batches=args.model_batches)
        best = max(r["clips_per_s"] for r in results)
        t["pipeline_over_train"] = best / t["clips_per_s"]
        print(f"train step ({t['model']}, {t['device']}): {t['clips_per_s']:.1f} clips/s; "
              f"pipeline/train = {t['pipeline_over_train']:.1f}x", flush=True)
        out["train_step"] = t
    emit_json(out, args.out)


if __name__ == "__main__":  # guard: grain's worker processes re-import __main__
    main()
