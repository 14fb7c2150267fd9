"""NTU RGB+D 60 (xsub / xview), ST-GCN's NTU recipe; AM-STGCN, ST-GCN, or 2s-AGCN streams.

    python -m amstgcn_jax.datasets.build ntu_rgbd60/xsub --manual_dir <nturgb+d_skeletons> \
        --data_dir /data/tfds
    python train.py --config configs/ntu60.py:xsub,joint,variant=am_stgcn --workdir runs/ntu60 \
        --config.data.root=/data/tfds

Recipe (ST-GCN, github.com/yysijie/st-gcn @221c0e15 `config/st_gcn/ntu-xsub/train.yaml`, the
paper's setting): SGD Nesterov 0.9, weight decay 1e-4, batch 64, lr 0.1 ×0.1 at epochs 10 and 50,
80 epochs, all 300 frames, no augmentation, dropout 0.5, data BN over V·C.
`backbone=agcn` switches to Js-AGCN/Bs-AGCN (modality joint/bone) with 2s-AGCN's recipe
(github.com/lshiwjx/2s-AGCN @d8f5ad28 `config/nturgbd-cross-subject/train_joint.yaml`: ×0.1 at
epochs 30 and 40, 50 epochs, data BN over M·V·C; `variant=am_stgcn` adds the paper's attention).
Args: `xsub|xview`, `joint|bone|joint_motion|bone_motion`, `variant=...`, `backbone=agcn`,
`bf16`, `seed=N`. Expected (paper, Table 1/10): ST-GCN 81.5/88.3, AM-STGCN: TBD (not run here).
"""

from configs import common


def get_config(arg=None):
    return ntu_config(arg, dataset="ntu_rgbd60", splits=("xsub", "xview"), num_classes=60)


def ntu_config(arg, *, dataset: str, splits: tuple[str, ...], num_classes: int):
    """The NTU recipe above for `dataset` (also NTU-120, configs/ntu120.py)."""
    arg = common.parse_arg(arg, split="xsub", modality="joint", variant="am_stgcn",
                           backbone="stgcn", bf16=False, seed=0,
                           choices={"split": splits, "modality": common.MODALITIES,
                                    "backbone": ("stgcn", "agcn")})
    agcn = arg.backbone == "agcn"
    data = common.data_config(name=f"{dataset}/{arg.split}", recipe="agcn" if agcn else "stgcn",
                              modality=arg.modality, window=300)
    model = common.stgcn_model(num_classes=num_classes, layout="ntu-rgb+d", variant=arg.variant,
                               backbone=arg.backbone, data_bn="MVC" if agcn else "VC",
                               dropout=0.0 if agcn else 0.5,
                               dtype="bfloat16" if arg.bf16 else "float32")
    optim = common.optim_config(learning_rate=0.1, weight_decay=1e-4,
                                decay_epochs=(30, 40) if agcn else (10, 50))
    return common.base_config(data=data, model=model, optim=optim, batch_size=64,
                              num_epochs=50 if agcn else 80, seed=arg.seed)
