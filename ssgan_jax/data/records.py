"""Preparing a dataset: the TFDS builders written as ArrayRecord files, and opened once.

``prepare`` runs a builder (``data/<name>.py``) over ``data.manual_dir`` into ``data.data_dir``
in TFDS's ArrayRecord format; ``ensure_prepared`` prepares it first if it is not and checks its
source files, for ``data.open_prepared``, which opens it once (``prepared.Prepared``): its
splits are random-access lists of examples ``{"image": encoded bytes, "label": PNG bytes,
"file_name": bytes}``, nothing decoded. Neither imports TensorFlow: TFDS reads and writes
ArrayRecord with NumPy and protobuf alone. A dataset prepared as TFRecord (by versions before
2026-12) is refused with the command that re-prepares it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from typing import Any

import ml_collections

from ssgan_jax.core.errors import disk_space
from ssgan_jax.data import source
from ssgan_jax.data.common import DataError
from ssgan_jax.data.prepared import class_pixels, contents

FILE_FORMAT = "array_record"


@contextlib.contextmanager
def _quiet_tfds():
    """TFDS's own messages about a dataset we prepare ourselves, silenced: its absl warnings
    and stdout lines ("Downloading and preparing dataset Unknown size ...") and its progress
    bars; ``SegmentationBuilder`` reports each split's progress instead."""
    import tensorflow_datasets as tfds
    from absl import logging

    before = logging.get_verbosity()
    logging.set_verbosity(logging.ERROR)
    tfds.disable_progress_bar()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logging.set_verbosity(before)


def _is_prepared(builder) -> bool:
    with _quiet_tfds():  # it warns about the empty folder it looks into before a prepare
        return builder.is_prepared()


def get_builder(data: ml_collections.ConfigDict, cls: type):
    """The TFDS builder ``cls`` (``data.builder_class``) of ``data.name`` in ``data.data_dir``
    (ArrayRecord); DataError with the way out for a dataset prepared in another format
    (TFRecord, by older versions)."""
    data_dir = os.path.expanduser(data.data_dir) if data.data_dir else None
    try:
        with _quiet_tfds():  # "Variant folder ... has no dataset_info.json" before a prepare
            return cls(data_dir=data_dir, file_format=FILE_FORMAT)
    except ValueError as e:
        found = re.search(r"already set to (?:FileFormat\.)?(\w+)", str(e))
        if not found:
            raise
        where = cls(data_dir=data_dir).data_dir
        raise DataError(
            f"dataset {data.name} in {where} was prepared as {found.group(1).lower()} (by an "
            f"older version); this version reads {FILE_FORMAT} files, without TensorFlow. "
            f"Delete {where} and prepare it again: python -m ssgan_jax.main --mode=prepare "
            f"--config=<your config> --config.data.data_dir={data.data_dir or '<data_dir>'}"
        ) from None


def prepare(data: ml_collections.ConfigDict, cls: type) -> dict[str, Any]:
    """Build the dataset (TFDS builder ``cls``) from ``data.manual_dir`` unless it was built
    from those files before; returns what it holds (``prepared.contents``)."""
    builder = get_builder(data, cls)
    _build(data, builder)
    return {"dataset": data.name, **contents(builder)}


def _build(data: ml_collections.ConfigDict, builder) -> None:
    """``builder``'s dataset built from ``data.manual_dir`` (each split's class pixels counted
    and stored), or, if it was prepared before, checked to be from the same files."""
    import tensorflow_datasets as tfds

    instructions = builder.MANUAL_DOWNLOAD_INSTRUCTIONS.strip()
    if not data.manual_dir:
        raise DataError(f"config.data.manual_dir is not set: point it at the downloaded "
                        f"{data.name} files ({instructions})")
    manual_dir = os.path.expanduser(data.manual_dir)
    if not os.path.isdir(manual_dir) or not os.listdir(manual_dir):
        raise DataError(
            f"config.data.manual_dir={data.manual_dir!r} "
            f"{'is empty' if os.path.isdir(manual_dir) else 'does not exist'}: point it at the "
            f"downloaded {data.name} files ({instructions})")
    if _is_prepared(builder):  # prepared before: from these files?
        source.check(builder.data_dir, manual_dir, data.name, data.data_dir,
                     source.identity(builder))
        return
    with disk_space(builder.data_dir, f"the source files in {manual_dir} are untouched; "
                    "TFDS keeps no half-written dataset (it builds into a temporary folder)"):
        print(f"preparing {data.name} from {manual_dir} into {builder.data_dir}", flush=True)
        with _quiet_tfds():  # its "Downloading and preparing ..." lines and its bars: we
            builder.download_and_prepare(  # say what happens per split ourselves
                download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
        source.record(builder.data_dir, manual_dir, source.identity(builder))
        for split in builder.info.splits:
            class_pixels(builder, split)


def ensure_prepared(data: ml_collections.ConfigDict, cls: type):
    """The builder (``cls``) of ``data``'s dataset, prepared from ``manual_dir`` first if it is
    not yet, its source files and shards checked."""
    builder = get_builder(data, cls)
    if not _is_prepared(builder):
        print(f"dataset {data.name} not prepared in {builder.data_dir}; preparing it now")
        _build(data, builder)
        print(json.dumps({"dataset": data.name, **contents(builder)}))
    else:
        source.check(builder.data_dir, data.manual_dir, data.name, data.data_dir,
                     source.identity(builder))
    source.check_shards(builder.data_dir, data.name)
    return builder
