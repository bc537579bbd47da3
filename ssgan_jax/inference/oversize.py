"""Images larger than ``data.eval_size``.

Eval runs such an image alone on one device, padded at the bottom/right to a multiple of
``BUCKET`` pixels (one compilation per padded size, not per image size), through sliding
windows of ``data.eval_size`` (``tta.oversize_settings``; the run's own windows where it
already slides), so the forward pass never sees more than what evaluation compiled for
(``evaluator.oversize_step`` on ``batches``).

Predict, which meets images of any size, cuts the windows on the host instead
(``WindowedPredictor``): every window, of every image, is one canvas of the window's size
for one compiled program over all devices, and the host averages the overlapping windows'
logits. However many sizes the images have, that is one program (where the run's inference
uses one scale; with several, ``predictor``'s padded canvases).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator

import jax
import numpy as np

from ssgan_jax.core import parallel
from ssgan_jax.data import images as image_prep
from ssgan_jax.inference import tta

BUCKET = 64  # images larger than data.eval_size are padded to multiples of this


def padded_size(h: int, w: int, bucket: int = BUCKET) -> tuple[int, int]:
    """The canvas of an oversize image of ``h x w`` (``bucket`` 1: the image's own size, for
    a generator that is not told its images' sizes, ``models.registry.own_canvas``)."""
    return image_prep.round_up(h, w, bucket)


def batches(examples: Iterable[dict], ignore_label: int, bucket: int = BUCKET) -> Iterator[dict]:
    """Each oversize example ({"image" [H, W, 3] normalised, "label" [H, W]}) as a one-image
    batch [1, 1, ...] for ``eval_step``: padded (label ``ignore_label``, mask False) to
    ``padded_size``."""
    for ex in examples:
        h, w = ex["label"].shape
        size = padded_size(h, w, bucket)
        yield {"image": image_prep.pad([ex["image"]], size, 0.0, dtype=np.float32)[None],
               "label": image_prep.pad([ex["label"]], size, ignore_label, dtype=np.int32)[None],
               "mask": image_prep.pad([np.ones((h, w), bool)], size, False)[None],
               "valid": np.ones((1, 1), bool)}


def windows_per_call(config) -> int:
    """Windows per forward pass for an oversize image: as many as images of eval_size one
    device takes in evaluation (``eval_batch_size`` over the local devices), so its memory is
    evaluation's."""
    return max(1, config.eval_batch_size // jax.local_device_count())


def predictor(generator, settings: tta.Settings, eval_size: tuple[int, int],
              per_call: int = 0, bucket: int = BUCKET):
    """``predict(variables on one device, normalised image [h, w, 3]) -> classes [h, w]``,
    ``per_call`` windows per forward pass (0: all at once); each image padded to a multiple
    of ``bucket`` (1: its own canvas)."""
    predict = jax.jit(tta.make_predict_fn(generator, tta.oversize_settings(settings,
                                                                           eval_size,
                                                                           per_call)))

    def run(variables, image: np.ndarray) -> np.ndarray:
        x = image_prep.pad([image], padded_size(*image.shape[:2], bucket), 0.0,
                           dtype=np.float32)
        sizes = image_prep.sizes([image.shape])
        return image_prep.crop_back(np.asarray(predict(variables, x, sizes)), [image.shape])[0]

    return run


class WindowedPredictor:
    """``predict(variables on the devices, normalised image [h, w, 3]) -> classes [h, w]``
    for an image of any size: the sliding windows of ``tta.oversize_settings`` (window and
    stride) are cut on the host, padded to the window's size when the image is smaller in
    one direction (each knows its own size: ``models.canvas``), run ``batch`` at a time over
    the devices through one compiled program, and their logits averaged where they overlap;
    with ``settings.flip``, the mirrored image's too. Only for one scale
    (``settings.scales == (1.0,)``)."""

    def __init__(self, generator, settings: tta.Settings, eval_size: tuple[int, int],
                 devices: int, per_device: int):
        if tuple(settings.scales) != (1.0,):
            raise ValueError("WindowedPredictor takes one scale; use predictor() for several")
        slide = tta.oversize_settings(settings, eval_size)
        self.window, self.stride, self.flip = slide.window, slide.stride, settings.flip
        self.devices, self.per_device = devices, per_device
        whole = dataclasses.replace(settings, mode="whole", flip=False)

        def logits(variables, images, sizes):
            return tta.predict_logits(tta.bind(generator, variables), images, whole, sizes)

        self.p_logits = parallel.pmap_eval(logits, 2)

    def _logits(self, variables, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        wh, ww = min(self.window[0], h), min(self.window[1], w)
        corners = [(y, x) for y in tta.window_starts(h, wh, self.stride[0])
                   for x in tta.window_starts(w, ww, self.stride[1])]
        batch = self.devices * self.per_device
        total = count = None
        for start in range(0, len(corners), batch):
            chunk = corners[start:start + batch]
            crops = [image[y:y + wh, x:x + ww] for y, x in chunk]
            x = image_prep.pad(crops, self.window, 0.0, batch=batch, dtype=np.float32)
            sizes = image_prep.sizes([c.shape for c in crops], batch=batch)
            out = np.asarray(self.p_logits(
                variables, x.reshape(self.devices, self.per_device, *x.shape[1:]),
                sizes.reshape(self.devices, self.per_device, 2)))
            out = out.reshape(batch, *out.shape[2:])
            if total is None:
                total = np.zeros((h, w, out.shape[-1]), np.float32)
                count = np.zeros((h, w, 1), np.float32)
            for (y, x0), o in zip(chunk, out, strict=False):
                total[y:y + wh, x0:x0 + ww] += o[:wh, :ww]
                count[y:y + wh, x0:x0 + ww] += 1
        return total / count

    def __call__(self, variables, image: np.ndarray) -> np.ndarray:
        logits = self._logits(variables, image)
        if self.flip:
            logits = logits + self._logits(variables, image[:, ::-1])[:, ::-1]
        return np.argmax(logits, axis=-1).astype(np.int32)
