"""TFDS dataset builders (array_record files, read back without TensorFlow).

| name | configs | source |
|---|---|---|
| `amstgcn_synthetic` | tiny, small (default), medium | built in (`amstgcn_jax.synthetic`) |
| `ntu_rgbd60` | xsub, xview | raw `.skeleton` files (manual) |
| `ntu_rgbd120` | xsub, xset | raw `.skeleton` files (manual) |
| `kinetics_skeleton` | — | ST-GCN JSON dirs + label JSONs (manual) |
| `nw_ucla` | xview | CTR-GCN `all_sqe` JSON (manual) |
| `skeleton_arrays` | stgcn, pyskl | ST-GCN `*_data.npy`+`*_label.pkl`, pyskl pickle (manual) |

Build with `python -m amstgcn_jax.datasets.build <name>[/<config>] --manual_dir ... --data_dir
...`; read with `amstgcn_jax.pipeline.make_source("<name>/<config>", split=..., data_dir=...)`.
This package does not import tensorflow_datasets; only `builder_class` (and the builder
modules) do, so machines without TFDS can still use `amstgcn_jax.datasets.examples`.
"""

from __future__ import annotations

import importlib

BUILDER_MODULES = {
    "amstgcn_synthetic": "synthetic",
    "ntu_rgbd60": "ntu",
    "ntu_rgbd120": "ntu",
    "kinetics_skeleton": "kinetics",
    "nw_ucla": "nw_ucla",
    "skeleton_arrays": "arrays",
}
NEEDS_MANUAL_DIR = frozenset(BUILDER_MODULES) - {"amstgcn_synthetic"}


def builder_class(name: str):
    """The builder class of `name` (a bare dataset name or "name/config")."""
    base = name.split("/")[0]
    if base not in BUILDER_MODULES:
        raise ValueError(f"unknown dataset {base!r}; known: {', '.join(sorted(BUILDER_MODULES))}")
    module = importlib.import_module(f"amstgcn_jax.datasets.{BUILDER_MODULES[base]}")
    for value in vars(module).values():
        if isinstance(value, type) and getattr(value, "name", None) == base:
            return value
    raise LookupError(f"module {module.__name__} defines no builder named {base!r}")
