"""Orbax checkpoints of a run: ``<workdir>/checkpoints/<step>/{state, meta}``.

``state`` is the whole ``TrainState`` (host copy); ``meta`` is JSON: the config, the phase,
the validation summary when there was one. A checkpoint saved with a validation also carries
Orbax's metrics item (``{"miou": ...}``): Orbax tracks the best step by it (``best_fn``) across
restarts. Kept: the latest ``keep`` checkpoints plus the best by validation mIoU. Nothing is
ever deleted by us: a checkpoint that cannot be restored is moved to
``<workdir>/checkpoints_corrupt/`` once an older one has restored instead.
"""

from __future__ import annotations

import contextlib
import json
import logging as std_logging
import os
import shutil
import time
from typing import Any, NamedTuple

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from ssgan_jax.core.errors import ConfigError, DiskFull, UserError

# Config fields that fix the state's shapes: a checkpoint with other values cannot continue.
IDENTITY_KEYS = (
    "data.name",
    "model.name",
    "model.kwargs",
    "model.width",
    "model.output_stride",
    "adversary.image_branch",
    "adversary.image_branch_depth",
    "adversary.width",
    "adversary.map_features",
    "adversary.trunk_features",
    "adversary.grid",
)


class Restored(NamedTuple):
    """A restored checkpoint: the state, its meta JSON and its step."""

    state: Any
    meta: dict[str, Any]
    step: int


class _NoMetricsNote(std_logging.Filter):
    """Drops Orbax's warning for a save without metrics: only checkpoints saved with a
    validation have an mIoU to rank, the others are kept as the latest."""

    def filter(self, record: std_logging.LogRecord) -> bool:
        return "did not provide metrics" not in record.getMessage()


std_logging.getLogger("absl").addFilter(_NoMetricsNote())


def _miou(metrics: dict[str, Any]) -> float:
    return metrics["miou"]


class CheckpointError(UserError, RuntimeError):
    """A checkpoint is missing, unreadable, or belongs to another experiment."""


class UnreadableCheckpoint(CheckpointError):
    """A checkpoint that exists but does not restore (corrupt, truncated): ``step``, and
    ``reason``, what the restore raised."""

    def __init__(self, message: str, step: int, reason: str):
        super().__init__(message)
        self.step, self.reason = step, reason


def config_json(config: ml_collections.ConfigDict) -> dict[str, Any]:
    return json.loads(config.to_json_best_effort())


def _lookup(tree: dict[str, Any], dotted: str):
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return list(node) if isinstance(node, (list, tuple)) else node


def identity_differences(saved: dict[str, Any], current: dict[str, Any],
                         generator_only: bool = False) -> list[str]:
    """``key: saved -> current`` for each identity field (and num_classes, a folder dataset's
    classes_sha256) that differs;
    ``generator_only``: G's fields alone (a run's G is used whatever its adversary)."""
    out = []
    keys = [k for k in IDENTITY_KEYS if not (generator_only and k.startswith("adversary."))]
    for key in (*keys, "num_classes", "classes_sha256"):
        a, b = _lookup(saved, key), _lookup(current, key)
        if key == "model.kwargs":  # (runs recorded before the key existed had none)
            a, b = a or {}, b or {}
        if a != b:
            out.append(f"{key}: {a!r} in the checkpoint, {b!r} now")
    return out


@contextlib.contextmanager
def _quiet_absl(quiet: bool):
    from absl import logging

    before = logging.get_verbosity()
    if quiet:
        logging.set_verbosity(logging.ERROR)
    try:
        yield
    finally:
        logging.set_verbosity(before)


class Checkpoints:
    """Save/restore ``TrainState`` + meta under ``<workdir>/checkpoints``."""

    def __init__(self, workdir: str, keep: int = 3, *, read_only: bool = False):
        if keep < 1:
            raise ConfigError(f"train.keep_checkpoints must be >= 1; got {keep}")
        self.workdir = os.path.abspath(workdir)
        self.directory = os.path.join(self.workdir, "checkpoints")
        policy = ocp.checkpoint_managers
        options = ocp.CheckpointManagerOptions(
            preservation_policy=policy.AnyPreservationPolicy([
                policy.LatestN(n=keep),
                policy.BestN(get_metric_fn=_miou, n=1,
                             keep_checkpoints_without_metrics=False),
            ]),
            best_fn=_miou,  # manager.best_step(): the highest validation mIoU
            best_mode="max",
            create=not read_only,
            read_only=read_only,
            save_interval_steps=0 if read_only else 1,
        )
        with _quiet_absl(read_only):  # Orbax warns that a read-only manager will not save
            self.manager = ocp.CheckpointManager(
                self.directory, options=options, item_names=("state", "meta"))

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def save(self, step: int, state, meta: dict[str, Any], miou: float | None = None) -> None:
        """Save a host copy of ``state`` (asynchronously; ``wait`` to block)."""
        self.manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
            metrics=None if miou is None else {"miou": float(miou)},
            force=True,
        )

    def kept(self) -> str:
        """The complete checkpoints on disk, as a sentence (a save under way has only its
        temporary folder)."""
        steps = [s for s in self.steps() if os.path.isdir(os.path.join(self.directory, str(s)))]
        return (f"the checkpoints of steps {steps} are kept" if steps else
                "no checkpoint was saved yet")

    def check_space(self, host_state, step: int) -> None:
        """DiskFull before a save that cannot fit: the device's free space against the state's
        size (+10% and 1 MB for metadata). Checked first because a save that runs out of space
        midway makes Orbax's writer threads print hundreds of traceback lines before the error
        reaches the loop (seen: 2621 lines on a full 3 MB tmpfs)."""
        needed = sum(int(np.asarray(x).nbytes) for x in jax.tree.leaves(host_state))
        try:
            free = shutil.disk_usage(self.directory).free
        except OSError:
            return
        if free < 1.1 * needed + (1 << 20):
            raise DiskFull(f"not enough space on the device of {self.directory} for checkpoint "
                           f"{step} (about {needed / 2**20:.0f} MB needed, {free / 2**20:.0f} MB "
                           f"free); {self.kept()}. Free space (or point --workdir elsewhere) "
                           "and run the same command again")

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()

    def read_meta(self, step: int) -> dict[str, Any]:
        return self.manager.restore(
            step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta

    def best_step(self) -> int | None:
        """The step with the highest validation mIoU among the kept checkpoints (None when
        none was saved with a validation)."""
        return self.manager.best_step()

    def check_compatible(self, current: dict[str, Any], step: int | None = None,
                         generator_only: bool = False) -> None:
        """Raise CheckpointError if checkpoint ``step`` (default: the newest readable one) is
        another experiment's (``generator_only``: has another generator)."""
        for candidate in [step] if step is not None else reversed(self.steps()):
            try:
                saved = self.read_meta(candidate)["config"]
            except Exception:  # noqa: BLE001 - corrupt; restore() deals with it
                continue
            diffs = identity_differences(saved, current, generator_only)
            if diffs:
                raise CheckpointError(
                    f"{self.directory} holds checkpoints of another experiment (step "
                    f"{candidate}):\n  "
                    + "\n  ".join(diffs)
                    + "\nUse a new --workdir for this config, or restore the config those "
                    "checkpoints were made with (it is in their meta/ folder). Nothing was "
                    "changed on disk."
                )
            return

    def restore(self, target, step: int | None = None) -> Restored | None:
        """``Restored(state, meta, step)`` of ``step`` or else the newest checkpoint that
        restores.

        ``target`` is a host state with the expected structure. Newer checkpoints that fail
        to restore are moved to ``checkpoints_corrupt/`` (with a warning) once an older one
        restores. Returns None when the directory holds no checkpoint; raises CheckpointError
        when checkpoints exist but none restores (nothing is moved then).
        """
        steps = self.steps()
        if step is not None:
            if step not in steps:
                raise CheckpointError(
                    f"no checkpoint for step {step} in {self.directory}; it has steps {steps} "
                    "(older ones are pruned: train.keep_checkpoints keeps the latest K plus "
                    "the best)")
            steps = [step]
        failures: list[tuple[int, str]] = []
        for candidate in reversed(steps):
            try:
                restored = self.manager.restore(
                    candidate,
                    args=ocp.args.Composite(
                        state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()),
                )
            except Exception as e:  # noqa: BLE001 - reported and/or moved below
                failures.append((candidate, f"{type(e).__name__}: {e}"[:500]))
                print(f"WARNING: checkpoint {candidate} in {self.directory} cannot be "
                      f"restored ({failures[-1][1][:200]}); trying an older one", flush=True)
                continue
            if failures:
                self._move_aside([s for s, _ in failures])
            return Restored(restored.state, restored.meta, candidate)
        if failures:
            raise CheckpointError(
                f"no checkpoint in {self.directory} could be restored:\n  "
                + "\n  ".join(f"step {s}: {msg}" for s, msg in failures)
                + "\nIf they were made by another version or config, restore that; "
                "nothing was moved or deleted."
            )
        return None

    def restore_part(self, target: dict[str, Any], step: int) -> Restored:
        """The entries ``target`` names of checkpoint ``step``'s state (e.g. G's parameters
        and statistics alone: ``{"g_params": ..., "g_batch_stats": ...}`` of abstract arrays,
        ``jax.ShapeDtypeStruct``), restored as host arrays; the rest of the state (the
        adversary, both optimizers) is never read (Orbax's partial restore). Only for
        read-only use: a manager restores one way, and training restores whole states."""
        if step not in self.steps():
            raise CheckpointError(
                f"no checkpoint for step {step} in {self.directory}; it has steps "
                f"{self.steps()} (older ones are pruned: train.keep_checkpoints keeps the "
                "latest K plus the best)")
        restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), target)
        try:
            restored = self.manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.PyTreeRestore(target, restore_args=restore_args,
                                             partial_restore=True),
                meta=ocp.args.JsonRestore()))
        except Exception as e:  # noqa: BLE001 - any corruption reads as one line
            reason = f"{type(e).__name__}: {str(e)[:300]}"
            raise UnreadableCheckpoint(
                f"checkpoint {step} in {self.directory} cannot be restored ({reason}); choose "
                f"another step (--config.eval.checkpoint=<step>, kept: {self.steps()})",
                step, reason) from e
        return Restored(dict(restored.state), restored.meta, step)

    def _move_aside(self, steps: list[int]) -> None:
        if jax.process_index() == 0:
            aside = os.path.join(self.workdir, "checkpoints_corrupt")
            os.makedirs(aside, exist_ok=True)
            for s in steps:
                dest = os.path.join(aside, f"{s}_{time.strftime('%Y%m%d-%H%M%S')}")
                shutil.move(os.path.join(self.directory, str(s)), dest)
                print(f"WARNING: moved unrestorable checkpoint {s} to {dest} (kept for "
                      "inspection; training continues from the older one)", flush=True)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("ssgan_checkpoints_moved")
        self.manager.reload()
