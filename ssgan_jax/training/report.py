"""What the training loop logs and prints: the step metrics (fetched in groups, checked
for NaN and the adversary's health), the progress line, validation and the adversary probe.
The writers, progress and health monitors themselves are ``monitor``'s."""

from __future__ import annotations

from typing import Any

import jax
import ml_collections
import numpy as np

from ssgan_jax.data import images as image_prep
from ssgan_jax.inference import metric_registry
from ssgan_jax.training import diagnostics, health, loss_terms, monitor

# the step metrics the progress line shows, in this order, when a step has them (your own loss
# terms join G's: StepMetrics.shown)
SHOWN = ("ce", "adv", "adv_unlabeled", "semi_mask_share", "loss_g", "loss_d", "d_acc_real",
         "d_acc_fake")


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


class StepMetrics:
    """The metrics of the steps since the last fetch (device arrays: fetched only when
    logged, validated or checkpointed, so the host never waits on each step), each step's
    checked for NaN/Inf (``health.check_finite``) and the adversary's accuracies fed to its
    health monitor."""

    def __init__(self, config: ml_collections.ConfigDict):
        self.pending: list[dict[str, Any]] = []
        at = SHOWN.index("loss_g")  # the progress line's metrics: your terms beside G's
        self.shown = SHOWN[:at] + loss_terms.extra_names(config) + SHOWN[at:]
        self.adversary = health.AdversaryHealth(config.train.health_window,
                                              config.train.adversary_won_accuracy,
                                              config.train.adversary_idle_margin)

    def add(self, metrics) -> None:
        self.pending.append(metrics)

    def fetch(self, step: int, last_saved: int | None) -> dict[str, float]:
        """The means over the pending steps (the last of them ``step``); {} if none."""
        fetched = [{k: float(v) for k, v in m.items()} for m in jax.device_get(self.pending)]
        self.pending.clear()
        for i, m in enumerate(fetched):
            at = step - len(fetched) + i + 1
            health.check_finite(at, m, last_saved)
            if "d_acc_real" in m:
                warning = self.adversary.update(at, m["d_acc_real"], m["d_acc_fake"])
                if warning:
                    print(warning, flush=True)
        return {k: float(np.mean([m[k] for m in fetched])) for k in fetched[0]} if fetched else {}


def training(writer, step: int, phase: int, means: dict[str, float], lr: float,
             progress: monitor.ReportProgress, shown: tuple[str, ...] = SHOWN,
             phase_end: int | None = None) -> None:
    """The logged step: ``train/*`` scalars (steps_per_sec and uptime are written by
    ``ReportProgress``) and the progress line (the metrics ``shown`` that the step has; its
    ETA to ``phase_end``, the last step of this phase)."""
    writer.write_scalars(step, {**{f"train/{k}": v for k, v in means.items()},
                                "train/g_lr": lr, "train/phase": phase})
    print(monitor.progress_line(step, progress.total, phase,
                                {k: means[k] for k in shown if k in means}, progress.rate,
                                progress.steady_rate, phase_end), flush=True)


def validation(writer, config: ml_collections.ConfigDict, step: int, summary: dict[str, Any],
               metrics, palette) -> None:
    """A validation: mIoU, per-class IoU and every host metric's scalars (``val/*``), a few
    pictures, and one line."""
    scalars = {"val/miou": summary["miou"] or 0.0,
               "val/pixel_accuracy": summary["pixel_accuracy"] or 0.0}
    scalars.update({f"val_iou/{k}": v for k, v in summary["per_class_iou"].items()
                    if v is not None})
    scalars.update(metric_registry.validation_scalars(metrics, summary))
    shown = "".join(f", {metric.describe(summary)}" for metric in metrics)
    writer.write_scalars(step, scalars)
    if summary.get("examples"):
        writer.write_images(step, {"val/image_truth_prediction": image_prep.side_by_side(
            summary["examples"], palette, config.data.mean, config.data.std)})
    print(f"validation at step {step} on {config.data.val_split} "
          f"({summary['num_images']} images): mIoU {percent(summary['miou'])}{shown}",
          flush=True)


def probe(writer, p_probe, warning: diagnostics.ConfidenceWarning, state, batch,
          step: int) -> None:
    """The adversary probe of the state after ``step`` iterations on the next batch
    (``steps.make_probe``): logged as probe/*, a line, and the confidence warning once."""
    m = {k: float(v) for k, v in jax.device_get(p_probe(state, batch)).items()}
    share = diagnostics.confidence_share(m["d_real"], m["d_fake"], m["d_confident"])
    scalars = {f"probe/{k}": v for k, v in m.items()}
    if share is not None:
        scalars["probe/confidence_share"] = share
    writer.write_scalars(step, scalars)
    print(monitor.probe_line(step, m, share), flush=True)
    said = warning.update(step, m["d_real"], m["d_fake"], m["d_confident"])
    if said:
        print(said, flush=True)
