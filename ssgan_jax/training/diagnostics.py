"""Does the adversary judge layout, or only G's confidence? (METHOD.md section 5, "Diagnosing
the adversary").

The formulas of the adversary probe, pure and on arrays; ``steps.make_probe`` builds the
pmapped probe of a phase-2 state from them, the loop logs it every ``train.probe_every``
phase-2 iterations, ``--mode=diagnose`` (``training/diagnose.py``) computes it afterwards
on any run.

A's mean score (sigmoid of its cell logits) on three maps of the same images:
  (a) ``d_real``: the epsilon-rescaled ground truth (what A is trained to call real);
  (b) ``d_fake``: G's map (what A is trained to call fake, in the paper's method);
  (c) ``d_confident``: G's own argmax epsilon-rescaled against G's map: G's labels, errors
      kept, made as confident as the real map.
If (c) scores like (a), A separates real from fake by confidence alone, and G can satisfy it
by sharpening its map without changing a label: ``confidence_share`` is the part of A's
real-fake gap that sharpening closes, ``(c - b) / (a - b)``.
"""

from __future__ import annotations

import collections

import jax
import jax.numpy as jnp
import numpy as np


def entropy_sum(logits: jax.Array, mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """Sum over the pixels in ``mask`` of G's per-pixel entropy -sum_c u_c log u_c (nats),
    u = softmax(logits), and their count. logits [N, H, W, C]; mask [N, H, W] bool (None =
    every pixel)."""
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    h = -jnp.sum(jnp.exp(logp) * logp, axis=-1)
    if mask is None:
        mask = jnp.ones(h.shape, jnp.bool_)
    return jnp.sum(jnp.where(mask, h, 0.0)), jnp.sum(mask).astype(jnp.float32)


def dot_and_norms(a: jax.Array, b: jax.Array) -> jax.Array:
    """[<a, b>, |a|^2, |b|^2] of two arrays of one shape, as float32: summed over devices by
    the caller before ``cosine`` (a cosine is not the mean of the devices' cosines)."""
    a, b = a.astype(jnp.float32).ravel(), b.astype(jnp.float32).ravel()
    return jnp.stack([jnp.vdot(a, b), jnp.vdot(a, a), jnp.vdot(b, b)])


def cosine(dot_norms: jax.Array) -> jax.Array:
    """The cosine of ``dot_and_norms``' [<a, b>, |a|^2, |b|^2]; 0 when either is 0."""
    dot, aa, bb = dot_norms[0], dot_norms[1], dot_norms[2]
    denom = jnp.sqrt(aa * bb)
    return jnp.where(denom > 0, dot / jnp.where(denom > 0, denom, 1.0), 0.0)


def changed_label_share(preds: np.ndarray, reference: np.ndarray,
                        mask: np.ndarray | None = None) -> tuple[int, int]:
    """(pixels whose label differs, pixels compared) between two runs' label maps of the
    same images, over ``mask`` (bool, same shape; None = every pixel)."""
    preds, reference = np.asarray(preds), np.asarray(reference)
    if preds.shape != reference.shape:
        raise ValueError(f"label maps of different shapes: {preds.shape} and {reference.shape}")
    mask = np.ones(preds.shape, bool) if mask is None else np.asarray(mask, bool)
    return int(np.sum((preds != reference) & mask)), int(np.sum(mask))


def confidence_share(d_real: float, d_fake: float, d_confident: float,
                     min_gap: float = 0.05) -> float | None:
    """How much of A's real-fake gap sharpening G's map closes: ``(c - b) / (a - b)`` from the
    mean scores (a) ``d_real``, (b) ``d_fake``, (c) ``d_confident``. 1 = A scores G's own
    labels, made confident, as real as the ground truth (it judges confidence); 0 = sharpening
    gains nothing (it judges the labels). None where A barely separates real from fake
    (a - b < ``min_gap``): there is no gap to explain."""
    gap = d_real - d_fake
    if gap < min_gap:
        return None
    return (d_confident - d_fake) / gap


def reading(d_real: float, d_fake: float, d_confident: float, threshold: float,
            min_gap: float = 0.05) -> str:
    """What a probe's mean scores say, in one line (``--mode=diagnose``): by the training
    warning's ``threshold`` (``train.confidence_share_warning``), whether A rewards
    confidence or judges G's labels, or has no real-fake gap to explain."""
    share = confidence_share(d_real, d_fake, d_confident, min_gap)
    if share is None:
        return (f"reading: A barely separates real from fake (score gap {d_real - d_fake:.3f} "
                f"< {min_gap}): it gives G no signal to read at this checkpoint")
    if share >= threshold:
        return (f"reading: A rewards confidence, not layout (confidence share {share:.2f} >= "
                f"{threshold:.2f}): G can satisfy it by sharpening without changing a label; "
                "adversary.rescale_fake=True makes it judge labels (METHOD.md section 3)")
    return (f"reading: A judges G's labels, not only its confidence (confidence share "
            f"{share:.2f} < {threshold:.2f}): making G's own labels confident does not fool it")


class ConfidenceWarning:
    """Says once per run that the adversary rewards confidence, not layout: when the mean
    ``confidence_share`` of the last ``window`` probes reaches ``threshold``."""

    def __init__(self, threshold: float, window: int = 3, min_gap: float = 0.05):
        self.threshold, self.min_gap = threshold, min_gap
        self._shares: collections.deque[float] = collections.deque(maxlen=window)
        self.said = False

    def update(self, step: int, d_real: float, d_fake: float, d_confident: float) -> str | None:
        share = confidence_share(d_real, d_fake, d_confident, self.min_gap)
        if share is None:
            self._shares.clear()  # only consecutive probes with a gap count
            return None
        self._shares.append(share)
        mean = float(np.mean(self._shares))
        if self.said or len(self._shares) < self._shares.maxlen or mean < self.threshold:
            return None
        self.said = True
        return (f"WARNING at step {step}: the adversary rewards confidence, not layout: it "
                f"scores G's own labels, made confident, {d_confident:.3f} against "
                f"{d_real:.3f} for the ground truth and {d_fake:.3f} for G's map (confidence "
                f"share {mean:.2f} over the last {len(self._shares)} probes), so G can satisfy "
                "it by sharpening without changing a label. Try adversary.rescale_fake=True "
                "(METHOD.md section 3, \"The layout-judging adversary\")")
