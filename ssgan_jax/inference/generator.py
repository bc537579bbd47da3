"""G of a trained run, loaded alone: what eval, predict, export, ``Segmenter`` and a phase-2
run's ``init_from`` start from.

``load_generator(config, workdir, checkpoint)`` resolves the checkpoint ("latest", "best" by
validation mIoU, or a step), checks that it holds this config's generator (network, width,
output stride, dataset classes; the adversary may differ), builds G alone and restores only
its subtree of the checkpoint (``Checkpoints.restore_part``): no optimizer and no adversary
is built or read, as mmsegmentation's ``init_segmentor`` loads weights only.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections

from ssgan_jax import data as data_lib
from ssgan_jax.core import checkpoints as ckpt_lib
from ssgan_jax.core.errors import ConfigError
from ssgan_jax.data import identity as data_identity
from ssgan_jax.models import build_generator, registry

# G's entries of a run's train state (training/state.py TrainState)
PARAMS, BATCH_STATS = "g_params", "g_batch_stats"


class LoadedGenerator(NamedTuple):
    """G of one checkpoint: the module, its flax variables (host arrays), the checkpoint's
    step, meta JSON and folder."""

    generator: Any
    variables: dict[str, Any]
    step: int
    meta: dict[str, Any]
    path: str


def resolve_step(checkpoints: ckpt_lib.Checkpoints, which: str | int) -> int:
    """The step that ``which`` names: "latest", "best" or a step number."""
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
    return int(which)  # restore_part names the kept steps if this one is not among them


def abstract_variables(generator, crop_size, num_classes: int | None = None) -> dict[str, Any]:
    """G's flax variables as ``jax.ShapeDtypeStruct``s (nothing computed or allocated); with
    ``num_classes``, ConfigError unless G's logits have the images' size and that many
    classes."""
    ch, cw = crop_size
    images = jax.ShapeDtypeStruct((1, ch, cw, 3), jnp.float32)
    logits, variables = jax.eval_shape(
        lambda x: generator.init_with_output(jax.random.key(0), x, train=False), images)
    if num_classes is not None:
        registry.check_logits(generator, logits, images.shape, num_classes)
    return variables


def _vanished(checkpoints, step: int) -> bool:
    """Whether checkpoint ``step`` is gone from disk (a training run's retention removed it
    while it was being read), as opposed to present and unreadable."""
    checkpoints.manager.reload()
    return (step not in checkpoints.steps()
            and not os.path.isdir(os.path.join(checkpoints.directory, str(step))))


def _after_vanished(checkpoints, current, target, step: int, which: str):
    """Checkpoint ``step`` was removed while being read: "latest" and "best" are resolved
    again (once more at most); a step asked for by number is an error saying so."""
    if which.isdigit():
        raise ckpt_lib.CheckpointError(
            f"checkpoint {step} in {checkpoints.directory} was removed while it was being read "
            "(a training run in this workdir keeps only its train.keep_checkpoints latest and "
            f"the best); it is not corrupt. Kept now: {checkpoints.steps()}")
    again = resolve_step(checkpoints, which)
    print(f"checkpoint {step} was removed while it was being read (the training run's "
          f"retention, not corruption); using {which} = {again}", flush=True)
    checkpoints.check_compatible(current, again, generator_only=True)
    return checkpoints.restore_part(target, again)


def _restore_readable(checkpoints, current, target, step: int, which: str):
    """G's subtree of checkpoint ``step``; for "latest" and "best", an unreadable checkpoint
    falls back to the next older one that restores (as training does, but nothing is moved:
    this path only reads), with a warning naming it. A step asked for by number is that step
    or an error naming the steps that restore."""
    older = [s for s in reversed(checkpoints.steps()) if s < step]
    candidates = [step] + (older if not which.isdigit() else [])
    failed: list[ckpt_lib.UnreadableCheckpoint] = []
    for candidate in candidates:
        checkpoints.check_compatible(current, candidate, generator_only=True)
        try:
            restored = checkpoints.restore_part(target, candidate)
        except ckpt_lib.UnreadableCheckpoint as e:
            if _vanished(checkpoints, candidate):  # not corrupt: removed while we read it
                return _after_vanished(checkpoints, current, target, candidate, which)
            failed.append(e)
            if candidate != candidates[-1]:
                print(f"WARNING: checkpoint {candidate} in {checkpoints.directory} cannot be "
                      f"restored; using the next older one (--config.eval.checkpoint={which})",
                      flush=True)
            continue
        return restored
    readable = [s for s in checkpoints.steps() if s not in candidates]
    hint = (f"; steps that may restore: {readable}" if readable else
            "; no other checkpoint is kept: retrain, or restore the run's folder")
    first = failed[0]
    raise ckpt_lib.UnreadableCheckpoint(
        f"checkpoint {first.step} in {checkpoints.directory} cannot be restored "
        f"({first.reason}){hint}", first.step, first.reason)


def identity_record(config: ml_collections.ConfigDict, num_classes: int) -> dict[str, Any]:
    """What a run records of itself and checks checkpoints against: its config as JSON, its
    class count and its dataset's identity (a folder dataset's classes file digest)."""
    return {**ckpt_lib.config_json(config), "num_classes": num_classes,
            **data_identity(config.data)}


def load_generator(config: ml_collections.ConfigDict, workdir: str,
                   checkpoint: str | int | None = None) -> LoadedGenerator:
    """G of checkpoint ``checkpoint`` (default ``config.eval.checkpoint``) of the run in
    ``workdir``. CheckpointError when there is no such checkpoint, or when it holds another
    generator (the differences listed)."""
    workdir = os.path.abspath(workdir)
    if not os.path.isdir(os.path.join(workdir, "checkpoints")):
        raise ckpt_lib.CheckpointError(
            f"no checkpoint in {workdir}: {workdir}/checkpoints does not exist. Train first "
            "(--mode=train with this --workdir), or point --workdir at a run.")
    checkpoints = ckpt_lib.Checkpoints(workdir, read_only=True)
    which = str(config.eval.checkpoint if checkpoint is None else checkpoint).strip()
    step = resolve_step(checkpoints, which)
    num_classes = data_lib.num_classes(config.data)
    current = identity_record(config, num_classes)
    generator = build_generator(config.model, num_classes)
    shapes = abstract_variables(generator, config.data.crop_size, num_classes)
    target = {PARAMS: shapes["params"]}
    if jax.tree.leaves(shapes.get("batch_stats", {})):
        target[BATCH_STATS] = shapes["batch_stats"]
    restored = _restore_readable(checkpoints, current, target, step, which)
    step = restored.step
    variables = {"params": restored.state[PARAMS]}
    if BATCH_STATS in restored.state:
        variables["batch_stats"] = restored.state[BATCH_STATS]
    return LoadedGenerator(generator, variables, step, restored.meta,
                           os.path.join(checkpoints.directory, str(step)))
