"""VGG16 convolutional blocks (METHOD.md section 2, VGG16-G backbone; section 3 image branch).

Conv layers are named ``features_<i>`` with torchvision's ``features`` indices (convs at 0, 2,
5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28; max-pools at 4, 9, 16, 23, 30).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssgan_jax.models import canvas
from ssgan_jax.models.conv import Conv
from ssgan_jax.models.layers import ModuleDef, check_images, conv

# torchvision cfg "D": channels per conv, "M" = 2x2 max-pool.
VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def vgg16_features(
    x: jax.Array, *, width: int = 1, num_blocks: int = 5, dtype: Any = jnp.float32,
    conv_module: ModuleDef = Conv, sizes: jax.Array | None = None,
) -> dict[str, jax.Array]:
    """The first ``num_blocks`` conv blocks of VGG16, each ending with a 2x2 max-pool.

    Call inside a compact ``__call__``: the convs become submodules of the caller, named
    ``features_<i>`` at its top level, so torchvision's ``features.<i>.*`` keys map directly.
    Returns ``{"pool1": ..., "poolK": ...}`` (stride 2**k features), NHWC. ``sizes``
    (``canvas``): the images' regions of ``x``, multiples of 2**num_blocks (FCN-8s pads to
    32), so that the 2x2 pools never read past them.
    """
    check_images(x, "VGG16")
    if not 1 <= num_blocks <= 5:
        raise ValueError(f"num_blocks must be in 1..5; got {num_blocks}")
    feats: dict[str, jax.Array] = {}
    block, index = 0, 0  # index: position in torchvision's Sequential
    for item in VGG16_CFG:
        if item == "M":
            # arguments by keyword: see layers.max_pool_torch
            x = nn.max_pool(x, window_shape=(2, 2), strides=(2, 2))
            sizes = None if sizes is None else canvas.div(sizes, 2)
            block += 1
            feats[f"pool{block}"] = x
            if block == num_blocks:
                break
            index += 1
        else:
            x = canvas.mask(x, sizes)
            x = conv(item // width, 3, use_bias=True, name=f"features_{index}", dtype=dtype,
                     module=conv_module)(x)
            x = nn.relu(x)
            index += 2  # the conv and its ReLU
    return feats


class VGG16Features(nn.Module):
    """Module form of ``vgg16_features`` (for standalone use and tests)."""

    width: int = 1
    num_blocks: int = 5
    dtype: Any = jnp.float32
    conv: ModuleDef = Conv

    @nn.compact
    def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
        return vgg16_features(x, width=self.width, num_blocks=self.num_blocks, dtype=self.dtype,
                              conv_module=self.conv)
