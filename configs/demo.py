"""The demo: a tiny network on the mini CamVid shipped inside the package (no download)."""

import os

import ml_collections

from ssgan_jax import default_config as default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    del arg
    import ssgan_jax

    config = default.get_config()
    config.data.name = "camvid"
    config.data.manual_dir = os.path.join(
        os.path.dirname(ssgan_jax.__file__), "demo_data", "camvid_mini")
    config.data.data_dir = ""  # default: <workdir>/tensorflow_datasets
    config.data.crop_size = (64, 96)
    config.data.eval_size = (96, 128)
    config.data.scale_range = (0.75, 1.25)
    config.data.shuffle_buffer = 64
    config.model.width = 16
    config.adversary.width = 16
    config.adversary.map_features = (16, 32)
    config.adversary.trunk_features = (16, 32, 64, 64)
    config.batch_size = 4
    config.eval_batch_size = 4
    return config
