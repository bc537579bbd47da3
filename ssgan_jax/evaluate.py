"""Validation / evaluation of the generator: one confusion matrix per split (PAPER.md 7).

Training's periodic validation and ``--mode=eval`` both call ``evaluate_split`` with a step
from ``make_eval_step``, so the two give the same numbers for the same weights. The
per-batch step counts on each device without collectives, so processes holding different
numbers of batches never wait on each other; each process sums its devices' matrices, and
the processes' sums are added once at the end (``multihost_utils.process_allgather``).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ssgan_jax import inference
from ssgan_jax.data import pipeline
from ssgan_jax.metrics import confusion_matrix, summarize
from ssgan_jax.region_metrics import RegionMetrics


def make_eval_step(generator, num_classes: int, ignore_label: int = 255,
                   settings: inference.Settings | None = None):
    """``step(variables, batch) -> (confusion [C, C], predictions [B, H, W] uint8)`` of one
    device's batch (to be pmapped, ``steps.pmap_eval``); the predictions feed the host-side
    region metrics (``region_metrics``).

    batch: {"image": [B, H, W, 3], "label": [B, H, W], "mask": [B, H, W] bool,
    "valid": [B] bool}; padding and filler examples are not counted. ``settings``: test-time
    inference (default: the whole padded image, one scale, no flip).
    """
    predict = inference.make_predict_fn(generator, settings or inference.Settings())

    if num_classes > 256:
        raise ValueError(f"{num_classes} classes do not fit the uint8 prediction maps")

    def step(variables, batch):
        preds = predict(variables, batch["image"])
        mask = batch["mask"] & batch["valid"][:, None, None]
        confusion = confusion_matrix(preds, batch["label"], num_classes, mask, ignore_label)
        return confusion, preds.astype(jnp.uint8)

    return step


def sum_over_processes(local: np.ndarray) -> np.ndarray:
    """This process's ``local`` array summed with every other process's (itself alone in a
    single-process run)."""
    if jax.process_count() == 1:
        return local
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(local)).sum(axis=0)


def _images_of(batch, preds) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(image, label, prediction) of each real example of a [D, B, ...] batch, cropped to
    the image (its mask: the top-left h x w of the padded arrays)."""
    valid = np.asarray(batch["valid"]).reshape(-1)
    mask = np.asarray(batch["mask"]).reshape(-1, *batch["mask"].shape[-2:])
    labels = np.asarray(batch["label"]).reshape(mask.shape)
    images = np.asarray(batch["image"]).reshape(*mask.shape, -1)
    preds = np.asarray(preds).reshape(mask.shape)
    for j in np.nonzero(valid)[0]:
        h, w = int(mask[j].any(axis=1).sum()), int(mask[j].any(axis=0).sum())
        yield images[j, :h, :w], labels[j, :h, :w], preds[j, :h, :w]


OVERSIZE_BUCKET = 64  # images larger than data.eval_size are padded to multiples of this


def oversize_bucket(h: int, w: int) -> tuple[int, int]:
    """(h, w) rounded up to multiples of ``OVERSIZE_BUCKET``: the padded size of an image
    larger than data.eval_size (one compilation per padded size, not per image size)."""
    return -(-h // OVERSIZE_BUCKET) * OVERSIZE_BUCKET, -(-w // OVERSIZE_BUCKET) * OVERSIZE_BUCKET


def oversize_batches(examples):
    """Each oversize example ({"image" [H, W, 3], "label" [H, W]}) as a one-image batch
    [1, 1, ...] padded (bottom/right, label ignore) to ``oversize_bucket``."""
    for ex in examples:
        h, w = ex["label"].shape
        ph, pw = oversize_bucket(h, w)
        image = np.zeros((1, 1, ph, pw, 3), np.float32)
        image[0, 0, :h, :w] = ex["image"]
        label = np.full((1, 1, ph, pw), 255, np.int32)
        label[0, 0, :h, :w] = ex["label"]
        mask = np.zeros((1, 1, ph, pw), bool)
        mask[0, 0, :h, :w] = True
        yield {"image": image, "label": label, "mask": mask, "valid": np.ones((1, 1), bool)}


def evaluate(
    p_eval_step,
    variables,
    batches,
    num_classes: int,
    class_names: Sequence[str] | None = None,
    region: RegionMetrics | None = None,
    keep_examples: int = 0,
    oversize: tuple[Any, Any, Any] | None = None,
) -> dict[str, Any]:
    """Run a pmapped eval step over ``batches`` (numpy dicts [D, B, ...]) and summarise.

    ``variables``: host arrays or placed on the devices (``steps.on_devices``). Returns
    ``metrics.summarize``'s dict plus ``num_images``, the raw ``confusion`` matrix (nested
    lists) and, with ``region``, its boundary F1, fragmentation and speckle over the split
    (computed on the host in a worker thread while the devices run the next batch). With
    ``keep_examples``, ``examples``: the first (image, label, prediction) triples of this
    process, for pictures.
    """
    confusion = np.zeros((num_classes, num_classes), np.int64)
    images = 0
    examples: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    pending: list[concurrent.futures.Future] = []

    def add_regions(batch, preds):
        for _, label, pred in _images_of(batch, preds):
            region.add(pred, label)

    def passes():
        for batch in batches:
            yield p_eval_step, variables, batch
        if oversize is not None:
            step, one_device, big = oversize
            for batch in big:
                yield step, one_device, batch

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        for step, step_variables, batch in passes():
            cm, preds = step(step_variables, batch)
            confusion += np.asarray(jax.device_get(cm), np.int64).sum(0)
            images += int(np.sum(batch["valid"]))
            if region is not None or len(examples) < keep_examples:
                preds = np.asarray(jax.device_get(preds))
            if len(examples) < keep_examples:
                examples += list(_images_of(batch, preds))[:keep_examples - len(examples)]
            if region is not None:
                pending.append(pool.submit(add_regions, batch, preds))
                while len(pending) > 2:  # at most 2 batches waiting (memory); errors re-raise
                    pending.pop(0).result()
        for f in pending:
            f.result()  # re-raises a worker's error
    confusion = sum_over_processes(confusion)
    summary = summarize(confusion, class_names)
    summary["num_images"] = int(sum_over_processes(np.asarray(images, np.int64)))
    if region is not None:
        region.load_state(sum_over_processes(region.state()))
        summary.update(region.summary(class_names))
    summary["confusion"] = confusion.tolist()
    if keep_examples:
        summary["examples"] = examples
    return summary


def region_metrics(config, num_classes: int) -> RegionMetrics | None:
    """The split's boundary/region accumulator that ``config.eval`` asks for (or None)."""
    if not config.eval.region_metrics:
        return None
    return RegionMetrics(num_classes, config.loss.ignore_label, config.eval.boundary_tolerance,
                         config.eval.min_region)


def oversize_step(generator, num_classes: int, ignore_label: int,
                  settings: inference.Settings, eval_size: tuple[int, int]):
    """The jitted one-device eval step for images larger than ``eval_size``: sliding windows
    of ``eval_size`` (``inference.oversize_settings``), on batches [1, 1, ...]."""
    step = make_eval_step(generator, num_classes, ignore_label,
                          inference.oversize_settings(settings, eval_size))
    one = jax.jit(lambda v, b: step(v, jax.tree.map(lambda x: x[0], b)))
    return lambda v, b: jax.tree.map(lambda x: x[None], one(v, b))


def evaluate_split(config, p_eval_step, variables, split: str, num_classes: int,
                   class_names: Sequence[str], keep_examples: int = 0,
                   big_step=None) -> dict[str, Any]:
    """``evaluate`` over one pass of ``split`` of ``config.data`` (every process its shard),
    with the region metrics ``config.eval`` asks for. ``big_step`` (``oversize_step``): how
    images larger than ``data.eval_size`` are evaluated; without it they are refused with an
    error naming the size to set."""
    process = {"process_index": jax.process_index(), "process_count": jax.process_count()}
    batches = pipeline.as_numpy(pipeline.eval_dataset(
        config, split, local_devices=jax.local_device_count(),
        oversize="refuse" if big_step is None else "skip", **process),
        eval_size=config.data.eval_size)
    oversize = None
    if big_step is not None:
        # (replicated over the devices for the pmapped step; one copy for this one, made on
        # the device, not through the host)
        one_device = jax.device_put(variables, jax.local_devices()[0])
        big = oversize_batches(pipeline.as_numpy(pipeline.oversize_dataset(config, split,
                                                                            **process)))
        oversize = (big_step, one_device, big)
    return evaluate(p_eval_step, variables, batches, num_classes, class_names,
                    region_metrics(config, num_classes), keep_examples, oversize)
