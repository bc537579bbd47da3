"""Segmentation metrics from one confusion matrix per split (METHOD.md section 7).

``confusion_matrix`` runs on device inside the eval step (sum it over batches and devices);
``summarize`` turns the accumulated matrix into IoU figures on the host.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def confusion_matrix(
    preds: jax.Array,
    labels: jax.Array,
    num_classes: int,
    mask: jax.Array | None = None,
    ignore_label: int = 255,
) -> jax.Array:
    """[C, C] int32 counts, rows = ground truth, columns = prediction.

    preds, labels: integer arrays of one shape; mask: optional bool of that shape (False =
    padding). Pixels labelled ``ignore_label`` (or outside [0, C)) or masked out are not counted.
    """
    if preds.shape != labels.shape:
        raise ValueError(f"preds {preds.shape} and labels {labels.shape} differ in shape")
    valid = (labels != ignore_label) & (labels >= 0) & (labels < num_classes)
    if mask is not None:
        valid = valid & mask
    index = jnp.where(valid, labels * num_classes + preds, 0).reshape(-1)
    counts = jnp.zeros(num_classes * num_classes, jnp.int32)
    counts = counts.at[index].add(valid.reshape(-1).astype(jnp.int32))
    return counts.reshape(num_classes, num_classes)


def summarize(
    confusion: np.ndarray, class_names: Sequence[str] | None = None
) -> dict[str, Any]:
    """IoU(i) = p_ii / (sum_j p_ij + sum_j p_ji - p_ii); mIoU = mean over present classes.

    A class absent from both ground truth and prediction has no IoU: it is reported as None
    and left out of the mean (``absent_classes`` lists it). A class predicted but absent from
    the ground truth has IoU 0 and counts. ``mean_accuracy`` averages recall over the classes
    that occur in the ground truth. Values are in [0, 1].
    """
    cm = np.asarray(confusion, np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion matrix must be square; got shape {cm.shape}")
    num_classes = cm.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} class names for a {num_classes}-class matrix")
    tp = np.diag(cm)
    gt = cm.sum(axis=1)
    pred = cm.sum(axis=0)
    union = gt + pred - tp
    present = union > 0
    iou = np.where(present, tp / np.maximum(union, 1), np.nan)
    total = cm.sum()
    return {
        "miou": float(np.nanmean(iou)) if present.any() else None,
        "per_class_iou": {
            n: (float(v) if p else None) for n, v, p in zip(names, iou, present, strict=True)
        },
        "pixel_accuracy": float(tp.sum() / total) if total else None,
        "mean_accuracy": float(np.mean(tp[gt > 0] / gt[gt > 0])) if (gt > 0).any() else None,
        "absent_classes": [n for n, p in zip(names, present, strict=True) if not p],
        "num_pixels": int(total),
    }


def format_table(summary: dict[str, Any],
                 columns: Sequence[tuple[str, dict, Any, float]] = ()) -> str:
    """A per-class table for the terminal: IoU (percent), then ``columns`` (header, per-class
    values, mean, scale; the host metrics' ``columns``, ``metric_registry``)."""

    def cell(value, scale=100.0, absent="absent"):
        return f"{absent:>7}" if value is None else f"{scale * value:7.2f}"

    rows = [f"{'class':<20} {'IoU %':>7}" + "".join(f" {h:>7}" for h, *_ in columns)]
    for name, value in summary["per_class_iou"].items():
        rows.append(f"{name:<20} {cell(value)}" + "".join(
            f" {cell(per_class.get(name), scale, '-')}" for _, per_class, _, scale in columns))
    rows.append(f"{'mean':<20} {cell(summary['miou'], absent='n/a')}" + "".join(
        f" {cell(mean, scale, 'n/a')}" for _, _, mean, scale in columns))
    return "\n".join(rows)
