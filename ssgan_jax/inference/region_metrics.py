"""What the adversary is meant to change: boundaries and regions (METHOD.md sections 1 and 8).

mIoU counts pixels; a prediction with ragged borders or scattered fragments can score as well
as a clean one. Three measures over a split, computed on the host from the predicted and the
ground-truth class maps of each image (cropped to the image, before padding):

* **Boundary F1** (Csurka et al., BMVC 2013). For image i and class c, the boundary of a binary
  mask is its pixels that have a 4-neighbour outside the mask (the image border is not a
  boundary): B_pred from the prediction, B_gt from the ground truth. Boundary pixels on a
  ground-truth ignore pixel are dropped from both. With Euclidean distances, precision = share
  of B_pred within ``tol`` of B_gt, recall = share of B_gt within ``tol`` of B_pred,
  F1 = 2PR / (P + R) (0 when one side is empty and the other not; the pair is skipped when
  both are empty). Class BF = mean F1 over the images not skipped; ``mean`` = mean over the
  classes that have a value. ``tol`` = ``eval.boundary_tolerance`` pixels, or (0, default)
  0.75% of each image's diagonal, as in the paper cited.
* **Fragmentation**: per class, the 8-connected components of the prediction and of the ground
  truth (ignore pixels belong to no class in either), counted over the split; the ratio
  pred / gt (null when the ground truth has none). 1 = as many regions as the truth; above 1
  = fragmented. ``mean`` over the classes that have a value.
* **Speckle**: the share of predicted (non-ignore) pixels lying in components smaller than
  ``eval.min_region`` pixels, or (0, default) 0.05% of the image's pixels.

``RegionMetrics`` accumulates per-class sums that add up over batches and processes
(``state`` / ``from_state``), so a multi-process evaluation sums the processes' arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

DIAGONAL_SHARE = 0.0075  # Csurka et al.: 0.75% of the image diagonal
MIN_REGION_SHARE = 0.0005  # 0.05% of the image's pixels
_EIGHT = np.ones((3, 3), bool)


def boundary(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` [H, W] bool with a 4-neighbour outside it (not across the border)."""
    return _boundary_classes(mask.astype(np.int64), np.zeros(mask.shape, bool)) == 1


def _boundary_classes(classes: np.ndarray, ignore: np.ndarray) -> np.ndarray:
    """Each pixel's class where it is a boundary pixel of its class (a 4-neighbour of another
    value, not across the image border) and not an ignore pixel; -1 elsewhere."""
    padded = np.pad(classes, 1, mode="edge")
    centre = padded[1:-1, 1:-1]
    edge = ((padded[:-2, 1:-1] != centre) | (padded[2:, 1:-1] != centre)
            | (padded[1:-1, :-2] != centre) | (padded[1:-1, 2:] != centre))
    return np.where(edge & ~ignore & (classes >= 0), classes, -1)


def _disk(tol: float) -> list[tuple[int, int]]:
    """Integer offsets within Euclidean distance ``tol`` of (0, 0)."""
    r = int(np.floor(tol))
    return [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)
            if dy * dy + dx * dx <= tol * tol]


def _matched(points: np.ndarray, targets: np.ndarray, offsets, num_classes: int):
    """Per class: (how many ``points`` boundary pixels have a ``targets`` boundary pixel of the
    same class within the ``offsets`` disk, how many ``points`` pixels there are). Both maps
    as ``_boundary_classes`` gives them. Cost: offsets x boundary pixels."""
    ys, xs = np.nonzero(points >= 0)
    cls = points[ys, xs]
    r = max((max(abs(dy), abs(dx)) for dy, dx in offsets), default=0)
    padded = np.pad(targets, r, constant_values=-1)
    hit = np.zeros(len(ys), bool)
    for dy, dx in offsets:
        hit |= padded[ys + r + dy, xs + r + dx] == cls
    return (np.bincount(cls[hit], minlength=num_classes),
            np.bincount(cls, minlength=num_classes))


def boundary_f1(pred: np.ndarray, label: np.ndarray, ignore: np.ndarray, tol: float,
                num_classes: int) -> np.ndarray:
    """Per class, the boundary F1 of one image (module doc): float [C], NaN where neither the
    prediction nor the truth has a boundary of the class. ``label`` holds -1 on ignore."""
    offsets = _disk(tol)
    b_pred = _boundary_classes(pred, ignore)
    b_gt = _boundary_classes(label, ignore)
    hit_pred, n_pred = _matched(b_pred, b_gt, offsets, num_classes)
    hit_gt, n_gt = _matched(b_gt, b_pred, offsets, num_classes)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(n_pred > 0, hit_pred / np.maximum(n_pred, 1), 0.0)
        recall = np.where(n_gt > 0, hit_gt / np.maximum(n_gt, 1), 0.0)
        f1 = np.where(precision + recall > 0,
                      2 * precision * recall / np.maximum(precision + recall, 1e-300), 0.0)
    return np.where((n_pred == 0) & (n_gt == 0), np.nan, f1)


def boundary_f1_of_class(pred: np.ndarray, label: np.ndarray, cls: int, ignore: np.ndarray,
                         tol: float) -> float | None:
    """F1 of class ``cls``'s boundaries in one image; None when neither side has one."""
    num_classes = int(max(pred.max(), label.max(), cls)) + 1
    label = np.where(ignore, -1, label)
    value = boundary_f1(pred, label, ignore, tol, num_classes)[cls]
    return None if np.isnan(value) else float(value)


class RegionMetrics:
    """Boundary F1, fragmentation and speckle accumulated over images (see the module doc)."""

    def __init__(self, num_classes: int, ignore_label: int = 255, tolerance: float = 0.0,
                 min_region: int = 0):
        if tolerance < 0 or min_region < 0:
            raise ValueError("eval.boundary_tolerance and eval.min_region must be >= 0 "
                             "(0 = the default share of the image)")
        self.num_classes, self.ignore_label = num_classes, ignore_label
        self.tolerance, self.min_region = float(tolerance), int(min_region)
        self.f1_sum = np.zeros(num_classes, np.float64)
        self.f1_count = np.zeros(num_classes, np.int64)
        self.pred_components = np.zeros(num_classes, np.int64)
        self.gt_components = np.zeros(num_classes, np.int64)
        self.speckle_pixels = 0
        self.pred_pixels = 0
        self.tolerance_sum = 0.0
        self.min_region_sum = 0
        self.images = 0

    def tolerance_for(self, shape: tuple[int, int]) -> float:
        return self.tolerance or DIAGONAL_SHARE * float(np.hypot(*shape))

    def min_region_for(self, shape: tuple[int, int]) -> int:
        return self.min_region or max(1, int(np.ceil(MIN_REGION_SHARE * shape[0] * shape[1])))

    def add(self, pred: np.ndarray, label: np.ndarray) -> None:
        """One image: class maps ``pred`` and ``label`` [H, W] (ignore_label in ``label``)."""
        if pred.shape != label.shape or pred.ndim != 2:
            raise ValueError(f"pred {pred.shape} and label {label.shape} must be the same [H, W]")
        ignore = label == self.ignore_label
        pred = pred.astype(np.int64)
        label = np.where(ignore, -1, label.astype(np.int64))
        high = int(max(pred.max(initial=0), label.max(initial=0)))
        if high >= self.num_classes or pred.min(initial=0) < 0:
            bad = high if high >= self.num_classes else int(pred.min())
            raise ValueError(f"class {bad} outside 0..{self.num_classes - 1} (labels must be "
                             f"class indices or {self.ignore_label})")
        tol = self.tolerance_for(pred.shape)
        min_region = self.min_region_for(pred.shape)
        # boundaries of the raw prediction; those on ignore pixels are dropped
        f1 = boundary_f1(pred, label, ignore, tol, self.num_classes)
        counted = ~np.isnan(f1)
        self.f1_sum[counted] += f1[counted]
        self.f1_count[counted] += 1
        regions = np.where(ignore, -1, pred)  # for components: ignore pixels are no class
        present_pred = np.bincount(regions[regions >= 0], minlength=self.num_classes)
        present_gt = np.bincount(label[label >= 0], minlength=self.num_classes)
        for c in np.nonzero(present_pred)[0]:
            components, n = ndimage.label(regions == c, structure=_EIGHT)
            self.pred_components[c] += n
            sizes = np.bincount(components.ravel(), minlength=n + 1)[1:]
            self.speckle_pixels += int(sizes[sizes < min_region].sum())
            self.pred_pixels += int(sizes.sum())
        for c in np.nonzero(present_gt)[0]:
            self.gt_components[c] += ndimage.label(label == c, structure=_EIGHT)[1]
        self.tolerance_sum += tol
        self.min_region_sum += min_region
        self.images += 1

    def state(self) -> np.ndarray:
        """Every sum as one float64 vector (to add over processes)."""
        return np.concatenate([self.f1_sum, self.f1_count, self.pred_components,
                               self.gt_components, [self.speckle_pixels, self.pred_pixels,
                                                    self.tolerance_sum, self.min_region_sum,
                                                    self.images]])

    def load_state(self, state: np.ndarray) -> RegionMetrics:
        c = self.num_classes
        self.f1_sum = state[:c].copy()
        self.f1_count = np.rint(state[c:2 * c]).astype(np.int64)
        self.pred_components = np.rint(state[2 * c:3 * c]).astype(np.int64)
        self.gt_components = np.rint(state[3 * c:4 * c]).astype(np.int64)
        speckle, pixels, tol, min_region, images = state[4 * c:]
        self.speckle_pixels, self.pred_pixels = int(round(speckle)), int(round(pixels))
        self.tolerance_sum, self.min_region_sum = float(tol), int(round(min_region))
        self.images = int(round(images))
        return self

    def summary(self, class_names: Sequence[str] | None = None) -> dict[str, Any]:
        """``{"boundary_f1": {...}, "fragmentation": {...}, "speckle": share, ...}`` (module
        doc); ``speckle_min_region_px``: the (mean) minimum region size used."""
        names = list(class_names) if class_names is not None else [
            str(i) for i in range(self.num_classes)]
        bf = [self.f1_sum[c] / self.f1_count[c] if self.f1_count[c] else None
              for c in range(self.num_classes)]
        frag = [self.pred_components[c] / self.gt_components[c] if self.gt_components[c]
                else None for c in range(self.num_classes)]

        def mean(values):
            present = [v for v in values if v is not None]
            return float(np.mean(present)) if present else None

        return {
            "boundary_f1": {
                "per_class": {n: None if v is None else float(v) for n, v in zip(names, bf,
                                                                                 strict=True)},
                "mean": mean(bf),
                "tolerance_px": (self.tolerance if self.tolerance else
                                 (self.tolerance_sum / self.images if self.images else None)),
                "tolerance": (f"{self.tolerance} px" if self.tolerance else
                              f"{100 * DIAGONAL_SHARE:.2f}% of each image's diagonal (mean "
                              "in tolerance_px)"),
            },
            "fragmentation": {
                "per_class": {n: None if v is None else float(v) for n, v in zip(names, frag,
                                                                                 strict=True)},
                "mean": mean(frag),
                "pred_components": int(self.pred_components.sum()),
                "gt_components": int(self.gt_components.sum()),
            },
            "speckle": self.speckle_pixels / self.pred_pixels if self.pred_pixels else None,
            "speckle_min_region_px": (self.min_region if self.min_region else
                                      (self.min_region_sum / self.images if self.images
                                       else None)),
        }

    # the metric interface (metric_registry.HostMetric)
    def scalars(self, summary: dict[str, Any]) -> dict[str, float | None]:
        return {"boundary_f1": summary["boundary_f1"]["mean"],
                "fragmentation": summary["fragmentation"]["mean"],
                "speckle": summary["speckle"],
                **{f"boundary_f1/{name}": v
                   for name, v in summary["boundary_f1"]["per_class"].items()}}

    def columns(self, summary: dict[str, Any]) -> list[tuple[str, dict, Any, float]]:
        return [("BF %", summary["boundary_f1"]["per_class"], summary["boundary_f1"]["mean"],
                 100.0),
                ("frag", summary["fragmentation"]["per_class"],
                 summary["fragmentation"]["mean"], 1.0)]

    def describe(self, summary: dict[str, Any]) -> str:
        def percent(v):
            return "n/a" if v is None else f"{100 * v:.2f}%"

        frag, tol = summary["fragmentation"]["mean"], summary["boundary_f1"]["tolerance_px"]
        size = summary["speckle_min_region_px"]
        return (f"boundary F1 {percent(summary['boundary_f1']['mean'])}"
                + ("" if tol is None else f" (tolerance {tol:.2f} px)")
                + f", fragmentation {'n/a' if frag is None else f'{frag:.2f}'}, speckle "
                f"{percent(summary['speckle'])}"
                + ("" if size is None else f" (regions under {size:.0f} px)"))

