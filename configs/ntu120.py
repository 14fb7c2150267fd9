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

from configs import ntu60


def get_config(arg=None):
    return ntu60.ntu_config(arg, dataset="ntu_rgbd120", splits=("xsub", "xset"), num_classes=120)
