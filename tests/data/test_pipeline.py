"""Input pipeline: crops, label/image alignment, padding, determinism, eval batches."""

import json
import pathlib

import numpy as np
import pytest

from ssgan_jax.data import open_prepared, prepare
from ssgan_jax.data.common import DataError
from ssgan_jax.data.pipeline import check_split, eval_dataset, split_tag, train_dataset

from .conftest import COLOURS


def _denormalize(image, data):
    return image * np.asarray(data.std) * 255 + np.asarray(data.mean) * 255


def _train(config, **kw):
    return train_dataset(config, dataset=open_prepared(config.data), **kw)


def _eval(config, split, **kw):
    return eval_dataset(config, split, dataset=open_prepared(config.data), **kw)


def _take(config, n, **kw):
    it = _train(config, local_devices=2, **kw)
    return [next(it) for _ in range(n)]


@pytest.fixture
def prepared(camvid_config):
    prepare(camvid_config.data)
    return camvid_config


def test_shapes_and_label_alignment_under_scale_flip_crop(prepared):
    batches = _take(prepared, 4)
    ch, cw = prepared.data.crop_size
    matched = total = 0
    for b in batches:
        assert b["image"].shape == (2, 2, ch, cw, 3) and b["image"].dtype == np.float32
        assert b["label"].shape == (2, 2, ch, cw) and b["label"].dtype == np.int32
        rgb = _denormalize(b["image"], prepared.data).reshape(-1, 3)
        lab = b["label"].reshape(-1)
        keep = lab != 255
        # each pixel's colour must be closest to its label's colour (labels follow the image)
        dist = ((rgb[keep, None, :] - COLOURS[None].astype(np.float32)) ** 2).sum(-1)
        matched += int((dist.argmin(-1) == lab[keep]).sum())
        total += int(keep.sum())
    # bilinear resizing blurs block borders (8-pixel blocks); interiors must all agree
    assert total > 0 and matched / total > 0.9, matched / total


def test_padding_is_ignore_and_mean(prepared):
    prepared.data.crop_size = (120, 90)  # larger than every image (<= 80x56 after x1.5 at most)
    prepared.data.scale_range = (1.0, 1.0)
    prepared.data.flip = False
    b = _take(prepared, 1)[0]
    assert (b["label"][..., 100:, :] == 255).all()
    np.testing.assert_array_equal(b["image"][..., 100:, :, :], 0.0)  # 0 = the mean colour
    assert (b["label"][..., :38, :56] != 255).any()
    # each crop's image region, at the top-left: the rest is padding
    sizes = b["sizes"].reshape(-1, 2)
    assert sizes.dtype == np.int32 and (sizes < (120, 90)).all()
    for image, label, (h, w) in zip(b["image"].reshape(-1, 120, 90, 3),
                                    b["label"].reshape(-1, 120, 90), sizes, strict=True):
        assert (label[h:] == 255).all() and (label[:, w:] == 255).all()
        assert (image[h:] == 0).all() and (image[:, w:] == 0).all()
        assert np.abs(image[h - 1, :w]).max() > 0 and np.abs(image[:h, w - 1]).max() > 0


def test_flipped_crops_keep_their_image_region_at_the_top_left(prepared):
    """The flip mirrors the image before the padding: a flipped crop is the unflipped one
    mirrored inside its own width, the padding still at the bottom/right."""
    prepared.data.crop_size = (120, 90)
    prepared.data.scale_range = (1.0, 1.0)
    prepared.data.flip = False
    plain = _take(prepared, 2)
    prepared.data.flip = True
    mirrored = kept = 0
    for a, b in zip(plain, _take(prepared, 2), strict=True):
        np.testing.assert_array_equal(a["sizes"], b["sizes"])
        for x, y, (h, w) in zip(a["image"].reshape(-1, 120, 90, 3),
                                b["image"].reshape(-1, 120, 90, 3), a["sizes"].reshape(-1, 2),
                                strict=True):
            assert (y[:, w:] == 0).all() and (y[h:] == 0).all()
            if np.array_equal(y[:h, :w], x[:h, :w]):
                kept += 1
            else:
                np.testing.assert_array_equal(y[:h, :w], x[:h, w - 1::-1])
                mirrored += 1
    assert mirrored and kept, (mirrored, kept)


def test_same_seed_same_batches_other_seed_differs(prepared):
    a = _take(prepared, 3)
    b = _take(prepared, 3)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x["image"], y["image"])
        np.testing.assert_array_equal(x["label"], y["label"])
    prepared.seed = 1
    c = _take(prepared, 3)
    assert not all(np.array_equal(x["image"], y["image"]) for x, y in zip(a, c, strict=True))


def test_resume_skips_to_the_same_stream(prepared):
    full = _take(prepared, 12)  # 48 examples of a 6-image split: 8 epochs, each reordered
    resumed = _take(prepared, 2, start_example=10 * prepared.batch_size)
    for key in ("image", "label", "sizes"):
        np.testing.assert_array_equal(resumed[0][key], full[10][key])
        np.testing.assert_array_equal(resumed[1][key], full[11][key])


def test_threads_and_worker_processes_change_no_batch(prepared):
    """A batch is a function of (seed, step): 1 thread, 4 threads and 2 worker processes
    (Grain's mp_prefetch) deliver the same stream; the second epoch is another order."""
    prepared.data.threads = 1
    one = _take(prepared, 3)
    prepared.data.threads, prepared.data.prefetch = 4, 8
    for x, y in zip(one, _take(prepared, 3), strict=True):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])
    prepared.data.threads, prepared.data.workers = 1, 2
    for x, y in zip(one, _take(prepared, 3), strict=True):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])


def test_each_epoch_is_a_permutation_of_the_split(prepared):
    """Every example once per epoch, two epochs in different orders."""
    from ssgan_jax.data import pipeline

    examples = open_prepared(prepared.data).examples("train")
    batches = pipeline.TrainBatches(examples, np.arange(len(examples)), seed=0, global_batch=4,
                                    local_devices=1, per_device=4, process_index=0,
                                    with_labels=True, augment_args={})
    n = len(examples)
    first, second = batches._order(0).tolist(), batches._order(1).tolist()
    assert n == 6 and sorted(first) == sorted(second) == list(range(n)) and first != second
    positions = [batches._order(e)[k] for e in range(2) for k in range(n)]
    assert positions[:n] == first and positions[n:] == second


def test_processes_split_each_global_batch_like_one_process(prepared):
    """Two processes x 1 device see, row for row, the global batches of 1 process x 2 devices."""
    one = _take(prepared, 3)
    parts = []
    for p in range(2):
        it = _train(prepared, local_devices=1, process_index=p, process_count=2,
                    start_example=0)
        parts.append([next(it) for _ in range(3)])
    for k in range(3):
        for key in ("image", "label"):
            joined = np.concatenate([parts[0][k][key], parts[1][k][key]], axis=0)
            np.testing.assert_array_equal(joined, one[k][key])


def test_batch_must_divide_devices(prepared):
    prepared.batch_size = 3
    with pytest.raises(ValueError, match="not divisible"):
        _train(prepared, local_devices=2)


def test_eval_batches_keep_full_images_with_mask(prepared):
    batches = list(_eval(prepared, "val", local_devices=2))
    # 3 val images, 4 per batch -> one batch, the last example is filler
    assert len(batches) == 1
    b = batches[0]
    eh, ew = prepared.data.eval_size
    assert b["image"].shape == (2, 2, eh, ew, 3) and b["mask"].shape == (2, 2, eh, ew)
    valid = b["valid"].reshape(-1)
    assert valid.tolist() == [True, True, True, False]
    masks = b["mask"].reshape(-1, eh, ew)
    labels = b["label"].reshape(-1, eh, ew)
    heights = []
    for i in range(3):  # each mask is the top-left image rectangle, width 56
        h = int(masks[i].any(1).sum())
        heights.append(h)
        assert masks[i, :h, :56].all() and not masks[i, h:].any() and not masks[i, :, 56:].any()
        assert (labels[i][~masks[i]] == 255).all()
    assert sorted(heights) == [40, 48, 56]  # the generated val images (TFDS order is hashed)
    assert not masks[3].any()


def test_eval_unknown_split_is_named(prepared):
    with pytest.raises(ValueError, match=r"no split 'validation'.*\['test', 'train', 'val'\]"):
        _eval(prepared, "validation", local_devices=1)


def test_split_expressions_select_examples_and_bad_ones_are_named(prepared):
    builder = open_prepared(prepared.data).builder
    # the generated dataset has 6 train, 3 val and 2 test images
    assert check_split(builder, "train+val") == 9
    assert check_split(builder, "train[:50%]") == 3
    assert check_split(builder, "train[:2]+test") == 4
    for split, n in (("train+val", 9), ("train[:50%]", 3)):
        batches = list(_eval(prepared, split, local_devices=2))
        assert sum(int(b["valid"].sum()) for b in batches) == n
    with pytest.raises(DataError, match=r"no split 'train\[10:\]'.*TFDS says: .*6 examples"):
        check_split(builder, "train[10:]")
    with pytest.raises(DataError, match=r"no split 'tr ain'.*\['test', 'train', 'val'\]"):
        check_split(builder, "tr ain")
    with pytest.raises(DataError, match=r"'train\[:0\]' .* selects no examples"):
        check_split(builder, "train[:0]")


def test_split_tags_are_file_name_safe_and_distinct():
    assert split_tag("val") == "val" and split_tag("train+val") == "train+val"
    assert split_tag("train[:50%]") == "train-to50pct"
    assert split_tag("train[50%:]") == "train-50pctto"
    assert split_tag("train[10:20]") == "train-10to20"


def test_eval_image_larger_than_eval_size_is_a_data_error(prepared):
    # the val images are 40x56, 48x56 and 56x56 (HxW); TFDS hashes their order
    prepared.data.eval_size = (40, 56)
    with pytest.raises(DataError, match=r"val_00[12]\.png is (48|56)x56 \(HxW\), larger than "
                                        r"data\.eval_size=\(40, 56\); set "
                                        r"--config\.data\.eval_size='\((48|56), 56\)'"):
        list(_eval(prepared, "val", local_devices=1))


def test_a_prepared_dataset_remembers_its_files(prepared, tmp_path):
    """A data_dir prepared from other files than manual_dir holds now is refused, naming both
    and the way out; moving the same files elsewhere is fine."""
    import shutil

    from ssgan_jax.data import source

    open_prepared(prepared.data)
    record = next(pathlib.Path(prepared.data.data_dir).rglob(source.RECORD))
    assert json.loads(record.read_text())["files"] > 0
    moved = tmp_path / "moved"
    shutil.copytree(prepared.data.manual_dir, moved)
    prepared.data.manual_dir = str(moved)
    source._checked.clear()
    open_prepared(prepared.data)  # the same files in another folder: the same dataset
    victim = next(p for p in sorted(moved.rglob("*.png")) if "train" in str(p.parent))
    victim.write_bytes(victim.read_bytes() + b"\0")  # other contents
    source._checked.clear()
    with pytest.raises(DataError, match=r"was prepared from .* holds other files.*"
                                        r"config.data.data_dir to a new folder"):
        open_prepared(prepared.data)
    with pytest.raises(DataError, match="holds other files"):
        prepare(prepared.data)


def test_a_dataset_prepared_as_tfrecord_is_refused_with_the_command(prepared):
    """Older versions prepared TFRecord files: named, with the command that re-prepares."""
    info = next(pathlib.Path(prepared.data.data_dir).rglob("dataset_info.json"))
    info.write_text(info.read_text().replace('"array_record"', '"tfrecord"'))
    with pytest.raises(DataError, match=r"was prepared as tfrecord .* Delete .*camvid.* "
                                        r"--mode=prepare"):
        list(_eval(prepared, "val", local_devices=1))


def test_a_full_disk_while_preparing_is_one_line(camvid_config, monkeypatch):
    import errno

    import tensorflow_datasets as tfds

    from ssgan_jax.core.errors import DiskFull, disk_space

    def full(self, *a, **k):
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as e:  # wrapped, as TFDS and Orbax do
            raise RuntimeError("write failed") from e

    monkeypatch.setattr(tfds.core.GeneratorBasedBuilder, "download_and_prepare", full)
    with pytest.raises(DiskFull, match=r"no space left on the device of .*camvid.*source files "
                                       r"in .* are untouched"):
        prepare(camvid_config.data)
    with pytest.raises(ZeroDivisionError):  # anything else passes unchanged
        with disk_space("/x", "kept"):
            raise ZeroDivisionError


def test_class_pixels_are_counted_at_prepare_and_give_median_frequency_weights(prepared):
    """The per-example class pixel counts stored beside the dataset are the source labels'
    (void -> ignore, not counted), and loss.class_balance turns those of the labelled images
    into median-frequency weights."""
    import os

    from PIL import Image

    from ssgan_jax.data import balance
    from ssgan_jax.data import prepared as opened

    builder = open_prepared(prepared.data).builder
    assert os.path.exists(os.path.join(builder.data_dir, opened.PIXELS_FILE))
    counts = opened.class_pixels(builder, "train")
    assert sorted(counts["ids"]) == [f"train_{i:03d}" for i in range(6)]
    for stem, row, shape in zip(counts["ids"], counts["pixels"], counts["shapes"], strict=True):
        raw = np.array(Image.open(os.path.join(prepared.data.manual_dir, "trainannot",
                                               stem + ".png")))
        np.testing.assert_array_equal(row, np.bincount(raw.ravel(), minlength=12)[:11])
        assert tuple(shape) == raw.shape
    prepared.loss.class_balance = "median_frequency"
    balance.resolve_class_weights(prepared, ["train_000", "train_001"],
                                  open_prepared(prepared.data))
    rows = [counts["ids"].index(k) for k in ("train_000", "train_001")]
    pixels = np.asarray(counts["pixels"])[rows]
    sizes = np.prod(np.asarray(counts["shapes"])[rows], axis=1)
    want = balance.median_frequency_weights(pixels.sum(0), ((pixels > 0) * sizes[:, None]).sum(0))
    np.testing.assert_allclose(prepared.loss.class_weights, want, rtol=1e-5)
    assert len(set(prepared.loss.class_weights)) > 2  # the classes differ in frequency
    prepared.loss.class_weights = ()  # softer weights: the square roots
    prepared.loss.class_balance_power = 0.5
    balance.resolve_class_weights(prepared, ["train_000", "train_001"],
                                  open_prepared(prepared.data))
    np.testing.assert_allclose(prepared.loss.class_weights, np.sqrt(want), rtol=1e-5)
