"""PASCAL VOC 2012 with SBD augmentation (METHOD.md section 7): 21 classes, 255 = ignore.

``manual_dir`` holds ``VOCtrainval_11-May-2012.tar`` and SBD's ``benchmark.tgz`` (or their
extracted ``VOCdevkit/`` and ``benchmark_RELEASE/`` folders).

Splits: ``train_aug`` = (SBD train + SBD val + VOC train) - VOC val (10,582 images with the
official files); ``val`` = VOC val (1,449). A train_aug image in VOC's train list takes VOC's
palette PNG (with its 255 object borders), the others SBD's ``cls/*.mat`` class map.
"""

from __future__ import annotations

import os

import numpy as np

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

CLASS_NAMES = classes.VOC
VOC_ARCHIVE = "VOCtrainval_11-May-2012.tar"
SBD_ARCHIVE = "benchmark.tgz"
VOC_URL = "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar"
SBD_URL = ("http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/"
           "benchmark.tgz")


def voc_palette(n: int = 256) -> np.ndarray:
    """VOC's colour map (bit-interleaved class index), [n, 3] uint8."""
    pal = np.zeros((n, 3), np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    return pal


def read_ids(path: str) -> list[str]:
    with open(require(path, "image list", VOC_URL)) as f:
        return [line.strip() for line in f if line.strip()]


def sbd_label_reader(path: str):
    def read() -> np.ndarray:
        import scipy.io

        try:
            mat = scipy.io.loadmat(path)
            return np.asarray(mat["GTcls"][0, 0]["Segmentation"])
        except (OSError, ValueError, KeyError, IndexError) as e:
            raise DataError(f"{path}: not an SBD class map (GTcls.Segmentation): {e}") from e

    return read


def locate(manual_dir: str, dl_manager, archive: str, folder: str, url: str) -> str:
    """The extracted ``folder`` (already extracted in manual_dir, or from ``archive``)."""
    if os.path.isdir(os.path.join(manual_dir, folder)):
        return manual_dir
    path = require(os.path.join(manual_dir, archive), f"archive {archive}", url)
    return extract(path, os.path.join(os.fspath(dl_manager.download_dir), "extracted"))


def extract(archive: str, under: str) -> str:
    """``archive`` (.tar, .tar.gz/.tgz or .zip) unpacked into ``under/<its name>`` (once: a
    complete earlier unpacking is reused), with the standard library: TFDS's own extractor
    reads through TensorFlow's file layer, which this package does not install."""
    import shutil
    import tarfile
    import tempfile
    import zipfile

    out = os.path.join(under, os.path.basename(archive))
    if os.path.isdir(out):
        return out
    os.makedirs(under, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".extracting-", dir=under)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                z.extractall(tmp)
        else:
            with tarfile.open(archive) as t:
                try:
                    t.extractall(tmp, filter="data")  # no links or paths out of tmp
                except TypeError:  # Python without extraction filters
                    t.extractall(tmp)  # noqa: S202
        os.replace(tmp, out)
    except (OSError, tarfile.TarError, zipfile.BadZipFile) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(f"{archive}: cannot unpack ({e}); download it again") from e
    return out


def voc_aug_splits(voc: str, sbd: str) -> dict[str, list[Pair]]:
    """Pairs of ``train_aug`` and ``val`` from the VOC2012 and SBD dataset roots."""
    seg_lists = os.path.join(voc, "ImageSets", "Segmentation")
    voc_train = read_ids(os.path.join(seg_lists, "train.txt"))
    voc_val = read_ids(os.path.join(seg_lists, "val.txt"))
    sbd_ids = read_ids(os.path.join(sbd, "train.txt")) + read_ids(os.path.join(sbd, "val.txt"))
    in_voc_train = set(voc_train)
    train_aug = sorted((set(sbd_ids) | in_voc_train) - set(voc_val))

    def pair(image_id: str, from_voc: bool) -> Pair:
        image = os.path.join(voc, "JPEGImages", image_id + ".jpg")
        if not os.path.exists(image):
            image = require(os.path.join(sbd, "img", image_id + ".jpg"), "image", SBD_URL)
        if from_voc:
            label = require(os.path.join(voc, "SegmentationClass", image_id + ".png"),
                            "VOC label", VOC_URL)
            reader = png_label_reader(label)
        else:
            label = require(os.path.join(sbd, "cls", image_id + ".mat"), "SBD label", SBD_URL)
            reader = sbd_label_reader(label)
        return Pair(image_id, image, label, file_reader(image), reader)

    return {
        "train_aug": [pair(i, i in in_voc_train) for i in train_aug],
        "val": [pair(i, True) for i in voc_val],
    }


class Voc2012Aug(SegmentationBuilder):
    """PASCAL VOC 2012 segmentation with the SBD-augmented training set (train_aug, val)."""

    name = "voc2012_aug"
    CLASS_NAMES = CLASS_NAMES
    PALETTE = tuple(tuple(int(v) for v in c) for c in voc_palette(21))
    LABEL_TABLE = label_table({**{i: i for i in range(21)}, IGNORE_LABEL: IGNORE_LABEL})
    HOMEPAGE = "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/"
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        f"Put {VOC_ARCHIVE} ({VOC_URL}) and {SBD_ARCHIVE} ({SBD_URL}) in manual_dir "
        "(or their extracted VOCdevkit/ and benchmark_RELEASE/ folders)."
    )

    def _source_splits(self, manual_dir: str, dl_manager) -> dict[str, list[Pair]]:
        voc_root = locate(manual_dir, dl_manager, VOC_ARCHIVE, "VOCdevkit", VOC_URL)
        sbd_root = locate(manual_dir, dl_manager, SBD_ARCHIVE, "benchmark_RELEASE",
                          SBD_URL)
        return voc_aug_splits(os.path.join(voc_root, "VOCdevkit", "VOC2012"),
                              os.path.join(sbd_root, "benchmark_RELEASE", "dataset"))
