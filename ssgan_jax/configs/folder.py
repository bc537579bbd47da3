"""Your own dataset: a folder of images and label maps with a classes file.

README, "Your own dataset"; the layout and the classes file: ssgan_jax/data/folder.py.

    python -m ssgan_jax.main --config=configs/folder.py --workdir=runs/mine \
        --config.data.manual_dir=PATH/my_dataset

Argument ``generator=<deeplabv3_resnet50|fcn8s_vgg16>,training=<baseline|gan|semi>,``
``size=<full|cpu>`` (any subset; or the short form ``<generator>_<training>[,<size>]``), as in
configs/camvid.py: ``full`` trains torchvision-size networks with the paper's optimizer
settings (give ImageNet weights: README, "Pretrained weights"), ``cpu`` 1/8-width networks
from random init with class-balanced cross-entropy. ``--mode=prepare`` checks the folder and
prints each split's size, the image sizes it holds and the classes' pixel shares: set
``data.crop_size`` and ``data.eval_size`` from them (training refuses an eval_size smaller than
a validation image, naming the size to set). ``semi``: 1/8 of the train split labelled, or
your unlabelled images with ``--config.data.unlabeled_glob='PATH/frames/*.jpg'``.
"""

import ml_collections

from ssgan_jax.core import config as default

SIZES = ("full", "cpu")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    args = default.parse_arg(arg, "folder", SIZES)
    config = default.get_config()
    config.data.name = "folder"
    config.data.crop_size = (512, 512)
    config.data.eval_size = (512, 512)
    config.batch_size = 8
    config.eval_batch_size = 8
    config.phase1.steps = 20_000
    config.phase2.steps = 10_000
    config.train.eval_every = 2000
    config.eval.checkpoint = "best"
    config.eval.split = "test"
    if args["size"] == "cpu":
        default.apply_cpu_recipe(config)
    default.apply_variant(config, args["generator"], args["training"],
                          baseline="phase2_without_adversary")
    return config
