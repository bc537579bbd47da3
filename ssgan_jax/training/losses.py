"""The losses of SS-GAN (METHOD.md section 5, Eq. 3-7).

All adversary outputs are logits [N, G, G] (one per judgement cell); d = sigmoid(logit).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ssgan_jax.core.config import ADV_FORMS


def cross_entropy_sum(
    logits: jax.Array, labels: jax.Array, ignore_label: int = 255,
    class_weights: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Sum over labelled pixels of -log softmax(logits)[label], and their count.

    logits: [N, H, W, C] float; labels: [N, H, W] int. Ignore pixels contribute nothing.
    Returning (sum, count) lets a data-parallel step divide by the global count.
    ``class_weights`` [C]: each pixel's term and count weighted by its class's weight, so
    sum / count is torch's ``cross_entropy(weight=w)`` mean (METHOD.md section 5, "class
    balancing").
    """
    if logits.ndim != 4 or labels.shape != logits.shape[:3]:
        raise ValueError(
            f"need logits [N, H, W, C] and labels [N, H, W]; got {tuple(logits.shape)} and "
            f"{tuple(labels.shape)}"
        )
    valid = labels != ignore_label
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    safe = jnp.where(valid, labels, 0)
    nll = -jnp.take_along_axis(logp, safe[..., None].astype(jnp.int32), axis=-1)[..., 0]
    if class_weights is None:
        return jnp.sum(jnp.where(valid, nll, 0.0)), jnp.sum(valid).astype(jnp.float32)
    w = jnp.where(valid, jnp.asarray(class_weights, jnp.float32)[safe], 0.0)
    return jnp.sum(w * nll), jnp.sum(w)


def masked_cross_entropy(
    logits: jax.Array,
    labels: jax.Array,
    ignore_label: int = 255,
    normalizer: jax.Array | None = None,
) -> jax.Array:
    """mce (Eq. 3): mean over labelled pixels; 0 (not NaN) when no pixel is labelled.

    ``normalizer`` overrides the local count (e.g. the count summed over devices).
    """
    total, count = cross_entropy_sum(logits, labels, ignore_label)
    count = count if normalizer is None else normalizer
    return total / jnp.maximum(count, 1.0)


def sigmoid_bce(logits: jax.Array, targets: jax.Array | float) -> jax.Array:
    """bce(t, sigmoid(x)) per cell, averaged over all cells (and the batch).

    Stable form -t log_sigmoid(x) - (1 - t) log_sigmoid(-x); its gradient is exactly
    sigmoid(x) - t everywhere (the max/abs form has a wrong subgradient at x = 0).
    """
    x = logits.astype(jnp.float32)
    t = jnp.broadcast_to(jnp.asarray(targets, jnp.float32), x.shape)
    per_cell = -t * jax.nn.log_sigmoid(x) - (1 - t) * jax.nn.log_sigmoid(-x)
    return jnp.mean(per_cell)


def generator_adversarial_loss(fake_logits: jax.Array, form: str = "minimax") -> jax.Array:
    """G's adversarial term on A's logits for G's maps (METHOD.md section 5).

    "minimax" (paper's default): adv = -bce(0, d(g(x), x)), i.e. G maximises A's loss.
    "non_saturating" (Luc et al.): adv = bce(1, d(g(x), x)).
    """
    if form == "minimax":
        return -sigmoid_bce(fake_logits, 0.0)
    if form == "non_saturating":
        return sigmoid_bce(fake_logits, 1.0)
    raise ValueError(f"adversarial loss form must be one of {ADV_FORMS}; got {form!r}")


def adversary_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """loss_d = bce(1, d(v, x)) + bce(0, d(g(x), x)) (Eq. 6-7; v the rescaled real map)."""
    return sigmoid_bce(real_logits, 1.0) + sigmoid_bce(fake_logits, 0.0)


def confidence_mask(cell_logits: jax.Array, height: int, width: int,
                    threshold: float) -> jax.Array:
    """Where A's judgement, brought to pixel resolution, says "real" with confidence above
    ``threshold``: bool [N, height, width] from logits [N, G, G'].

    Pixel (i, j) takes the cell that covers it, row ``floor(i * G / height)`` and column
    ``floor(j * G' / width)`` (each cell judges its share of the image: torch's adaptive-pool
    bins when the sizes divide), and is in the mask when sigmoid(logit) > threshold.
    """
    g_h, g_w = cell_logits.shape[1:]
    rows = (np.arange(height) * g_h) // height
    cols = (np.arange(width) * g_w) // width
    confident = jax.nn.sigmoid(cell_logits.astype(jnp.float32)) > threshold
    return confident[:, rows][:, :, cols]
