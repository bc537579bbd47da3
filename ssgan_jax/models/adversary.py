"""The adversarial network A (METHOD.md section 3, Fig. 4, Table 2).

A judges (image, segmentation map) pairs:
  * image branch: the first layers of VGG16 (``image_branch_depth`` conv blocks) or ResNet50
    (stem + ``image_branch_depth`` stages), named as torchvision so ImageNet weights load under
    the ``image_branch`` prefix. The ResNet branch keeps its BatchNorm frozen (ImageNet running
    statistics): A has no mutable state.
  * map branch: the [N, H, W, C] probability map is first resized (antialiased bilinear, an
    area average that keeps each pixel's probabilities summing to 1) to the image branch's
    spatial size, then a shallow conv net (``map_features``) is applied. Resizing first keeps
    the branch cheap at 500x500 inputs, but the branch cannot see structures thinner than the
    image branch's stride (4 pixels for one ResNet stage). ``map_full_resolution`` applies the
    conv net at the map's own resolution and resizes its features instead (METHOD.md
    section 3, "The layout-judging adversary").
  * merge: concatenation, then Table 2: conv3x3 64 | conv3x3 128 | avgpool 2x2 s2 |
    conv3x3 256 | avgpool 2x2 s2 | conv3x3 512 | conv3x3 1 (``trunk_features`` sets the four
    widths), an activation between layers (ReLU or leaky ReLU; the paper does not say).
  * output: the 1-channel map is average-pooled to a ``grid x grid`` judgement image
    (torch AdaptiveAvgPool bins); each cell is an independent logit.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssgan_jax.models.conv import Conv
from ssgan_jax.models.layers import (
    ModuleDef,
    adaptive_avg_pool,
    check_images,
    conv,
    resize_bilinear,
)
from ssgan_jax.models.resnet import ResNet
from ssgan_jax.models.vgg import VGG16Features

ACTIVATIONS = {"relu": nn.relu, "leaky_relu": lambda x: nn.leaky_relu(x, 0.2)}
IMAGE_BRANCHES = ("vgg16", "resnet50")


class Adversary(nn.Module):
    """A(images [N, H, W, 3], maps [k*N, H, W, C]) -> logits [k*N, grid, grid].

    ``maps[j*N + i]`` is judged against ``images[i]``: the adversary step judges the real and
    the generated map of each image (k = 2) with one pass of the image branch.

    Attributes:
      image_branch: "vgg16" or "resnet50".
      image_branch_depth: VGG16 conv blocks (1..5) or ResNet50 stages after the stem (1..4).
      width: channel divisor of the image branch (1 = ImageNet sizes).
      map_features: channels of the map branch's 3x3 convs.
      trunk_features: channels of Table 2's four 3x3 convs (64, 128, 256, 512).
      grid: side of the judgement grid (METHOD.md: 4).
      activation: "leaky_relu" (slope 0.2) or "relu".
      map_full_resolution: the map branch's convs at the map's resolution, their output
        resized to the image branch's (False: the map is resized first, the paper's layout).
      conv: the conv class (``models.build_adversary`` binds it).
    """

    image_branch: str = "resnet50"
    image_branch_depth: int = 1
    width: int = 1
    map_features: tuple[int, ...] = (64, 128)
    trunk_features: tuple[int, int, int, int] = (64, 128, 256, 512)
    grid: int = 4
    activation: str = "leaky_relu"
    map_full_resolution: bool = False
    dtype: Any = jnp.float32
    conv: ModuleDef = Conv

    @nn.compact
    def __call__(self, images: jax.Array, maps: jax.Array) -> jax.Array:
        check_images(images, "Adversary")
        n = images.shape[0]
        if maps.ndim != 4 or maps.shape[1:3] != images.shape[1:3] or maps.shape[0] % n:
            raise ValueError(
                "Adversary expects maps [k*N, H, W, C] with the images' H, W and a multiple "
                f"of their N; got images {tuple(images.shape)} and maps {tuple(maps.shape)}"
            )
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}")
        act = ACTIVATIONS[self.activation]

        if self.image_branch == "vgg16":
            feats = VGG16Features(
                width=self.width,
                num_blocks=self.image_branch_depth,
                dtype=self.dtype,
                conv=self.conv,
                name="image_branch",
            )(images)
            img = feats[f"pool{self.image_branch_depth}"]
        elif self.image_branch == "resnet50":
            feats = ResNet(
                width=self.width,
                num_stages=self.image_branch_depth,
                bn_frozen=True,
                dtype=self.dtype,
                conv=self.conv,
                name="image_branch",
            )(images)
            img = feats[f"layer{self.image_branch_depth}"]
        else:
            raise ValueError(
                f"image_branch must be one of {IMAGE_BRANCHES}; got {self.image_branch!r}"
            )

        # k maps per image: the image branch runs once and its features are shared (exact:
        # its BatchNorm is frozen, so the batch composition does not change its output).
        img = jnp.tile(img, (maps.shape[0] // n, 1, 1, 1))
        _, fh, fw, _ = img.shape
        if fh < 4 or fw < 4:  # Table 2 pools twice by 2
            raise ValueError(
                f"Adversary input {images.shape[1]}x{images.shape[2]} is too small: the image "
                f"branch gives {fh}x{fw} features and the trunk needs at least 4x4; use larger "
                "crops or a shallower image_branch_depth"
            )
        m = maps.astype(jnp.float32)
        if not self.map_full_resolution:
            m = resize_bilinear(m, fh, fw)
        m = m.astype(self.dtype)
        for i, ch in enumerate(self.map_features):
            m = act(conv(ch, 3, use_bias=True, name=f"map_{i}", dtype=self.dtype,
                         module=self.conv)(m))
        if self.map_full_resolution:
            m = resize_bilinear(m.astype(jnp.float32), fh, fw).astype(self.dtype)

        y = jnp.concatenate([img.astype(self.dtype), m], axis=-1)
        f0, f1, f2, f3 = self.trunk_features

        def trunk_conv(ch: int, row: int) -> Conv:  # named by the row of Table 2
            return conv(ch, 3, use_bias=True, name=f"trunk_{row}", dtype=self.dtype,
                        module=self.conv)

        y = act(trunk_conv(f0, 0)(y))
        y = act(trunk_conv(f1, 1)(y))
        y = nn.avg_pool(y, (2, 2), strides=(2, 2))
        y = act(trunk_conv(f2, 3)(y))
        y = nn.avg_pool(y, (2, 2), strides=(2, 2))
        y = act(trunk_conv(f3, 5)(y))
        y = trunk_conv(1, 6)(y)
        return adaptive_avg_pool(y.astype(jnp.float32), self.grid, self.grid)[..., 0]
