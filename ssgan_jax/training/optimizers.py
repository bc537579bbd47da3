"""The optimizers of both phases (METHOD.md, "Training"): Adam for G, SGD with momentum for
A, learning rates decayed linearly over each phase."""

from __future__ import annotations

from typing import NamedTuple

import ml_collections
import optax


def make_optimizer(
    kind: str,
    lr: float,
    end_lr: float,
    steps: int,
    *,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    clip_norm: float = 0.0,
    adam_eps: float = 1e-8,
) -> optax.GradientTransformation:
    """Adam ("adam") or SGD with momentum ("sgd"), lr decayed linearly lr -> end_lr over steps.

    The chain has the same structure whatever the values (clipping and weight decay are
    identities at 0), so the optimizer state of either phase fits one checkpoint layout.
    """
    if lr <= 0 or end_lr < 0:
        raise ValueError(f"learning rates must be > 0 (end >= 0); got lr={lr}, end_lr={end_lr}")
    schedule = optax.linear_schedule(lr, end_lr, max(int(steps), 1))
    if kind == "adam":
        core = optax.scale_by_adam(eps=adam_eps)
    elif kind == "sgd":
        core = optax.trace(decay=momentum)
    else:
        raise ValueError(f"optimizer kind must be 'adam' or 'sgd'; got {kind!r}")
    return optax.chain(
        optax.clip_by_global_norm(clip_norm) if clip_norm > 0 else optax.identity(),
        optax.add_decayed_weights(weight_decay),
        core,
        optax.scale_by_learning_rate(schedule),
    )


class PhaseOptimizers(NamedTuple):
    """The optimizers of one phase, and G's learning-rate schedule (for logging)."""

    g_tx: optax.GradientTransformation
    d_tx: optax.GradientTransformation
    g_schedule: optax.Schedule


def phase_optimizers(config: ml_collections.ConfigDict, phase: int) -> PhaseOptimizers:
    """G's Adam and A's SGD of phase 1 or 2 (METHOD.md section 6)."""
    opt = config.optim
    p = config.phase1 if phase == 1 else config.phase2
    g_tx = make_optimizer("adam", p.lr, p.end_lr, p.steps, weight_decay=opt.weight_decay,
                          clip_norm=opt.grad_clip_norm, adam_eps=opt.adam_eps)
    d_tx = make_optimizer(
        "sgd", config.phase2.d_lr, config.phase2.d_end_lr, config.phase2.steps,
        momentum=config.phase2.d_momentum, weight_decay=opt.d_weight_decay,
        clip_norm=opt.d_grad_clip_norm,
    )
    return PhaseOptimizers(g_tx, d_tx, optax.linear_schedule(p.lr, p.end_lr, max(int(p.steps), 1)))


