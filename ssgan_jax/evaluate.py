"""Validation / evaluation of the generator: one confusion matrix per split (PAPER.md 7).

Training's periodic validation and ``--mode=eval`` both call ``evaluate_split`` with a step
from ``make_eval_step``, so the two give the same numbers for the same weights. The
per-batch step counts on each device without collectives, so processes holding different
numbers of batches never wait on each other; each process sums its devices' matrices, and
the processes' sums are added once at the end (``multihost_utils.process_allgather``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from ssgan_jax import inference
from ssgan_jax.data import pipeline
from ssgan_jax.metrics import confusion_matrix, summarize


def make_eval_step(generator, num_classes: int, ignore_label: int = 255,
                   settings: inference.Settings | None = None):
    """``step(variables, batch) -> confusion [C, C]`` of one device's batch (to be pmapped,
    ``steps.pmap_eval``).

    batch: {"image": [B, H, W, 3], "label": [B, H, W], "mask": [B, H, W] bool,
    "valid": [B] bool}; padding and filler examples are not counted. ``settings``: test-time
    inference (default: the whole padded image, one scale, no flip).
    """
    predict = inference.make_predict_fn(generator, settings or inference.Settings())

    def step(variables, batch):
        preds = predict(variables, batch["image"])
        mask = batch["mask"] & batch["valid"][:, None, None]
        return confusion_matrix(preds, batch["label"], num_classes, mask, ignore_label)

    return step


def sum_over_processes(local: np.ndarray) -> np.ndarray:
    """This process's ``local`` array summed with every other process's (itself alone in a
    single-process run)."""
    if jax.process_count() == 1:
        return local
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(local)).sum(axis=0)


def evaluate(
    p_eval_step,
    variables,
    batches,
    num_classes: int,
    class_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Run a pmapped eval step over ``batches`` (numpy dicts [D, B, ...]) and summarise.

    ``variables``: host arrays or placed on the devices (``steps.on_devices``). Returns
    ``metrics.summarize``'s dict plus ``num_images`` and the raw ``confusion`` matrix (nested
    lists).
    """
    confusion = np.zeros((num_classes, num_classes), np.int64)
    images = 0
    for batch in batches:
        confusion += np.asarray(jax.device_get(p_eval_step(variables, batch)), np.int64).sum(0)
        images += int(np.sum(batch["valid"]))
    confusion = sum_over_processes(confusion)
    summary = summarize(confusion, class_names)
    summary["num_images"] = int(sum_over_processes(np.asarray(images, np.int64)))
    summary["confusion"] = confusion.tolist()
    return summary


def evaluate_split(config, p_eval_step, variables, split: str, num_classes: int,
                   class_names: Sequence[str]) -> dict[str, Any]:
    """``evaluate`` over one pass of ``split`` of ``config.data`` (every process its shard)."""
    batches = pipeline.as_numpy(pipeline.eval_dataset(
        config, split, local_devices=jax.local_device_count(),
        process_index=jax.process_index(), process_count=jax.process_count()),
        eval_size=config.data.eval_size)
    return evaluate(p_eval_step, variables, batches, num_classes, class_names)
