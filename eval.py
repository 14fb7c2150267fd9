"""Evaluate a checkpoint on a config's test split: top-1/top-5, per-class accuracy, scores.

    python eval.py --config configs/synthetic.py --checkpoint runs/synthetic/best --out s.npz
    python eval.py --config configs/ntu60.py:xsub,variant=stgcn --checkpoint st_gcn.ntu-xsub.pt \
        --config.data.root=/data/tfds

`--checkpoint` takes our orbax checkpoints (workdir, `<workdir>/best`, a step dir), PyTorch
ST-GCN / 2s-AGCN `.pt` files (read without torch), or `python -m amstgcn_jax.convert` output.
`--out` saves per-sample class scores (.npy, .npz or pyskl-style .pkl) for `amstgcn_jax.fuse`.
"""

import json

from absl import app, flags, logging
from ml_collections import config_flags

from amstgcn_jax import compile_cache, host_malloc, trainer

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Config file (path[:args]).", lock_config=True)
flags.DEFINE_string("checkpoint", None, "orbax checkpoint dir, .pt file or converted dir.")
flags.DEFINE_string("out", None, "Save per-sample scores here (.npy/.npz/.pkl).")
flags.DEFINE_string("motion_classes", None, "Class-subset file (e.g. Kinetics-Motion, 30 names).")
flags.DEFINE_string("label_names", None, "Class names of the dataset, one per line.")
flags.DEFINE_string("plots_dir", None, "Write confusion-matrix / per-class PNGs here.")
host_malloc.define_flag()
compile_cache.define_flag()
flags.mark_flags_as_required(["config", "checkpoint"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    trainer.prepare_process(FLAGS.compilation_cache_dir, FLAGS.keep_freed_memory)
    m = trainer.evaluate_checkpoint(FLAGS.config, FLAGS.checkpoint, out=FLAGS.out,
                                    motion_classes=FLAGS.motion_classes,
                                    label_names=FLAGS.label_names, plots_dir=FLAGS.plots_dir)
    print(f"top-1 {100 * m['top1']:.2f}%  top-5 {100 * m['top5']:.2f}%  mean class accuracy "
          f"{100 * m['mean_class_accuracy']:.2f}%  ({m['num_samples']} samples)")
    if "subset" in m:
        s = m["subset"]
        print(f"class subset ({len(s['class_names'])} classes, {s['num_samples']} samples): "
              f"top-1 {100 * s['top1']:.2f}%  top-5 {100 * s['top5']:.2f}%  top-1 within the "
              f"subset {100 * s['top1_within_subset']:.2f}%")
    names = m["class_names"] or [str(i) for i in range(len(m["per_class_accuracy"]))]
    per_class = {n: round(float(a), 4) for n, a in zip(names, m["per_class_accuracy"])}
    logging.info("per-class accuracy: %s", json.dumps(per_class))
    return 0


if __name__ == "__main__":
    app.run(main)
