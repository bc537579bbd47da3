"""A tiny SS-GAN experiment on a synthetic CamVid, for the step and loop tests."""

from __future__ import annotations

import ml_collections

from ssgan_jax.core import config as default

from .data.conftest import write_camvid


def tiny_config(tmp_path, name: str = "deeplabv3_resnet50") -> ml_collections.ConfigDict:
    config = default.get_config()
    config.data.name = "camvid"
    config.data.manual_dir = write_camvid(str(tmp_path / "CamVid"),
                                          sizes={"train": 8, "val": 3, "test": 2})
    config.data.data_dir = str(tmp_path / "tfds")
    config.data.crop_size = (32, 48)
    config.data.eval_size = (96, 64)
    config.data.scale_range = (0.75, 1.5)
    config.model.name = name
    default.tiny_networks(config)
    # XLA's own convolution: it compiles in about 3/4 of the time of the GEMM forms that
    # "auto" picks on the CPU (tests/models/test_conv.py and tests/models/test_networks.py check
    # those forms against it); what these tests check does not depend on the conv form
    config.model.conv_rewrites = "off"
    config.batch_size = 4
    config.eval_batch_size = 4
    config.phase1.steps = 3
    config.phase1.lr = 1e-3
    config.phase1.end_lr = 1e-4
    config.phase2.steps = 3
    config.phase2.lr = 1e-3
    config.phase2.end_lr = 1e-4
    config.phase2.d_lr = 1e-2
    config.phase2.d_end_lr = 1e-2
    config.train.log_every = 2
    config.train.eval_every = 3
    config.train.checkpoint_every = 2
    config.train.health_window = 2
    return config


def loop_config(tmp_path) -> ml_collections.ConfigDict:
    """The loop tests' run: FCN-8s (fastest to compile), 4 phase-1 + 4 phase-2 iterations,
    validation at 4 and 8, checkpoints at 2, 4, 6, 8."""
    config = tiny_config(tmp_path, "fcn8s_vgg16")
    config.phase1.steps = 4
    config.phase2.steps = 4
    config.train.eval_every = 4
    return config
