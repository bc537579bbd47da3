"""Test-time inference of a generator on (padded) images: whole image or sliding window, with
optional multi-scale and horizontal-flip augmentation. Pure functions of ``apply``.

``apply(images [N, h, w, 3], sizes [N, 2] | None) -> logits [N, h, w, C]`` is any function (a
network's forward pass with its variables bound). ``sizes`` (``models.canvas``): each image's
height and width on its padded canvas; with them every view is of the image alone, whatever
the padding (flips mirror each image inside its own width, scales resize each image's own
region, windows tell the network how much of each image they hold); with ``sizes=None`` the
canvas is the image. All shapes are static, so each (canvas size, settings) compiles once.
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
from ssgan_jax.models import canvas, registry
from ssgan_jax.models.layers import resize_bilinear


def oversize_settings(settings: Settings, eval_size: tuple[int, int],
                      windows_per_call: int = 0) -> Settings:
    """The settings for an image larger than ``data.eval_size``: sliding windows of
    ``eval_size`` (stride 2/3 of it) where the run infers whole images, so the forward pass
    never sees more than what evaluation compiled for; the run's own settings where it
    already slides. Scales and flip stay the run's. ``windows_per_call`` (where the run's
    ``eval.windows_per_call`` is 0, all at once): how many windows each forward pass takes,
    so a huge image's memory is bounded by a few windows, not by all of them."""
    per_call = settings.windows_per_call or windows_per_call
    if settings.mode == "sliding":
        return dataclasses.replace(settings, windows_per_call=per_call)
    window = tuple(int(v) for v in eval_size)
    return dataclasses.replace(settings, mode="sliding", window=window,
                               stride=tuple(max(1, -(-2 * w // 3)) for w in window),
                               windows_per_call=per_call)


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
    apply: Callable[[jax.Array, jax.Array | None], jax.Array],
    images: jax.Array,
    window: tuple[int, int],
    stride: tuple[int, int],
    windows_per_call: int = 0,
    sizes: jax.Array | None = None,
) -> jax.Array:
    """Logits [N, H, W, C] averaged over the overlapping windows that cover each pixel.

    A window larger than the image shrinks to the image (then this is ``apply(images)``).
    The windows are laid on the canvas; with ``sizes`` each window runs with the part of each
    image it holds (``canvas``) and counts only there.
    """
    n, h, w, _ = images.shape
    wh, ww = min(window[0], h), min(window[1], w)
    corners = np.asarray([(y, x) for y in window_starts(h, wh, stride[0])
                          for x in window_starts(w, ww, stride[1])], np.int32)
    k = len(corners)
    if k == 1:
        return apply(images, sizes)
    # Every window's pixel coordinates as index arrays [K, wh, ww]: the crops are one gather
    # and the sum over windows one scatter-add, so the program has the same operations for 4
    # windows or 400 (an unrolled loop over the windows made a 1024x2048 image with 3 scales
    # and flip compile for 221 s)
    ys = corners[:, 0, None, None] + np.arange(wh, dtype=np.int32)[None, :, None]
    xs = corners[:, 1, None, None] + np.arange(ww, dtype=np.int32)[None, None, :]
    ys, xs = np.broadcast_to(ys, (k, wh, ww)), np.broadcast_to(xs, (k, wh, ww))
    crops = jnp.moveaxis(images[:, ys, xs], 1, 0)  # [K, N, wh, ww, 3]
    held = None
    if sizes is not None:  # [K, N, 2]: how much of each image window k holds
        offsets = jnp.asarray(corners)[:, None, :]
        held = jnp.clip(sizes[None] - offsets, 0, jnp.asarray([wh, ww], jnp.int32))
    if windows_per_call == 0 or windows_per_call >= k:
        out = apply(crops.reshape(k * n, wh, ww, 3),
                    None if held is None else held.reshape(k * n, 2))
        out = out.reshape(k, n, wh, ww, out.shape[-1])
    else:  # bounded memory: windows_per_call windows per forward pass
        body = (lambda c: apply(c, None)) if held is None else (lambda a: apply(*a))
        out = jax.lax.map(body, crops if held is None else (crops, held),
                          batch_size=windows_per_call)
    total = jnp.zeros((n, h, w, out.shape[-1]), out.dtype)
    if held is None:
        count = np.zeros((h, w), np.float32)
        np.add.at(count, (ys, xs), 1.0)
        total = total.at[:, ys, xs].add(jnp.moveaxis(out, 0, 1))
        return total / jnp.asarray(count)[None, :, :, None]
    inside = jax.vmap(lambda hw: canvas.inside(hw, wh, ww))(held).astype(out.dtype)
    total = total.at[:, ys, xs].add(jnp.moveaxis(out * inside, 0, 1))
    count = jnp.zeros((n, h, w, 1), out.dtype).at[:, ys, xs].add(jnp.moveaxis(inside, 0, 1))
    return total / jnp.maximum(count, 1.0)


def _at_scale(apply, images, settings: Settings, scale: float, sizes=None) -> jax.Array:
    n, h, w, _ = images.shape
    scaled = sizes
    if scale != 1.0:
        sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
        if sizes is None:
            images = resize_bilinear(images, sh, sw)
        else:
            scaled = jnp.maximum(1, jnp.round(sizes * scale)).astype(jnp.int32)
            images = canvas.resize(images, sizes, scaled, sh, sw)
    if settings.mode == "sliding":
        logits = sliding_logits(apply, images, settings.window, settings.stride,
                                settings.windows_per_call, scaled)
    else:
        logits = apply(images, scaled)
    if scale != 1.0:
        logits = (resize_bilinear(logits, h, w) if sizes is None
                  else canvas.resize(logits, scaled, sizes, h, w))
    return logits


def predict_logits(apply, images: jax.Array, settings: Settings,
                   sizes: jax.Array | None = None) -> jax.Array:
    """Logits [N, H, W, C] of ``images`` [N, H, W, 3] under ``settings`` (averaged over every
    scale, and over the flipped image flipped back when ``settings.flip``); ``sizes``: each
    image's own size on the canvas (``canvas``), or None when the images fill it."""
    total = None
    views: Sequence[bool] = (False, True) if settings.flip else (False,)

    def mirror(x):
        return x[:, :, ::-1] if sizes is None else canvas.flip(x, sizes)

    for scale in settings.scales:
        for flipped in views:
            x = mirror(images) if flipped else images
            logits = _at_scale(apply, x, settings, scale, sizes).astype(jnp.float32)
            if flipped:
                logits = mirror(logits)
            total = logits if total is None else total + logits
    return total / (len(settings.scales) * len(views))


def bind(generator, variables):
    """``apply(images, sizes)``: ``generator``'s inference forward pass with ``variables``."""
    return lambda x, sizes: registry.apply(generator, variables, x, train=False, sizes=sizes)


def make_predict_fn(generator, settings: Settings):
    """``predict(variables, images [B, H, W, 3], sizes [B, 2] | None) -> class indices
    [B, H, W] int32`` (``sizes``: each image's own size on the canvas)."""

    def predict(variables, images, sizes=None):
        logits = predict_logits(bind(generator, variables), images, settings, sizes)
        return jnp.argmax(logits, axis=-1)

    return predict
