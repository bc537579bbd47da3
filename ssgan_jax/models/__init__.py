"""The networks, looked up by name from the config (a dict is enough, as big_vision does).

The adversary's module is imported only when it is built (``build_adversary``) or named
(``models.Adversary``): loading G for inference never imports it.
"""

from __future__ import annotations

import contextlib
import functools

import jax
import jax.numpy as jnp
import ml_collections

from ssgan_jax.core.errors import ConfigError
from ssgan_jax.models import norm as norm_lib
from ssgan_jax.models import registry
from ssgan_jax.models.conv import Conv, use_gemm_forms
from ssgan_jax.models.deeplab import DeepLabV3
from ssgan_jax.models.fcn import FCN8s
from ssgan_jax.models.resnet import ResNet
from ssgan_jax.models.vgg import VGG16Features

GENERATORS = tuple(registry.GENERATORS)
BN_MODES = ("train", "frozen")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
MATMUL_PRECISIONS = ("default", "high", "highest")

__all__ = [
    "Adversary",
    "DeepLabV3",
    "FCN8s",
    "ResNet",
    "VGG16Features",
    "build_generator",
    "build_adversary",
    "matmul_precision",
]


def matmul_precision(model: ml_collections.ConfigDict) -> contextlib.AbstractContextManager:
    """The context in which a run traces its programs: ``model.matmul_precision`` as JAX's
    default precision of float32 convs and matmuls ("default" leaves the backend's own)."""
    name = model.get("matmul_precision", "default")
    if name not in MATMUL_PRECISIONS:
        raise ConfigError(f"model.matmul_precision must be one of {MATMUL_PRECISIONS}; got "
                          f"{name!r} (\"highest\" = full float32, \"default\" = TF32 on "
                          "NVIDIA GPUs)")
    if name == "default":
        return contextlib.nullcontext()
    return jax.default_matmul_precision(name)


def _dtype(name: str):
    if name not in DTYPES:
        raise ConfigError(f"config dtype must be one of {sorted(DTYPES)}; got {name!r}")
    return DTYPES[name]


def _conv(model: ml_collections.ConfigDict):
    """The conv class of every network of the run: ``Conv`` in the form
    ``model.conv_rewrites`` chooses for this backend (``conv.use_gemm_forms``)."""
    return functools.partial(Conv, gemm_forms=use_gemm_forms(model.conv_rewrites))


def build_generator(
    model: ml_collections.ConfigDict, num_classes: int, axis_name: str | None = None
):
    """The generator G that ``model.name`` names (METHOD.md section 2): a built-in one of
    ``registry.GENERATORS`` or an importable ``module:attribute`` (``registry``).

    ``axis_name``: the pmap axis over which BatchNorm statistics are averaged when
    ``model.bn_mode == "train"`` (ignored for "frozen" and for FCN-8s, which has no BN).
    """
    if model.bn_mode not in BN_MODES:
        raise ConfigError(f"model.bn_mode must be one of {BN_MODES}; got {model.bn_mode!r}")
    parts = {"dtype": _dtype(model.dtype), "conv": _conv(model),
             "norm": norm_lib.module_for(model.bn_vjp)}
    return registry.lookup(model.name).build(model, num_classes, axis_name, parts)


def check(config: ml_collections.ConfigDict) -> None:
    """ConfigError for what the networks judge: the generator's name (imported now if it
    is your own), its weight preset, BatchNorm mode, dtype, precision and conv forms."""
    from ssgan_jax.core.config import require

    model = config.model
    generator = registry.lookup(model.name)  # ConfigError: unknown, or not importable
    require(config, not config.weights.generator or bool(generator.weights),
            "weights.generator",
            f"'' for model.name={model.name!r}: the weight importer maps torchvision files "
            f"onto {sorted(k for k, e in registry.GENERATORS.items() if e.weights)} only "
            "(initialise your own generator in its own code)")
    require(config, model.bn_mode in BN_MODES, "model.bn_mode", f"one of {BN_MODES}")
    _dtype(model.dtype)
    matmul_precision(model)
    use_gemm_forms(model.conv_rewrites)  # ConfigError for unknown modes
    norm_lib.module_for(model.bn_vjp)


def __getattr__(name: str):
    if name == "Adversary":
        from ssgan_jax.models.adversary import Adversary

        return Adversary
    raise AttributeError(f"module 'ssgan_jax.models' has no attribute {name!r}")


def build_adversary(adv: ml_collections.ConfigDict,
                    model: ml_collections.ConfigDict | None = None):
    """The adversarial network A (METHOD.md section 3) from ``config.adversary``; its compute
    dtype and conv form are the generator's (``config.model``; default float32 and
    ``conv_rewrites="auto"``). Its BatchNorm (ResNet image branch) is frozen, so
    ``model.bn_vjp`` does not apply."""
    from ssgan_jax.models.adversary import Adversary

    if model is None:
        model = ml_collections.ConfigDict({"dtype": "float32", "conv_rewrites": "auto"})
    return Adversary(
        image_branch=adv.image_branch,
        image_branch_depth=adv.image_branch_depth,
        width=adv.width,
        map_features=tuple(adv.map_features),
        trunk_features=tuple(adv.trunk_features),
        grid=adv.grid,
        activation=adv.activation,
        map_full_resolution=adv.get("map_full_resolution", False),
        dtype=_dtype(model.dtype),
        conv=_conv(model),
    )
