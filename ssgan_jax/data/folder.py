"""Your own dataset: a folder of images and label maps, described by a classes file, no code.

``data.name = "folder"``; under ``data.manual_dir``, for each split of ``data.folder.splits``,
an image folder and a label folder (``data.folder.images`` / ``labels``, with ``{split}`` in
them; default ``<split>/images`` and ``<split>/labels``), pairs matched by file stem (the image
``<stem><image suffix>``, the label ``<stem><label_suffix>``), or the stems listed one per line
in ``data.folder.list_file`` (``{split}`` in it, e.g. ``{split}.txt``). The classes file
(``data.folder.classes_file``, JSON or YAML, relative to ``manual_dir`` unless absolute)::

    {"classes": [{"name": "road", "color": [128, 64, 128]}, {"name": "car"}, ...],
     "ignore": 255,
     "encoding": "index",
     "values": {"0": "ignore", "1": 0, "2": 1}}

* ``classes``: names (strings, or objects with ``name`` and an optional RGB ``color``; the
  pictures' palette, and the code of each class in colour-coded labels), in class-index order;
* ``ignore`` (required): the value in the prepared labels (and, for index labels, in the
  files) that no loss or metric counts;
* ``encoding``: ``"index"`` (default: single-channel or palette PNGs of values) or ``"color"``
  (RGB PNGs, each colour a class's ``color``; ``ignore_color`` the unlabelled colour);
* ``values`` (optional, index labels): the stored value -> class index or ``"ignore"`` (ids to
  train ids; mmsegmentation's ``reduce_zero_label`` is ``{"0": "ignore", "1": 0, "2": 1, ...}``);
  without it, value c is class c. Any other value in a label file is an error naming the file.

The dataset's identity includes the classes file's contents (``source``): a dataset prepared
with another classes file is refused, not reused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import ml_collections
import numpy as np

from ssgan_jax.core.errors import ConfigError
from ssgan_jax.data.common import (
    IGNORE_LABEL,
    INVALID,
    DataError,
    Pair,
    SegmentationBuilder,
    file_reader,
    png_label_reader,
)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
ENCODINGS = ("index", "color")


@dataclasses.dataclass(frozen=True)
class Classes:
    """What the classes file says."""

    names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    ignore: int
    encoding: str
    table: np.ndarray  # int16 [256]: stored value -> class index, IGNORE_LABEL or INVALID
    colors: dict  # (r, g, b) -> class index or IGNORE_LABEL (encoding "color")
    sha256: str
    hint: str = ""  # what an unknown label value's error tells the user to check


def classes_path(data: ml_collections.ConfigDict) -> str:
    path = os.path.expanduser(data.folder.classes_file)
    if not os.path.isabs(path):
        if not data.manual_dir:
            raise ConfigError("config.data.manual_dir is not set: a folder dataset needs its "
                              "folder (and the classes file in it, data.folder.classes_file)")
        path = os.path.join(os.path.expanduser(data.manual_dir), path)
    return path


def _unique_keys(path: str):
    """A ``json.loads`` object hook that refuses a key given twice in one object (plain JSON
    keeps the last silently: ``"values": {"2": 2, "2": 5}`` would map 2 to 5)."""
    def hook(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise DataError(f"{path}: the key {key!r} appears twice in one object "
                                f"({dict(pairs)!r}); give each key once")
            seen.add(key)
        return dict(pairs)

    return hook


def _load(path: str) -> dict:
    with open(path, "rb") as f:
        raw = f.read()
    try:
        if path.endswith((".yaml", ".yml")):
            try:
                import yaml
            except ImportError:
                raise DataError(f"{path}: a YAML classes file needs PyYAML (pip install "
                                "pyyaml), or write it as JSON") from None
            body = yaml.safe_load(raw)
        else:
            body = json.loads(raw, object_pairs_hook=_unique_keys(path))
    except (ValueError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot parse the classes file ({e})") from e
    if not isinstance(body, dict):
        raise DataError(f"{path}: the classes file must hold an object with 'classes' and "
                        "'ignore'")
    return {**body, "_sha256": hashlib.sha256(raw).hexdigest()}


def _colour(value, where: str) -> tuple[int, int, int]:
    if (not isinstance(value, (list, tuple)) or len(value) != 3
            or not all(isinstance(v, int) and 0 <= v <= 255 for v in value)):
        raise DataError(f"{where}: a colour is [r, g, b] with integers 0..255; got {value!r}")
    return tuple(value)


def read_classes(path: str) -> Classes:
    """The classes file at ``path``, checked; DataError naming the file and what is wrong."""
    if not os.path.exists(path):
        raise DataError(f"no classes file {path}: write one (README, 'Your own dataset') or set "
                        "--config.data.folder.classes_file")
    body = _load(path)
    entries = body.get("classes")
    if not isinstance(entries, list) or not entries:
        raise DataError(f"{path}: 'classes' must be a non-empty list of class names")
    names, colours = [], []
    for i, e in enumerate(entries):
        e = {"name": e} if isinstance(e, str) else e
        if not isinstance(e, dict) or not isinstance(e.get("name"), str) or not e["name"]:
            raise DataError(f"{path}: class {i} needs a name; got {entries[i]!r}")
        if "id" in e and e["id"] != i:  # the list order is the class index: say so
            raise DataError(f"{path}: class {e['name']!r} has 'id' {e['id']!r} but is entry {i} "
                            "of 'classes', and a class's index is its place in the list; "
                            "order the list by id (0, 1, ...) or drop the 'id' fields")
        names.append(e["name"])
        colours.append(_colour(e["color"], f"{path}: class {e['name']!r}")
                       if "color" in e else None)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataError(f"{path}: class names must be unique; {dupes} appear more than once")
    if len(names) > 255:
        raise DataError(f"{path}: at most 255 classes (labels are stored as 8-bit PNGs)")
    if "ignore" not in body:
        raise DataError(f"{path}: 'ignore' is missing: give the label value of unlabelled "
                        "pixels (e.g. \"ignore\": 255), which no loss or metric counts")
    ignore = body["ignore"]
    if not isinstance(ignore, int) or not 0 <= ignore <= 255 or ignore < len(names):
        raise DataError(f"{path}: 'ignore' must be an integer in {len(names)}..255 (not a class "
                        f"index); got {ignore!r}")
    encoding = body.get("encoding", "index")
    if encoding not in ENCODINGS:
        raise DataError(f"{path}: 'encoding' must be one of {ENCODINGS}; got {encoding!r}")
    table = np.full(256, INVALID, np.int16)
    values = body.get("values")
    if values is None:
        table[: len(names)] = np.arange(len(names))
    else:
        if not isinstance(values, dict) or encoding != "index":
            raise DataError(f"{path}: 'values' maps stored label values to class indices or "
                            "\"ignore\", for index-coded labels")
        given: dict[int, str] = {}
        for raw, target in values.items():
            try:
                value = int(raw)
            except ValueError:
                raise DataError(f"{path}: 'values' key {raw!r} is not a label value") from None
            if not 0 <= value <= 255:
                raise DataError(f"{path}: 'values' key {raw!r} is outside 0..255")
            if value in given:
                raise DataError(f"{path}: 'values' gives the label value {value} twice "
                                f"({given[value]!r} and {raw!r}); give each value once")
            given[value] = raw
            if target == "ignore":
                table[value] = IGNORE_LABEL
            elif isinstance(target, int) and 0 <= target < len(names):
                table[value] = target
            else:
                raise DataError(f"{path}: 'values' maps {raw!r} to {target!r}: give a class "
                                f"index 0..{len(names) - 1} or \"ignore\"")
    table[ignore] = IGNORE_LABEL
    colors = {}
    if encoding == "color":
        if any(c is None for c in colours):
            missing = [n for n, c in zip(names, colours, strict=True) if c is None]
            raise DataError(f"{path}: colour-coded labels need a 'color' for every class; "
                            f"{missing} have none")
        colors = {c: i for i, c in enumerate(colours)}
        if len(colors) < len(colours):
            raise DataError(f"{path}: two classes share a colour: colour-coded labels need "
                            "one colour per class")
        if "ignore_color" in body:
            colors[_colour(body["ignore_color"], f"{path}: 'ignore_color'")] = IGNORE_LABEL
    palette = tuple(c if c is not None else _default_colour(i) for i, c in enumerate(colours))
    hint = (f"{path}'s 'values' maps only the label values "
            f"{sorted(int(k) for k in values)} (and 'ignore' {ignore}): add the missing ones, "
            "each to a class index or \"ignore\"" if values is not None else
            f"{path} has no 'values', so the label values must be the class indices "
            f"0..{len(names) - 1} or 'ignore' {ignore}: add a 'values' map if your labels use "
            "other values")
    return Classes(tuple(names), palette, ignore, encoding, table, colors, body["_sha256"],
                   hint)


def _default_colour(i: int) -> tuple[int, int, int]:
    """A distinct colour for a class the file gives none (VOC's bit-interleaved map)."""
    from ssgan_jax.data.voc import voc_palette

    return tuple(int(v) for v in voc_palette(256)[i + 1])


def colour_label_reader(path: str, colors: dict):
    """An RGB label PNG -> class indices (the ``colors`` table); unknown colours: an error
    naming the file and the colours."""

    def read() -> np.ndarray:
        from PIL import Image

        try:
            with Image.open(path) as im:
                rgb = np.array(im.convert("RGB"))
        except (OSError, SyntaxError) as e:
            raise DataError(f"{path}: cannot read label image ({e})") from e
        code = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) \
            | rgb[..., 2]
        out = np.full(code.shape, 254, np.uint8)  # 254: no class's colour (refused below)
        known = np.zeros(code.shape, bool)
        for (r, g, b), index in colors.items():
            hit = code == (r << 16 | g << 8 | b)
            out[hit] = index
            known |= hit
        if not known.all():
            bad = sorted({tuple(int(v) for v in rgb[y, x]) for y, x in
                          zip(*np.nonzero(~known), strict=True)})[:5]
            raise DataError(f"{path}: label colours {bad} are no class's 'color' (nor "
                            "'ignore_color') in the classes file")
        return out

    return read


def _stems(data, split: str, image_dir: str) -> list[tuple[str, str]]:
    """(stem, image file) of a split: the list file's stems, else every image in the folder."""
    folder = data.folder
    suffixes = (folder.image_suffix,) if folder.image_suffix else IMAGE_SUFFIXES
    if not os.path.isdir(image_dir):
        raise DataError(f"split {split!r}: no image folder {image_dir} (data.folder.images="
                        f"{folder.images!r})")
    by_stem = {}
    for name in sorted(os.listdir(image_dir)):
        for suffix in suffixes:
            if name.lower().endswith(suffix.lower()) and len(name) > len(suffix):
                by_stem.setdefault(name[: -len(suffix)], os.path.join(image_dir, name))
    if folder.list_file:
        path = os.path.join(os.path.expanduser(data.manual_dir),
                            folder.list_file.format(split=split))
        if not os.path.exists(path):
            raise DataError(f"split {split!r}: no list file {path} (data.folder.list_file="
                            f"{folder.list_file!r})")
        with open(path) as f:
            stems = [line.strip() for line in f if line.strip()]
        missing = [s for s in stems if s not in by_stem]
        if missing:
            raise DataError(f"{path} lists {missing[:5]} ({len(missing)} in all) without an "
                            f"image in {image_dir}")
        return [(s, by_stem[s]) for s in stems]
    return sorted(by_stem.items())


def folder_pairs(data, classes: Classes) -> dict[str, list[Pair]]:
    folder, root = data.folder, os.path.expanduser(data.manual_dir)
    out = {}
    for split in folder.splits:
        image_dir = os.path.join(root, folder.images.format(split=split))
        label_dir = os.path.join(root, folder.labels.format(split=split))
        pairs = []
        for stem, image in _stems(data, split, image_dir):
            label = os.path.join(label_dir, stem + folder.label_suffix)
            for path in (image, label):
                if os.path.lexists(path) and not os.path.exists(path):
                    raise DataError(f"{path} is a symbolic link to {os.readlink(path)}, which "
                                    "does not exist: fix the link or remove the file")
            if not os.path.exists(label):
                raise DataError(f"image {image} has no label: expected {label}")
            reader = (colour_label_reader(label, classes.colors) if classes.encoding == "color"
                      else png_label_reader(label))
            pairs.append(Pair(stem, image, label, file_reader(image), reader))
        if not pairs:
            raise DataError(f"split {split!r} is empty: no {'/'.join(IMAGE_SUFFIXES)} image in "
                            f"{image_dir}")
        out[split] = pairs
    return out


class FolderBase(SegmentationBuilder, skip_registration=True):
    """A folder dataset (``folder.py``); ``builder_class`` makes one class per classes file."""

    name = "folder"
    DATA: ml_collections.ConfigDict
    CLASSES: Classes
    MANUAL_DOWNLOAD_INSTRUCTIONS = ("Lay out your images and label maps per split and write a "
                                    "classes file (README, 'Your own dataset').")

    def _source_splits(self, manual_dir: str, dl_manager) -> dict[str, list[Pair]]:
        del manual_dir, dl_manager  # the layout comes from the config
        return folder_pairs(self.DATA, self.CLASSES)


def builder_class(data: ml_collections.ConfigDict):
    """The builder class of the folder dataset ``data`` describes."""
    classes = read_classes(classes_path(data))
    settings = ml_collections.ConfigDict(data.to_dict())

    class Folder(FolderBase, skip_registration=True):
        DATA = settings
        CLASSES = classes
        CLASS_NAMES = classes.names
        PALETTE = classes.palette
        LABEL_TABLE = classes.table
        LABEL_HINT = classes.hint
        IDENTITY = {"classes_sha256": classes.sha256}

    return Folder
