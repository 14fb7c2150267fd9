"""NW-UCLA cross-view (train views 1+2, test view 3), CTR-GCN's NW-UCLA recipe, AM-STGCN or ST-GCN.

    python train.py --config configs/nwucla.py:variant=am_stgcn --workdir runs/ucla_am \
        --config.data.root=../shared/data/nw-ucla
    python train.py --config configs/nwucla.py:variant=stgcn --workdir runs/ucla_st \
        --config.data.root=../shared/data/nw-ucla

Reads the CTR-GCN `all_sqe` JSON release straight into memory (no tensorflow_datasets needed).
Recipe (github.com/Uason-Chen/CTR-GCN @59c1d2d2 `config/ucla/default.yaml`,
`feeders/feeder_ucla.py`):
SGD Nesterov 0.9, weight decay 1e-4, batch 16, lr 0.1 with 5 warm-up epochs, ×0.1 at epoch 50,
65 epochs of 5 passes over the 1,020 training clips (`repeat=5`); per clip: centre on joint 1 of
frame 0, random view rotation ±60° about x and y, min-max normalise to [−1, 1], 52 sorted random
frames (test: no rotation, 52 evenly spaced frames). Model: full ST-GCN backbone on the 20-joint
`nw-ucla` graph; `variant=am_stgcn` adds the paper's 3 non-local blocks after ConvT of layer 3.
Args: `variant=...`, modality (`bone`, ...), `backbone=agcn` (2s-AGCN stream, same recipe),
`bf16`, `epochs=N` (the decay epoch and warm-up scale with it: a shorter run of the same
recipe), `seed=N`.
Expected result (measured on one H100, jax 0.11.2, `epochs=30`: CTR-GCN's schedule cut to
30 epochs of 5 passes, 9,540 steps; four streams trained at once on the one GPU by
`UCLA_ROOT=<all_sqe> EPOCHS=30 bash benchmarks/gpu_nwucla.sh`, seed 0): AM-STGCN 92.24% top-1
(99.35% top-5, 179 s), ST-GCN 90.73% (99.57%, 149 s), Js-AGCN 89.44%, Bs-AGCN 88.36%, joint+bone
2s-AGCN fused 92.46% (published CTR-GCN, 4-stream: 96.5%). Summaries and per-sample scores:
`benchmarks/results/nwucla_h100/`. CPU sanity check of the data path (not the recipe): a slim
6-block ST-GCN (16-64 channels), `epochs=10`, `--config.data.repeat=1` (630 steps) reached 68.1%
top-1 on view 3 in 171 s on 2 CPU cores.
"""

import math

from configs import common


def get_config(arg=None):
    arg = common.parse_arg(arg, variant="am_stgcn", modality="joint", backbone="stgcn", bf16=False,
                           epochs=65, seed=0, choices={"modality": common.MODALITIES,
                                                       "backbone": ("stgcn", "agcn")})
    data = common.data_config(name="nw_ucla", root="", recipe="ucla", modality=arg.modality,
                              window=52, rotation=math.radians(60), num_persons=1, repeat=5)
    model = common.stgcn_model(num_classes=10, layout="nw-ucla", variant=arg.variant,
                               backbone=arg.backbone, data_bn="MVC",
                               dtype="bfloat16" if arg.bf16 else "float32")
    scale = arg.epochs / 65
    optim = common.optim_config(learning_rate=0.1, decay_epochs=(round(50 * scale),),
                                warmup_epochs=max(1, round(5 * scale)), weight_decay=1e-4)
    c = common.base_config(data=data, model=model, optim=optim, batch_size=16,
                           num_epochs=arg.epochs, seed=arg.seed)
    c.eval_batch_size = 64
    c.log_every_steps, c.eval_every_epochs, c.checkpoint_every_steps = 100, 5, 2000
    return c
