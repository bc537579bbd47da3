"""VOC 2012 + SBD and Cityscapes builders on archives generated with the real layouts."""

import os
import tarfile
import zipfile

import numpy as np
import pytest
import scipy.io
from PIL import Image

from ssgan_jax.core.config import get_config
from ssgan_jax.data import prepare
from ssgan_jax.data.cityscapes import TRAIN_ID_TO_LABEL_ID, to_label_ids
from ssgan_jax.data.common import DataError
from ssgan_jax.data.voc import voc_palette

from .conftest import read_split

# cityscapesScripts labels.py, trainId of labelIds 0..33, written out independently
OFFICIAL_TRAIN_IDS = [255] * 7 + [0, 1, 255, 255, 2, 3, 4, 255, 255, 255, 5, 255, 6, 7, 8, 9,
                                  10, 11, 12, 13, 14, 15, 255, 255, 16, 17, 18]


def _jpeg(path, h, w, seed):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (h, w, 3), np.uint8)).save(path, quality=95)


def _config(name, manual_dir, data_dir):
    config = get_config()
    config.data.name = name
    config.data.manual_dir = str(manual_dir)
    config.data.data_dir = str(data_dir)
    return config


def make_voc(root):
    """VOCtrainval_11-May-2012.tar and benchmark.tgz with the real internal paths."""
    voc_train, voc_val = ["2007_000001", "2007_000002", "2008_000003"], ["2007_000010",
                                                                         "2009_000011"]
    sbd_train, sbd_val = ["2007_000002", "2010_000100", "2007_000010"], ["2011_000200"]
    stage = root / "stage"
    voc = stage / "VOCdevkit" / "VOC2012"
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / d).mkdir(parents=True)
    sbd = stage / "benchmark_RELEASE" / "dataset"
    for d in ("img", "cls"):
        (sbd / d).mkdir(parents=True)
    pal = voc_palette(256).ravel().tolist()
    for i, image_id in enumerate(voc_train + voc_val + sbd_train[1:2]):
        _jpeg(voc / "JPEGImages" / f"{image_id}.jpg", 20, 30, i)
    _jpeg(sbd / "img" / "2011_000200.jpg", 20, 30, 99)  # only in SBD
    for image_id in voc_train + voc_val:
        lab = np.full((20, 30), 1 + len(image_id) % 5, np.uint8)
        lab[0, :] = 255  # VOC object border
        im = Image.fromarray(lab, mode="P")
        im.putpalette(pal)
        im.save(voc / "SegmentationClass" / f"{image_id}.png")
    for image_id in sbd_train + sbd_val:
        seg = np.full((20, 30), 7, np.uint8)  # SBD maps have no 255 borders
        scipy.io.savemat(sbd / "cls" / f"{image_id}.mat", {"GTcls": {
            "Segmentation": seg, "CategoriesPresent": np.array([[7]], np.uint8)}})
    (voc / "ImageSets/Segmentation/train.txt").write_text("\n".join(voc_train) + "\n")
    (voc / "ImageSets/Segmentation/val.txt").write_text("\n".join(voc_val) + "\n")
    (sbd / "train.txt").write_text("\n".join(sbd_train) + "\n")
    (sbd / "val.txt").write_text("\n".join(sbd_val) + "\n")
    manual = root / "manual"
    manual.mkdir()
    with tarfile.open(manual / "VOCtrainval_11-May-2012.tar", "w") as t:
        t.add(stage / "VOCdevkit", arcname="VOCdevkit")
    with tarfile.open(manual / "benchmark.tgz", "w:gz") as t:
        t.add(stage / "benchmark_RELEASE", arcname="benchmark_RELEASE")
    return manual


def test_voc_train_aug_set_arithmetic_and_label_sources(tmp_path):
    manual = make_voc(tmp_path)
    config = _config("voc2012_aug", manual, tmp_path / "tfds")
    counts = prepare(config.data)
    # (SBD train+val | VOC train) - VOC val = {2007_000001, 2007_000002, 2008_000003,
    # 2010_000100, 2011_000200}
    assert counts["splits"] == {"train_aug": 5, "val": 2}
    labels = {name: label for name, _, label in read_split(config.data, "train_aug")}
    assert sorted(labels) == ["2007_000001.jpg", "2007_000002.jpg", "2008_000003.jpg",
                              "2010_000100.jpg", "2011_000200.jpg"]
    # in VOC train -> VOC's palette PNG (indices, 255 border kept); else SBD's .mat
    assert (labels["2007_000002.jpg"][0] == 255).all()
    assert (labels["2007_000002.jpg"][1:] == 1 + len("2007_000002") % 5).all()
    assert (labels["2010_000100.jpg"] == 7).all() and (labels["2011_000200.jpg"] == 7).all()


def test_voc_missing_archive_names_file_and_url(tmp_path):
    manual = make_voc(tmp_path)
    os.remove(manual / "benchmark.tgz")
    with pytest.raises(DataError, match=r"benchmark\.tgz.*berkeley"):
        prepare(_config("voc2012_aug", manual, tmp_path / "tfds").data)


def make_cityscapes(root, bad_value=None):
    manual = root / "manual"
    manual.mkdir()
    label_ids = np.arange(34, dtype=np.uint8).reshape(2, 17).repeat(3, 0).repeat(2, 1)  # 6x34
    h, w = label_ids.shape
    with zipfile.ZipFile(manual / "leftImg8bit_trainvaltest.zip", "w") as zi, \
            zipfile.ZipFile(manual / "gtFine_trainvaltest.zip", "w") as zl:
        zi.writestr("README", "x")
        for split, city in (("train", "aachen"), ("val", "frankfurt"), ("test", "berlin")):
            stem = f"{city}_000000_000019"
            img = root / f"{stem}.png"
            Image.fromarray(np.full((h, w, 3), 40, np.uint8)).save(img)
            zi.write(img, f"leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png")
            lab = label_ids.copy()
            if bad_value is not None and split == "val":
                lab[0, 0] = bad_value
            lp = root / f"{stem}_labelIds.png"
            Image.fromarray(lab, mode="L").save(lp)
            zl.write(lp, f"gtFine/{split}/{city}/{stem}_gtFine_labelIds.png")
    return manual, label_ids


def test_cityscapes_trainid_table_all_34_label_ids(tmp_path):
    manual, label_ids = make_cityscapes(tmp_path)
    config = _config("cityscapes", manual, tmp_path / "tfds")
    assert prepare(config.data)["splits"] == {"test": 1, "train": 1, "val": 1}
    got = read_split(config.data, "train")[0][2]
    np.testing.assert_array_equal(got, np.array(OFFICIAL_TRAIN_IDS, np.uint8)[label_ids])
    # reverse mapping for the evaluation server: trainId -> its labelId
    for train_id, label_id in enumerate(TRAIN_ID_TO_LABEL_ID):
        assert OFFICIAL_TRAIN_IDS[label_id] == train_id
    np.testing.assert_array_equal(
        to_label_ids(np.array([0, 13, 18, 255], np.uint8)), [7, 26, 33, 0])


def test_cityscapes_unknown_label_value_names_file(tmp_path):
    manual, _ = make_cityscapes(tmp_path, bad_value=40)
    with pytest.raises(DataError, match=r"frankfurt_000000_000019_gtFine_labelIds\.png.*\[40\]"):
        prepare(_config("cityscapes", manual, tmp_path / "tfds").data)
