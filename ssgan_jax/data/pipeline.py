"""tf.data input pipelines over the TFDS builders (CPU only; TF never takes a GPU).

Training: decode -> random scale -> normalise -> pad (image 0 = mean, label ignore) -> random
crop -> random horizontal flip, all stateless ops seeded from (seed, example index), so two
runs with one seed give identical batches. Evaluation: full images padded at the bottom/right
to ``data.eval_size`` with a validity mask; the last batch is padded with empty examples.
Batches are ``[local_devices, per_device_batch, ...]`` for pmap; in a multi-host job each
process decodes its own rows of every global batch (training) or its shard of the split (eval).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import ml_collections

from ssgan_jax.core.errors import disk_space
from ssgan_jax.data import builder_class, source, subset
from ssgan_jax.data.common import IGNORE_LABEL, DataError


def _tf():
    """Import TF for data only: hide every GPU from it before it creates a context."""
    import tensorflow as tf

    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # already initialised; nothing was placed on a GPU by us
        pass
    return tf


def get_builder(data: ml_collections.ConfigDict):
    """The TFDS builder of ``data.name`` in ``data.data_dir``."""
    _tf()
    cls = builder_class(data.name)
    data_dir = os.path.expanduser(data.data_dir) if data.data_dir else None
    return cls(data_dir=data_dir)


def prepare(data: ml_collections.ConfigDict) -> dict[str, Any]:
    """Build the TFDS dataset from ``data.manual_dir``; returns the example count per split."""
    import tensorflow_datasets as tfds

    if not data.manual_dir:
        raise DataError(
            f"config.data.manual_dir is not set: point it at the downloaded {data.name} files "
            f"({builder_class(data.name).MANUAL_DOWNLOAD_INSTRUCTIONS})"
        )
    manual_dir = os.path.expanduser(data.manual_dir)
    if not os.path.isdir(manual_dir) or not os.listdir(manual_dir):
        raise DataError(
            f"config.data.manual_dir={data.manual_dir!r} "
            f"{'is empty' if os.path.isdir(manual_dir) else 'does not exist'}: point it at the "
            f"downloaded {data.name} files "
            f"({builder_class(data.name).MANUAL_DOWNLOAD_INSTRUCTIONS.strip()})")
    builder = get_builder(data)
    if builder.is_prepared():  # prepared before: from these files?
        source.check(builder.data_dir, manual_dir, data.name, data.data_dir)
    else:
        with disk_space(builder.data_dir, f"the source files in {manual_dir} are untouched; "
                        "TFDS keeps no half-written dataset (it builds into a temporary "
                        "folder)"):
            builder.download_and_prepare(
                download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
            source.record(builder.data_dir, manual_dir)
    return {
        "dataset": data.name,
        "splits": {k: v.num_examples for k, v in sorted(builder.info.splits.items())},
    }


def ensure_prepared(data: ml_collections.ConfigDict):
    """The builder, prepared from ``manual_dir`` first if it is not yet."""
    builder = get_builder(data)
    if not builder.is_prepared():
        print(f"dataset {data.name} not prepared in {builder.data_dir}; preparing it now")
        print(json.dumps(prepare(data)))
        builder = get_builder(data)
    else:
        source.check(builder.data_dir, data.manual_dir, data.name, data.data_dir)
    return builder


def decode_image(tf, encoded):
    """JPEG or PNG bytes -> uint8 [H, W, 3]. JPEGs use the accurate IDCT, matching PIL."""
    return tf.cond(
        tf.io.is_jpeg(encoded),
        lambda: tf.io.decode_jpeg(encoded, channels=3, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_png(encoded, channels=3),
    )


def _normalize(tf, image_uint8, data):
    mean = tf.constant(data.mean, tf.float32) * 255.0
    std = tf.constant(data.std, tf.float32) * 255.0
    return (tf.cast(image_uint8, tf.float32) - mean) / std


def augment(tf, image_uint8, label, seed, data: ml_collections.ConfigDict):
    """One training example: scale, normalise, flip, pad, crop (METHOD.md section 6 inputs).

    image_uint8 [H, W, 3], label [H, W, 1] uint8; seed: int32/int64 [2] stateless seed.
    Returns image float32 [ch, cw, 3], label int32 [ch, cw] and sizes int32 [2]: the crop's
    image region (the rest is padding where the scaled image is smaller than the crop; the
    flip comes before the padding so that the region is at the top-left, ``models.canvas``).
    """
    ch, cw = data.crop_size
    s_scale, s_crop, s_flip = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    lo, hi = data.scale_range
    scale = tf.random.stateless_uniform([], s_scale, lo, hi)
    size = tf.cast(tf.shape(image_uint8)[:2], tf.float32)
    new = tf.cast(tf.round(size * scale), tf.int32)
    image = _normalize(tf, image_uint8, data)
    image = tf.image.resize(image, new, method="bilinear")
    label = tf.image.resize(label, new, method="nearest")
    if data.flip:
        flip = tf.random.stateless_uniform([], s_flip) < 0.5
        image = tf.cond(flip, lambda: image[:, ::-1], lambda: image)
        label = tf.cond(flip, lambda: label[:, ::-1], lambda: label)
    pad_h = tf.maximum(ch - new[0], 0)
    pad_w = tf.maximum(cw - new[1], 0)
    image = tf.pad(image, [[0, pad_h], [0, pad_w], [0, 0]])  # 0 = the mean colour
    label = tf.pad(tf.cast(label, tf.int32), [[0, pad_h], [0, pad_w], [0, 0]],
                   constant_values=IGNORE_LABEL)
    both = tf.concat([image, tf.cast(label, tf.float32)], axis=-1)
    both = tf.image.stateless_random_crop(both, [ch, cw, 4], s_crop)
    sizes = tf.minimum(new, tf.constant([ch, cw], tf.int32))
    return both[..., :3], tf.cast(tf.round(both[..., 3]), tf.int32), sizes


_OVERSIZE = "image larger than data.eval_size"


def check_split(builder, split: str) -> int:
    """The number of examples ``split`` selects: a split name or a TFDS split expression over
    the dataset's splits ("train+val", "train[:50%]", "train[:100]+val"). DataError naming the
    dataset's splits if it is neither, or selects no example."""
    splits = sorted(builder.info.splits)
    try:
        selected = builder.info.splits[split].num_examples
    except (KeyError, ValueError) as e:
        reason = str(e).splitlines()[-1] if str(e).strip() else type(e).__name__
        raise DataError(
            f"dataset {builder.name} has no split {split!r}; it has {splits} (TFDS split "
            f"expressions over them work too, e.g. 'train+val' or 'train[:50%]'); TFDS says: "
            f"{reason}") from e
    if selected < 1:
        sizes = {k: builder.info.splits[k].num_examples for k in splits}
        raise DataError(f"split {split!r} of dataset {builder.name} selects no examples; its "
                        f"splits have {sizes} examples")
    return selected


def split_tag(split: str) -> str:
    """``split`` as a file-name part: names and "a+b" unchanged; slices spelled out
    ("train[:50%]" -> "train-to50pct", "train[10:20]" -> "train-10to20")."""
    tag = re.sub(r"[^\w+.-]+", "-", split.replace("%", "pct").replace(":", "to"))
    return tag.strip("-") or "split"


def _split_for_process(builder, split: str, process_index: int, process_count: int) -> str:
    import tensorflow_datasets as tfds

    check_split(builder, split)
    if process_count == 1:
        return split
    return tfds.even_splits(split, n=process_count)[process_index]


def _to_devices(tf, batch, local_devices: int, per_device: int):
    """[D * B, ...] -> [D, B, ...]."""
    return {k: tf.reshape(v, [local_devices, per_device, *v.shape[1:]]) for k, v in batch.items()}


def per_device_batch(global_batch: int, local_devices: int, process_count: int) -> int:
    devices = local_devices * process_count
    if global_batch % devices:
        raise ValueError(
            f"batch_size {global_batch} is not divisible by the {devices} devices; "
            f"set --config.batch_size to a multiple of {devices}"
        )
    return global_batch // devices


def split_ids(data: ml_collections.ConfigDict, split: str) -> list[str]:
    """The ids (file stems, ``subset.stem``) of ``split``'s examples, in the split's order."""
    import tensorflow_datasets as tfds

    builder = ensure_prepared(data)
    check_split(builder, split)
    skip = tfds.decode.SkipDecoding()
    ds = builder.as_dataset(split=split, shuffle_files=False,
                            decoders={"image": skip, "label": skip})
    return [subset.stem(ex["file_name"].decode()) for ex in tfds.as_numpy(ds)]


def _stem_tf(tf, file_name):
    """``subset.stem`` in TF: the base name without its last extension."""
    base = tf.strings.regex_replace(file_name, r"^.*/", "")
    return tf.strings.regex_replace(base, r"\.[^.]*$", "")


def _keep_ids(tf, ds, ids, keep: bool):
    """The examples whose id is (``keep``) or is not in ``ids``."""
    table = tf.constant(sorted(ids))

    def member(ex):
        found = tf.reduce_any(tf.equal(_stem_tf(tf, ex["file_name"]), table))
        return found if keep else tf.logical_not(found)

    return ds.filter(member)


def _stream(tf, ds, config, *, global_batch: int, local_devices: int, process_index: int,
            process_count: int, start_example: int, seed, with_labels: bool):
    """An endless, deterministic, resumable batch stream of ``ds``'s examples (``image``
    encoded, ``label`` if ``with_labels``): shuffled from ``seed``, augmented per example from
    (``seed``, position), each process decoding only its rows of every global batch."""
    data = config.data
    per_device = per_device_batch(global_batch, local_devices, process_count)
    local = local_devices * per_device
    if start_example % global_batch:
        raise ValueError(f"start_example {start_example} is not a multiple of the batch size")
    ds = ds.repeat().shuffle(data.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.enumerate().skip(start_example)
    if process_count > 1:  # keep this process's rows of each global batch (before decoding)
        ds = ds.filter(lambda i, ex: (i % global_batch) // local == process_index)

    def map_fn(index, ex):
        image = decode_image(tf, ex["image"])
        # an unlabelled image is augmented like a labelled one: same crops, scales and flips
        label = ex["label"] if with_labels else tf.zeros_like(image[..., :1])
        image, label, sizes = augment(tf, image, label,
                                      tf.stack([tf.cast(seed, tf.int64), index]), data)
        if with_labels:
            return {"image": image, "label": label, "sizes": sizes}
        return {"image": image, "sizes": sizes}

    ds = ds.map(map_fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(local, drop_remainder=True)
    ds = ds.map(lambda b: _to_devices(tf, b, local_devices, per_device))
    options = tf.data.Options()
    options.deterministic = True
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def train_dataset(
    config: ml_collections.ConfigDict,
    *,
    local_devices: int,
    process_index: int = 0,
    process_count: int = 1,
    start_example: int = 0,
    labeled_ids: list[str] | None = None,
):
    """Infinite training batches {"image": [D, B, h, w, 3] f32, "label": [D, B, h, w] i32}.

    Every process walks the same shuffled stream of examples (seeded by ``config.seed``) and
    decodes only its slice of each global batch, so global batch k holds the same examples,
    augmented the same way, whatever the number of processes and devices: a 2-process job
    trains on exactly what a 1-process job does. ``start_example`` (a multiple of the global
    batch) skips the examples of earlier steps when resuming. ``labeled_ids``: only these
    examples of ``data.train_split`` (``subset.choose``; None = all).
    """
    import tensorflow_datasets as tfds

    tf = _tf()
    data = config.data
    builder = ensure_prepared(data)
    split = _split_for_process(builder, data.train_split, 0, 1)
    read = tfds.ReadConfig(shuffle_seed=config.seed, interleave_cycle_length=1)
    ds = builder.as_dataset(split=split, shuffle_files=True, read_config=read,
                            decoders={"image": tfds.decode.SkipDecoding()})
    if labeled_ids is not None:
        ds = _keep_ids(tf, ds, labeled_ids, keep=True)
    return _stream(tf, ds, config, global_batch=config.batch_size, local_devices=local_devices,
                   process_index=process_index, process_count=process_count,
                   start_example=start_example, seed=config.seed, with_labels=True)


UNLABELED_SEED_OFFSET = 7919  # the unlabelled stream's shuffle and augmentation seed: seed + this


def unlabeled_files(pattern: str) -> list[str]:
    """The image files ``data.unlabeled_glob`` matches (sorted); DataError if none."""
    import glob

    files = sorted(f for f in glob.glob(os.path.expanduser(pattern), recursive=True)
                   if os.path.splitext(f)[1].lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        raise DataError(f"config.data.unlabeled_glob={pattern!r} matches no .jpg/.jpeg/.png "
                        "file; give a glob of images, e.g. '/data/frames/**/*.png'")
    return files


def unlabeled_dataset(
    config: ml_collections.ConfigDict,
    *,
    local_devices: int,
    process_index: int = 0,
    process_count: int = 1,
    start_example: int = 0,
    labeled_ids: list[str] | None = None,
):
    """Infinite batches {"image": [D, Bu, h, w, 3]} of unlabelled images, ``semi.
    unlabeled_batch_size`` per global batch, augmented as the labelled ones, deterministic and
    resumable the same way (its own seed). The images: ``data.unlabeled_glob``'s files, else
    ``data.unlabeled_split``, else ``data.train_split`` without ``labeled_ids``. No label is
    read: labels never leave the TFDS record (``SkipDecoding`` and dropped before the map).
    """
    import tensorflow_datasets as tfds

    tf = _tf()
    data = config.data
    seed = config.seed + UNLABELED_SEED_OFFSET
    if data.unlabeled_glob:
        files = unlabeled_files(data.unlabeled_glob)
        ds = tf.data.Dataset.from_tensor_slices(files).shuffle(
            len(files), seed=seed, reshuffle_each_iteration=False)
        ds = ds.map(lambda f: {"image": tf.io.read_file(f), "file_name": f})
    else:
        builder = ensure_prepared(data)
        split = data.unlabeled_split or data.train_split
        check_split(builder, split)
        read = tfds.ReadConfig(shuffle_seed=seed, interleave_cycle_length=1)
        ds = builder.as_dataset(split=split, shuffle_files=True, read_config=read,
                                decoders={"image": tfds.decode.SkipDecoding(),
                                          "label": tfds.decode.SkipDecoding()})
        ds = ds.map(lambda ex: {"image": ex["image"], "file_name": ex["file_name"]})
        if not data.unlabeled_split:
            if labeled_ids is None:
                raise DataError(
                    "semi-supervised training needs unlabelled images, but every image of "
                    f"data.train_split={data.train_split!r} is labelled: set "
                    "--config.data.labeled (a fraction, a count or an id file), "
                    "--config.data.unlabeled_split or --config.data.unlabeled_glob")
            ds = _keep_ids(tf, ds, labeled_ids, keep=False)
    return _stream(tf, ds, config, global_batch=config.semi.unlabeled_batch_size,
                   local_devices=local_devices, process_index=process_index,
                   process_count=process_count, start_example=start_example, seed=seed,
                   with_labels=False)


def eval_dataset(
    config: ml_collections.ConfigDict,
    split: str,
    *,
    local_devices: int,
    process_index: int = 0,
    process_count: int = 1,
    oversize: str = "refuse",
):
    """One pass over ``split``: {"image", "label", "mask" [D, B, H, W] bool, "valid" [D, B]}.

    Images are padded (bottom/right) to ``data.eval_size``; padding has mask False and label
    ignore; examples that only fill the last batch have valid False. An image larger than
    ``data.eval_size`` stops the pass with an error naming it (``as_numpy``) with
    ``oversize="refuse"``; with ``oversize="skip"`` it is left out of this stream, for
    ``oversize_dataset`` to deliver.
    """
    if oversize not in ("refuse", "skip"):
        raise ValueError(f"oversize must be 'refuse' or 'skip'; got {oversize!r}")
    tf = _tf()
    data = config.data
    per_device = per_device_batch(config.eval_batch_size, local_devices, process_count)
    eh, ew = data.eval_size
    ds = _eval_records(data, split, process_index, process_count)
    if oversize == "skip":
        ds = ds.filter(lambda ex: _fits(tf, ex, (eh, ew)))

    def map_fn(ex):
        image = _normalize(tf, decode_image(tf, ex["image"]), data)
        label = tf.cast(ex["label"][..., 0], tf.int32)
        h, w = tf.shape(image)[0], tf.shape(image)[1]
        fits = tf.reduce_all(tf.stack([h, w]) <= tf.constant([eh, ew]))
        # tf.data can only stop with an error; as_numpy turns this one into a DataError. Every
        # pad waits for the check: a pad by a negative amount would otherwise fail first
        # (ops of one map call run in parallel) with TF's own "Paddings must be non-negative".
        with tf.control_dependencies([tf.debugging.Assert(
                fits, [_OVERSIZE, ex["file_name"], h, w], summarize=4)]):
            image = tf.pad(image, [[0, eh - h], [0, ew - w], [0, 0]])
            label = tf.pad(label, [[0, eh - h], [0, ew - w]], constant_values=IGNORE_LABEL)
            mask = tf.pad(tf.ones([h, w], tf.bool), [[0, eh - h], [0, ew - w]])
        return {"image": tf.ensure_shape(image, [eh, ew, 3]),
                "label": tf.ensure_shape(label, [eh, ew]),
                "mask": tf.ensure_shape(mask, [eh, ew]), "valid": tf.constant(True)}

    total = local_devices * per_device
    ds = ds.map(map_fn, num_parallel_calls=tf.data.AUTOTUNE).batch(total)

    def pad_batch(b):  # fill the last batch with empty examples (valid False, mask False)
        n = total - tf.shape(b["valid"])[0]
        fill = {"label": IGNORE_LABEL}
        b = {k: tf.pad(v, [[0, n]] + [[0, 0]] * (v.shape.rank - 1),
                       constant_values=fill.get(k, 0)) for k, v in b.items()}
        return _to_devices(tf, b, local_devices, per_device)

    return ds.map(pad_batch).prefetch(2)


def _eval_records(data, split: str, process_index: int, process_count: int):
    """This process's share of ``split``, in order, images still encoded (evaluation's
    source: ``eval_dataset`` and ``oversize_dataset``)."""
    import tensorflow_datasets as tfds

    builder = ensure_prepared(data)
    split_name = _split_for_process(builder, split, process_index, process_count)
    return builder.as_dataset(split=split_name, shuffle_files=False,
                              decoders={"image": tfds.decode.SkipDecoding()})


def _fits(tf, ex, size: tuple[int, int]):
    """Whether the example's image is at most ``size`` (the decoded label has its shape;
    the builders check that image and label sizes match)."""
    shape = tf.shape(ex["label"])
    return tf.reduce_all(shape[:2] <= tf.constant(size, tf.int32))


def oversize_dataset(config, split: str, process_index: int = 0, process_count: int = 1):
    """The images of ``split`` (this process's share, as ``eval_dataset``'s) larger than
    ``data.eval_size``, one by one and unpadded: {"image" [H, W, 3] normalised, "label"
    [H, W], "file_name"}; ``eval_dataset(..., oversize="skip")`` has the others."""
    tf = _tf()
    data = config.data
    size = tuple(int(v) for v in data.eval_size)
    ds = _eval_records(data, split, process_index, process_count)
    ds = ds.filter(lambda ex: tf.logical_not(_fits(tf, ex, size)))
    return ds.map(lambda ex: {"image": _normalize(tf, decode_image(tf, ex["image"]), data),
                              "label": tf.cast(ex["label"][..., 0], tf.int32),
                              "file_name": ex["file_name"]},
                  num_parallel_calls=tf.data.AUTOTUNE).prefetch(1)


def _oversize_error(name: str, h: int, w: int, eval_size) -> DataError:
    size = tuple(eval_size) if eval_size else None
    target = f"({max(h, size[0])}, {max(w, size[1])})" if size else f"({h}, {w})"
    return DataError(
        f"{name} is {h}x{w} (HxW), larger than data.eval_size={size}; set "
        f"--config.data.eval_size='{target}' (or larger; with --config.eval.mode=sliding "
        f"a larger eval_size does not enlarge the forward pass)")


def image_sizes(data: ml_collections.ConfigDict, split: str):
    """(file name, height, width) of every example of ``split``, read off the label PNGs'
    headers (nothing decoded: a pass over a split in seconds)."""
    import tensorflow_datasets as tfds

    tf = _tf()
    builder = ensure_prepared(data)
    check_split(builder, split)
    ds = builder.as_dataset(split=split, shuffle_files=False,
                            decoders={"image": tfds.decode.SkipDecoding(),
                                      "label": tfds.decode.SkipDecoding()})

    def size(ex):  # PNG: width and height are bytes 16..23 of the IHDR chunk, big-endian
        b = tf.cast(tf.io.decode_raw(tf.strings.substr(ex["label"], 16, 8), tf.uint8), tf.int64)
        big = lambda q: ((q[0] * 256 + q[1]) * 256 + q[2]) * 256 + q[3]  # noqa: E731
        return ex["file_name"], big(b[4:8]), big(b[0:4])

    for name, h, w in tfds.as_numpy(ds.map(size, num_parallel_calls=tf.data.AUTOTUNE)):
        yield name.decode(), int(h), int(w)


def check_eval_size(data: ml_collections.ConfigDict, split: str) -> None:
    """DataError naming the first image of ``split`` larger than ``data.eval_size`` and the
    size to set: training checks its validation split before its first step."""
    eh, ew = data.eval_size
    for name, h, w in image_sizes(data, split):
        if h > eh or w > ew:
            raise _oversize_error(name, h, w, data.eval_size)


def as_numpy(ds, eval_size: tuple[int, int] | None = None):
    """Iterate a tf.data dataset as dicts of numpy arrays. An image larger than ``eval_size``
    in ``eval_dataset`` ends the iteration with a DataError naming it and the fix."""
    import tensorflow_datasets as tfds

    tf = _tf()
    it = iter(tfds.as_numpy(ds))
    while True:
        try:
            yield next(it)
        except StopIteration:
            return
        except tf.errors.InvalidArgumentError as e:
            found = re.search(re.escape(_OVERSIZE) + r"\]\s*\[(.*?)\]\s*\[(\d+)\]\s*\[(\d+)\]",
                              e.message or "")
            if not found:
                raise
            name, h, w = found.group(1), int(found.group(2)), int(found.group(3))
            raise _oversize_error(name, h, w, eval_size) from None

