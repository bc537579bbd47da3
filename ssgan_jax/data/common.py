"""What the dataset builders share: checked reading of image/label pairs and the TFDS base.

A builder names its source pairs (image file, label file) per split and a 256-entry lookup
table from raw label values to training labels; this module decodes and checks every pair
(readable, RGB, same size, only known label values) and writes examples
``{"image": raw bytes as given, "label": PNG of the mapped labels, "file_name": str}``.
TFDS writes a split into a temporary folder and renames it when complete, so an interrupted
preparation never leaves a dataset that looks complete; a rerun starts that split again.
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Callable, Iterable

import numpy as np
import tensorflow_datasets as tfds

from ssgan_jax.core.errors import UserError

IGNORE_LABEL = 255
INVALID = -1  # marks raw label values that must not occur


class DataError(UserError, ValueError):
    """A problem with dataset files; the message names the file and what to do."""


@dataclasses.dataclass(frozen=True)
class Pair:
    """One example's sources. ``read_*`` return the encoded bytes of each file."""

    key: str
    image_name: str
    label_name: str
    read_image: Callable[[], bytes]
    read_label: Callable[[], np.ndarray]  # raw label values [H, W]


def file_reader(path: str) -> Callable[[], bytes]:
    def read() -> bytes:
        with open(path, "rb") as f:
            return f.read()

    return read


def png_label_reader(path: str) -> Callable[[], np.ndarray]:
    """Label PNG (single channel or palette) -> its raw values (palette indices)."""

    def read() -> np.ndarray:
        from PIL import Image

        try:
            with Image.open(path) as im:
                if im.mode not in ("L", "P"):
                    raise DataError(
                        f"{path}: label image has mode {im.mode!r}; expected a single-channel "
                        "('L') or palette ('P') PNG of class indices"
                    )
                return np.array(im)
        except (OSError, SyntaxError) as e:
            raise DataError(f"{path}: cannot read label image ({e})") from e

    return read


# Pillow modes that convert to RGB as they are (CMYK JPEGs among them), and the 16-bit ones
CONVERTIBLE = ("RGB", "RGBA", "RGBX", "L", "LA", "P", "PA", "1", "CMYK", "YCbCr")
SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I")


def decode_rgb(data: bytes, name: str) -> np.ndarray:
    """Decode image bytes to uint8 RGB [H, W, 3], naming ``name`` on failure."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            if im.mode in SIXTEEN_BIT:  # 16-bit grey (PNG): to 8 bits by value, not clipped
                grey = np.asarray(im).astype(np.float64)
                return np.repeat(np.round(np.clip(grey, 0, 65535) / 257.0).astype(np.uint8)
                                 [:, :, None], 3, axis=2)
            if im.mode not in CONVERTIBLE:
                raise DataError(f"{name}: unsupported image mode {im.mode!r}; save it as 8-bit "
                                f"RGB (one of {', '.join(CONVERTIBLE)} converts)")
            return np.array(im.convert("RGB"))
    except (OSError, SyntaxError) as e:
        raise DataError(f"{name}: cannot decode image ({e}); re-download or remove it") from e


def label_table(mapping: dict[int, int]) -> np.ndarray:
    """256-entry int16 table raw value -> label; values not in ``mapping`` are INVALID."""
    table = np.full(256, INVALID, np.int16)
    for raw, lab in mapping.items():
        table[raw] = lab
    return table


LABEL_HINT = "is this the right annotation file for this dataset?"  # unknown label values


def map_labels(raw: np.ndarray, table: np.ndarray, name: str, num_classes: int,
               hint: str = LABEL_HINT) -> np.ndarray:
    """Apply ``table`` to raw labels, refusing values that are neither a class nor ignore
    (``hint``: what to check, at the end of the error)."""
    if raw.dtype != np.uint8:
        if raw.min() < 0 or raw.max() > 255:
            raise DataError(f"{name}: label values outside 0..255 ({raw.min()}..{raw.max()})")
        raw = raw.astype(np.uint8)
    mapped = table[raw]
    if (mapped == INVALID).any():
        bad = np.unique(raw[mapped == INVALID]).tolist()
        raise DataError(
            f"{name}: label values {bad[:10]} are neither one of the {num_classes} classes nor "
            f"an ignore value; {hint}"
        )
    return mapped.astype(np.uint8)


def encode_png(label: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(label, mode="L").save(buf, format="PNG")
    return buf.getvalue()


def _said(pairs: list[Pair], split: str) -> Iterable[Pair]:
    """``pairs``, with a progress bar of the split's preparation on stderr (tqdm: count, rate,
    ETA)."""
    from tqdm import tqdm

    yield from tqdm(pairs, desc=f"preparing {split}", unit=" images", mininterval=2.0,
                    dynamic_ncols=True)


def checked_example(pair: Pair, table: np.ndarray, num_classes: int, hint: str = LABEL_HINT
                    ) -> dict:
    """Decode and check one pair; the TFDS example with the mapped label (``hint``: what an
    unknown label value's error tells the user to check)."""
    image_bytes = pair.read_image()
    image = decode_rgb(image_bytes, pair.image_name)
    raw = pair.read_label()
    if raw.ndim != 2:
        raise DataError(f"{pair.label_name}: label must be 2-D, got shape {raw.shape}")
    if raw.shape != image.shape[:2]:
        raise DataError(
            f"size mismatch: image {pair.image_name} is {image.shape[1]}x{image.shape[0]} but "
            f"label {pair.label_name} is {raw.shape[1]}x{raw.shape[0]} (W x H)"
        )
    label = map_labels(raw, table, pair.label_name, num_classes, hint)
    return {
        "image": image_bytes,
        "label": encode_png(label),
        "file_name": os.path.basename(pair.image_name),
    }


def require(path: str, what: str, where: str) -> str:
    """Return ``path`` if it exists, else a DataError naming the file and its source."""
    if not os.path.exists(path):
        raise DataError(f"missing {what}: expected {path}. Download it from {where}.")
    return path


class SegmentationBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Manual-download segmentation builder. Subclasses set ``CLASS_NAMES``, ``PALETTE``,
    ``LABEL_TABLE``, ``MANUAL_DOWNLOAD_INSTRUCTIONS`` and implement ``_source_splits``."""

    VERSION = tfds.core.Version("1.0.0")
    CLASS_NAMES: tuple[str, ...] = ()
    PALETTE: tuple[tuple[int, int, int], ...] = ()
    LABEL_TABLE: np.ndarray
    LABEL_HINT: str = LABEL_HINT  # what an unknown label value's error says to check
    HOMEPAGE = ""

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3)),
                "label": tfds.features.Image(shape=(None, None, 1), encoding_format="png"),
                "file_name": tfds.features.Text(),
            }),
            homepage=self.HOMEPAGE,
            description=self.__doc__,
        )

    def _split_generators(self, dl_manager):
        manual_dir = os.fspath(dl_manager.manual_dir)
        if not os.path.isdir(manual_dir):
            raise DataError(
                f"manual_dir {manual_dir!r} is not a folder; set --config.data.manual_dir to "
                f"the folder holding the downloaded files. {self.MANUAL_DOWNLOAD_INSTRUCTIONS}"
            )
        splits = self._source_splits(manual_dir, dl_manager)
        return {name: self._generate_examples(_said(pairs, name))
                for name, pairs in splits.items()}

    def _source_splits(self, manual_dir: str, dl_manager) -> dict[str, list[Pair]]:
        """{split: pairs}; ``dl_manager.extract`` unpacks archives found in manual_dir."""
        raise NotImplementedError  # abstract: each dataset lists its own pairs

    def _generate_examples(self, pairs: Iterable[Pair]):
        for pair in pairs:
            yield pair.key, checked_example(pair, self.LABEL_TABLE, len(self.CLASS_NAMES),
                                            self.LABEL_HINT)
