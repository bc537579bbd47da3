"""``--mode=eval``: the mIoU of one checkpoint on one split, as the benchmarks compute it.

One confusion matrix is accumulated over the whole split (ignore and padding pixels
excluded) with the same step training validates with, then written to
``<workdir>/eval/<split>_step_<N>[_<inference tag>].json`` and printed as a per-class table.
``load_generator`` (shared with ``--mode=predict``) restores G's variables from a checkpoint.
"""

from __future__ import annotations

import json
import os
from typing import Any, NamedTuple

import jax
import ml_collections

from ssgan_jax import checkpoints as ckpt_lib
from ssgan_jax import inference, steps
from ssgan_jax.data import classes, pipeline
from ssgan_jax.errors import ConfigError
from ssgan_jax.evaluate import evaluate_split, make_eval_step, oversize_step
from ssgan_jax.metrics import format_table

REGION_KEYS = ("boundary_f1", "fragmentation", "speckle", "speckle_min_region_px")
ABSENT_NOTE = ("per_class_iou is null for classes absent from both the ground truth and the "
               "predictions of this split; they are left out of miou (absent_classes)")


def resolve_step(checkpoints: ckpt_lib.Checkpoints, which: str | int) -> int:
    """The step that ``config.eval.checkpoint`` names: "latest", "best" or a step number."""
    available = checkpoints.steps()
    if not available:
        raise ckpt_lib.CheckpointError(
            f"no checkpoint in {checkpoints.directory}: train first (--mode=train with this "
            "--workdir), or point --workdir at a run that has checkpoints/")
    which = str(which).strip()
    if which == "latest":
        return available[-1]
    if which == "best":
        best = checkpoints.best_step()
        if best is None:
            raise ckpt_lib.CheckpointError(
                f"no checkpoint in {checkpoints.directory} has a validation mIoU (steps "
                f"{available}); use --config.eval.checkpoint=latest or a step number")
        return best
    if not which.isdigit():
        raise ConfigError(f"config.eval.checkpoint must be 'latest', 'best' or a step number; "
                         f"got {which!r}")
    return int(which)  # Checkpoints.restore names the kept steps if this one is not among them


class LoadedGenerator(NamedTuple):
    """G of one checkpoint: the module, its variables (host arrays), the checkpoint's step,
    meta JSON and folder."""

    generator: Any
    variables: dict[str, Any]
    step: int
    meta: dict[str, Any]
    path: str


def load_generator(config: ml_collections.ConfigDict, workdir: str,
                   num_classes: int) -> LoadedGenerator:
    """G of the checkpoint ``config.eval.checkpoint``.

    The checkpoint must belong to this config's experiment (network, width, dataset,
    classes): otherwise CheckpointError lists the differences.
    """
    workdir = os.path.abspath(workdir)
    if not os.path.isdir(os.path.join(workdir, "checkpoints")):
        raise ckpt_lib.CheckpointError(
            f"no checkpoint in {workdir}: {workdir}/checkpoints does not exist. Train first "
            "(--mode=train with this --workdir), or point --workdir at a run.")
    checkpoints = ckpt_lib.Checkpoints(workdir, read_only=True)
    step = resolve_step(checkpoints, config.eval.checkpoint)
    current = {**ckpt_lib.config_json(config), "num_classes": num_classes}
    checkpoints.check_compatible(current, step)
    nets = steps.build_networks(config, num_classes, 1)
    ch, cw = config.data.crop_size
    target = jax.eval_shape(lambda: steps.init_state(
        nets, *steps.run_keys(config.seed), (1, ch, cw, 3), num_classes))
    restored = checkpoints.restore(target, step)
    return LoadedGenerator(nets.generator, jax.device_get(steps.generator_variables(
        restored.state)), step, restored.meta, os.path.join(checkpoints.directory, str(step)))


def result_path(workdir: str, split: str, step: int, settings: inference.Settings) -> str:
    tag = settings.tag()
    name = f"{pipeline.split_tag(split)}_step_{step}" + (f"_{tag}" if tag else "") + ".json"
    return os.path.join(os.path.abspath(workdir), "eval", name)


def run_eval(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Evaluate ``config.eval.checkpoint`` on ``config.eval.split``; write and return the JSON."""
    settings = inference.from_config(config)
    split = config.eval.split or config.data.val_split
    class_names = classes.class_names(config.data.name)
    loaded = load_generator(config, workdir, len(class_names))
    step, meta, path = loaded.step, loaded.meta, loaded.path
    p_eval = steps.pmap_eval(make_eval_step(loaded.generator, len(class_names),
                                            config.loss.ignore_label, settings))
    # images larger than data.eval_size: one by one through sliding windows of eval_size
    big = oversize_step(loaded.generator, len(class_names), config.loss.ignore_label,
                        settings, tuple(config.data.eval_size))
    summary = evaluate_split(config, p_eval, steps.on_devices(loaded.variables), split,
                             len(class_names), class_names, big_step=big)
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
        **{k: summary[k] for k in REGION_KEYS if k in summary},
        "note": ABSENT_NOTE,
        "inference": settings.as_dict(),
        "confusion": summary["confusion"],
    }
    out = result_path(workdir, split, step, settings)
    if jax.process_index() == 0:
        os.makedirs(os.path.dirname(out), exist_ok=True)
        tmp = out + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
        os.replace(tmp, out)
        print(f"{config.data.name} {split}, checkpoint step {step} ({summary['num_images']} "
              f"images, {settings.tag() or 'whole image'}):", flush=True)
        print(format_table(summary), flush=True)
        print(f"pixel accuracy {100 * (summary['pixel_accuracy'] or 0):.2f}%, mean accuracy "
              f"{100 * (summary['mean_accuracy'] or 0):.2f}%", flush=True)
        if "speckle" in summary:
            speckle = summary["speckle"]
            print(f"speckle {'n/a' if speckle is None else f'{100 * speckle:.2f}%'} of the "
                  f"predicted pixels in regions under {summary['speckle_min_region_px']:.0f} px; "
                  f"boundary tolerance {summary['boundary_f1']['tolerance_px']:.2f} px",
                  flush=True)
        print(f"written to {out}", flush=True)
    return result
