"""Cityscapes fine annotations as the 19 trainId classes (METHOD.md section 7).

``manual_dir`` holds ``leftImg8bit_trainvaltest.zip`` and ``gtFine_trainvaltest.zip`` (or their
extracted ``leftImg8bit/`` and ``gtFine/`` folders). labelIds are mapped to trainIds once, at
preparation (every labelId without a trainId -> 255); ``TRAIN_ID_TO_LABEL_ID`` maps
predictions back for the evaluation server. The builder is named ``cityscapes_trainids`` so it
never collides with TFDS's own ``cityscapes`` (raw labelIds) in one data_dir.
"""

from __future__ import annotations

import glob
import os

import numpy as np

from ssgan_jax.data import classes
from ssgan_jax.data.common import (
    DataError,
    Pair,
    SegmentationBuilder,
    file_reader,
    label_table,
    png_label_reader,
)
from ssgan_jax.data.voc import locate

URL = "https://www.cityscapes-dataset.com/downloads/ (login required)"
IMAGES_ZIP = "leftImg8bit_trainvaltest.zip"
LABELS_ZIP = "gtFine_trainvaltest.zip"

LABELS = classes.CITYSCAPES_LABELS  # (labelId, name, trainId); 255 = ignored
LABEL_ID_TO_TRAIN_ID = {label_id: train_id for label_id, _, train_id in LABELS}
TRAIN_ID_TO_LABEL_ID = np.array(
    [next(i for i, _, t in LABELS if t == train_id) for train_id in range(19)], np.uint8)
CLASS_NAMES = classes.CITYSCAPES
PALETTE = ((128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
           (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
           (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
           (0, 80, 100), (0, 0, 230), (119, 11, 32))


def to_label_ids(train_ids: np.ndarray) -> np.ndarray:
    """trainId map -> labelId map for the evaluation server (255 -> 0, unlabeled)."""
    table = np.zeros(256, np.uint8)
    table[:19] = TRAIN_ID_TO_LABEL_ID
    return table[train_ids]


def cityscapes_pairs(images_root: str, labels_root: str, split: str) -> list[Pair]:
    pattern = os.path.join(images_root, "leftImg8bit", split, "*", "*_leftImg8bit.png")
    images = sorted(glob.glob(pattern))
    if not images:
        raise DataError(f"no images match {pattern}; is {IMAGES_ZIP} complete? ({URL})")
    pairs = []
    for image in images:
        city = os.path.basename(os.path.dirname(image))
        stem = os.path.basename(image)[: -len("_leftImg8bit.png")]
        label = os.path.join(labels_root, "gtFine", split, city, stem + "_gtFine_labelIds.png")
        if not os.path.exists(label):
            raise DataError(f"image {image} has no label {label}; is {LABELS_ZIP} complete?")
        pairs.append(Pair(stem, image, label, file_reader(image), png_label_reader(label)))
    return pairs


class CityscapesTrainIds(SegmentationBuilder):
    """Cityscapes gtFine (2975 train / 500 val / 1525 test), labels as the 19 trainIds."""

    name = "cityscapes_trainids"
    CLASS_NAMES = CLASS_NAMES
    PALETTE = PALETTE
    LABEL_TABLE = label_table(LABEL_ID_TO_TRAIN_ID)
    SERVER_LABELS = staticmethod(to_label_ids)  # --mode=predict writes label_ids/ with it
    HOMEPAGE = "https://www.cityscapes-dataset.com/"
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        f"Put {IMAGES_ZIP} and {LABELS_ZIP} from {URL} in manual_dir (or their extracted "
        "leftImg8bit/ and gtFine/ folders)."
    )

    def _source_splits(self, manual_dir: str, dl_manager) -> dict[str, list[Pair]]:
        images = locate(manual_dir, dl_manager, IMAGES_ZIP, "leftImg8bit", URL)
        labels = locate(manual_dir, dl_manager, LABELS_ZIP, "gtFine", URL)
        return {s: cityscapes_pairs(images, labels, s) for s in ("train", "val", "test")}
