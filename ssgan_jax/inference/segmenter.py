"""Use a trained generator from Python: ``Segmenter``.

    from ssgan_jax import Segmenter

    seg = Segmenter.from_workdir("runs/camvid_r50_gan", checkpoint="best")
    seg = Segmenter.from_export("runs/camvid_r50_gan/export/step_5000")  # --mode=export
    classes = seg.predict(image)            # uint8 RGB [H, W, 3] -> class indices [H, W]
    probs = seg.probabilities([a, b])       # images of any sizes -> [H_i, W_i, C] each

Only G runs (SS-GAN's adversary costs nothing at inference). Inputs are uint8 RGB: one image
``[H, W, 3]``, a batch ``[N, H, W, 3]`` or a list of images of different sizes; grey
(``[H, W]`` or ``[H, W, 1]``) is repeated to RGB and an alpha channel is dropped; anything else
is refused with one line. The normalisation is the run's (``data.mean``/``data.std``).

**Compiled once per size bucket.** Each image is padded at the bottom/right (with the mean
colour, exactly as evaluation pads to ``data.eval_size``) to the next multiple of ``bucket``
pixels (default 64) in each direction, and the batch to the next power of two; the jitted
forward pass compiles once per (batch, height, width) bucket, and outputs are cropped back to
each image. So a stream of camera frames of one size compiles once, and images of sizes
100x150 and 120x160 share one program (128x192). G is told each image's own size
(``models.canvas``), so the answer is the image's alone whatever the bucket, and the same as
``--mode=predict``'s and the export's. The inference settings (whole image or sliding
windows, scales, flip) are the run's ``config.eval`` unless overridden.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ssgan_jax import checks
from ssgan_jax import data as data_lib
from ssgan_jax.core import config as config_lib
from ssgan_jax.core.errors import ConfigError, UserError
from ssgan_jax.data import images as image_prep
from ssgan_jax.inference import tta
from ssgan_jax.models import registry


class InputError(UserError, ValueError):
    """An input image Segmenter cannot take."""


def _rgb(image: Any, index: int) -> np.ndarray:
    """uint8 [H, W, 3] from one input image (grey repeated, alpha dropped)."""
    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise InputError(f"image {index} has dtype {a.dtype}; give uint8 RGB (0..255), e.g. "
                         "np.asarray(PIL.Image.open(path).convert('RGB'))")
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4) or min(a.shape[:2]) < 1:
        raise InputError(f"image {index} has shape {a.shape}; give [H, W, 3] RGB (grey [H, W] "
                         "or [H, W, 1] and RGBA [H, W, 4] are converted)")
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return a[:, :, :3]


class _JaxForward:
    """G's forward pass in this process: pads each image (normalised, the mean colour) to
    its ``bucket`` of pixels; one compilation per (batch, height, width) bucket."""

    def __init__(self, generator, variables, settings: tta.Settings, mean, std, bucket: int):
        if bucket < 1:
            raise ConfigError(f"bucket must be >= 1 pixel; got {bucket}")
        if registry.own_canvas(generator):
            bucket = 1  # not told its images' sizes: each image on a canvas of its own size
        self.variables = jax.device_put(variables)
        self.mean, self.std, self.bucket = mean, std, bucket
        self.compilations = 0

        def forward(variables, x, sizes):
            self.compilations += 1  # runs while tracing: once per compiled size bucket
            logits = tta.predict_logits(tta.bind(generator, variables), x, settings, sizes)
            return jax.nn.softmax(logits, axis=-1)

        self._forward = jax.jit(forward)

    def canvas(self, index: int, shape) -> tuple[int, int]:
        return image_prep.round_up(shape[0], shape[1], self.bucket)

    def __call__(self, rgbs, size, batch: int) -> np.ndarray:
        x = image_prep.normalize_and_pad(rgbs, self.mean, self.std, size, batch)
        sizes = image_prep.sizes([im.shape for im in rgbs], batch)
        return np.asarray(self._forward(self.variables, jnp.asarray(x), jnp.asarray(sizes)))


class _ExportForward:
    """An exported program (``--mode=export``): takes uint8 images of its one size, padded
    with its padding colour (export.json), and their own sizes; larger images are refused."""

    def __init__(self, exported, size, padding_rgb, own_canvas: bool = False):
        self.size, self.padding_rgb = tuple(size), np.asarray(padding_rgb, np.uint8)
        self.own_canvas = own_canvas
        self.compilations = 0

        def forward(x, sizes):
            self.compilations += 1  # runs while tracing: once per batch bucket
            return jax.nn.softmax(exported.call(x, sizes), axis=-1)

        self._forward = jax.jit(forward)

    def canvas(self, index: int, shape) -> tuple[int, int]:
        if self.own_canvas and tuple(shape[:2]) != self.size:
            raise InputError(f"image {index} is {shape[0]}x{shape[1]} (HxW); this export's "
                             "generator is not told its images' sizes, so it takes images of "
                             f"exactly {self.size[0]}x{self.size[1]}: resize the image, or "
                             "export with --config.export.size='(H, W)' of your images")
        if not image_prep.fits(shape, self.size):
            raise InputError(f"image {index} is {shape[0]}x{shape[1]} (HxW), larger than the "
                             f"exported model's {self.size[0]}x{self.size[1]}; export with "
                             "--config.export.size='(H, W)' at least that large")
        return self.size

    def __call__(self, rgbs, size, batch: int) -> np.ndarray:
        x = image_prep.pad(rgbs, size, self.padding_rgb, batch, np.uint8)
        sizes = image_prep.sizes([im.shape for im in rgbs], batch)
        return np.asarray(self._forward(jnp.asarray(x), jnp.asarray(sizes)))


class Segmenter:
    """A trained generator with its normalisation, class names and inference settings."""

    def __init__(self, forward, *, class_names: Sequence[str],
                 settings: tta.Settings | None = None, step: int | None = None,
                 source: str = ""):
        """``forward``: the backend (``from_workdir``'s JAX pass or ``from_export``'s program),
        chosen once, here."""
        self._forward = forward
        self.class_names = tuple(class_names)
        self.settings = settings or tta.Settings()
        self.step, self.source = step, source

    @property
    def compilations(self) -> int:
        """Programs traced so far (one per size bucket)."""
        return self._forward.compilations

    @classmethod
    def from_variables(cls, generator, variables: dict[str, Any], *,
                       class_names: Sequence[str], mean: Sequence[float],
                       std: Sequence[float], settings: tta.Settings | None = None,
                       bucket: int = 64, step: int | None = None,
                       source: str = "") -> Segmenter:
        """A flax generator and its variables (any source), with their normalisation."""
        settings = settings or tta.Settings()
        return cls(_JaxForward(generator, variables, settings, mean, std, bucket),
                   class_names=class_names, settings=settings, step=step, source=source)

    @classmethod
    def from_export(cls, path: str) -> Segmenter:
        """The model ``--mode=export`` wrote into ``path`` (``model.stablehlo`` and
        ``export.json``): no checkpoint, config or network code needed. Its input size is
        fixed (``export.json``): smaller images are padded to it, larger ones refused."""
        from ssgan_jax.inference import export

        exported, meta = export.load_export(path)
        forward = _ExportForward(exported, meta["input"]["shape"][1:3],
                                 meta["input"]["padding_rgb"], meta.get("own_canvas", False))
        settings = tta.Settings(**{k: tuple(v) if isinstance(v, list) else v
                                   for k, v in meta["inference"].items()})
        return cls(forward, class_names=meta["class_names"], settings=settings,
                   step=meta["source"]["step"], source=os.path.abspath(path))

    @classmethod
    def from_workdir(cls, workdir: str, checkpoint: str | int = "best", *,
                     bucket: int = 64, **eval_overrides) -> Segmenter:
        """G of checkpoint ``checkpoint`` ("best" by validation mIoU, "latest" or a step) of
        the run in ``workdir``, with the run's config (``<workdir>/config.json``); keyword
        arguments override ``config.eval`` (e.g. ``mode="sliding", flip=True``)."""
        from ssgan_jax.inference.generator import load_generator

        path = os.path.join(os.path.abspath(workdir), "config.json")
        if not os.path.exists(path):
            raise ConfigError(f"{path} does not exist: give the --workdir of a training run")
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
        num_classes = record.pop("num_classes", None)
        config = config_lib.get_config()  # fields added since the run keep defaults
        config.update(record)
        for key, value in eval_overrides.items():
            if key not in config.eval:
                raise ConfigError(f"unknown inference setting {key!r}; one of "
                                  f"{sorted(config.eval.keys())}")
            config.eval[key] = value
        config.eval.checkpoint = str(checkpoint)
        checks.check(config, training=False)
        names = data_lib.class_names(config.data)
        if num_classes is not None and num_classes != len(names):
            raise ConfigError(f"{path} says {num_classes} classes, {config.data.name} has "
                              f"{len(names)}")
        loaded = load_generator(config, workdir)
        return cls.from_variables(loaded.generator, loaded.variables, class_names=names,
                                  mean=config.data.mean, std=config.data.std,
                                  settings=tta.from_config(config), bucket=bucket,
                                  step=loaded.step, source=loaded.path)

    def _batch(self, images) -> tuple[list[np.ndarray], bool]:
        """(RGB images, whether the input was a single image)."""
        if isinstance(images, np.ndarray) and images.ndim == 4:
            return [_rgb(im, i) for i, im in enumerate(images)], False
        if isinstance(images, (list, tuple)):
            return [_rgb(im, i) for i, im in enumerate(images)], False
        return [_rgb(images, 0)], True

    def probabilities(self, images):
        """Softmax maps float32 ``[H, W, C]`` (a list of them for a list, ``[N, H, W, C]`` for
        a batch array)."""
        rgbs, single = self._batch(images)
        if not rgbs:
            return []
        out: list[np.ndarray | None] = [None] * len(rgbs)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, im in enumerate(rgbs):
            groups.setdefault(self._forward.canvas(i, im.shape), []).append(i)
        for size, members in groups.items():
            n = 1 << (len(members) - 1).bit_length()  # batch bucket: a power of two
            probs = self._forward([rgbs[i] for i in members], size, n)
            for i, p in zip(members, image_prep.crop_back(probs, [rgbs[i].shape for i in members]),
                            strict=True):
                out[i] = p
        if single:
            return out[0]
        if isinstance(images, np.ndarray):
            return np.stack(out)
        return out

    def predict(self, images):
        """Class indices uint8 ``[H, W]`` (a list for a list, ``[N, H, W]`` for a batch)."""
        probs = self.probabilities(images)
        if isinstance(probs, list):
            return [p.argmax(-1).astype(np.uint8) for p in probs]
        return probs.argmax(-1).astype(np.uint8)
