"""Cityscapes (19 trainIds): the paper's setting (METHOD.md sections 6-7).

    python -m ssgan_jax.main --config=configs/cityscapes.py:deeplabv3_resnet50_gan \
        --workdir=runs/cs_r50_gan --config.data.manual_dir=PATH/downloads \
        --config.weights.generator=resnet50.safetensors \
        --config.weights.adversary=resnet50.safetensors

Variants ``<generator>_<baseline|gan|semi>``. The paper trains on train + val (3,475 images) and
reports test; the default here trains on train and validates on val, so that validation
means something: ``--config.data.train_split=train+val`` reproduces the paper's split.

``<generator>_semi``: semi-supervised SS-GAN after AdvSemiSeg's protocol (Hung et al., BMVC
2018): 1/8 of the training images labelled (``--config.data.labeled=0.25`` or ``0.5`` for
1/4 and 1/2, ``data.split_seed`` picks which; the ids go to ``<workdir>/labeled_ids.txt``),
the rest unlabelled in phase 2 (``config.semi``; README "Semi-supervised training").
"""

import ml_collections

from ssgan_jax.core import config as default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = default.get_config()
    config.data.name = "cityscapes"
    config.data.train_split = "train"
    config.data.val_split = "val"
    config.data.crop_size = (500, 500)
    config.data.eval_size = (1024, 2048)  # full frames
    config.eval_batch_size = 2
    config.phase1.steps = 100_000
    config.phase2.steps = 100_000
    args = default.parse_arg(arg, "cityscapes")
    default.apply_variant(config, args["generator"], args["training"])
    return config
