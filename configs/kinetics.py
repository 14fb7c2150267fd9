"""Kinetics-skeleton (400 classes, OpenPose 18 joints), the ST-GCN / AM-STGCN paper recipe.

    python -m amstgcn_jax.datasets.build kinetics_skeleton --manual_dir <kinetics-skeleton> \
        --data_dir /data/tfds
    python train.py --config configs/kinetics.py:variant=am_stgcn --workdir runs/kinetics \
        --config.data.root=/data/tfds
    python eval.py --config configs/kinetics.py --checkpoint runs/kinetics/best \
        --motion_classes ../shared/data/reference-preprocessing/kinetics_motion_classes.txt \
        --label_names <kinetics-skeleton>/label_name.txt

Recipe (ST-GCN `config/st_gcn/kinetics-skeleton/train.yaml` @221c0e15, used by the AM-STGCN
paper): SGD Nesterov 0.9, weight decay 1e-4, lr 0.1 ×0.1 at epochs 20, 30, 40, 50, 50 epochs,
batch 256; train on random 150-frame windows + random move, test on all 300 frames; x, y and the
OpenPose score as channels; data BN over V·C; no dropout. `backbone=agcn`: 2s-AGCN's Kinetics
recipe (×0.1 at 45, 55; 65 epochs; batch 128). Args: `variant=...`, modality, `backbone=agcn`,
`bf16`, `seed=N`. Expected (paper): ST-GCN 30.7/52.8, AM-STGCN ConvT+3: TBD (not run here).
"""

from configs import common


def get_config(arg=None):
    arg = common.parse_arg(arg, modality="joint", variant="am_stgcn", backbone="stgcn",
                           bf16=False, seed=0,
                           choices={"modality": common.MODALITIES,
                                    "backbone": ("stgcn", "agcn")})
    agcn = arg.backbone == "agcn"
    data = common.data_config(name="kinetics_skeleton", recipe="agcn" if agcn else "stgcn",
                              modality=arg.modality,
                              window=150, test_window=300, random_move=True, score_channel=True,
                              test_split="test")
    model = common.stgcn_model(num_classes=400, layout="openpose", variant=arg.variant,
                               backbone=arg.backbone, data_bn="MVC" if agcn else "VC",
                               dtype="bfloat16" if arg.bf16 else "float32")
    optim = common.optim_config(learning_rate=0.1, weight_decay=1e-4,
                                decay_epochs=(45, 55) if agcn else (20, 30, 40, 50))
    c = common.base_config(data=data, model=model, optim=optim, batch_size=128 if agcn else 256,
                           num_epochs=65 if agcn else 50, seed=arg.seed)
    c.eval_every_epochs = 5
    return c
