"""FCN-8s on VGG16 = the paper's VGG16-G (METHOD.md section 2).

VGG16 blocks 1-5; fc6 as a 7x7x4096 conv (``classifier_0``: torchvision's ``classifier.0``
Linear(25088, 4096) reshaped, see ``ssgan_jax.weights``), fc7 as 1x1x4096 (``classifier_3``),
each with ReLU + dropout; ``score_fr`` 1x1 to the classes; ``upscore2`` 2x transposed conv
(bilinear init) + ``score_pool4``; ``upscore_pool4`` 2x + ``score_pool3``; then 8x bilinear
interpolation to the input size.

Any input size: the image is zero-padded at the bottom/right to a multiple of 32 (zero =
the mean colour after normalisation), fc6 uses padding 3 so every stage keeps exactly
size/2**k, the fused scores are upsampled 8x to the padded size and cropped back to H x W.
Because the padding is only bottom/right, pixel (i, j) of the output is aligned with pixel
(i, j) of the input (no offset crop as in the Caffe original with its 100-pixel pad).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ssgan_jax.models import canvas
from ssgan_jax.models.conv import Conv
from ssgan_jax.models.layers import ModuleDef, check_images, conv, resize_bilinear
from ssgan_jax.models.vgg import vgg16_features

FCN_STRIDE = 32


def bilinear_upsample_kernel(factor: int, channels: int) -> np.ndarray:
    """Transposed-conv kernel [2f, 2f, C, C] that upsamples each channel bilinearly by f."""
    size = 2 * factor
    center = (size - 1) / 2.0
    og = np.arange(size, dtype=np.float64)
    filt1d = 1.0 - np.abs(og - center) / factor
    filt = np.outer(filt1d, filt1d).astype(np.float32)
    kernel = np.zeros((size, size, channels, channels), np.float32)
    for c in range(channels):
        kernel[:, :, c, c] = filt
    return kernel


def _bilinear_init(key, shape, dtype=jnp.float32):
    del key
    kh, kw, cin, cout = shape
    if kh != kw or cin != cout or kh % 2:
        raise ValueError(f"bilinear init needs a [2f, 2f, C, C] kernel; got {shape}")
    return jnp.asarray(bilinear_upsample_kernel(kh // 2, cin), dtype)


class Upsample2x(nn.Module):
    """torch ``ConvTranspose2d(k=4, s=2, p=1, bias=False)``: output exactly 2x the input.

    The computation, parameter name and shape of ``flax.linen.ConvTranspose(features, (4, 4),
    strides=(2, 2), padding=((2, 2), (2, 2)), use_bias=False)`` (tested equal), written out so
    that the traced program is a plain ``lax.conv_transpose``: flax's module stores its
    padding as a list, which converters that re-bind it as a primitive parameter (jax2onnx)
    reject as unhashable."""

    features: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", _bilinear_init, (4, 4, x.shape[-1], self.features),
                            jnp.float32)
        x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
        return jax.lax.conv_transpose(x, kernel, (2, 2), ((2, 2), (2, 2)),
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def upsample2x(features: int, name: str, dtype: Any) -> Upsample2x:
    """FCN's 2x upsampling layer (``upscore2``, ``upscore_pool4``), bilinear at init."""
    return Upsample2x(features, dtype=dtype, name=name)


class FCN8s(nn.Module):
    """FCN-8s generator: images [N, H, W, 3] -> logits [N, H, W, num_classes] (any H, W).

    ``sizes`` (int32 [N, 2], optional): each image's height and width on a padded canvas
    (top-left); each image's logits are then those of the image alone at its own size
    (``canvas``), zero outside it. In training only the final upsampling follows ``sizes``
    (as ``DeepLabV3``: the masks before the convolutions are inference's).
    """

    num_classes: int
    width: int = 1
    dropout_rate: float = 0.5
    dtype: Any = jnp.float32
    conv: ModuleDef = Conv  # the conv class (``models.build_generator`` binds it)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False,
                 sizes: jax.Array | None = None) -> jax.Array:
        check_images(x, "FCN8s")
        _, h, w, _ = x.shape
        hp = -(-h // FCN_STRIDE) * FCN_STRIDE
        wp = -(-w // FCN_STRIDE) * FCN_STRIDE
        masks = None if train else sizes
        x = jnp.pad(canvas.mask(x, masks), ((0, 0), (0, hp - h), (0, wp - w), (0, 0)))
        # each image alone would be padded to a multiple of 32 with zeros: that is its region
        padded = None if sizes is None else canvas.round_up(sizes, FCN_STRIDE)
        feats = vgg16_features(x, width=self.width, num_blocks=5, dtype=self.dtype,
                               conv_module=self.conv, sizes=None if train else padded)
        at = (lambda k: None) if sizes is None else (lambda k: canvas.div(padded, k))
        mask_at = (lambda k: None) if masks is None else at
        fc_dim = 4096 // self.width
        y = conv(fc_dim, 7, use_bias=True, name="classifier_0", dtype=self.dtype,
                 module=self.conv)(canvas.mask(feats["pool5"], mask_at(32)))
        y = nn.Dropout(self.dropout_rate, deterministic=not train)(nn.relu(y))
        y = conv(fc_dim, 1, use_bias=True, name="classifier_3", dtype=self.dtype,
                 module=self.conv)(y)
        y = nn.Dropout(self.dropout_rate, deterministic=not train)(nn.relu(y))

        def score(name: str) -> Conv:  # FCN zero-initialises its score layers
            return conv(
                self.num_classes,
                1,
                use_bias=True,
                name=name,
                dtype=self.dtype,
                kernel_init=nn.initializers.zeros,
                module=self.conv,
            )

        s = score("score_fr")(y)
        s = upsample2x(self.num_classes, "upscore2", self.dtype)(canvas.mask(s, mask_at(32)))
        s = s + score("score_pool4")(feats["pool4"])
        s = upsample2x(self.num_classes, "upscore_pool4", self.dtype)(canvas.mask(s,
                                                                                  mask_at(16)))
        s = s + score("score_pool3")(feats["pool3"])
        if sizes is None:
            s = resize_bilinear(s.astype(jnp.float32), hp, wp)
        else:
            s = canvas.mask(canvas.resize(s.astype(jnp.float32), at(8), padded, hp, wp), sizes)
        return s[:, :h, :w, :]
