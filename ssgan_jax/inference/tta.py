"""Test-time inference of a generator on (padded) images: whole image or sliding window, with
optional multi-scale and horizontal-flip augmentation. Pure functions of ``apply``.

``apply(images [N, h, w, 3]) -> logits [N, h, w, C]`` is any function (a network's forward pass
with its variables bound). All sizes are static, so each (image size, settings) compiles once.
Logits are averaged: overlapping windows per pixel, then scales and flips. Scaled predictions
are resized back to the input size before averaging.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ssgan_jax.core.settings import Settings, from_config  # noqa: F401 - tta's settings
from ssgan_jax.models.layers import resize_bilinear


def oversize_settings(settings: Settings, eval_size: tuple[int, int]) -> Settings:
    """The settings for an image larger than ``data.eval_size``: sliding windows of
    ``eval_size`` (stride 2/3 of it) where the run infers whole images, so the forward pass
    never sees more than what evaluation compiled for; the run's own settings where it
    already slides. Scales and flip stay the run's."""
    if settings.mode == "sliding":
        return settings
    window = tuple(int(v) for v in eval_size)
    return dataclasses.replace(settings, mode="sliding", window=window,
                               stride=tuple(max(1, -(-2 * w // 3)) for w in window))


def window_starts(size: int, window: int, stride: int) -> list[int]:
    """Start offsets covering [0, size) with windows of ``window`` every ``stride``; the last
    window ends at ``size`` exactly. A window larger than the image gives one start, 0."""
    if window >= size:
        return [0]
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] + window < size:
        starts.append(size - window)
    return starts


def sliding_logits(
    apply: Callable[[jax.Array], jax.Array],
    images: jax.Array,
    window: tuple[int, int],
    stride: tuple[int, int],
    windows_per_call: int = 0,
) -> jax.Array:
    """Logits [N, H, W, C] averaged over the overlapping windows that cover each pixel.

    A window larger than the image shrinks to the image (then this is ``apply(images)``).
    """
    n, h, w, _ = images.shape
    wh, ww = min(window[0], h), min(window[1], w)
    corners = [(y, x) for y in window_starts(h, wh, stride[0])
               for x in window_starts(w, ww, stride[1])]
    if len(corners) == 1:
        return apply(images)
    crops = jnp.stack([images[:, y:y + wh, x:x + ww] for y, x in corners])  # [K, N, wh, ww, 3]
    k = len(corners)
    if windows_per_call == 0 or windows_per_call >= k:
        out = apply(crops.reshape(k * n, wh, ww, 3))
        out = out.reshape(k, n, wh, ww, out.shape[-1])
    else:  # bounded memory: windows_per_call windows per forward pass
        out = jax.lax.map(apply, crops, batch_size=windows_per_call)
    total = jnp.zeros((n, h, w, out.shape[-1]), out.dtype)
    count = np.zeros((h, w), np.float32)
    for i, (y, x) in enumerate(corners):
        total = total.at[:, y:y + wh, x:x + ww].add(out[i])
        count[y:y + wh, x:x + ww] += 1
    return total / jnp.asarray(count)[None, :, :, None]


def _at_scale(apply, images, settings: Settings, scale: float) -> jax.Array:
    n, h, w, _ = images.shape
    if scale != 1.0:
        sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
        images = resize_bilinear(images, sh, sw)
    if settings.mode == "sliding":
        logits = sliding_logits(apply, images, settings.window, settings.stride,
                                settings.windows_per_call)
    else:
        logits = apply(images)
    if scale != 1.0:
        logits = resize_bilinear(logits, h, w)
    return logits


def predict_logits(apply, images: jax.Array, settings: Settings) -> jax.Array:
    """Logits [N, H, W, C] of ``images`` [N, H, W, 3] under ``settings`` (averaged over every
    scale, and over the flipped image flipped back when ``settings.flip``)."""
    total = None
    views: Sequence[bool] = (False, True) if settings.flip else (False,)
    for scale in settings.scales:
        for flipped in views:
            x = images[:, :, ::-1] if flipped else images
            logits = _at_scale(apply, x, settings, scale).astype(jnp.float32)
            if flipped:
                logits = logits[:, :, ::-1]
            total = logits if total is None else total + logits
    return total / (len(settings.scales) * len(views))


def make_predict_fn(generator, settings: Settings):
    """``predict(variables, images [B, H, W, 3]) -> class indices [B, H, W] int32``."""

    def predict(variables, images):
        apply = lambda x: generator.apply(variables, x, train=False)
        return jnp.argmax(predict_logits(apply, images, settings), axis=-1)

    return predict
