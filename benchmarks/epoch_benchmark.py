"""End-to-end training throughput: `train.py` itself on a built TFDS dataset, input pipeline
included, projected to an epoch.

The harness (`train_step_benchmark.py`) times the model step on one batch resident on the
device. This script times what a user runs: `train.py` with an experiment config reading an
`array_record` dataset through grain (decode, the config's own train transforms, batching,
`num_workers` worker processes), the host-to-device copy, the step, metrics fetches and
logging. It
1. writes `--clips` random clips of the config's skeleton in the ST-GCN array layout
   (N, C, 300, V, M; 60-300 frames each, zero-padded, the second person in every other clip)
   plus `--test_clips` for the test split;
2. builds them into TFDS `skeleton_arrays/stgcn` (timed: the build rate);
3. runs `train.py --config <config> --config.data.name=skeleton_arrays/stgcn ...` for `--steps`
   steps (one process per `--workers` value), with `data.repeat` set so that one epoch is
   `--epoch_clips` clips (default 240,000, the Kinetics epoch of issue 5), no checkpoint until
   the end and one final eval;
4. reads `metrics.jsonl`: the steady rate is the clips between the log records after the first
   `--skip_logs` (those cover compilation and worker start-up) over their wall time.

    python benchmarks/epoch_benchmark.py --config configs/kinetics.py:variant=stgcn,bf16 \
        --clips 4096 --steps 120 --workers=-1,0 --out results.jsonl

The last line printed is one JSON object (with the checkout's commit).
"""

from __future__ import annotations

import argparse
import itertools
import os
import pickle
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import pipeline_benchmark  # noqa: E402 (needs the sys.path entry above)

STORED_FRAMES = 300  # ST-GCN's max_frame: NTU and Kinetics arrays are zero-padded to it


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="configs/kinetics.py:variant=stgcn",
                   help="experiment config (path[:args]) train.py runs")
    p.add_argument("--clips", type=int, default=4096, help="distinct train clips written")
    p.add_argument("--test_clips", type=int, default=0,
                   help="test clips (default: one eval batch)")
    p.add_argument("--min_frames", type=int, default=60)
    p.add_argument("--max_frames", type=int, default=STORED_FRAMES)
    p.add_argument("--steps", type=int, default=100, help="train steps per run")
    p.add_argument("--log_every", type=int, default=10, help="steps between rate records")
    p.add_argument("--skip_logs", type=int, default=1,
                   help="first rate records left out (compilation, worker start-up)")
    p.add_argument("--epoch_clips", type=int, default=240_000,
                   help="clips per epoch the rate is projected to (and data.repeat sized for)")
    p.add_argument("--workers", default="-1",
                   help="comma-separated config.data.num_workers values, one run each "
                        "(write --workers=-1,0: a leading minus reads as an option)")
    p.add_argument("--batch_size", type=int, default=0, help="0: the config's")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="further train.py --config.KEY=VALUE overrides (repeatable)")
    p.add_argument("--workdir", default="", help="keep data and runs here (default: a temp dir)")
    p.add_argument("--timeout_s", type=float, default=1800, help="per train.py run")
    p.add_argument("--out", help="append the JSON line here")
    return p.parse_args(argv)


def write_stgcn_split(root: Path, part: str, n: int, *, joints: int, persons: int,
                      score_channel: bool, num_classes: int, min_frames: int, max_frames: int,
                      seed: int) -> None:
    """`{part}_data.npy` (n, 3, 300, joints, persons) float32 + `{part}_label.pkl`, written
    clip by clip into a memory map (a few GB for large n never sit in memory twice)."""
    rng = np.random.default_rng(seed)
    data = np.lib.format.open_memmap(root / f"{part}_data.npy", mode="w+", dtype=np.float32,
                                     shape=(n, 3, STORED_FRAMES, joints, persons))
    for i in range(n):
        # The file starts zero-filled: only the clip's own frames need writing.
        clip = pipeline_benchmark.random_clip(
            rng, i, joints=joints, persons=persons, score_channel=score_channel,
            min_frames=min_frames, max_frames=max_frames)
        data[i, :, :clip.shape[1]] = clip
    data.flush()
    del data
    names = [f"{part}{i:07d}" for i in range(n)]
    labels = [int(v) for v in rng.integers(0, num_classes, n)]
    with open(root / f"{part}_label.pkl", "wb") as f:
        pickle.dump((names, labels), f)


def steady_rate(records: list[dict], batch_size: int, skip: int) -> dict:
    """Clips/s between the rate records of `metrics.jsonl` after the first `skip` ones.

    Each record is written right after fetching that step's metrics (a device sync), so the
    wall time between two of them covers every step in between, input waits included."""
    marks = sorted((r["step"], r["time"]) for r in records if "train/clips_per_s" in r)
    marks = marks[skip:]
    if len(marks) < 2:
        raise SystemExit(f"need at least {skip + 2} rate records in metrics.jsonl, found "
                         f"{len(marks) + skip}: raise --steps or lower --log_every")
    (s0, t0), (s1, t1) = marks[0], marks[-1]
    return {"steps": s1 - s0, "seconds": t1 - t0,
            "clips_per_s": batch_size * (s1 - s0) / (t1 - t0),
            "interval_clips_per_s": [batch_size * (b[0] - a[0]) / (b[1] - a[1])
                                     for a, b in itertools.pairwise(marks)]}


WORKERS_LINE = re.compile(r"train input pipeline: (\d+) grain worker")
DEVICES_LINE = re.compile(r"devices: (\[.*?\]);")


def run_train(args, cfg_batch: int, data_root: Path, workdir: Path, workers: int,
              repeat: int) -> dict:
    """One `train.py` process; its rate from metrics.jsonl and its log's facts."""
    from amstgcn_jax import metrics_log
    overrides = {"data.name": "skeleton_arrays/stgcn", "data.root": str(data_root),
                 "data.repeat": repeat, "data.num_workers": workers,
                 "max_steps": args.steps, "log_every_steps": args.log_every,
                 "eval_every_epochs": 0, "checkpoint_every_steps": 0, "tensorboard": False}
    if args.batch_size:
        overrides["batch_size"] = args.batch_size
    cmd = [sys.executable, str(ROOT / "train.py"), "--config", args.config,
           "--workdir", str(workdir), "--alsologtostderr"]
    cmd += [f"--config.{k}={v}" for k, v in overrides.items()]
    cmd += [f"--config.{kv}" for kv in args.set]
    print("$", " ".join(cmd), flush=True)
    # A run directory left from an earlier call would make train.py resume (and stop at once).
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, check=False, cwd=ROOT, capture_output=True, text=True,
                          timeout=args.timeout_s)
    wall = time.perf_counter() - t0
    (workdir / "train_log.txt").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise SystemExit(f"train.py exited {proc.returncode} (log {workdir}/train_log.txt):\n"
                         f"{tail}")
    rate = steady_rate(metrics_log.read_metrics(workdir), cfg_batch, args.skip_logs)
    # train.py logs the count it starts (`data_setup.num_workers_for`); None if the line is
    # missing.
    found = WORKERS_LINE.search(proc.stderr)
    devices = DEVICES_LINE.search(proc.stderr)
    return {"num_workers": workers,
            "workers_started": int(found.group(1)) if found else None,
            "devices": devices.group(1) if devices else None,
            "train_py_wall_s": wall, **rate,
            "epoch_s": args.epoch_clips / rate["clips_per_s"]}


def main(argv=None):
    from amstgcn_jax import graph
    from amstgcn_jax.datasets import build as build_lib
    from benchmarks.pipeline_benchmark import load_config
    from benchmarks.train_step_benchmark import emit_json

    args = parse_args(argv)
    if any(kv.split("=")[0] == "batch_size" for kv in args.set):
        raise SystemExit("set the batch with --batch_size (the rate is computed from it), "
                         "not --set batch_size=...")
    config = load_config(args.config)
    batch = args.batch_size or config.batch_size
    layout = config.model.layout
    joints = graph.get_layout(layout).num_nodes
    persons = max(1, config.data.num_persons)
    test_clips = args.test_clips or (config.eval_batch_size or batch)
    repeat = max(1, -(-args.epoch_clips // args.clips))
    tmp = None
    if args.workdir:
        base = Path(args.workdir)
        base.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.mkdtemp(prefix="epoch_benchmark_")
        base = Path(tmp)
    try:
        raw, tfds_dir = base / "raw", base / "tfds"
        raw.mkdir(exist_ok=True)
        t0 = time.perf_counter()
        for part, n, seed in (("train", args.clips, 0), ("val", test_clips, 1)):
            write_stgcn_split(raw, part, n, joints=joints, persons=persons,
                              score_channel=bool(config.data.score_channel),
                              num_classes=config.model.num_classes,
                              min_frames=args.min_frames, max_frames=args.max_frames,
                              seed=seed)
        write_s = time.perf_counter() - t0
        import tensorflow_datasets as tfds
        tfds.disable_progress_bar()
        t0 = time.perf_counter()
        build_lib.build("skeleton_arrays/stgcn", data_dir=str(tfds_dir), manual_dir=str(raw),
                        overwrite=True, quiet=True)
        build_s = time.perf_counter() - t0
        print(f"wrote {args.clips}+{test_clips} clips ({joints} joints, {persons} persons) in "
              f"{write_s:.1f} s; TFDS build {build_s:.1f} s "
              f"({(args.clips + test_clips) / build_s:.0f} clips/s)", flush=True)
        runs = []
        for w in (int(s) for s in args.workers.split(",")):
            r = run_train(args, batch, tfds_dir, base / f"run_workers{w}", w, repeat)
            started = "?" if r["workers_started"] is None else r["workers_started"]
            print(f"num_workers={w} ({started} started): "
                  f"{r['clips_per_s']:.1f} clips/s over {r['steps']} steps -> "
                  f"{args.epoch_clips:,}-clip epoch {r['epoch_s']:.1f} s "
                  f"(train.py wall {r['train_py_wall_s']:.1f} s)", flush=True)
            runs.append(r)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    emit_json({"benchmark": "epoch", "host": platform.node(), "cpus": os.cpu_count(),
               "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "config": args.config, "set": args.set, "batch_size": batch,
               "layout": layout, "clips": args.clips, "test_clips": test_clips,
               "data_repeat": repeat, "epoch_clips": args.epoch_clips,
               "write_s": write_s, "tfds_build_s": build_s,
               "tfds_build_clips_per_s": (args.clips + test_clips) / build_s, "runs": runs},
              args.out)


if __name__ == "__main__":
    main()
