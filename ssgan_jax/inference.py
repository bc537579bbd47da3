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
import ml_collections
import numpy as np

from ssgan_jax.errors import ConfigError
from ssgan_jax.models.layers import resize_bilinear

MODES = ("whole", "sliding")


@dataclasses.dataclass(frozen=True)
class Settings:
    """How logits are computed at test time (``config.eval``; see ``from_config``)."""

    mode: str = "whole"
    window: tuple[int, int] = (512, 512)  # sliding window (h, w), in the scaled image
    stride: tuple[int, int] = (341, 341)  # sliding stride (h, w)
    scales: tuple[float, ...] = (1.0,)
    flip: bool = False
    windows_per_call: int = 0  # windows run together per forward pass; 0 = all at once

    def __post_init__(self):
        if self.mode not in MODES:
            raise ConfigError(f"config.eval.mode must be one of {MODES}; got {self.mode!r}")
        if len(self.window) != 2 or min(self.window) < 1:
            raise ConfigError(f"config.eval.window must be (h, w) >= 1; got {self.window}")
        if len(self.stride) != 2 or min(self.stride) < 1:
            raise ConfigError(f"config.eval.stride must be (h, w) >= 1; got {self.stride}")
        if any(s > w for s, w in zip(self.stride, self.window, strict=True)):
            raise ConfigError(f"config.eval.stride {self.stride} is larger than the window "
                             f"{self.window}: pixels between windows would get no prediction")
        if not self.scales or min(self.scales) <= 0:
            raise ConfigError(f"config.eval.scales must be positive; got {self.scales}")
        if self.windows_per_call < 0:
            raise ConfigError("config.eval.windows_per_call must be >= 0 (0 = all at once)")

    def tag(self) -> str:
        """'' for plain whole-image inference, else a short name of the settings."""
        parts = []
        if self.mode == "sliding":
            parts.append(f"sliding{self.window[0]}x{self.window[1]}"
                         f"s{self.stride[0]}x{self.stride[1]}")
        if tuple(self.scales) != (1.0,):
            parts.append("scales" + "-".join(f"{s:g}" for s in self.scales))
        if self.flip:
            parts.append("flip")
        return "_".join(parts)

    def as_dict(self) -> dict:
        return {"mode": self.mode, "window": list(self.window), "stride": list(self.stride),
                "scales": list(self.scales), "flip": self.flip}


def from_config(config: ml_collections.ConfigDict) -> Settings:
    """Settings from ``config.eval``; window (0, 0) = ``data.crop_size``, stride (0, 0) = 2/3
    of the window (rounded up)."""
    ev = config.eval
    window = tuple(int(v) for v in ev.window)
    if window == (0, 0):
        window = tuple(int(v) for v in config.data.crop_size)
    stride = tuple(int(v) for v in ev.stride)
    if stride == (0, 0):
        stride = tuple(max(1, -(-2 * w // 3)) for w in window)
    return Settings(mode=ev.mode, window=window, stride=stride,
                    scales=tuple(float(s) for s in ev.scales), flip=bool(ev.flip),
                    windows_per_call=int(ev.windows_per_call))


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
