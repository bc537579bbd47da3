"""The generators a run can name: one table of the built-in ones, and any importable Flax
module named ``module:attribute`` (README "Your own generator").

``config.model.name`` is either a key of ``GENERATORS`` or ``"my_package.my_module:MyNet"``: an
attribute of an importable module that is a ``flax.linen.Module`` class, or a factory
returning one, built as ``MyNet(num_classes=..., **config.model.kwargs)``. Its
``__call__(images [N, H, W, 3], train: bool)`` returns logits ``[N, H, W, num_classes]`` at
the input's resolution. One that takes ``axis_name`` (a field or a factory argument) is
given training's device axis there, for its ``nn.BatchNorm(axis_name=...)`` to average the
batch statistics over the devices (None at inference). A generator whose ``__call__`` also
takes ``sizes`` (each image's own
height and width on a padded canvas, ``models.canvas``) computes each image as alone; one
that does not is run by inference on canvases its images fill (``takes_sizes``), which is as
exact and maybe slower.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable

import flax.linen as nn
import ml_collections

from ssgan_jax.core.errors import ConfigError
from ssgan_jax.core.named import import_attribute


@dataclasses.dataclass(frozen=True)
class Entry:
    """A generator of the table: ``build(model config, num_classes, axis_name, parts)`` ->
    the module (``parts``: the run's dtype, conv and norm classes), and the
    ``training/weights.py`` preset that imports torchvision/timm files into it ("" = none)."""

    build: Callable[..., nn.Module]
    weights: str = ""


def _deeplab(model, num_classes: int, axis_name, parts) -> nn.Module:
    from ssgan_jax.models.deeplab import DeepLabV3

    return DeepLabV3(num_classes=num_classes, width=model.width,
                     output_stride=model.output_stride, dropout_rate=model.dropout_rate,
                     bn_frozen=model.bn_mode == "frozen", bn_axis_name=axis_name, **parts)


def _fcn(model, num_classes: int, axis_name, parts) -> nn.Module:
    from ssgan_jax.models.fcn import FCN8s

    return FCN8s(num_classes=num_classes, width=model.width, dropout_rate=model.dropout_rate,
                 dtype=parts["dtype"], conv=parts["conv"])


GENERATORS: dict[str, Entry] = {
    "deeplabv3_resnet50": Entry(_deeplab, weights="deeplabv3_resnet50"),
    "fcn8s_vgg16": Entry(_fcn, weights="fcn8s_vgg16"),
}


def _custom(name: str) -> Entry:
    target = import_attribute(
        name, f"config.model.name={name!r}",
        f"config.model.name must be one of {sorted(GENERATORS)} or an importable "
        f"'module:attribute' naming a flax.linen.Module class (e.g. 'my_package.unet:UNet'); "
        f"got {name!r}")
    if not callable(target):
        raise ConfigError(f"config.model.name={name!r} names a {type(target).__name__}, not a "
                          "flax.linen.Module class or a factory returning one")

    def build(model, num_classes: int, axis_name, parts) -> nn.Module:
        kwargs = model.get("kwargs", ml_collections.ConfigDict()).to_dict()
        if axis_name is not None and "axis_name" not in kwargs and takes(target, "axis_name"):
            kwargs["axis_name"] = axis_name  # training's device axis, for its BatchNorm
        try:
            module = target(num_classes=num_classes, **kwargs)
        except TypeError as e:
            raise ConfigError(
                f"config.model.name={name!r} cannot be built as {name.partition(':')[2]}("
                f"num_classes={num_classes}, **config.model.kwargs={kwargs}): {e}") from e
        if not isinstance(module, nn.Module):
            raise ConfigError(f"config.model.name={name!r} built a {type(module).__name__}, "
                              "not a flax.linen.Module")
        return module

    return Entry(build)


def takes(target, argument: str) -> bool:
    """Whether ``target`` (a flax module class, or a factory) takes ``argument`` by name: a
    field of the module, or a parameter of the factory."""
    if isinstance(target, type) and issubclass(target, nn.Module):
        return argument in {f.name for f in dataclasses.fields(target)}
    try:
        return argument in inspect.signature(target).parameters
    except (TypeError, ValueError):
        return False


def lookup(name: str) -> Entry:
    """The table's entry for ``name``, or a custom generator's (imported now)."""
    return GENERATORS[name] if name in GENERATORS else _custom(name)


def takes_sizes(generator: nn.Module) -> bool:
    """Whether ``generator.__call__`` takes ``sizes`` (computes each image of a padded canvas
    as alone); the built-in generators do. (An object that is not a flax module: whether its
    ``apply`` does.)"""
    call = type(generator).__call__ if isinstance(generator, nn.Module) else generator.apply
    return "sizes" in inspect.signature(call).parameters


def apply(generator: nn.Module, variables, images, *, train: bool, sizes=None, **kwargs):
    """``generator.apply``, passing ``sizes`` where the generator takes them. A generator
    that does not see its images as filling the canvas: callers give it such canvases
    (inference: ``own_canvas``)."""
    if sizes is not None and takes_sizes(generator):
        kwargs["sizes"] = sizes
    return generator.apply(variables, images, train=train, **kwargs)


def own_canvas(generator: nn.Module) -> bool:
    """Inference must give ``generator`` each image on a canvas of the image's own size
    (it cannot be told which part of a canvas is padding)."""
    return not takes_sizes(generator)


def check_logits(generator: nn.Module, logits, image_shape, num_classes: int) -> None:
    """ConfigError unless G's output ``logits`` (an array or its shape struct) for images
    ``image_shape`` [N, H, W, 3] is [N, H, W, num_classes]."""
    want = (*tuple(image_shape)[:3], num_classes)
    if not hasattr(logits, "shape") or tuple(logits.shape) != want:
        got = getattr(logits, "shape", type(logits).__name__)
        raise ConfigError(f"generator {type(generator).__name__} returned {got} for images "
                          f"{tuple(image_shape)}; a generator returns logits {want} "
                          "(N, H, W, num_classes) at the input's resolution")
