"""The labelled subset (data/subset.py) and the unlabelled stream (pipeline.unlabeled_dataset)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from ssgan_jax.core.errors import ConfigError
from ssgan_jax.data import open_prepared, subset
from ssgan_jax.data.common import DataError
from ssgan_jax.data.pipeline import train_dataset, unlabeled_dataset

IDS = [f"img_{i:03d}" for i in range(40)]


def test_choose_fraction_count_and_all():
    eighth = subset.choose(IDS, "0.125", 0)
    assert len(eighth) == 5 and eighth == sorted(eighth) and set(eighth) <= set(IDS)
    assert subset.choose(IDS, "5", 0) == eighth  # a count of the same size: the same images
    assert subset.choose(list(reversed(IDS)), "0.125", 0) == eighth  # order of the split
    assert subset.choose(IDS, "0.125", 1) != eighth  # split_seed picks another subset
    assert set(eighth) <= set(subset.choose(IDS, "0.25", 0))  # nested: a prefix of one order
    assert subset.choose(IDS, "", 0) is None and subset.choose(IDS, "1", 0) is None
    assert subset.choose(IDS, "40", 0) is None
    assert len(subset.choose(IDS, "0.001", 0)) == 1  # at least one image


def test_choose_from_an_id_file(tmp_path):
    path = tmp_path / "ids.txt"
    path.write_text("# the labelled images\nimg_003\n\nimg_001  # a comment\nimg_003\n")
    assert subset.choose(IDS, str(path), 0) == ["img_001", "img_003"]
    path.write_text("img_001\nimg_999\n")
    with pytest.raises(DataError, match=r"names 1 id\(s\) not in the training split.*img_999"):
        subset.choose(IDS, str(path), 0)
    with pytest.raises(ConfigError, match="cannot read the id file"):
        subset.choose(IDS, str(tmp_path / "missing.txt"), 0)
    path.write_text("# nothing\n")
    with pytest.raises(ConfigError, match="lists no image id"):
        subset.choose(IDS, str(path), 0)


@pytest.mark.parametrize("spec,match", [("0", "a fraction must be in"),
                                        ("-0.5", "a fraction must be in"),
                                        ("41", "has 40 images")])
def test_choose_refuses_bad_values(spec, match):
    with pytest.raises(ConfigError, match=match):
        subset.choose(IDS, spec, 0)


def test_write_ids_round_trips(tmp_path):
    path = str(tmp_path / subset.IDS_FILE)
    subset.write_ids(path, ["b", "a"])
    assert open(path).read() == "a\nb\n" and subset.read_ids(path) == ["a", "b"]


# --- the streams, on a CamVid whose train images each have their own colour ------------------


def _colour(i: int) -> tuple[int, int, int]:
    return (20 * i + 10, 100, 250 - 20 * i)


def _write(root, n_train=8):
    for split, n in {"train": n_train, "val": 2, "test": 1}.items():
        os.makedirs(os.path.join(root, split), exist_ok=True)
        os.makedirs(os.path.join(root, split + "annot"), exist_ok=True)
        for i in range(n):
            image = np.zeros((40, 56, 3), np.uint8) + np.asarray(_colour(i), np.uint8)
            Image.fromarray(image).save(os.path.join(root, split, f"{split}_{i:03d}.png"))
            Image.fromarray(np.full((40, 56), i % 11, np.uint8), mode="L").save(
                os.path.join(root, split + "annot", f"{split}_{i:03d}.png"))
    return root


@pytest.fixture
def coloured(camvid_config, tmp_path):
    config = camvid_config
    config.data.manual_dir = _write(str(tmp_path / "Coloured"))
    config.data.data_dir = str(tmp_path / "tfds_coloured")
    config.data.scale_range = (1.0, 1.0)  # crops of 32x48 from 40x56: no padding
    config.semi.unlabeled_batch_size = 2
    return config


def _colours_seen(batches, data) -> set[int]:
    """The train image index of every example of ``batches`` (by its colour)."""
    seen = set()
    for images in batches:
        rgb = images * np.asarray(data.std) * 255 + np.asarray(data.mean) * 255
        for pixel in np.round(rgb.reshape(-1, *rgb.shape[-3:])[:, 0, 0]).astype(int):
            matches = [i for i in range(16) if tuple(pixel) == _colour(i)]
            assert matches, pixel
            seen.add(matches[0])
    return seen


def _train(config, **kw):
    return train_dataset(config, dataset=open_prepared(config.data), **kw)


def _unlabeled(config, **kw):
    return unlabeled_dataset(config, dataset=open_prepared(config.data), **kw)


def _take(ds, n):
    it = ds
    return [next(it) for _ in range(n)]


def test_labelled_and_unlabelled_streams_split_the_train_images(coloured):
    ids = open_prepared(coloured.data).split_ids("train")
    assert sorted(ids) == [f"train_{i:03d}" for i in range(8)]
    labelled = subset.choose(ids, "3", 0)
    lab = _take(_train(coloured, local_devices=2, labeled_ids=labelled), 6)
    unl = _take(_unlabeled(coloured, local_devices=2, labeled_ids=labelled), 12)
    want = {int(s[-3:]) for s in labelled}
    assert _colours_seen([b["image"] for b in lab], coloured.data) == want
    assert _colours_seen([b["image"] for b in unl], coloured.data) == set(range(8)) - want
    assert set(unl[0]) == {"image", "sizes"} and unl[0]["image"].shape == (2, 1, 32, 48, 3)
    assert unl[0]["sizes"].shape == (2, 1, 2)  # no label: image and its region only


def test_unlabelled_stream_resumes_and_splits_over_processes(coloured):
    labelled = ["train_000"]
    full = _take(_unlabeled(coloured, local_devices=2, labeled_ids=labelled), 3)
    again = _take(_unlabeled(coloured, local_devices=2, labeled_ids=labelled), 3)
    resumed = _take(_unlabeled(coloured, local_devices=2, labeled_ids=labelled,
                               start_example=2 * 2), 1)
    np.testing.assert_array_equal(resumed[0]["image"], full[2]["image"])
    for a, b in zip(full, again, strict=True):
        np.testing.assert_array_equal(a["image"], b["image"])
    parts = [_take(_unlabeled(coloured, local_devices=1, process_index=p,
                              process_count=2, labeled_ids=labelled), 3) for p in (0, 1)]
    for k in range(3):
        joined = np.concatenate([parts[0][k]["image"], parts[1][k]["image"]])
        np.testing.assert_array_equal(joined, full[k]["image"])
    # its own seed: not the labelled stream's order of the same images
    everything = _take(_train(coloured, local_devices=2), 3)
    assert not all(np.array_equal(a["image"], b["image"]) for a, b in zip(full, everything,
                                                                         strict=True))


def test_unlabelled_images_from_a_split_or_a_glob(coloured, tmp_path):
    coloured.data.unlabeled_split = "val"
    val = _take(_unlabeled(coloured, local_devices=2), 4)
    assert _colours_seen([b["image"] for b in val], coloured.data) == {0, 1}
    coloured.data.unlabeled_split = ""
    folder = tmp_path / "frames" / "a"
    folder.mkdir(parents=True)
    for i in (5, 6):
        Image.fromarray(np.zeros((40, 56, 3), np.uint8) + np.asarray(_colour(i), np.uint8)
                        ).save(folder / f"f{i}.png")
    (folder / "notes.txt").write_text("not an image")
    coloured.data.unlabeled_glob = str(tmp_path / "frames" / "**" / "*")
    frames = _take(_unlabeled(coloured, local_devices=2), 4)
    assert _colours_seen([b["image"] for b in frames], coloured.data) == {5, 6}
    coloured.data.unlabeled_glob = str(tmp_path / "nothing" / "*.png")
    with pytest.raises(DataError, match="matches no .jpg/.jpeg/.png file"):
        _unlabeled(coloured, local_devices=2)


def test_a_truncated_unlabelled_image_is_named_before_phase_1(tmp_path):
    """The loop decodes the glob's images before phase 1 (one truncated JPEG used to stop a
    run at phase-2 step 6, after phase 1 and a compilation)."""
    from ssgan_jax.data.pipeline import check_unlabeled_files
    from ssgan_jax.training import loop
    from tests.train_fixtures import loop_config

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((40, 56, 3), 30 * i, np.uint8)).save(folder / f"f{i}.jpg")
    assert check_unlabeled_files(str(folder / "*.jpg")) == 3
    data = (folder / "f1.jpg").read_bytes()
    (folder / "f1.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"f1\.jpg: unlabelled image cannot be decoded"):
        check_unlabeled_files(str(folder / "*.jpg"))
    config = loop_config(tmp_path)
    config.semi.unlabeled_batch_size = config.batch_size
    config.data.unlabeled_glob = str(folder / "*.jpg")
    with pytest.raises(DataError, match=r"f1\.jpg: unlabelled image cannot be decoded"):
        loop.train_and_evaluate(config, str(tmp_path / "run"))
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_no_unlabelled_images_is_a_clear_error(coloured):
    with pytest.raises(DataError, match="every image of data.train_split='train' is labelled"):
        _unlabeled(coloured, local_devices=2, labeled_ids=None)


def test_every_process_and_every_start_gets_the_same_subset(coloured, tmp_path):
    coloured.data.labeled = "0.25"
    workdir = tmp_path / "run"
    workdir.mkdir()
    ds = open_prepared(coloured.data)
    other = subset.labeled_ids(coloured, str(workdir), write=False, dataset=ds)  # a process
    assert not (workdir / subset.IDS_FILE).exists()
    first = subset.labeled_ids(coloured, str(workdir), dataset=ds)
    assert first == other and len(first) == 2
    assert subset.read_ids(str(workdir / subset.IDS_FILE)) == first
    assert subset.labeled_ids(coloured, str(workdir), dataset=ds) == first  # a resume: the same
    coloured.data.split_seed = 5  # a restart that would pick other images is refused
    with pytest.raises(ConfigError, match="differs from .*labeled_ids.txt"):
        subset.labeled_ids(coloured, str(workdir), dataset=ds)
    coloured.data.labeled = str(workdir / subset.IDS_FILE)  # the fix the message names
    assert subset.labeled_ids(coloured, str(workdir), dataset=ds) == first
