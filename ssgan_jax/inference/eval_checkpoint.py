"""``--mode=eval``: the mIoU of one checkpoint on one split, as the benchmarks compute it.

One confusion matrix is accumulated over the whole split (ignore and padding pixels
excluded) with the same step training validates with, then written to
``<workdir>/eval/<split>_step_<N>[_<inference tag>][_cfg<digest>].json`` and printed as a
per-class table. The digest names settings that differ from the run's recorded ones
(``core/run_config.py``): a result made with other settings never overwrites the run's.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import ml_collections

from ssgan_jax import data as data_lib
from ssgan_jax.core import parallel
from ssgan_jax.data import pipeline
from ssgan_jax.inference import metric_registry, tta
from ssgan_jax.inference.evaluator import eval_steps, evaluate_split
from ssgan_jax.inference.generator import load_generator
from ssgan_jax.inference.metrics import format_table

ABSENT_NOTE = ("per_class_iou is null for classes absent from both the ground truth and the "
               "predictions of this split; they are left out of miou (absent_classes)")


def result_path(workdir: str, split: str, step: int, settings: tta.Settings,
                suffix: str = "") -> str:
    tag = settings.tag()
    name = (f"{pipeline.split_tag(split)}_step_{step}" + (f"_{tag}" if tag else "") + suffix
            + ".json")
    return os.path.join(os.path.abspath(workdir), "eval", name)


def run_eval(config: ml_collections.ConfigDict, workdir: str,
             report: dict[str, Any] | None = None) -> dict[str, Any]:
    """Evaluate ``config.eval.checkpoint`` on ``config.eval.split``; write and return the JSON.
    ``report``: ``run_config.with_recorded``'s, when the config started from the run's."""
    from ssgan_jax.core import run_config

    settings = tta.from_config(config)
    split = config.eval.split or config.data.val_split
    class_names = data_lib.class_names(config.data)
    loaded = load_generator(config, workdir)  # (no checkpoint: said before any data is read)
    step, meta, path = loaded.step, loaded.meta, loaded.path
    dataset = data_lib.open_prepared(config.data)  # opened once, passed down
    pipeline.resolve_eval_size(config.data, dataset)  # "auto" (a run without its config)
    # images larger than data.eval_size: one by one through sliding windows of eval_size
    # (for a generator not told its images' sizes, every image off the canvas: on its own)
    evals = eval_steps(loaded.generator, len(class_names), config, settings)
    metrics = metric_registry.build(config, len(class_names))
    summary = evaluate_split(config, evals.p_eval, parallel.on_devices(loaded.variables),
                             split, len(class_names), class_names, big_step=evals.big,
                             progress=True, own_canvas=evals.own_canvas, host_metrics=metrics,
                             dataset=dataset)
    result = {
        "step": step,
        "split": split,
        "dataset": config.data.name,
        "variant": config.variant,
        "checkpoint": path,
        "phase": meta.get("phase"),
        "miou": summary["miou"],
        "per_class_iou": summary["per_class_iou"],
        "pixel_accuracy": summary["pixel_accuracy"],
        "mean_accuracy": summary["mean_accuracy"],
        "num_images": summary["num_images"],
        "num_pixels": summary["num_pixels"],
        "absent_classes": summary["absent_classes"],
        **{k: summary[k] for k in summary["host_metric_keys"]},
        "note": ABSENT_NOTE,
        "inference": {**settings.as_dict(), **({"oversize": {
            "images": summary["oversize_images"],
            "sliding_window": list(config.data.eval_size),
            **({"own_canvas": True} if evals.own_canvas else {})}}
            if summary.get("oversize_images") else {})},
        "settings_differing_from_run": run_config.result_differences(report or {}),
        "confusion": summary["confusion"],
    }
    out = result_path(workdir, split, step, settings, run_config.result_suffix(report or {}))
    if jax.process_index() == 0:
        os.makedirs(os.path.dirname(out), exist_ok=True)
        tmp = out + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
        os.replace(tmp, out)
        ran = settings.tag() or "whole image"
        if summary.get("oversize_images"):
            h, w = config.data.eval_size
            ran += (f"; {summary['oversize_images']} not of data.eval_size ({h}, {w}) alone on "
                    "their own canvas, the larger ones through sliding windows of "
                    f"{h}x{w}" if evals.own_canvas else
                    f"; {summary['oversize_images']} larger than data.eval_size ({h}, {w}) "
                    f"alone through sliding windows of {h}x{w}")
        print(f"{config.data.name} {split}, checkpoint step {step} ({summary['num_images']} "
              f"images, {ran}):", flush=True)
        print(format_table(summary, [c for metric in metrics for c in metric.columns(summary)]),
              flush=True)
        print(f"pixel accuracy {100 * (summary['pixel_accuracy'] or 0):.2f}%, mean accuracy "
              f"{100 * (summary['mean_accuracy'] or 0):.2f}%", flush=True)
        for metric in metrics:
            print(metric.describe(summary), flush=True)
        print(f"written to {out}", flush=True)
    return result
