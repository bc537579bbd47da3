"""Images larger than ``data.eval_size``: the one path eval and predict take them on.

Such an image runs alone on one device, padded at the bottom/right to a multiple of
``BUCKET`` pixels (one compilation per padded size, not per image size), through sliding
windows of ``data.eval_size`` (``tta.oversize_settings``; the run's own windows where it
already slides), so the forward pass never sees more than what evaluation compiled for.
Eval takes them through ``evaluator.oversize_step`` on ``batches``; predict through
``predictor``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import jax
import numpy as np

from ssgan_jax.data import images as image_prep
from ssgan_jax.inference import tta

BUCKET = 64  # images larger than data.eval_size are padded to multiples of this


def padded_size(h: int, w: int) -> tuple[int, int]:
    """The canvas of an oversize image of ``h x w``."""
    return image_prep.round_up(h, w, BUCKET)


def batches(examples: Iterable[dict], ignore_label: int) -> Iterator[dict]:
    """Each oversize example ({"image" [H, W, 3] normalised, "label" [H, W]}) as a one-image
    batch [1, 1, ...] for ``eval_step``: padded (label ``ignore_label``, mask False) to
    ``padded_size``."""
    for ex in examples:
        h, w = ex["label"].shape
        size = padded_size(h, w)
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
              per_call: int = 0):
    """``predict(variables on one device, normalised image [h, w, 3]) -> classes [h, w]``,
    ``per_call`` windows per forward pass (0: all at once)."""
    predict = jax.jit(tta.make_predict_fn(generator, tta.oversize_settings(settings,
                                                                           eval_size,
                                                                           per_call)))

    def run(variables, image: np.ndarray) -> np.ndarray:
        x = image_prep.pad([image], padded_size(*image.shape[:2]), 0.0, dtype=np.float32)
        sizes = image_prep.sizes([image.shape])
        return image_prep.crop_back(np.asarray(predict(variables, x, sizes)), [image.shape])[0]

    return run
