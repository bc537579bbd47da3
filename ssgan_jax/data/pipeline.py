"""Grain input pipelines over the prepared ArrayRecord datasets (no TensorFlow).

Training: global example position ``i`` (step ``i // batch``, row ``i % batch``) reads
example ``perm_e[i mod n]`` of a per-epoch permutation (seed, epoch ``e = i // n``) and
augments it with a generator seeded by (seed, i) (``augment.train_example``). A batch is thus
a pure function of (seed, step): one seed gives identical batches, a resumed run continues
the exact stream from its step, and the number of read threads or worker processes changes
nothing. Each process of a multi-host job builds only its rows of every global batch, so 2
processes with a device each train on what 1 process with 2 devices does. Evaluation: each
image padded at the bottom/right to ``data.eval_size`` with a validity mask; the last batch is
filled with empty examples (valid False); each process reads its contiguous share of the split.
Batches are ``[local_devices, per_device_batch, ...]`` NumPy arrays, for pmap.
"""

from __future__ import annotations

import glob
import os
import threading

import grain
import ml_collections
import numpy as np

from ssgan_jax.data import augment, images, prepared, subset
from ssgan_jax.data.common import IGNORE_LABEL, DataError, decode_rgb

# the names the rest of the package uses from here
check_split, split_tag = prepared.check_split, prepared.split_tag

UNLABELED_SEED_OFFSET = 7919  # the unlabelled stream's shuffle and augmentation seed: seed + this
_LAST_STEP = 2**62  # the training streams are endless; Grain needs a length


def per_device_batch(global_batch: int, local_devices: int, process_count: int) -> int:
    devices = local_devices * process_count
    if global_batch % devices:
        raise ValueError(
            f"batch_size {global_batch} is not divisible by the {devices} devices; "
            f"set --config.batch_size to a multiple of {devices}"
        )
    return global_batch // devices


def _augment_args(data: ml_collections.ConfigDict) -> dict:
    return {"crop_size": tuple(data.crop_size), "scale_range": tuple(data.scale_range),
            "flip": bool(data.flip), "mean": tuple(data.mean), "std": tuple(data.std)}


class FileSource:
    """Image files as a random-access source of ``{"image": bytes, "file_name": str}``."""

    def __init__(self, files: list[str]):
        self.files = list(files)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict:
        path = self.files[i]
        try:
            with open(path, "rb") as f:
                return {"image": f.read(), "file_name": path}
        except OSError as e:
            raise DataError(f"{path}: cannot read unlabelled image ({e})") from e


class TrainBatches:
    """step -> this process's rows of that step's global batch (a picklable function, for
    Grain's worker processes): ``{"image" [D, B, h, w, 3] f32, "label" [D, B, h, w] i32,
    "sizes" [D, B, 2] i32}`` (no label for an unlabelled stream)."""

    def __init__(self, examples, indices, *, seed: int, global_batch: int, local_devices: int,
                 per_device: int, process_index: int, with_labels: bool, augment_args: dict):
        self.examples, self.indices = examples, np.asarray(indices, np.int64)
        self.seed, self.global_batch = int(seed), global_batch
        self.local_devices, self.per_device = local_devices, per_device
        self.first_row = process_index * local_devices * per_device
        self.with_labels, self.augment_args = with_labels, augment_args
        self._lock, self._orders = threading.Lock(), {}

    def _order(self, epoch: int) -> np.ndarray:
        """The example order of ``epoch`` (the last two kept: a batch may span two)."""
        with self._lock:
            if epoch not in self._orders:
                if len(self._orders) >= 2:
                    self._orders.pop(min(self._orders))
                self._orders[epoch] = np.random.default_rng([self.seed, epoch]).permutation(
                    len(self.indices))
            return self._orders[epoch]

    def __getstate__(self):  # the cache and its lock stay behind when pickled to a worker
        return {k: v for k, v in self.__dict__.items() if k not in ("_lock", "_orders")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock, self._orders = threading.Lock(), {}

    def example(self, position: int) -> dict:
        """The augmented example at global position ``position`` of the stream."""
        epoch, k = divmod(position, len(self.indices))
        ex = self.examples[int(self.indices[self._order(epoch)[k]])]
        name = prepared.file_name(ex)
        image = decode_rgb(ex["image"], name)
        label = augment.decode_label(ex["label"], name) if self.with_labels else None
        rng = np.random.default_rng([self.seed, position, 1])
        image, label, sizes = augment.train_example(image, label, rng, **self.augment_args)
        out = {"image": image, "sizes": sizes}
        if self.with_labels:
            out["label"] = label
        return out

    def __call__(self, step: int) -> dict:
        start = int(step) * self.global_batch + self.first_row
        rows = [self.example(start + r) for r in range(self.local_devices * self.per_device)]
        return {k: np.stack([r[k] for r in rows]).reshape(
            self.local_devices, self.per_device, *rows[0][k].shape) for k in rows[0]}


def _read_options(data: ml_collections.ConfigDict) -> grain.ReadOptions:
    return grain.ReadOptions(num_threads=max(1, int(data.threads)),
                             prefetch_buffer_size=max(1, int(data.prefetch)))


def _stream(batches: TrainBatches, data: ml_collections.ConfigDict, start_example: int):
    """The endless iterator of ``batches`` from the step holding ``start_example`` on."""
    if start_example % batches.global_batch:
        raise ValueError(f"start_example {start_example} is not a multiple of the batch size")
    ds = grain.MapDataset.range(start_example // batches.global_batch, _LAST_STEP).map(batches)
    it = ds.to_iter_dataset(_read_options(data))
    if data.workers > 0:
        from absl import flags

        if not flags.FLAGS.is_parsed():  # Grain's workers read its absl flags (defaults
            flags.FLAGS.mark_as_parsed()  # outside an absl app: a notebook, a test)
        it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=int(data.workers)))
    return iter(it)


def _selected(examples, ids: list[str] | None, keep: bool) -> np.ndarray:
    """The indices of ``examples`` whose id (file stem) is (``keep``) or is not in ``ids``."""
    if ids is None:
        return np.arange(len(examples))
    wanted = set(ids)
    return np.array([i for i in range(len(examples))
                     if (subset.stem(prepared.file_name(examples[i])) in wanted) == keep],
                    np.int64)


def train_dataset(
    config: ml_collections.ConfigDict,
    *,
    local_devices: int,
    process_index: int = 0,
    process_count: int = 1,
    start_example: int = 0,
    labeled_ids: list[str] | None = None,
    dataset: prepared.Prepared,
):
    """Endless training batches {"image": [D, B, h, w, 3] f32, "label": [D, B, h, w] i32,
    "sizes": [D, B, 2] i32} of ``data.train_split``.

    Global batch k holds the same examples, augmented the same way, whatever the number of
    processes, devices, threads and workers. ``start_example`` (a multiple of the global
    batch) starts at the examples of that step when resuming. ``labeled_ids``: only these
    examples (``subset.choose``; None = all). ``dataset``: the prepared dataset, opened
    once by the caller (``data.open_prepared``).
    """
    data = config.data
    per_device = per_device_batch(config.batch_size, local_devices, process_count)
    examples = dataset.examples(data.train_split)
    indices = _selected(examples, labeled_ids, keep=True)
    if not len(indices):
        raise DataError(f"none of the {len(labeled_ids or [])} labelled ids is in "
                        f"data.train_split={data.train_split!r}")
    batches = TrainBatches(examples, indices, seed=config.seed, global_batch=config.batch_size,
                           local_devices=local_devices, per_device=per_device,
                           process_index=process_index, with_labels=True,
                           augment_args=_augment_args(data))
    return _stream(batches, data, start_example)


def unlabeled_files(pattern: str) -> list[str]:
    """The image files ``data.unlabeled_glob`` matches (sorted); DataError if none."""
    files = sorted(f for f in glob.glob(os.path.expanduser(pattern), recursive=True)
                   if os.path.splitext(f)[1].lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        raise DataError(f"config.data.unlabeled_glob={pattern!r} matches no .jpg/.jpeg/.png "
                        "file; give a glob of images, e.g. '/data/frames/**/*.png'")
    return files


def check_unlabeled_files(pattern: str) -> int:
    """Decode every image ``data.unlabeled_glob`` matches, once, before training (a truncated
    or corrupt file would otherwise stop a run in phase 2, after phase 1 and a compilation);
    DataError naming the first that fails. Returns how many were checked."""
    from PIL import Image
    from tqdm import tqdm

    files = unlabeled_files(pattern)
    for path in tqdm(files, desc="checking unlabelled images", unit=" images",
                     mininterval=2.0, dynamic_ncols=True, disable=len(files) < 100):
        try:
            with Image.open(path) as im:
                im.load()
        except (OSError, SyntaxError, ValueError) as e:  # PIL's errors for bad image data
            raise DataError(f"{path}: unlabelled image cannot be decoded ({e}); remove or "
                            "replace it (data.unlabeled_glob)") from e
    return len(files)


def _opened(dataset: prepared.Prepared | None) -> prepared.Prepared:
    if dataset is None:
        raise ValueError("the unlabelled images of a split need the prepared dataset: pass "
                         "dataset=data.open_prepared(config.data)")
    return dataset


def unlabeled_dataset(
    config: ml_collections.ConfigDict,
    *,
    local_devices: int,
    process_index: int = 0,
    process_count: int = 1,
    start_example: int = 0,
    labeled_ids: list[str] | None = None,
    dataset: prepared.Prepared | None,
):
    """Endless batches {"image": [D, Bu, h, w, 3], "sizes"} of unlabelled images, ``semi.
    unlabeled_batch_size`` per global batch, augmented as the labelled ones, deterministic and
    resumable the same way (its own seed). The images: ``data.unlabeled_glob``'s files, else
    ``data.unlabeled_split``, else ``data.train_split`` without ``labeled_ids``. No label is
    decoded. ``dataset``: the prepared dataset, opened once by the caller (None only with
    ``data.unlabeled_glob``).
    """
    data = config.data
    per_device = per_device_batch(config.semi.unlabeled_batch_size, local_devices,
                                  process_count)
    if data.unlabeled_glob:
        examples = FileSource(unlabeled_files(data.unlabeled_glob))
        indices = np.arange(len(examples))
    elif data.unlabeled_split:
        examples = _opened(dataset).examples(data.unlabeled_split)
        indices = np.arange(len(examples))
    else:
        if labeled_ids is None:
            raise DataError(
                "semi-supervised training needs unlabelled images, but every image of "
                f"data.train_split={data.train_split!r} is labelled: set "
                "--config.data.labeled (a fraction, a count or an id file), "
                "--config.data.unlabeled_split or --config.data.unlabeled_glob")
        examples = _opened(dataset).examples(data.train_split)
        indices = _selected(examples, labeled_ids, keep=False)
        if not len(indices):
            raise DataError(f"every image of data.train_split={data.train_split!r} is "
                            "labelled: no unlabelled image is left")
    batches = TrainBatches(examples, indices, seed=config.seed + UNLABELED_SEED_OFFSET,
                           global_batch=config.semi.unlabeled_batch_size,
                           local_devices=local_devices, per_device=per_device,
                           process_index=process_index, with_labels=False,
                           augment_args=_augment_args(data))
    return _stream(batches, data, start_example)


def _oversize_error(name: str, h: int, w: int, eval_size) -> DataError:
    size = tuple(eval_size) if eval_size else None
    target = f"({max(h, size[0])}, {max(w, size[1])})" if size else f"({h}, {w})"
    return DataError(
        f"{name} is {h}x{w} (HxW), larger than data.eval_size={size}; set "
        f"--config.data.eval_size='{target}' (or larger; with --config.eval.mode=sliding "
        f"a larger eval_size does not enlarge the forward pass)")


class _Fits:
    """Whether an example's image fits ``size`` (read off its label PNG's header); with
    ``fill``, whether it is exactly ``size``."""

    def __init__(self, size, want: bool, fill: bool = False):
        self.size, self.want, self.fill = tuple(int(v) for v in size), want, fill

    def __call__(self, ex) -> bool:
        hw = prepared.png_size(ex["label"], prepared.file_name(ex))
        fits = tuple(hw) == self.size if self.fill else images.fits(hw, self.size)
        return fits == self.want


class _EvalExample:
    def __init__(self, data: ml_collections.ConfigDict, pad: bool):
        self.eval_size = tuple(int(v) for v in data.eval_size)
        self.mean, self.std, self.pad = tuple(data.mean), tuple(data.std), pad

    def __call__(self, ex) -> dict:
        name = prepared.file_name(ex)
        image = decode_rgb(ex["image"], name)
        label = augment.decode_label(ex["label"], name)
        if not self.pad:
            return {"image": images.normalize(image, self.mean, self.std),
                    "label": label.astype(np.int32), "file_name": name}
        if not images.fits(image.shape, self.eval_size):
            raise _oversize_error(name, *image.shape[:2], self.eval_size)
        x, y, mask = augment.eval_example(image, label, eval_size=self.eval_size,
                                          mean=self.mean, std=self.std)
        return {"image": x, "label": y, "mask": mask, "valid": np.bool_(True)}


class _Devices:
    """A batch of up to ``D * B`` examples -> [D, B, ...], filled with empty examples."""

    def __init__(self, local_devices: int, per_device: int):
        self.local_devices, self.per_device = local_devices, per_device

    def __call__(self, batch: dict) -> dict:
        total = self.local_devices * self.per_device
        out = {}
        for k, v in batch.items():
            fill = np.full((total - len(v), *v.shape[1:]),
                           IGNORE_LABEL if k == "label" else 0, v.dtype)
            out[k] = np.concatenate([v, fill]).reshape(self.local_devices, self.per_device,
                                                       *v.shape[1:])
        return out


def eval_dataset(
    config: ml_collections.ConfigDict,
    split: str,
    *,
    local_devices: int,
    process_index: int = 0,
    process_count: int = 1,
    oversize: str = "refuse",
    fill: bool = False,
    dataset: prepared.Prepared,
):
    """One pass over ``split``: {"image", "label", "mask" [D, B, H, W] bool, "valid" [D, B]}.

    Images are padded (bottom/right) to ``data.eval_size``; padding has mask False and label
    ignore; examples that only fill the last batch have valid False. An image larger than
    ``data.eval_size`` stops the pass with a DataError naming it and the size to set
    (``oversize="refuse"``); with ``oversize="skip"`` it is left out of this stream, for
    ``oversize_dataset`` to deliver. ``fill`` (with "skip"): only the images of exactly
    ``data.eval_size`` are in this stream (a generator that cannot be told its images'
    sizes, ``models.registry.own_canvas``); ``oversize_dataset(..., fill=True)`` has the rest.
    """
    if oversize not in ("refuse", "skip") or (fill and oversize != "skip"):
        raise ValueError(f"oversize must be 'refuse' or 'skip' ('skip' with fill); got "
                         f"{oversize!r}")
    data = config.data
    per_device = per_device_batch(config.eval_batch_size, local_devices, process_count)
    ds = grain.MapDataset.source(dataset.examples(split, process_index, process_count))
    if oversize == "skip":
        ds = ds.filter(_Fits(data.eval_size, want=True, fill=fill))
    it = ds.map(_EvalExample(data, pad=True)).to_iter_dataset(_read_options(data))
    return iter(it.batch(local_devices * per_device).map(_Devices(local_devices, per_device)))


def oversize_dataset(config, split: str, process_index: int = 0, process_count: int = 1,
                     fill: bool = False, *, dataset: prepared.Prepared):
    """The images of ``split`` (this process's share, as ``eval_dataset``'s) larger than
    ``data.eval_size`` (``fill``: of any other size), one by one and unpadded: {"image"
    [H, W, 3] normalised, "label" [H, W], "file_name"}; ``eval_dataset(..., oversize="skip",
    fill=fill)`` has the others."""
    data = config.data
    ds = grain.MapDataset.source(dataset.examples(split, process_index, process_count))
    ds = ds.filter(_Fits(data.eval_size, want=False, fill=fill)).map(_EvalExample(data, pad=False))
    return iter(ds.to_iter_dataset(_read_options(data)))


def resolve_eval_size(data: ml_collections.ConfigDict, dataset: prepared.Prepared) -> None:
    """``data.eval_size="auto"`` becomes the largest height and the largest width among the
    images of every split of the prepared dataset (recorded when it was prepared; nothing is
    decoded). Other values are left alone."""
    if data.eval_size != "auto":
        return
    heights, widths = [], []
    for split in sorted(dataset.builder.info.splits):
        shapes = dataset.class_pixels(split)["shapes"]
        heights += [h for h, _ in shapes]
        widths += [w for _, w in shapes]
    data.eval_size = (int(max(heights)), int(max(widths)))
    print(f"data.eval_size=auto: {data.eval_size}, the largest image of the prepared dataset",
          flush=True)


def check_eval_size(data: ml_collections.ConfigDict, split: str,
                    dataset: prepared.Prepared) -> None:
    """DataError naming the first image of ``split`` larger than ``data.eval_size`` and the
    size to set: training checks its validation split before its first step."""
    eh, ew = data.eval_size
    for name, h, w in dataset.image_sizes(split):
        if h > eh or w > ew:
            raise _oversize_error(name, h, w, data.eval_size)
