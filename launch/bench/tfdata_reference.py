"""The training input pipeline as it was in tf.data (until 2026-12), kept as the yardstick of
``launch/bench/input_pipeline.py`` and nothing else: decode, random scale, normalise, flip,
pad, random crop, batch, all stateless TF ops seeded from (seed, example index), over the
TFDS builder written as TFRecord files. Needs TensorFlow (``pip install tensorflow-cpu``),
which the package itself no longer does.
"""

from __future__ import annotations

import os

from ssgan_jax.data import builder_class
from ssgan_jax.data.common import IGNORE_LABEL


def _tf():
    import tensorflow as tf

    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:
        pass
    return tf


def prepare(data) -> None:
    """``data.manual_dir`` -> TFRecord files in ``data.data_dir`` (once)."""
    import tensorflow_datasets as tfds

    _tf()
    builder = builder_class(data.name)(data_dir=os.path.expanduser(data.data_dir),
                                       file_format="tfrecord")
    if not builder.is_prepared():
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=data.manual_dir))
    return builder


def _augment(tf, image_uint8, label, seed, data):
    ch, cw = data.crop_size
    s_scale, s_crop, s_flip = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    lo, hi = data.scale_range
    scale = tf.random.stateless_uniform([], s_scale, lo, hi)
    size = tf.cast(tf.shape(image_uint8)[:2], tf.float32)
    new = tf.cast(tf.round(size * scale), tf.int32)
    mean = tf.constant(data.mean, tf.float32) * 255.0
    std = tf.constant(data.std, tf.float32) * 255.0
    image = (tf.cast(image_uint8, tf.float32) - mean) / std
    image = tf.image.resize(image, new, method="bilinear")
    label = tf.image.resize(label, new, method="nearest")
    if data.flip:
        flip = tf.random.stateless_uniform([], s_flip) < 0.5
        image = tf.cond(flip, lambda: image[:, ::-1], lambda: image)
        label = tf.cond(flip, lambda: label[:, ::-1], lambda: label)
    pad_h = tf.maximum(ch - new[0], 0)
    pad_w = tf.maximum(cw - new[1], 0)
    image = tf.pad(image, [[0, pad_h], [0, pad_w], [0, 0]])
    label = tf.pad(tf.cast(label, tf.int32), [[0, pad_h], [0, pad_w], [0, 0]],
                   constant_values=IGNORE_LABEL)
    both = tf.concat([image, tf.cast(label, tf.float32)], axis=-1)
    both = tf.image.stateless_random_crop(both, [ch, cw, 4], s_crop)
    sizes = tf.minimum(new, tf.constant([ch, cw], tf.int32))
    return both[..., :3], tf.cast(tf.round(both[..., 3]), tf.int32), sizes


def train_dataset(config, threads: int = 0):
    """Endless batches {"image", "label", "sizes"} [B, ...] as NumPy; ``threads`` > 0: a
    private thread pool of that size (0: tf.data's AUTOTUNE over all cores)."""
    import tensorflow_datasets as tfds

    tf = _tf()
    data = config.data
    builder = prepare(data)
    read = tfds.ReadConfig(shuffle_seed=config.seed, interleave_cycle_length=1)
    ds = builder.as_dataset(split=data.train_split, shuffle_files=True, read_config=read,
                            decoders={"image": tfds.decode.SkipDecoding()})
    ds = ds.repeat().shuffle(1024, seed=config.seed, reshuffle_each_iteration=True).enumerate()

    def map_fn(index, ex):
        image = tf.cond(
            tf.io.is_jpeg(ex["image"]),
            lambda: tf.io.decode_jpeg(ex["image"], channels=3, dct_method="INTEGER_ACCURATE"),
            lambda: tf.io.decode_png(ex["image"], channels=3))
        image, label, sizes = _augment(tf, image, ex["label"],
                                       tf.stack([tf.cast(config.seed, tf.int64), index]), data)
        return {"image": image, "label": label, "sizes": sizes}

    ds = ds.map(map_fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(config.batch_size, drop_remainder=True)
    options = tf.data.Options()
    options.deterministic = True
    if threads:
        options.threading.private_threadpool_size = threads
        options.threading.max_intra_op_parallelism = 1
    return iter(tfds.as_numpy(ds.with_options(options).prefetch(tf.data.AUTOTUNE)))
