"""Building blocks shared by the networks: torch-compatible convs, BatchNorm modes, resizing.

All tensors are NHWC. Padding is explicit and symmetric (torch semantics); flax's 'SAME' pads
asymmetrically for stride 2 and would not reproduce torchvision.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ssgan_jax.models.conv import Conv
from ssgan_jax.models.norm import BatchNorm

Dtype = Any
ModuleDef = Any  # a flax module class, or a functools.partial of one

# torchvision initialises convs with kaiming_normal(mode='fan_out', nonlinearity='relu').
kaiming_fan_out = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def conv(
    features: int,
    kernel: int,
    *,
    stride: int = 1,
    dilation: int = 1,
    padding: int | None = None,
    use_bias: bool = False,
    name: str | None = None,
    dtype: Dtype = jnp.float32,
    kernel_init=kaiming_fan_out,
    module: ModuleDef = Conv,
) -> nn.Module:
    """A 2-D conv with torch's symmetric padding (default: ``dilation * (kernel - 1) // 2``).

    ``module``: the conv class, ``Conv`` or a ``functools.partial`` of it that the network
    was built with (``models.build_generator``: which conv implementation runs).
    """
    pad = dilation * (kernel - 1) // 2 if padding is None else padding
    return module(
        features,
        (kernel, kernel),
        strides=(stride, stride),
        kernel_dilation=(dilation, dilation),
        padding=((pad, pad), (pad, pad)),
        use_bias=use_bias,
        dtype=dtype,
        kernel_init=kernel_init,
        name=name,
    )


def batch_norm(train: bool, frozen: bool, axis_name: str | None, dtype: Dtype = jnp.float32,
               module: ModuleDef = BatchNorm):
    """BatchNorm factory with torch's constants (eps 1e-5, momentum 0.1 -> flax 0.9).

    ``module``: ``norm.BatchNorm`` (flax's variables and arithmetic, with a one-pass
    hand-written backward) or ``flax.linen.BatchNorm`` (``models.build_generator`` chooses).

    Modes (METHOD.md section 6 trains with batch 2, where batch statistics are noisy):
      * ``train and not frozen``: normalise with batch statistics, averaged over ``axis_name``
        (all devices of a pmap) when given, and update the running statistics.
      * ``frozen`` or ``not train``: use the running statistics; nothing is updated.
    """
    use_running = (not train) or frozen
    return functools.partial(
        module,
        use_running_average=use_running,
        momentum=0.9,
        epsilon=1e-5,
        axis_name=None if use_running else axis_name,
        dtype=dtype,
    )


def max_pool_torch(x: jax.Array, kernel: int, stride: int, padding: int) -> jax.Array:
    """torch MaxPool2d: symmetric padding with -inf. The padding is an explicit ``jnp.pad``
    and the pool VALID (the same numbers): jax2onnx 0.17 drops a max_pool's explicit padding
    (a 32x48 input came out 15x23, not 16x24). Arguments by keyword: its max_pool handler
    takes the window by keyword only."""
    pad = ((0, 0), (padding, padding), (padding, padding), (0, 0))
    x = jnp.pad(x, pad, constant_values=-jnp.inf)
    return nn.max_pool(x, window_shape=(kernel, kernel), strides=(stride, stride),
                       padding="VALID")


@functools.lru_cache(maxsize=256)
def bilinear_matrix(size: int, out: int) -> np.ndarray:
    """[out, size] weights of a bilinear upsampling with half-pixel centres: output i reads
    x = (i + 0.5) * size / out - 0.5 with the triangle kernel, normalised over the inputs that
    exist (at the borders: the edge pixel, as torch's clamp and ``jax.image.resize`` do)."""
    x = (np.arange(out, dtype=np.float64) + 0.5) * size / out - 0.5
    w = np.maximum(0.0, 1.0 - np.abs(x[:, None] - np.arange(size, dtype=np.float64)[None]))
    return (w / w.sum(1, keepdims=True)).astype(np.float32)


def resize_bilinear(x: jax.Array, height: int, width: int) -> jax.Array:
    """Bilinear resize with half-pixel centres.

    Upsampling equals torch ``F.interpolate(mode='bilinear', align_corners=False)`` and
    ``jax.image.resize`` (tested); it is two small matrix products (``bilinear_matrix``, at
    full float32 precision as jax.image.resize's), which also keeps the batch dimension free
    for a symbolic size in exported programs (jax2onnx's resize needs a constant batch).
    Downsampling is ``jax.image.resize``'s, antialiased (an area-like average), which is what
    we want for maps.
    """
    n, h, w, c = x.shape
    if height < h or width < w:
        return jax.image.resize(x, (n, height, width, c), method="bilinear").astype(x.dtype)
    dtype = jnp.promote_types(x.dtype, jnp.float32)  # bfloat16 maps: weights in float32
    mh = jnp.asarray(bilinear_matrix(h, height), dtype)
    mw = jnp.asarray(bilinear_matrix(w, width), dtype)
    return jnp.einsum("oh,nhwc,pw->nopc", mh, x.astype(dtype), mw,
                      precision=jax.lax.Precision.HIGHEST).astype(x.dtype)


def _adaptive_pool_matrix(size: int, out: int) -> np.ndarray:
    """[out, size] averaging matrix of torch's AdaptiveAvgPool (bins floor(i*n/o)..ceil)."""
    m = np.zeros((out, size), np.float32)
    for i in range(out):
        start = (i * size) // out
        end = -((-(i + 1) * size) // out)
        m[i, start:end] = 1.0 / (end - start)
    return m


def adaptive_avg_pool(x: jax.Array, out_h: int, out_w: int) -> jax.Array:
    """torch ``AdaptiveAvgPool2d((out_h, out_w))`` on NHWC, as two small matmuls."""
    ph = jnp.asarray(_adaptive_pool_matrix(x.shape[1], out_h), x.dtype)
    pw = jnp.asarray(_adaptive_pool_matrix(x.shape[2], out_w), x.dtype)
    return jnp.einsum("oh,nhwc,pw->nopc", ph, x, pw)


def check_images(x: jax.Array, who: str) -> None:
    """Shape check shared by the networks: ``x`` must be ``[N, H, W, 3]``."""
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(
            f"{who} expects images as [N, H, W, 3] (NHWC, RGB); got shape {tuple(x.shape)}. "
            "Transpose NCHW inputs with x.transpose(0, 2, 3, 1)."
        )
