"""What a run's checkpoints say before it resumes: whether there is anything left to do, and
whether the config continues the same example stream; the summary a finished run prints."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ssgan_jax.core import checkpoints as ckpt_lib
from ssgan_jax.core.errors import ConfigError


def final_summary(checkpoints: ckpt_lib.Checkpoints) -> dict[str, Any] | None:
    """The best checkpoint's validation summary (None without one), with a JSON line of the
    final and best validation mIoU."""
    best = checkpoints.best_step()
    if best is None:
        return None
    summary = checkpoints.read_meta(best).get("validation")
    final = checkpoints.read_meta(checkpoints.steps()[-1]).get("validation")
    print(json.dumps({"final_step": checkpoints.steps()[-1],
                      "final_val_miou": final and final["miou"],
                      "best_step": best, "best_val_miou": summary["miou"]}), flush=True)
    return summary


STREAM_KEYS = ("batch_size", "semi.unlabeled_batch_size")


def _dotted(tree, key: str):
    """``tree["a"]["b"]`` for ``key`` "a.b" (a dict or a ConfigDict); None where absent."""
    for part in key.split("."):
        if part not in tree:
            return None
        tree = tree[part]
    return tree


def _newest_meta(checkpoints: ckpt_lib.Checkpoints) -> tuple[int, dict[str, Any]] | None:
    """(step, meta) of the newest checkpoint whose meta reads; None without one (an
    unreadable one is left to the restore path, which reports it and falls back)."""
    for step in reversed(checkpoints.steps()):
        try:
            return step, checkpoints.read_meta(step)
        except Exception:  # noqa: BLE001 - see above
            continue
    return None


def check_same_stream(checkpoints: ckpt_lib.Checkpoints, config) -> None:
    """A resumed run continues its example stream at iteration x batch size: with another
    batch size it would skip or repeat examples, so that is refused (naming the run's)."""
    newest = _newest_meta(checkpoints)
    if newest is None:
        return
    step, meta = newest
    for key in STREAM_KEYS:
        before, now = _dotted(meta["config"], key), _dotted(config, key)
        if before is not None and before != now:
            raise ConfigError(
                f"config.{key}={now} but the run in {checkpoints.workdir} trained with "
                f"{before} (checkpoint {step}): resuming continues its example stream at "
                "iteration x batch size, so another batch size would skip or repeat "
                f"examples. Resume with --config.{key}={before}, or start a new --workdir")


def finished(checkpoints: ckpt_lib.Checkpoints, total: int,
             readable: Callable[[int], bool] = lambda step: True) -> dict[str, Any] | None:
    """When the newest checkpoint that reads is already at ``total`` iterations: "nothing to
    do" and the run's summary ({} without validations); else None (train)."""
    newest = _newest_meta(checkpoints)
    if newest is None:
        return None
    step = newest[0]
    if step < total or not readable(step):  # (an unreadable one: the restore path decides)
        return None
    print(f"nothing to do: the checkpoint is at step {step} and the config asks for "
          f"{total}; raise phase1.steps/phase2.steps to train on", flush=True)
    return final_summary(checkpoints) or {}
