"""PASCAL VOC 2012 + SBD (21 classes): the paper's setting (METHOD.md sections 6-7).

    python -m ssgan_jax.main --config=configs/voc2012.py:deeplabv3_resnet50_gan \
        --workdir=runs/voc_r50_gan --config.data.manual_dir=PATH/downloads \
        --config.weights.generator=resnet50.safetensors \
        --config.weights.adversary=resnet50.safetensors

Variants ``<generator>_<baseline|gan|semi>`` (Table 3's VGG16, ResNet50, VGG16-G, ResNet50-G).
500x500 crops, batch 2, 100k iterations of phase 1 (Adam 1e-4 -> 1e-5), then for ``_gan``
100k of phase 2 (G Adam 3e-5, A SGD momentum 0.9 at 3e-4, lam 1e-2). A ``_gan`` run can start
from a finished ``_baseline`` run instead of repeating phase 1:
``--config.init_from=runs/voc_r50_baseline --config.phase1.steps=0``.

``<generator>_semi``: semi-supervised SS-GAN after AdvSemiSeg's protocol (Hung et al., BMVC
2018): 1/8 of the training images labelled (``--config.data.labeled=0.25`` or ``0.5`` for
1/4 and 1/2, ``data.split_seed`` picks which; the ids go to ``<workdir>/labeled_ids.txt``),
the rest unlabelled in phase 2 (``config.semi``; README "Semi-supervised training").
"""

import ml_collections

from ssgan_jax.core import config as default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = default.get_config()
    config.data.name = "voc2012_aug"
    config.data.train_split = "train_aug"  # 10,582 images
    config.data.val_split = "val"  # 1,449 images
    config.data.crop_size = (500, 500)
    config.data.eval_size = (512, 512)  # VOC images are at most 500x500
    config.phase1.steps = 100_000
    config.phase2.steps = 100_000
    args = default.parse_arg(arg, "voc2012")
    default.apply_variant(config, args["generator"], args["training"])
    return config
