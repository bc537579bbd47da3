"""Validation / evaluation of the generator: one confusion matrix per split (METHOD.md 7).

Training's periodic validation and ``--mode=eval`` both call ``evaluate_split`` with a step
from ``make_eval_step``, so the two give the same numbers for the same weights. The
per-batch step counts on each device without collectives, so processes holding different
numbers of batches never wait on each other; each process sums its devices' matrices, and
the processes' sums are added once at the end (``multihost_utils.process_allgather``).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ssgan_jax.core import parallel
from ssgan_jax.data import pipeline, prepared
from ssgan_jax.inference import metric_registry, oversize, tta
from ssgan_jax.inference.metric_registry import HostMetric
from ssgan_jax.inference.metrics import confusion_matrix, summarize
from ssgan_jax.models import canvas, registry


def make_eval_step(generator, num_classes: int, ignore_label: int = 255,
                   settings: tta.Settings | None = None):
    """``step(variables, batch) -> (confusion [C, C], predictions [B, H, W] uint8)`` of one
    device's batch (to be pmapped, ``parallel.pmap_eval``); the predictions feed the host-side
    metrics (``metric_registry``).

    batch: {"image": [B, H, W, 3], "label": [B, H, W], "mask": [B, H, W] bool,
    "valid": [B] bool}; padding and filler examples are not counted. Each image is predicted
    as alone at its own size (its size is read off its mask), so the numbers do not depend on
    ``data.eval_size``. ``settings``: test-time inference (default: the whole image, one
    scale, no flip).
    """
    predict = tta.make_predict_fn(generator, settings or tta.Settings())

    if num_classes > 256:
        raise ValueError(f"{num_classes} classes do not fit the uint8 prediction maps")

    def step(variables, batch):
        # each image computed as alone at its own size, whatever the canvas (models.canvas)
        preds = predict(variables, batch["image"], canvas.from_mask(batch["mask"]))
        mask = batch["mask"] & batch["valid"][:, None, None]
        confusion = confusion_matrix(preds, batch["label"], num_classes, mask, ignore_label)
        return confusion, preds.astype(jnp.uint8)

    return step


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


def evaluate(
    p_eval_step,
    variables,
    batches,
    num_classes: int,
    class_names: Sequence[str] | None = None,
    host_metrics: Sequence[HostMetric] = (),
    keep_examples: int = 0,
    oversize: tuple[Any, Any, Any] | None = None,
    progress: tuple[str, int] | None = None,
) -> dict[str, Any]:
    """Run a pmapped eval step over ``batches`` (numpy dicts [D, B, ...]) and summarise.

    ``variables``: host arrays or placed on the devices (``parallel.on_devices``). Returns
    ``metrics.summarize``'s dict plus ``num_images``, the raw ``confusion`` matrix (nested
    lists), each of ``host_metrics``' summary entries over the split (computed on the host in
    a worker thread while the devices run the next batch; their keys in
    ``host_metric_keys``). With
    ``keep_examples``, ``examples``: the first (image, label, prediction) triples of this
    process, for pictures.
    """
    confusion = np.zeros((num_classes, num_classes), np.int64)
    images = big_images = 0
    examples: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    pending: list[concurrent.futures.Future] = []

    def add_images(batch, preds):
        for _, label, pred in _images_of(batch, preds):
            for metric in host_metrics:
                metric.add(pred, label)

    def passes():
        for batch in batches:
            yield p_eval_step, variables, batch
        if oversize is not None:
            step, one_device, big = oversize
            for batch in big:
                yield step, one_device, batch

    bar = None
    if progress is not None and jax.process_index() == 0:
        from tqdm import tqdm

        bar = tqdm(desc=progress[0], total=progress[1], unit=" images", mininterval=2.0,
                   dynamic_ncols=True)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        for step, step_variables, batch in passes():
            cm, preds = step(step_variables, batch)
            confusion += np.asarray(jax.device_get(cm), np.int64).sum(0)
            counted = int(np.sum(batch["valid"]))
            images += counted
            if bar is not None:
                bar.update(counted * jax.process_count())
            if oversize is not None and step is oversize[0]:
                big_images += counted
            if host_metrics or len(examples) < keep_examples:
                preds = np.asarray(jax.device_get(preds))
            if len(examples) < keep_examples:
                examples += list(_images_of(batch, preds))[:keep_examples - len(examples)]
            if host_metrics:
                pending.append(pool.submit(add_images, batch, preds))
                while len(pending) > 2:  # at most 2 batches waiting (memory); errors re-raise
                    pending.pop(0).result()
        for f in pending:
            f.result()  # re-raises a worker's error
    if bar is not None:
        bar.close()
    confusion = parallel.sum_over_processes(confusion)
    summary = summarize(confusion, class_names)
    summary["num_images"] = int(parallel.sum_over_processes(np.asarray(images, np.int64)))
    summary["oversize_images"] = int(parallel.sum_over_processes(np.asarray(big_images,
                                                                            np.int64)))
    summary["host_metric_keys"] = []  # the summary's entries the host metrics wrote
    for metric in host_metrics:
        metric.load_state(parallel.sum_over_processes(metric.state()))
        part = metric.summary(class_names)
        summary.update(part)
        summary["host_metric_keys"] += list(part)
    summary["confusion"] = confusion.tolist()
    if keep_examples:
        summary["examples"] = examples
    return summary


def oversize_step(generator, num_classes: int, ignore_label: int,
                  settings: tta.Settings, eval_size: tuple[int, int], windows_per_call: int = 0):
    """The jitted one-device eval step for images larger than ``eval_size`` (``oversize``):
    sliding windows of ``eval_size`` (``tta.oversize_settings``; ``windows_per_call`` of
    them per forward pass), on batches [1, 1, ...]."""
    step = make_eval_step(generator, num_classes, ignore_label,
                          tta.oversize_settings(settings, eval_size, windows_per_call))
    one = jax.jit(lambda v, b: step(v, jax.tree.map(lambda x: x[0], b)))
    return lambda v, b: jax.tree.map(lambda x: x[None], one(v, b))


class EvalSteps(NamedTuple):
    """The compiled steps of one generator's evaluation (``eval_steps``)."""

    p_eval: Any  # pmapped, canvases of data.eval_size
    big: Any  # one device, one image at a time (None: larger images refused)
    own_canvas: bool  # G is not told its images' sizes: images off the canvas go one by one


def eval_steps(generator, num_classes: int, config, settings: tta.Settings,
               oversize_images: bool = True) -> EvalSteps:
    """``evaluate_split``'s steps for ``generator``: ``oversize_images``, the one-device pass
    for images larger than ``data.eval_size`` (training's validation refuses them instead);
    a generator that cannot be told its images' sizes has it whatever ``oversize_images``
    says, for every image that does not fill the canvas."""
    ignore = config.loss.ignore_label
    own = registry.own_canvas(generator)
    big = None
    if oversize_images or own:
        big = oversize_step(generator, num_classes, ignore, settings,
                            tuple(config.data.eval_size), oversize.windows_per_call(config))
    return EvalSteps(parallel.pmap_eval(make_eval_step(generator, num_classes, ignore,
                                                       settings)), big, own)


def evaluate_split(config, p_eval_step, variables, split: str, num_classes: int,
                   class_names: Sequence[str], keep_examples: int = 0, *,
                   big_step=None, progress: bool = False,
                   own_canvas: bool = False,
                   host_metrics: Sequence[HostMetric] | None = None,
                   dataset: prepared.Prepared) -> dict[str, Any]:
    """``evaluate`` over one pass of ``split`` of ``config.data`` (every process its shard),
    with ``host_metrics`` (default: fresh ones of those ``config.eval`` names,
    ``metric_registry.build``; give them to read them afterwards). ``big_step``
    (``oversize_step``): how images larger than ``data.eval_size`` are evaluated; without it
    they are refused with an error naming the size to set. ``progress``: a progress bar
    (``--mode=eval``; training's validation prints one line instead). ``own_canvas``
    (``models.registry.own_canvas``): the images not of exactly ``data.eval_size`` go
    through ``big_step`` too, each unpadded on its own canvas (``big_step`` then required).
    ``dataset``: the prepared dataset (``data.open_prepared``), opened once by the caller."""
    if own_canvas and big_step is None:
        raise ValueError("own_canvas evaluation needs big_step (eval_steps builds both)")
    process = {"process_index": jax.process_index(), "process_count": jax.process_count()}
    batches = pipeline.eval_dataset(
        config, split, local_devices=jax.local_device_count(),
        oversize="refuse" if big_step is None else "skip", fill=own_canvas, dataset=dataset,
        **process)
    big_pass = None
    if big_step is not None:
        # (replicated over the devices for the pmapped step; one copy for this one, made on
        # the device, not through the host)
        big = oversize.batches(pipeline.oversize_dataset(config, split, fill=own_canvas,
                                                         dataset=dataset, **process),
                               config.loss.ignore_label,
                               bucket=1 if own_canvas else oversize.BUCKET)
        big_pass = (big_step, parallel.one_device(variables), big)
    shown = None
    if progress:
        shown = (f"evaluating {split}", dataset.split_size(split))
    return evaluate(p_eval_step, variables, batches, num_classes, class_names,
                    metric_registry.build(config, num_classes) if host_metrics is None
                    else host_metrics, keep_examples, big_pass, shown)
