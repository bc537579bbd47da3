"""Validation / evaluation of the generator: one confusion matrix per split (PAPER.md 7).

Training's periodic validation and ``--mode=eval`` both call ``evaluate_split`` with a step
from ``make_eval_step``, so the two give the same numbers for the same weights. The
per-batch step counts on each device without collectives, so processes holding different
numbers of batches never wait on each other; the matrices are summed over all devices once
at the end.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from ssgan_jax import inference
from ssgan_jax.data import pipeline
from ssgan_jax.metrics import confusion_matrix, summarize


def make_eval_step(generator, num_classes: int, ignore_label: int = 255,
                   settings: inference.Settings | None = None):
    """``step(variables, batch) -> confusion [C, C]`` of one device's batch (to be pmapped).

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


def _psum_all(x):
    return jax.lax.psum(x, "all")


@functools.cache
def _p_sum():
    """The pmapped sum, built once (a fresh pmap per call would recompile every validation)."""
    return jax.pmap(_psum_all, axis_name="all")


def _sum_over_devices(local: np.ndarray) -> np.ndarray:
    """Sum [local_devices, ...] over every device of every process."""
    summed = _p_sum()(local)
    return np.asarray(jax.device_get(summed[0]))


def evaluate(
    p_eval_step,
    variables,
    batches,
    num_classes: int,
    class_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Run a pmapped eval step over ``batches`` (numpy dicts [D, B, ...]) and summarise.

    ``variables`` are replicated over the local devices. Returns ``metrics.summarize``'s dict
    plus ``num_images`` and the raw ``confusion`` matrix (a nested list).
    """
    local = jax.local_device_count()
    total = np.zeros((local, num_classes, num_classes), np.int64)
    images = 0
    for batch in batches:
        total += np.asarray(jax.device_get(p_eval_step(variables, batch)), np.int64)
        images += int(np.sum(batch["valid"]))
    # int32 on device: per-split counts stay far below 2**31 per device and class pair
    confusion = _sum_over_devices(total.astype(np.int32)).astype(np.int64)
    counts = np.zeros((local,), np.int32)
    counts[0] = images  # this process's images, counted once
    count = _sum_over_devices(counts)
    summary = summarize(confusion, class_names)
    summary["num_images"] = int(count)
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
