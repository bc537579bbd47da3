"""DeepLabv3 on ResNet50 = the paper's ResNet50-G (METHOD.md section 2).

Structure and names are torchvision's ``deeplabv3_resnet50`` (no aux head):
``backbone`` (ResNet50, dilated) -> ``classifier.0`` ASPP (1x1, three atrous 3x3, image
pooling; concat; ``project``) -> ``classifier.1`` 3x3 conv -> ``classifier.2`` BN -> ReLU ->
``classifier.4`` 1x1 conv to the classes -> bilinear upsampling to the input size.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssgan_jax.models import canvas
from ssgan_jax.models.conv import Conv
from ssgan_jax.models.layers import ModuleDef, batch_norm, check_images, conv, resize_bilinear
from ssgan_jax.models.norm import BatchNorm
from ssgan_jax.models.resnet import ResNet

# DeepLabv3's atrous rates at output stride 8 (METHOD.md section 2); they scale with 8/OS.
ASPP_RATES_AT_OS8 = (12, 24, 36)


def aspp_rates(output_stride: int) -> tuple[int, ...]:
    """Rates 12/24/36 at OS8, 6/12/18 at OS16, 3/6/9 at OS32."""
    if output_stride not in (8, 16, 32):
        raise ValueError(f"output_stride must be one of 8, 16, 32; got {output_stride}")
    return tuple(r * 8 // output_stride for r in ASPP_RATES_AT_OS8)


class ASPP(nn.Module):
    """torchvision ``ASPP``: branches ``convs_0..4`` then ``project`` (+ dropout)."""

    rates: tuple[int, ...]
    features: int
    norm: Any  # a configured BatchNorm factory (layers.batch_norm)
    dropout_rate: float = 0.5
    dtype: Any = jnp.float32
    conv: ModuleDef = Conv

    @nn.compact
    def __call__(self, x: jax.Array, train: bool, sizes: jax.Array | None = None,
                 masks: bool = True) -> jax.Array:
        n, h, w, _ = x.shape
        c = self.features
        pooled = canvas.mean(x, sizes)  # over each image's own region (canvas)
        if masks:
            x = canvas.mask(x, sizes)  # what the atrous convs read past the image: zeros
        branches = [
            nn.relu(
                self.norm(name="convs_0_1")(
                    conv(c, 1, name="convs_0_0", dtype=self.dtype, module=self.conv)(x)
                )
            )
        ]
        for i, rate in enumerate(self.rates, start=1):
            y = conv(c, 3, dilation=rate, name=f"convs_{i}_0", dtype=self.dtype,
                     module=self.conv)(x)
            branches.append(nn.relu(self.norm(name=f"convs_{i}_1")(y)))
        # Image-level branch: global average pool -> 1x1 conv -> BN -> ReLU -> back to h x w.
        # (torch resizes the 1x1 map bilinearly, which is a broadcast.)
        k = len(self.rates) + 1
        pooled = conv(c, 1, name=f"convs_{k}_1", dtype=self.dtype, module=self.conv)(pooled)
        pooled = nn.relu(self.norm(name=f"convs_{k}_2")(pooled))
        branches.append(jnp.broadcast_to(pooled, (n, h, w, pooled.shape[-1])))
        y = jnp.concatenate(branches, axis=-1)
        y = conv(c, 1, name="project_0", dtype=self.dtype, module=self.conv)(y)
        y = nn.relu(self.norm(name="project_1")(y))
        return nn.Dropout(self.dropout_rate, deterministic=not train)(y)


class DeepLabV3(nn.Module):
    """DeepLabv3-ResNet50 generator: images [N, H, W, 3] -> logits [N, H, W, num_classes].

    Attributes:
      num_classes: output classes.
      width: channel divisor for the backbone and head (1 = torchvision's sizes).
      output_stride: 8 (paper, METHOD.md section 2) or 16/32; ASPP rates follow.
      dropout_rate: dropout after the ASPP projection (torchvision: 0.5).
      bn_frozen / bn_axis_name: BatchNorm mode, see ``layers.batch_norm``.
      conv / norm: the conv and BatchNorm classes (``models.build_generator`` binds them).

    ``sizes`` (int32 [N, 2], optional): each image's height and width on a padded canvas
    (top-left); each image's logits are then those of the image alone at its own size
    (``canvas``; METHOD.md, "Inference"), zero outside it. In training (``train=True``) only
    the image-level pooling and the final upsampling follow ``sizes``: the masks before the
    convolutions cost 7-10% of a CPU training step and matter little on crops, which are
    seldom padded.

    With ``return_features=True`` returns ``(logits, {"backbone_out", "aspp_out"})``.
    """

    num_classes: int
    width: int = 1
    output_stride: int = 8
    dropout_rate: float = 0.5
    bn_frozen: bool = False
    bn_axis_name: str | None = None
    dtype: Any = jnp.float32
    conv: ModuleDef = Conv
    norm: ModuleDef = BatchNorm

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, return_features: bool = False,
                 sizes: jax.Array | None = None):
        check_images(x, "DeepLabV3")
        _, h, w, _ = x.shape
        norm = batch_norm(train, self.bn_frozen, self.bn_axis_name, module=self.norm)
        feats = ResNet(
            width=self.width,
            output_stride=self.output_stride,
            bn_frozen=self.bn_frozen,
            bn_axis_name=self.bn_axis_name,
            dtype=self.dtype,
            conv=self.conv,
            norm=self.norm,
            name="backbone",
        )(x, train=train, sizes=sizes, masks=not train)
        feature_sizes = feats.get("sizes")
        head = 256 // self.width
        y = ASPP(
            rates=aspp_rates(self.output_stride),
            features=head,
            norm=norm,
            dropout_rate=self.dropout_rate,
            dtype=self.dtype,
            conv=self.conv,
            name="classifier_0",
        )(feats["layer4"], train, feature_sizes, masks=not train)
        aspp_out = y
        if not train:
            y = canvas.mask(y, feature_sizes)
        y = conv(head, 3, name="classifier_1", dtype=self.dtype, module=self.conv)(y)
        y = nn.relu(norm(name="classifier_2")(y))
        y = conv(self.num_classes, 1, use_bias=True, name="classifier_4", dtype=self.dtype,
                 module=self.conv)(y)
        if sizes is None:
            logits = resize_bilinear(y, h, w).astype(jnp.float32)
        else:
            logits = canvas.resize(y.astype(jnp.float32), feature_sizes, sizes, h, w)
        if return_features:
            return logits, {"backbone_out": feats["layer4"], "aspp_out": aspp_out}
        return logits
