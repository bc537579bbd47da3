"""A run's health: warnings when the adversary has won or learns nothing, when the input is
mostly void or padding, and the stop on a NaN/Inf loss.

* ``AdversaryHealth``: warns when A has won (accuracy near 1) or learns nothing (near 0.5)
  over a window of iterations (METHOD.md section 8: adversarial training can collapse).
* ``InputHealth``: warns once when the training batches are mostly unlabelled or padding.
* ``check_finite``: stops the run with a clear message on a NaN/Inf loss.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ssgan_jax.core.errors import UserError


class TrainingDiverged(UserError, RuntimeError):
    """A loss became NaN or Inf; the last good checkpoint is kept."""


class AdversaryHealth:
    """Watches A's mean accuracy (real and fake maps) over the last ``window`` iterations."""

    def __init__(self, window: int, won_accuracy: float, idle_margin: float):
        self.window = window
        self.won_accuracy = won_accuracy
        self.idle_margin = idle_margin
        self._acc: collections.deque[float] = collections.deque(maxlen=window)
        self._warned_at: dict[str, int] = {}

    def _rising(self) -> bool:
        """Whether the window's second half is above its first by more than the margin: an
        adversary leaving chance (as at the start of phase 2) is learning, not idle."""
        acc = list(self._acc)
        half = len(acc) // 2
        return float(np.mean(acc[half:]) - np.mean(acc[:half])) > self.idle_margin

    def update(self, step: int, acc_real: float, acc_fake: float) -> str | None:
        """Record one iteration; return a warning (at most once per window per kind) or None."""
        self._acc.append(0.5 * (acc_real + acc_fake))
        if len(self._acc) < self.window:
            return None
        mean = float(np.mean(self._acc))
        kind = None
        if mean >= self.won_accuracy:
            kind = "won"
            text = (f"the adversary has won: its accuracy averaged {mean:.3f} over the last "
                    f"{self.window} iterations, so G's adversarial gradient carries little "
                    "(lower phase2.d_lr, or lower rescaling.eps so that real maps stay closer "
                    "to G's, or try loss.adv_form=non_saturating)")
        elif abs(mean - 0.5) < self.idle_margin and not self._rising():
            kind = "idle"
            text = (f"the adversary learns nothing: its accuracy averaged {mean:.3f} (chance) "
                    f"over the last {self.window} iterations (raise phase2.d_lr or "
                    "phase2.d_steps, or check that real and fake maps differ)")
        if kind is None or step - self._warned_at.get(kind, -10**9) < self.window:
            return None
        self._warned_at[kind] = step
        return f"WARNING at step {step}: {text}"


class InputHealth:
    """What a training batch holds, said once per kind when it is mostly nothing: labelled
    pixels below ``train.min_labelled_share`` (all-void labels train at ce = 0), or crops
    filled by their images below ``train.min_image_share`` (the rest is padding)."""

    def __init__(self, config):
        self.ignore = config.loss.ignore_label
        self.crop = tuple(int(v) for v in config.data.crop_size)
        self.min_labelled = config.train.min_labelled_share
        self.min_image = config.train.min_image_share
        self.said: set[str] = set()

    def check(self, step: int, batch: Mapping[str, Any]) -> list[str]:
        """The warnings of the batch of iteration ``step`` (each kind once per run)."""
        out = []
        labels = np.asarray(batch["label"])
        labelled = float(np.mean(labels != self.ignore))
        if labelled < self.min_labelled and "labels" not in self.said:
            self.said.add("labels")
            out.append(f"warning: step {step}: {100 * labelled:.2f}% of the batch's pixels are "
                       f"labelled ({int(np.sum(labels != self.ignore))} of {labels.size}; the "
                       f"rest is void {self.ignore} or padding): the loss has almost nothing to "
                       "learn from. Check the labels' class mapping (--mode=prepare refuses "
                       "unknown values) and data.crop_size")
        if "sizes" in batch and "image" not in self.said:
            sizes = np.asarray(batch["sizes"]).reshape(-1, 2)
            share = float(np.mean(sizes[:, 0] * sizes[:, 1]) / (self.crop[0] * self.crop[1]))
            if share < self.min_image:
                self.said.add("image")
                out.append(f"warning: step {step}: the images fill {100 * share:.1f}% of the "
                           f"crops on average (data.crop_size={self.crop}, image regions of "
                           f"{int(np.mean(sizes[:, 0]))}x{int(np.mean(sizes[:, 1]))} on "
                           "average); the rest is padding. Lower data.crop_size or raise "
                           "data.scale_range")
        return out


def check_finite(step: int, metrics: Mapping[str, float], last_good: int | None) -> None:
    """Raise TrainingDiverged naming the first NaN/Inf metric."""
    bad = {k: v for k, v in metrics.items() if not math.isfinite(float(v))}
    if bad:
        kept = (f"the last good checkpoint (step {last_good}) is kept; rerunning the same "
                "command resumes from it" if last_good is not None else
                "no checkpoint had been written yet")
        raise TrainingDiverged(
            f"training diverged at step {step}: {bad} is not finite; {kept}. Lower the "
            "learning rate, set optim.grad_clip_norm, or use model.dtype=float32."
        )
