"""Train (and evaluate) a skeleton action-recognition model.

    python train.py --config configs/synthetic.py --workdir runs/synthetic
    python train.py --config configs/ntu60.py:xsub,joint,variant=am_stgcn --workdir runs/x \
        --config.data.root=/data/tfds --config.batch_size=128

Re-running the same command resumes from the last checkpoint in `--workdir`. Any config field can
be overridden with `--config.<key>=<value>`; misspelt keys are errors (the config is locked).
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from amstgcn_jax import compile_cache, host_malloc, trainer

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Config file (path[:args]).", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and plots.")
host_malloc.define_flag()
compile_cache.define_flag()
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    trainer.prepare_process(FLAGS.compilation_cache_dir, FLAGS.keep_freed_memory)
    try:
        summary = trainer.train_and_evaluate(FLAGS.config, FLAGS.workdir)
    except trainer.NonFiniteLossError as e:
        logging.error("%s", e)
        print(f"training stopped: {e}", file=sys.stderr)
        return 3
    print(f"final top-1 {100 * summary['top1']:.2f}% (top-5 {100 * summary['top5']:.2f}%, "
          f"best top-1 {100 * summary['best_top1']:.2f}%) on {summary['num_samples']} test "
          f"samples after {summary['steps']} steps; wall time {summary['wall_time_s']:.1f} s "
          f"({summary['wall_time_s'] / 60:.1f} min); results in {FLAGS.workdir}")
    return 0


if __name__ == "__main__":
    app.run(main)
