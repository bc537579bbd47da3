"""A prepared dataset, opened once, and how it is read: its splits as random-access lists of
examples with image and label still encoded (``Prepared.examples``), split expressions checked
(``check_split``), each process's share, its class pixel counts (stored beside the dataset) and
the file-name helpers. ``data.open_prepared`` prepares a dataset (``records.py``) and opens
it as a ``Prepared``; the loop, evaluation, predict and diagnose hold that one object and pass
it down.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Iterator

import ml_collections
import numpy as np

from ssgan_jax.data import subset
from ssgan_jax.data.common import DataError

PIXELS_FILE = "ssgan_class_pixels.json"  # per-example class pixel counts, beside the dataset


class Prepared:
    """A prepared dataset, opened once (``data.open_prepared``: prepared from ``manual_dir`` first
    if it is not, its source files checked once): its builder, class names and palette, and
    its splits (examples, sizes, ids, image sizes, class pixel counts). The loop, evaluation,
    predict and diagnose open it once and pass it down."""

    def __init__(self, data: ml_collections.ConfigDict, builder):
        self.data, self.builder = data, builder
        self.class_names = tuple(builder.CLASS_NAMES)
        self.palette = builder.PALETTE

    def examples(self, split: str, process_index: int = 0, process_count: int = 1):
        """``split`` (this process's share of it) as a random-access sequence of examples
        with the image and label still encoded; picklable, for Grain's worker processes."""
        return encoded(self.builder, process_split(self.builder, split, process_index,
                                                    process_count))

    def split_size(self, split: str) -> int:
        """The number of examples ``split`` selects (``check_split``)."""
        return check_split(self.builder, split)

    def split_ids(self, split: str) -> list[str]:
        """The ids (file stems, ``subset.stem``) of ``split``'s examples, in its order."""
        examples = self.examples(split)
        return [subset.stem(file_name(examples[i])) for i in range(len(examples))]

    def image_sizes(self, split: str) -> Iterator[tuple[str, int, int]]:
        """(file name, height, width) of every example of ``split``, read off the label
        PNGs' headers (the builders check that image and label sizes match)."""
        examples = self.examples(split)
        for i in range(len(examples)):
            ex = examples[i]
            name = file_name(ex)
            yield (name, *png_size(ex["label"], name))

    def class_pixels(self, split: str) -> dict:
        """``class_pixels`` of ``split``."""
        return class_pixels(self.builder, split)


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


def process_split(builder, split: str, process_index: int, process_count: int) -> str:
    """This process's contiguous share of ``split`` (TFDS ``even_splits``)."""
    import tensorflow_datasets as tfds

    check_split(builder, split)
    if process_count == 1:
        return split
    return tfds.even_splits(split, n=process_count)[process_index]


def encoded(builder, split: str):
    """``builder``'s ``split`` as a data source that decodes neither image nor label."""
    import tensorflow_datasets as tfds

    skip = tfds.decode.SkipDecoding()
    return CheckedSource(builder.as_data_source(split, decoders={"image": skip, "label": skip}),
                         split, builder.data_dir)


class CheckedSource:
    """A split's data source whose read errors (a damaged ArrayRecord shard: Riegeli's
    "Corrupted Riegeli/records file: chunk data hash mismatch") are a DataError naming the
    dataset folder, the example and the way out; picklable, as the source it wraps."""

    def __init__(self, source, split: str, dataset_dir: str):
        self.source, self.split, self.dataset_dir = source, split, dataset_dir

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i):
        try:
            return self.source[i]
        except (RuntimeError, OSError, ValueError) as e:
            shards = [n for n in sorted(os.listdir(self.dataset_dir))
                      if ".array_record-" in n and f"-{self.split.split('[')[0]}." in n]
            raise DataError(
                f"example {i} of split {self.split!r} in {self.dataset_dir} cannot be read "
                f"({str(e)[:200]}); a prepared file ({', '.join(shards) or 'its shards'}) is "
                f"damaged. Delete {os.path.dirname(self.dataset_dir)} and prepare again: "
                "python -m ssgan_jax.main --mode=prepare --config=<your config>") from e


def file_name(example) -> str:
    name = example["file_name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def png_size(png: bytes, name: str) -> tuple[int, int]:
    """(height, width) from a PNG's IHDR chunk (bytes 16..23, big-endian), nothing decoded."""
    if len(png) < 24 or png[:8] != b"\x89PNG\r\n\x1a\n":
        raise DataError(f"{name}: the prepared label is not a PNG; prepare the dataset again")
    w, h = struct.unpack(">II", png[16:24])
    return int(h), int(w)


def split_tag(split: str) -> str:
    """``split`` as a file-name part: names and "a+b" unchanged; slices spelled out
    ("train[:50%]" -> "train-to50pct", "train[10:20]" -> "train-10to20")."""
    tag = re.sub(r"[^\w+.-]+", "-", split.replace("%", "pct").replace(":", "to"))
    return tag.strip("-") or "split"


def class_pixels(builder, split: str) -> dict:
    """{"ids": [stem, ...], "pixels": [[pixels of class c, ...], ...] (one row per example),
    "shapes": [[h, w], ...]} of ``split`` of the prepared dataset ``builder``: counted once
    from the prepared labels (at prepare time, or the first time a split is asked for) and stored in
    ``PIXELS_FILE`` beside the dataset, for class balancing (``loss.class_balance``) and the
    report of ``--mode=prepare``."""
    from ssgan_jax.data.augment import decode_label

    path = os.path.join(builder.data_dir, PIXELS_FILE)
    stored = {}
    if os.path.exists(path):
        with open(path) as f:
            stored = json.load(f)
    if split in stored:
        return stored[split]
    num_classes = len(builder.CLASS_NAMES)
    examples = encoded(builder, split)
    ids, pixels, shapes = [], [], []
    for i in range(len(examples)):
        ex = examples[i]
        label = decode_label(ex["label"], file_name(ex))
        ids.append(subset.stem(file_name(ex)))
        pixels.append(np.bincount(label.ravel(), minlength=256)[:num_classes].tolist())
        shapes.append(list(label.shape))
    stored[split] = {"ids": ids, "pixels": pixels, "shapes": shapes}
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(stored, f)
    os.replace(tmp, path)
    return stored[split]


def contents(builder) -> dict:
    """What the prepared dataset ``builder`` holds: its splits' example counts and, per split,
    its image sizes (``"HxW": count``, the 10 most common, and the largest, for
    ``data.crop_size``/``data.eval_size``) and each class's share of its labelled pixels (from
    the stored counts)."""
    names = builder.CLASS_NAMES
    sizes, shares = {}, {}
    for split in sorted(builder.info.splits):
        counts = class_pixels(builder, split)
        seen: dict[str, int] = {}
        for h, w in counts["shapes"]:
            seen[f"{h}x{w}"] = seen.get(f"{h}x{w}", 0) + 1
        common = dict(sorted(seen.items(), key=lambda kv: -kv[1])[:10])
        largest = [max(h for h, _ in counts["shapes"]), max(w for _, w in counts["shapes"])]
        sizes[split] = {"HxW": common, "distinct": len(seen), "largest": largest}
        pixels = np.asarray(counts["pixels"], np.float64).sum(0)
        total = max(pixels.sum(), 1.0)
        shares[split] = {n: round(float(p / total), 5) for n, p in zip(names, pixels,
                                                                       strict=True)}
    return {"splits": {k: v.num_examples for k, v in sorted(builder.info.splits.items())},
            "image_sizes": sizes, "class_pixel_share": shares}
