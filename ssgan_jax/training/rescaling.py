"""Epsilon-rescaling of ground-truth maps (METHOD.md section 4, Eq. 1-2)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def check_labels(labels, num_classes: int, ignore_label: int = 255) -> None:
    """Raise ValueError if concrete ``labels`` hold a value outside [0, C) and != ignore.

    A no-op on traced values (inside jit): the data pipeline validates labels on the host.
    """
    if isinstance(labels, jax.core.Tracer):
        return
    arr = np.asarray(labels)
    bad = (arr < 0) | ((arr >= num_classes) & (arr != ignore_label))
    if bad.any():
        values = np.unique(arr[bad])[:10].tolist()
        raise ValueError(
            f"labels hold values {values} outside the classes [0, {num_classes}) and the "
            f"ignore label {ignore_label}; map void/unlabelled pixels to {ignore_label}"
        )


def epsilon_rescale(
    probs: jax.Array, labels: jax.Array, eps: float = 0.9, ignore_label: int = 255,
    *, differentiable: bool = False,
) -> jax.Array:
    """Soft "real" maps for the adversary from G's own probabilities.

    Args:
      probs: [N, H, W, C] softmax probabilities u of the generator. No gradient flows
        through them (``stop_gradient``) unless ``differentiable``: the layout-judging
        adversary's fake map (``rescale_own_argmax``) passes G's gradient through the rule.
      labels: [N, H, W] integer ground truth in [0, C) or ``ignore_label``.
      eps: the floor for the true class (METHOD.md section 4 default 0.9, from Luc et al.).
      ignore_label: pixels with this label carry no ground truth and get ``probs``.

    Returns:
      v: [N, H, W, C] with, at pixel i of true class l,
        v[l] = max(eps, u[l])                          (Eq. 1)
        v[c] = u[c] * (1 - v[l]) / (1 - u[l]), c != l  (Eq. 2)
      Each v_i sums to 1 (as u_i does). Where u[l] >= eps, v[l] = u[l] and the ratio in Eq. 2
      is exactly 1, so v_i = u_i: this is the finite limit as u[l] -> 1 and is taken without
      dividing. Where u[l] < eps the divisor is > 1 - eps > 0.
    """
    if probs.ndim != 4:
        raise ValueError(f"probs must be [N, H, W, C]; got shape {tuple(probs.shape)}")
    if labels.shape != probs.shape[:3]:
        raise ValueError(
            f"labels must be [N, H, W] matching probs {tuple(probs.shape)}; "
            f"got {tuple(labels.shape)}"
        )
    if not 0.0 < eps < 1.0:
        raise ValueError(f"eps must be in (0, 1); got {eps}")
    num_classes = probs.shape[-1]
    check_labels(labels, num_classes, ignore_label)

    u = probs if differentiable else jax.lax.stop_gradient(probs)
    valid = labels != ignore_label
    onehot = jax.nn.one_hot(jnp.where(valid, labels, 0), num_classes, dtype=jnp.bool_)
    u_true = jnp.sum(jnp.where(onehot, u, 0), axis=-1, keepdims=True)
    confident = u_true >= eps
    v_true = jnp.where(confident, u_true, eps).astype(u.dtype)
    denom = jnp.where(confident, 1, 1 - u_true)  # never 0: 1 - u_true > 1 - eps here
    ratio = jnp.where(confident, 1, (1 - v_true) / denom)
    v = jnp.where(onehot, v_true, u * ratio)
    return jnp.where(valid[..., None], v, u)


def rescale_own_argmax(probs: jax.Array, eps: float = 0.9, labels: jax.Array | None = None,
                       ignore_label: int = 255) -> jax.Array:
    """G's map epsilon-rescaled against G's own argmax (METHOD.md section 4, "The
    layout-judging adversary"): ``epsilon_rescale(probs, argmax(probs))`` with the gradient
    kept, so G's update reaches its logits through Eq. 1-2. Where G's top class already has
    at least ``eps`` the map is G's own; elsewhere the top class gets ``eps``. Built with the
    rule of the real map, it equals the real map wherever G's argmax is the true class: an
    adversary shown it as the fake can only judge which labels G chose, not how confident G
    is. ``labels`` [N, H, W] (optional): pixels labelled ``ignore_label`` keep G's map, as
    they do in the real map. [N, H, W, C] -> [N, H, W, C]."""
    own = jnp.argmax(jax.lax.stop_gradient(probs), axis=-1)
    if labels is not None:
        own = jnp.where(labels == ignore_label, ignore_label, own)
    return epsilon_rescale(probs, own, eps, ignore_label, differentiable=True)
