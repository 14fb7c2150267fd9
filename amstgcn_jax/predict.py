"""Class probabilities for your own skeletons: a function API and a CLI.

    python -m amstgcn_jax.predict --config configs/nwucla.py --checkpoint runs/ucla_am/best \
        a01_s01_e00_v03.json my_clip.npy --top_k 3

Files: NTU `.skeleton`, Kinetics-skeleton / NW-UCLA `.json`, or `.npy` arrays in the upstream
layout (C, T, V, M) (also (T, V, C) for one person). Each clip gets the config's *test*
preprocessing (the same frames/normalisation as evaluation), then the model's softmax.
In Python: `predict(model, variables, x_NMTVC)` on ready inputs, or
`predict_arrays(config, checkpoint, [data_CTVM, ...])` with the config's preprocessing.
"""

import sys
from pathlib import Path

import jax
import numpy as np

from amstgcn_jax import data_setup
from amstgcn_jax.readers import arrays as arrays_reader
from amstgcn_jax.readers import kinetics as kinetics_reader
from amstgcn_jax.readers import ntu as ntu_reader
from amstgcn_jax.readers import nwucla as nwucla_reader
from amstgcn_jax.transforms import apply_transforms, to_model_input


def predict(model, variables, x_NMTVC, *, batch_size: int = 64) -> np.ndarray:
    """Softmax class probabilities `(N, L)` of model inputs `x_NMTVC` (float32)."""
    x_NMTVC = np.asarray(x_NMTVC, np.float32)
    if x_NMTVC.ndim != 5:
        raise ValueError(f"expected x of shape (N, M, T, V, C), got {x_NMTVC.shape}")

    @jax.jit
    def probs(variables, x):
        logits_NL, _ = model.apply(variables, x, train=False)
        return jax.nn.softmax(logits_NL.astype(np.float32), axis=-1)

    out = [np.asarray(probs(variables, x_NMTVC[i:i + batch_size]))
           for i in range(0, len(x_NMTVC), batch_size)]
    return np.concatenate(out)


def read_skeleton(path) -> np.ndarray:
    """A skeleton file as float32 (C, T, V, M), with a clear error for unknown formats."""
    path = Path(path)
    if path.suffix == ".skeleton":
        return ntu_reader.read_ntu_skeleton(path, max_frame=None)
    if path.suffix == ".json":
        try:
            nwucla_reader.parse_nwucla_name(path)
        except ValueError:
            return kinetics_reader.read_kinetics_json(path)[0]
        return nwucla_reader.read_nwucla_json(path)[0]
    if path.suffix == ".npy":
        data = np.load(path, allow_pickle=False)
        if data.ndim == 3:  # (T, V, C): one person
            return np.ascontiguousarray(data.transpose(2, 0, 1)[..., None], dtype=np.float32)
        return arrays_reader.read_array_npy(path)
    raise ValueError(f"{path}: unsupported skeleton file (use .skeleton, .json or .npy)")


def preprocess(config, data_CTVM) -> np.ndarray:
    """The config's test-time transforms on one (C, T, V, M) clip -> `x_MTVC`."""
    data_CTVM = np.asarray(data_CTVM, np.float32)
    if data_CTVM.ndim != 4:
        raise ValueError(f"expected a (C, T, V, M) clip, got shape {data_CTVM.shape}")
    ops = data_setup.make_test_transforms(config.data, config.model.get("layout"))
    example = {"data": data_CTVM, "label": 0, "length": data_CTVM.shape[1], "index": 0}
    return to_model_input(apply_transforms(example, ops))["x"]


def predict_arrays(config, checkpoint, clips) -> np.ndarray:
    """Probabilities `(N, L)` for clips `(C, T, V, M)` with `config`'s test preprocessing."""
    from amstgcn_jax import trainer
    model, variables, _ = trainer.load_checkpoint_model(config.model, checkpoint)
    x = np.stack([preprocess(config, c) for c in clips])
    return predict(model, variables, x)


def main(argv):
    from absl import flags

    from amstgcn_jax import compile_cache, evaluate, xla_flags
    xla_flags.apply_gpu_workarounds()
    flags_ = flags.FLAGS
    compile_cache.enable(flags_.compilation_cache_dir)
    if len(argv) < 2:
        raise SystemExit("usage: python -m amstgcn_jax.predict --config C --checkpoint P FILE...")
    paths = argv[1:]
    probs = predict_arrays(flags_.config, flags_.checkpoint, [read_skeleton(p) for p in paths])
    names = (evaluate.read_class_names(flags_.label_names) if flags_.label_names
             else data_setup.class_names_of(flags_.config.data))
    for path, p in zip(paths, probs):
        top = np.argsort(-p)[:flags_.top_k]
        label = ", ".join(f"{names[i] if names and i < len(names) else i}: {p[i]:.3f}"
                          for i in top)
        print(f"{path}: {label}")
    if flags_.out:
        np.save(flags_.out, probs)
    return 0


if __name__ == "__main__":
    from absl import app, flags
    from ml_collections import config_flags

    from amstgcn_jax import compile_cache
    config_flags.DEFINE_config_file("config", None, "Config file (path[:args]).",
                                    lock_config=True)
    flags.DEFINE_string("checkpoint", None, "orbax checkpoint dir, .pt file or converted dir.")
    flags.DEFINE_integer("top_k", 5, "How many classes to print per file.")
    flags.DEFINE_string("label_names", None, "Class names, one per line.")
    flags.DEFINE_string("out", None, "Save the (N, L) probabilities as .npy here.")
    compile_cache.define_flag()
    flags.mark_flags_as_required(["config", "checkpoint"])
    sys.exit(app.run(main))
