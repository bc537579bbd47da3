"""Import torchvision/timm-named weights (safetensors) into our Flax variables.

Naming: a Flax variable path maps to a torch key by turning ``_<digit>`` in module names into
``.<digit>`` (``layer1_0/conv1/kernel`` -> ``layer1.0.conv1.weight``) and the leaf names
kernel/scale -> weight, bias -> bias, mean -> running_mean, var -> running_var.

Layouts: conv OIHW -> HWIO; linear (out, in) -> Dense (in, out); a linear feeding a conv
kernel (VGG16 fc6 (4096, 25088), fc7 (4096, 4096)) is reshaped (out, C, kh, kw) -> HWIO, since
torch flattens pooled NCHW features in C, H, W order.

Every missing, unexpected or mis-shaped key is reported by name: it is an error unless the
caller declared it expected (e.g. the new segmentation head when starting from an ImageNet
classifier), and then it is listed in the returned report.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from ssgan_jax.core.errors import UserError

# torchvision's ImageNet normalisation (RGB in [0, 1]); its ResNet50 and VGG16 weights expect it.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_LEAF_TO_TORCH = {
    ("params", "kernel"): "weight",
    ("params", "scale"): "weight",
    ("params", "bias"): "bias",
    ("batch_stats", "mean"): "running_mean",
    ("batch_stats", "var"): "running_var",
}
_IGNORED_BUFFERS = ("*.num_batches_tracked",)


class WeightImportError(UserError, ValueError):
    """A weights file does not fit the network; the message names every offending key."""


@dataclasses.dataclass
class ImportReport:
    """What an import did, by torch key name."""

    loaded: list[str]
    missing_kept_init: list[str]  # declared expected: kept at their initial values
    unexpected_unused: list[str]  # declared expected: in the file, not used
    ignored_buffers: list[str]  # num_batches_tracked

    def summary(self) -> str:
        parts = [f"loaded {len(self.loaded)} tensors"]
        if self.missing_kept_init:
            parts.append(
                f"kept {len(self.missing_kept_init)} at init ({_names(self.missing_kept_init)})"
            )
        if self.unexpected_unused:
            parts.append(f"unused {len(self.unexpected_unused)} ({_names(self.unexpected_unused)})")
        return "; ".join(parts)


def _names(keys: Sequence[str], limit: int | None = 12) -> str:
    """Comma-separated sorted names; ``limit=None`` lists all of them."""
    keys = sorted(keys)
    if limit is None or len(keys) <= limit:
        return ", ".join(keys)
    return ", ".join(keys[:limit]) + f", ... ({len(keys) - limit} more)"


def torch_name(collection: str, path: Sequence[str]) -> str:
    """Torch key of the Flax variable ``collection/path`` (see module docstring)."""
    leaf = _LEAF_TO_TORCH.get((collection, path[-1]))
    if leaf is None:
        raise KeyError(f"no torch name for variable {collection}/{'/'.join(path)}")
    modules = [re.sub(r"_(?=\d)", ".", p) for p in path[:-1]]
    return ".".join([*modules, leaf])


class WeightsFileMissing(UserError, FileNotFoundError):
    """A weights file named in the config does not exist."""


def check_weights_file(path: str | os.PathLike) -> None:
    """WeightsFileMissing naming ``path`` if it is not a file; WeightImportError if its
    safetensors header cannot be read (only the header is read: this is quick)."""
    from safetensors import SafetensorError, safe_open

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise WeightsFileMissing(
            f"weights file {path!r} does not exist; give the path of a "
            "torchvision/timm state dict saved as .safetensors (see README, 'Pretrained weights')"
        )
    try:
        with safe_open(path, framework="numpy") as f:
            f.keys()
    except (SafetensorError, OSError, ValueError) as e:
        raise _unreadable(path, e) from e


def _unreadable(path: str, e: Exception) -> WeightImportError:
    return WeightImportError(
        f"cannot read {path!r} as safetensors ({e}); is it a .pth file? convert it with "
        "safetensors.torch.save_file(torch.load(p), 'out.safetensors')")


def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All tensors of a safetensors file as float32 numpy arrays, with clear errors."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = os.fspath(path)
    check_weights_file(path)
    try:
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise _unreadable(path, e) from e
    return {k: np.asarray(v, np.float32) for k, v in tensors.items()}


def guess_architecture(keys: Sequence[str]) -> str:
    """Name the torchvision architecture a state dict belongs to, from its keys."""
    keys = set(keys)
    if "backbone.layer4.0.conv1.weight" in keys and "classifier.0.convs.0.0.weight" in keys:
        return "deeplabv3_resnet50"
    if "layer1.0.conv1.weight" in keys and "conv1.weight" in keys:
        return "resnet50"
    if "features.0.weight" in keys and "features.28.weight" in keys:
        return "vgg16"
    return "unknown"


def _to_flax(torch_value: np.ndarray, flax_shape: tuple[int, ...]) -> np.ndarray | None:
    """Convert a torch tensor to a Flax layout of ``flax_shape``; None if it cannot fit."""
    t = torch_value
    if t.ndim == 4 and len(flax_shape) == 4:  # conv OIHW -> HWIO
        t = t.transpose(2, 3, 1, 0)
    elif t.ndim == 2 and len(flax_shape) == 2:  # linear (out, in) -> Dense (in, out)
        t = t.T
    elif t.ndim == 2 and len(flax_shape) == 4:  # linear -> conv (VGG fc6/fc7)
        kh, kw, cin, cout = flax_shape
        if t.shape != (cout, cin * kh * kw):
            return None
        t = t.reshape(cout, cin, kh, kw).transpose(2, 3, 1, 0)
    return t if tuple(t.shape) == tuple(flax_shape) else None


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def load_torch_weights(
    variables: Mapping[str, Any],
    tensors: Mapping[str, np.ndarray],
    *,
    prefix: str = "",
    allow_missing: Sequence[str] = (),
    allow_unexpected: Sequence[str] = (),
    source: str = "the weights",
) -> tuple[dict[str, Any], ImportReport]:
    """Return ``variables`` with every tensor of ``tensors`` loaded by torch name.

    Args:
      variables: Flax variables ({"params": ..., "batch_stats": ...}); leaves may be arrays
        or ``jax.ShapeDtypeStruct`` (then every key must be in the file).
      tensors: torch key -> array (``read_safetensors``).
      prefix: prepended to the file's keys (e.g. "backbone." to put an ImageNet ResNet50
        into DeepLabv3).
      allow_missing / allow_unexpected: fnmatch patterns (on prefixed torch names) of keys
        expected to be absent from the file / unused by the network. Anything else that does
        not match raises ``WeightImportError`` naming every such key.
    """
    file = {prefix + k: v for k, v in tensors.items()}
    ignored = sorted(k for k in file if _matches(k, _IGNORED_BUFFERS))
    flat = {}
    for collection, tree in variables.items():
        for path, value in traverse_util.flatten_dict(dict(tree)).items():
            flat[(collection, path)] = value

    loaded, missing, missing_ok, misshaped = [], [], [], []
    new_flat: dict = {}
    used = set()
    for (collection, path), value in flat.items():
        name = torch_name(collection, path)
        if name not in file:
            if _matches(name, allow_missing) and not isinstance(value, jax.ShapeDtypeStruct):
                missing_ok.append(name)
                new_flat[(collection, path)] = value
            else:
                missing.append(name)
            continue
        used.add(name)
        converted = _to_flax(file[name], tuple(value.shape))
        if converted is None:
            misshaped.append(
                f"{name}: file {tuple(file[name].shape)} vs network {tuple(value.shape)} "
                "(Flax layout)"
            )
            continue
        new_flat[(collection, path)] = jnp.asarray(converted, value.dtype)
        loaded.append(name)

    leftover = [k for k in file if k not in used and k not in ignored]
    unexpected = [k for k in leftover if not _matches(k, allow_unexpected)]
    unexpected_ok = [k for k in leftover if _matches(k, allow_unexpected)]
    if missing or unexpected or misshaped:
        arch = guess_architecture(list(tensors))
        lines = [f"{source} do not fit the network (the file looks like: {arch}):"]
        if missing:
            lines.append(f"  missing from the file ({len(missing)}): {_names(missing, None)}")
        if unexpected:
            lines.append(
                f"  unexpected in the file ({len(unexpected)}): {_names(unexpected, None)}"
            )
        if misshaped:
            lines.append(f"  wrong shape ({len(misshaped)}): {_names(misshaped, None)}")
        lines.append(
            "  check that the file is for this architecture and width (and num_classes for "
            "a full segmentation checkpoint)."
        )
        raise WeightImportError("\n".join(lines))

    out: dict[str, Any] = {}
    for (collection, path), value in new_flat.items():
        out.setdefault(collection, {})[path] = value
    out = {c: traverse_util.unflatten_dict(t) for c, t in out.items()}
    report = ImportReport(sorted(loaded), sorted(missing_ok), sorted(unexpected_ok), ignored)
    return out, report


# How a torchvision/timm file of a given architecture initialises each of our networks.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "deeplabv3_resnet50": {
        "resnet50": {
            "prefix": "backbone.",
            "allow_missing": ("classifier.*",),
            "allow_unexpected": ("backbone.fc.*",),
        },
        "deeplabv3_resnet50": {"allow_unexpected": ("aux_classifier.*",)},
    },
    "fcn8s_vgg16": {
        "vgg16": {
            "allow_missing": ("score_*", "upscore*"),
            "allow_unexpected": ("classifier.6.*",),  # the ImageNet 1000-way fc8
        },
    },
    "adversary": {
        arch: {
            "prefix": "image_branch.",
            "allow_missing": ("map.*", "trunk.*"),
            "allow_unexpected": ("image_branch.*",),  # deeper layers than the branch uses
        }
        for arch in ("vgg16", "resnet50")
    },
}


def load_pretrained(
    target: str, variables: Mapping[str, Any], path: str | os.PathLike
) -> tuple[dict[str, Any], ImportReport]:
    """Initialise ``target`` ("deeplabv3_resnet50", "fcn8s_vgg16" or "adversary") from a file.

    The file's architecture is recognised from its keys and the matching preset applied.
    """
    tensors = read_safetensors(path)
    arch = guess_architecture(list(tensors))
    presets = PRESETS.get(target)
    if presets is None:
        raise ValueError(f"unknown import target {target!r}; one of {sorted(PRESETS)}")
    if arch not in presets:
        raise WeightImportError(
            f"{os.fspath(path)!r} looks like a {arch} state dict, which cannot initialise "
            f"{target}; it takes one of: {sorted(presets)}"
        )
    return load_torch_weights(variables, tensors, source=repr(os.fspath(path)), **presets[arch])


def normalize_imagenet(images_uint8: jax.Array) -> jax.Array:
    """uint8 RGB [N, H, W, 3] -> float32 with torchvision's ImageNet mean/std."""
    x = jnp.asarray(images_uint8, jnp.float32) / 255.0
    return (x - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)


def imagenet_logits(weights_path: str | os.PathLike, images: np.ndarray | jax.Array) -> jax.Array:
    """ImageNet logits [N, 1000] of a torchvision-named ResNet50 file for uint8 RGB images.

    images: uint8 [N, 224, 224, 3] (any H, W >= 32 works), RGB, NHWC. Applies torchvision's
    normalisation; the width (and class count) are read from the file, so a reduced-width
    file works too. Use it to check that imported weights are right (e.g. a known image's
    top-1 class).
    """
    from ssgan_jax.models.resnet import ResNet

    images = np.asarray(images) if not isinstance(images, jax.Array) else images
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"images must be uint8 RGB [N, H, W, 3]; got {images.dtype} {tuple(images.shape)}"
        )
    tensors = read_safetensors(weights_path)
    arch = guess_architecture(list(tensors))
    if arch != "resnet50" or "fc.weight" not in tensors:
        raise WeightImportError(
            f"{os.fspath(weights_path)!r} is not a ResNet50 classifier state dict (looks like: "
            f"{arch}{'' if 'fc.weight' in tensors else ', no fc.weight'})"
        )
    width = 64 // tensors["conv1.weight"].shape[0]
    model = ResNet(width=width, num_classes=tensors["fc.weight"].shape[0])
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 64, 64, 3)))
    variables, _ = load_torch_weights(shapes, tensors, source=repr(os.fspath(weights_path)))
    return model.apply(variables, normalize_imagenet(images), train=False)["logits"]
