"""`tfds build`-style CLI: prepare one of our datasets as array_record files.

    python -m amstgcn_jax.datasets.build ntu_rgbd60/xsub --manual_dir ~/raw/ntu --data_dir ~/tfds
    python -m amstgcn_jax.datasets.build amstgcn_synthetic/small --data_dir ~/tfds

Bad samples are skipped (one line each, with the reason) and counted at the end. A wrong path,
a missing manual directory or an unknown dataset ends with one sentence (exit status 2), not a
traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

from amstgcn_jax.datasets import BUILDER_MODULES, NEEDS_MANUAL_DIR, builder_class
from amstgcn_jax.readers.errors import SkeletonFormatError


def _fail(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def check_manual_dir(name: str, manual_dir: str) -> None:
    """Raises FileNotFoundError (one sentence) if `manual_dir` lacks what `name` needs."""
    from amstgcn_jax.datasets import examples
    base, _, config = name.partition("/")
    if base in ("ntu_rgbd60", "ntu_rgbd120"):
        examples.ntu_dirs(manual_dir)
    elif base == "kinetics_skeleton":
        examples.kinetics_parts(manual_dir)
    elif base == "nw_ucla":
        from amstgcn_jax.readers import nwucla
        if not nwucla.list_nwucla_files(manual_dir):
            raise FileNotFoundError(f"no NW-UCLA JSON files (a01_s01_e00_v01.json ...) in "
                                    f"{manual_dir}")
    elif base == "skeleton_arrays" and config in ("", "stgcn"):
        if not any(os.path.isfile(os.path.join(manual_dir, f"{p}_data.npy"))
                   for p in ("train", "val")):
            raise FileNotFoundError(f"no train_data.npy or val_data.npy in {manual_dir}")
    elif base == "skeleton_arrays" and config == "ctrgcn":
        if len([f for f in os.listdir(manual_dir) if f.endswith(".npz")]) != 1:
            raise FileNotFoundError(f"expected exactly one CTR-GCN .npz in {manual_dir}")


def build(name: str, *, data_dir: str | None, manual_dir: str | None = None,
          overwrite: bool = False, quiet: bool = False):
    """Builds `name` ("dataset" or "dataset/config"); returns the builder (see `.skipped`)."""
    import tensorflow_datasets as tfds
    base, _, config = name.partition("/")
    cls = builder_class(base)
    mode = (tfds.download.GenerateMode.FORCE_REDOWNLOAD if overwrite
            else tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS)
    builder = cls(config=config or None, data_dir=data_dir, file_format="array_record",
                  quiet=quiet)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=manual_dir, download_mode=mode))
    return builder


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m amstgcn_jax.datasets.build",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("name", help=f"dataset[/config], one of: {', '.join(sorted(BUILDER_MODULES))}")
    p.add_argument("--manual_dir", help="directory holding the raw files you downloaded")
    p.add_argument("--data_dir", default=None,
                   help="where to write the prepared dataset (default ~/tensorflow_datasets)")
    p.add_argument("--overwrite", action="store_true", help="rebuild even if already prepared")
    p.add_argument("--quiet", action="store_true", help="no line per skipped sample")
    args = p.parse_args(argv)
    base, _, config = args.name.partition("/")
    if base not in BUILDER_MODULES:
        known = ", ".join(sorted(BUILDER_MODULES))
        return _fail(f"unknown dataset {base!r}; choose one of {known}.")
    if base in NEEDS_MANUAL_DIR:
        if not args.manual_dir:
            return _fail(f"{base} is built from files you download yourself: pass --manual_dir "
                         "<directory holding them> (see the builder's instructions).")
        if not os.path.isdir(args.manual_dir):
            return _fail(f"the manual directory {args.manual_dir} does not exist.")
    try:
        import tensorflow_datasets as tfds
        tfds.disable_progress_bar()
        cls = builder_class(base)
        configs = [c.name for c in (cls.BUILDER_CONFIGS or [])]
        if config and config not in configs:
            return _fail(f"{base} has no config {config!r}; choose one of {', '.join(configs)}.")
        if base in NEEDS_MANUAL_DIR:
            check_manual_dir(args.name, args.manual_dir)
        builder = build(args.name, data_dir=args.data_dir, manual_dir=args.manual_dir,
                        overwrite=args.overwrite, quiet=args.quiet)
    except (FileNotFoundError, NotADirectoryError, PermissionError, SkeletonFormatError) as e:
        return _fail(f"{e}.".replace("..", "."))
    counts = ", ".join(f"{s}: {info.num_examples}" for s, info in builder.info.splits.items())
    print(f"{builder.info.full_name} in {builder.data_dir} ({counts})")
    if builder.skipped:
        total = sum(len(v) for v in builder.skipped.values())
        print(f"{total} sample(s) skipped" + (": " + ", ".join(
            f"{s}: {len(v)}" for s, v in builder.skipped.items()) if total else ""))
    else:
        print("already prepared (nothing rebuilt; pass --overwrite to rebuild)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
