"""Synthetic datasets written in the real on-disk layouts."""

import os

import ml_collections
import numpy as np
import pytest
from PIL import Image

from ssgan_jax.core import config as default

# 11 colours, far apart, so a pixel's colour names its class even after JPEG/bilinear blur
COLOURS = np.array([[(i * 97) % 256, (i * 53 + 80) % 256, (i * 181 + 40) % 256]
                    for i in range(11)], np.uint8)


def position_label(h, w, block=8):
    """A label that is a function of pixel position: blocks of `block` pixels."""
    y, x = np.mgrid[0:h, 0:w]
    return ((y // block) * 3 + (x // block)) % 11


def write_camvid(root, sizes=None, fmt="png"):
    sizes = sizes or {"train": 6, "val": 3, "test": 2}
    for split, n in sizes.items():
        os.makedirs(os.path.join(root, split), exist_ok=True)
        os.makedirs(os.path.join(root, split + "annot"), exist_ok=True)
        for i in range(n):
            h, w = 40 + 8 * i, 56
            lab = position_label(h, w).astype(np.uint8)
            lab[:2, :] = 11  # void row
            img = COLOURS[np.where(lab == 11, 0, lab)]
            Image.fromarray(img).save(os.path.join(root, split, f"{split}_{i:03d}.{fmt}"))
            Image.fromarray(lab, mode="L").save(
                os.path.join(root, split + "annot", f"{split}_{i:03d}.png"))
    return root


@pytest.fixture
def camvid_dir(tmp_path):
    return write_camvid(str(tmp_path / "CamVid"))


@pytest.fixture
def camvid_config(camvid_dir, tmp_path):
    config = default.get_config()
    config.data.name = "camvid"
    config.data.manual_dir = camvid_dir
    config.data.data_dir = str(tmp_path / "tfds")
    config.data.crop_size = (32, 48)
    config.data.eval_size = (96, 64)
    config.data.scale_range = (0.75, 1.5)
    config.batch_size = 4
    config.eval_batch_size = 4
    return ml_collections.ConfigDict(config)


SHARED_CAMVID = os.path.join(
    os.environ.get("SSGAN_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "..",
                                                "shared")), "data", "camvid")


def read_split(data, split):
    """[(file name, uint8 image [H, W, 3], uint8 label [H, W])] of a prepared split, decoded
    as the pipeline decodes them."""
    from ssgan_jax.data import augment, open_prepared, prepared
    from ssgan_jax.data.common import decode_rgb

    examples = open_prepared(data).examples(split)
    out = []
    for i in range(len(examples)):
        ex = examples[i]
        name = prepared.file_name(ex)
        out.append((name, decode_rgb(ex["image"], name), augment.decode_label(ex["label"], name)))
    return out
