"""ResNet50 with torchvision "v1.5" semantics (METHOD.md section 2, ResNet50-G backbone).

Module names follow torchvision's (``layer1_0`` is torch's ``layer1.0``; see
``ssgan_jax.weights.torch_name``), so torchvision/timm ImageNet weights load by name.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssgan_jax.models import canvas
from ssgan_jax.models.conv import Conv
from ssgan_jax.models.layers import ModuleDef, batch_norm, check_images, conv, max_pool_torch
from ssgan_jax.models.norm import BatchNorm

STAGE_SIZES_50 = (3, 4, 6, 3)
EXPANSION = 4


def dilations_for_output_stride(output_stride: int) -> tuple[bool, bool, bool]:
    """torchvision's ``replace_stride_with_dilation`` for stages 2..4."""
    table = {32: (False, False, False), 16: (False, False, True), 8: (False, True, True)}
    if output_stride not in table:
        raise ValueError(f"output_stride must be one of 8, 16, 32; got {output_stride}")
    return table[output_stride]


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride, dilation) -> 1x1 (x4), stride on the 3x3 conv (v1.5)."""

    planes: int
    stride: int
    dilation: int
    downsample: bool
    norm: Any  # a configured BatchNorm factory (layers.batch_norm)
    dtype: Any = jnp.float32
    conv: ModuleDef = Conv

    @nn.compact
    def __call__(self, x: jax.Array, sizes: jax.Array | None = None) -> jax.Array:
        """``sizes``: the images' regions of ``x`` (``canvas``); only the 3x3 conv reads
        across positions (the 1x1 convs, strided or not, read each position alone)."""
        out = conv(self.planes, 1, name="conv1", dtype=self.dtype, module=self.conv)(x)
        out = nn.relu(self.norm(name="bn1")(out))
        out = canvas.mask(out, sizes)
        out = conv(
            self.planes,
            3,
            stride=self.stride,
            dilation=self.dilation,
            name="conv2",
            dtype=self.dtype,
            module=self.conv,
        )(out)
        out = nn.relu(self.norm(name="bn2")(out))
        out = conv(self.planes * EXPANSION, 1, name="conv3", dtype=self.dtype,
                   module=self.conv)(out)
        out = self.norm(name="bn3")(out)
        identity = x
        if self.downsample:
            identity = conv(
                self.planes * EXPANSION,
                1,
                stride=self.stride,
                name="downsample_0",
                dtype=self.dtype,
                module=self.conv,
            )(x)
            identity = self.norm(name="downsample_1")(identity)
        return nn.relu(out + identity)


class ResNet(nn.Module):
    """ResNet50 (torchvision v1.5), NHWC.

    Attributes:
      width: channel divisor (1 = torchvision's ResNet50; 8 = the parity fixtures).
      output_stride: 32, 16 or 8; 16/8 replace the strides of the last stages by dilation,
        exactly as torchvision's ``replace_stride_with_dilation``.
      num_stages: how many of the four stages to build (the adversary's image branch uses 1).
      num_classes: if set, global average pool + ``fc`` classifier (ImageNet head).
      bn_frozen / bn_axis_name: BatchNorm mode, see ``layers.batch_norm``.
      conv / norm: the conv and BatchNorm classes (``models.build_generator`` binds them).

    Returns a dict of features: ``stem`` (after max-pool), ``layer1``..``layerK`` and, with a
    classifier, ``logits`` [N, num_classes]. With ``sizes`` (``canvas``: the images' sizes on
    a padded canvas) also ``sizes``: their regions of ``layerK``; with ``masks`` (default)
    every layer that mixes positions reads zeros past each region, without them only the
    sizes are followed (training: ``DeepLabV3``).
    """

    width: int = 1
    output_stride: int = 32
    num_stages: int = 4
    num_classes: int | None = None
    bn_frozen: bool = False
    bn_axis_name: str | None = None
    dtype: Any = jnp.float32
    conv: ModuleDef = Conv
    norm: ModuleDef = BatchNorm

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, sizes: jax.Array | None = None,
                 masks: bool = True) -> dict[str, jax.Array]:
        check_images(x, "ResNet")
        if not 1 <= self.num_stages <= 4:
            raise ValueError(f"num_stages must be in 1..4; got {self.num_stages}")
        if self.num_classes is not None and self.num_stages != 4:
            raise ValueError("the ImageNet classifier head needs all 4 stages")
        norm = batch_norm(train, self.bn_frozen, self.bn_axis_name, module=self.norm)
        feats: dict[str, jax.Array] = {}
        stem = 64 // self.width
        mask = canvas.mask if masks else (lambda v, s, fill=0.0: v)
        x = mask(x, sizes)
        x = conv(stem, 7, stride=2, name="conv1", dtype=self.dtype, module=self.conv)(x)
        sizes = canvas.conv_sizes(sizes, 7, stride=2)
        x = nn.relu(norm(name="bn1")(x))
        x = max_pool_torch(mask(x, sizes, -jnp.inf), 3, 2, 1)
        sizes = canvas.conv_sizes(sizes, 3, stride=2, padding=1)
        # windows wholly in the padding came out -inf: zero them, or the next layers (and
        # BatchNorm's batch statistics in training) would turn them into NaN
        x = mask(x, sizes)
        feats["stem"] = x

        replace = (False,) + dilations_for_output_stride(self.output_stride)
        in_ch, dilation = stem, 1
        for s in range(self.num_stages):
            planes = (64 // self.width) * 2**s
            stride = 1 if s == 0 else 2
            previous_dilation = dilation
            if replace[s]:
                dilation *= stride
                stride = 1
            for b in range(STAGE_SIZES_50[s]):
                block_stride = stride if b == 0 else 1
                x = Bottleneck(
                    planes=planes,
                    stride=block_stride,
                    dilation=previous_dilation if b == 0 else dilation,
                    downsample=b == 0 and (stride != 1 or in_ch != planes * EXPANSION),
                    norm=norm,
                    dtype=self.dtype,
                    conv=self.conv,
                    name=f"layer{s + 1}_{b}",
                )(x, sizes if masks else None)
                sizes = canvas.conv_sizes(sizes, 1, stride=block_stride)
                in_ch = planes * EXPANSION
            feats[f"layer{s + 1}"] = x

        if sizes is not None:
            feats["sizes"] = sizes
        if self.num_classes is not None:
            pooled = jnp.mean(x.astype(jnp.float32), axis=(1, 2))
            feats["logits"] = nn.Dense(self.num_classes, name="fc")(pooled)
        return feats
