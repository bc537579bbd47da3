"""The networks, looked up by name from the config (a dict is enough; STYLE.md)."""

from __future__ import annotations

import jax.numpy as jnp
import ml_collections

from ssgan_jax.models.adversary import Adversary
from ssgan_jax.models.conv import check_rewrites
from ssgan_jax.models.deeplab import DeepLabV3
from ssgan_jax.models.fcn import FCN8s
from ssgan_jax.models.resnet import ResNet
from ssgan_jax.models.vgg import VGG16Features

GENERATORS = ("deeplabv3_resnet50", "fcn8s_vgg16")
BN_MODES = ("train", "frozen")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}

__all__ = [
    "Adversary",
    "DeepLabV3",
    "FCN8s",
    "ResNet",
    "VGG16Features",
    "build_generator",
    "build_adversary",
]


def _dtype(name: str):
    if name not in DTYPES:
        raise ValueError(f"config dtype must be one of {sorted(DTYPES)}; got {name!r}")
    return DTYPES[name]


def build_generator(
    model: ml_collections.ConfigDict, num_classes: int, axis_name: str | None = None
):
    """The generator G named by ``model.name`` (PAPER.md section 2).

    ``axis_name``: the pmap axis over which BatchNorm statistics are averaged when
    ``model.bn_mode == "train"`` (ignored for "frozen" and for FCN-8s, which has no BN).
    """
    if model.bn_mode not in BN_MODES:
        raise ValueError(f"model.bn_mode must be one of {BN_MODES}; got {model.bn_mode!r}")
    dtype = _dtype(model.dtype)
    conv_rewrites = check_rewrites(model.conv_rewrites)
    if model.name == "deeplabv3_resnet50":
        return DeepLabV3(
            num_classes=num_classes,
            width=model.width,
            output_stride=model.output_stride,
            dropout_rate=model.dropout_rate,
            bn_frozen=model.bn_mode == "frozen",
            bn_axis_name=axis_name,
            dtype=dtype,
            conv_rewrites=conv_rewrites,
        )
    if model.name == "fcn8s_vgg16":
        return FCN8s(
            num_classes=num_classes,
            width=model.width,
            dropout_rate=model.dropout_rate,
            dtype=dtype,
            conv_rewrites=conv_rewrites,
        )
    raise ValueError(f"model.name must be one of {GENERATORS}; got {model.name!r}")


def build_adversary(adv: ml_collections.ConfigDict, dtype: str = "float32",
                    conv_rewrites: str = "auto") -> Adversary:
    """The adversarial network A (PAPER.md section 3); ``dtype`` and ``conv_rewrites`` are the
    generator's (``config.model``)."""
    return Adversary(
        image_branch=adv.image_branch,
        image_branch_depth=adv.image_branch_depth,
        width=adv.width,
        map_features=tuple(adv.map_features),
        trunk_features=tuple(adv.trunk_features),
        grid=adv.grid,
        activation=adv.activation,
        dtype=_dtype(dtype),
        conv_rewrites=check_rewrites(conv_rewrites),
    )
