"""`parse_arg`: the `:args` of a config file (e.g. `configs/ntu60.py:xview,bone,variant=stgcn`).

In the spirit of big_vision's `configs/common.py` (own code): comma-separated tokens, each
`key=value` (value typed like the default: int, float, bool, str) or a bare word. A bare word is
`True` for a bool key, or picks the key whose `choices` contain it (`xsub` -> split="xsub").
Unknown keys and words are errors, so a typo never passes silently.
"""

import ml_collections

MODALITIES = ("joint", "bone", "joint_motion", "bone_motion")


def _typed(key, text, default):
    if isinstance(default, bool):
        if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"config arg {key}={text!r}: expected a boolean")
        return text.lower() in ("true", "1", "yes")
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        return type(default)(text)
    return text


def parse_arg(arg, *, choices=None, **defaults) -> ml_collections.ConfigDict:
    """Parses `arg` over `defaults`; `choices` maps a key to its allowed bare words."""
    choices = dict(choices or {})
    result = dict(defaults)
    for token in filter(None, (t.strip() for t in (arg or "").split(","))):
        key, eq, value = token.partition("=")
        if eq:
            if key not in defaults:
                raise ValueError(f"unknown config arg {key!r}; known: {sorted(defaults)}")
            if key in choices and value not in choices[key]:
                raise ValueError(f"config arg {key}={value!r}: choose from {choices[key]}")
            result[key] = _typed(key, value, defaults[key])
        elif isinstance(defaults.get(token), bool):
            result[token] = True
        else:
            keys = [k for k, words in choices.items() if token in words]
            if len(keys) != 1:
                raise ValueError(f"unknown config word {token!r}; words: "
                                 f"{ {k: tuple(w) for k, w in choices.items()} }, keys: "
                                 f"{sorted(defaults)}")
            result[keys[0]] = token
    return ml_collections.ConfigDict(result)


DATA_DEFAULTS = dict(
    name="synthetic",  # "synthetic" | "nw_ucla" | a TFDS name, e.g. "ntu_rgbd60/xsub"
    root="",  # TFDS data_dir (for nw_ucla: the all_sqe JSON directory unless use_tfds)
    raw_dir="",  # raw files (NTU .skeleton dir, Kinetics JSON dir, ...) read into memory, no TFDS
    use_tfds=False,  # nw_ucla only: read the built TFDS dataset under root, not JSON files
    train_split="train", test_split="test",
    recipe="stgcn",  # transforms: "stgcn" | "pyskl" | "ctrgcn" | "ucla" (amstgcn_jax.data_setup)
    modality="joint",  # "joint" | "bone" | "joint_motion" | "bone_motion"
    window=300,  # frames the model sees in training (crop/resample length)
    test_window=0,  # frames at test time; 0 = same as window
    random_move=False,  # ST-GCN random_move (train)
    rotation=0.0,  # max random rotation angle, radians (train; 0 = off)
    p_interval=(),  # CTR-GCN/pyskl crop ratio interval; () = recipe default
    num_clips=1,  # test clips per sample (pyskl recipe)
    score_channel=False,  # channel 2 is an OpenPose score (Kinetics), not a coordinate
    num_persons=2, repeat=1,  # repeat: passes over the train set per epoch (CTR-GCN)
    num_workers=-1,  # grain worker processes; -1: auto (0 on CPU, several for TFDS on GPU/TPU)
    num_train=1200, num_test=480, synthetic_min_frames=48, synthetic_max_frames=96,
)


def data_config(**overrides) -> dict:
    """The full `config.data` dict (every key present, so overrides of typos fail)."""
    unknown = set(overrides) - set(DATA_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown data config keys {sorted(unknown)}")
    return dict(DATA_DEFAULTS, **overrides)


def base_config(*, data: dict, model: dict, optim: dict, batch_size: int, num_epochs: int,
                seed: int = 0) -> ml_collections.ConfigDict:
    """Top-level fields shared by every experiment config."""
    c = ml_collections.ConfigDict()
    c.seed = seed
    c.data, c.model, c.optim = data, model, optim
    c.batch_size = batch_size  # global, over all devices and hosts
    c.eval_batch_size = 0  # 0: same as batch_size
    c.num_epochs = num_epochs
    c.max_steps = -1  # > 0: stop early (smoke runs); the schedule still follows num_epochs
    c.time_budget_s = 0.0  # > 0: stop (eval + save) at the first step past this wall time
    c.log_every_steps = 50
    c.eval_every_epochs = 5
    c.checkpoint_every_steps = 1000  # also at every epoch end
    c.keep_checkpoints = 3
    c.async_checkpointing = True
    c.tensorboard = True
    return c


def optim_config(*, learning_rate=0.1, decay_epochs=(), warmup_epochs=0, weight_decay=1e-4,
                 momentum=0.9, nesterov=True, decay_rate=0.1) -> dict:
    return dict(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov,
                weight_decay=weight_decay, decay_epochs=tuple(decay_epochs),
                decay_rate=decay_rate, warmup_epochs=warmup_epochs)


def stgcn_model(*, num_classes, layout, variant="am_stgcn", backbone="stgcn", data_bn="VC",
                dropout=0.0, dtype="float32", in_channels=3) -> dict:
    """`config.model` for `get_model`: ST-GCN/AM-STGCN fields, or 2s-AGCN's with backbone=agcn.

    `attention` (a placement string like "convt_l3x3") overrides the variant's when set.
    """
    from ml_collections.config_dict import placeholder
    model = dict(backbone=backbone, variant=variant, num_classes=num_classes, layout=layout,
                 in_channels=in_channels, dropout=dropout, data_bn=data_bn,
                 attention=placeholder(str), blocks=placeholder(tuple), dtype=dtype)
    # Execution formulations (same numbers, same parameters); unset = the model's "auto".
    model.update(tcn_impl=placeholder(str), bn_impl=placeholder(str),
                 block_output=placeholder(str), activation_layout=placeholder(str))
    if backbone == "stgcn":
        model.update(strategy="spatial", edge_importance=True, gcn_impl=placeholder(str))
    return model
