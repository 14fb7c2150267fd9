"""NTU RGB+D 120 (xsub / xset) with the ST-GCN NTU recipe (as configs/ntu60.py, 120 classes).

    python -m amstgcn_jax.datasets.build ntu_rgbd120/xsub --manual_dir <skeletons> \
        --data_dir /data/tfds
    python train.py --config configs/ntu120.py:xsub,joint,variant=am_stgcn --workdir runs/ntu120 \
        --config.data.root=/data/tfds

No official ST-GCN NTU-120 recipe exists; this reuses ST-GCN's NTU-60 one (lr 0.1, ×0.1 at epochs
10 and 50, 80 epochs, batch 64, dropout 0.5). `backbone=agcn` uses 2s-AGCN's NTU recipe.
Args: `xsub|xset`, modality, `variant=...`, `backbone=agcn`, `bf16`, `seed=N`.
Expected result: TBD (not run here).
"""

from configs import common


def get_config(arg=None):
    arg = common.parse_arg(arg, split="xsub", modality="joint", variant="am_stgcn",
                           backbone="stgcn", bf16=False, seed=0,
                           choices={"split": ("xsub", "xset"), "modality": common.MODALITIES,
                                    "backbone": ("stgcn", "agcn")})
    agcn = arg.backbone == "agcn"
    data = common.data_config(name=f"ntu_rgbd120/{arg.split}", recipe="agcn" if agcn else "stgcn",
                              modality=arg.modality, window=300)
    model = common.stgcn_model(num_classes=120, layout="ntu-rgb+d", variant=arg.variant,
                               backbone=arg.backbone, data_bn="MVC" if agcn else "VC",
                               dropout=0.0 if agcn else 0.5,
                               dtype="bfloat16" if arg.bf16 else "float32")
    optim = common.optim_config(learning_rate=0.1, weight_decay=1e-4,
                                decay_epochs=(30, 40) if agcn else (10, 50))
    return common.base_config(data=data, model=model, optim=optim, batch_size=64,
                              num_epochs=50 if agcn else 80, seed=arg.seed)
