"""One example's preparation for G, on the host with NumPy and OpenCV (METHOD.md section 6).

* ``train_example``: random scale (bilinear image, nearest label), random horizontal flip,
  padding to the crop (image: the mean colour, i.e. zero once normalised; label: ignore),
  random crop, normalisation. The flip comes before the padding, so the crop's image region
  is its top-left ``sizes`` (``models.canvas``). All randomness comes from the ``rng`` given,
  which the pipeline derives from (seed, example position): the example is a pure function
  of them.
* ``eval_example``: the image normalised and padded at the bottom/right to the evaluation
  canvas, its label padded with ignore, and the validity mask.

Only the crop is normalised (the scaled image is cropped first, in uint8), which is what keeps
a 2048x1024 Cityscapes image at scale 2 cheap.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ssgan_jax.data import images
from ssgan_jax.data.common import IGNORE_LABEL, DataError

cv2.setNumThreads(1)  # parallelism comes from the pipeline's threads and workers


def decode_label(png: bytes, name: str) -> np.ndarray:
    """A prepared label PNG -> uint8 [H, W] of class indices (ignore: 255)."""
    label = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    if label is None or label.ndim != 2:
        raise DataError(f"{name}: the prepared label cannot be decoded; prepare the dataset "
                        "again")
    return label


def _resize(array: np.ndarray, size: tuple[int, int], nearest: bool) -> np.ndarray:
    if array.shape[:2] == size:
        return array
    # INTER_LINEAR and INTER_NEAREST_EXACT sample at pixel centres (half-pixel), no
    # antialiasing: tf.image.resize's bilinear and nearest
    method = cv2.INTER_NEAREST_EXACT if nearest else cv2.INTER_LINEAR
    return cv2.resize(array, (size[1], size[0]), interpolation=method)


def train_example(image: np.ndarray, label: np.ndarray | None, rng: np.random.Generator, *,
                  crop_size: Sequence[int], scale_range: Sequence[float], flip: bool,
                  mean: Sequence[float], std: Sequence[float]):
    """uint8 image [H, W, 3] (and uint8 label [H, W], or None for an unlabelled image) ->
    (image float32 [ch, cw, 3], label int32 [ch, cw] or None, sizes int32 [2])."""
    ch, cw = (int(v) for v in crop_size)
    scale = rng.uniform(*scale_range)
    h, w = image.shape[:2]
    new = (max(1, int(np.round(h * scale))), max(1, int(np.round(w * scale))))
    image = _resize(image, new, nearest=False)
    if label is not None:
        label = _resize(label, new, nearest=True)
    mirror = rng.random() < 0.5  # drawn either way: flips on or off, the same crops
    if flip and mirror:
        image = image[:, ::-1]
        label = None if label is None else label[:, ::-1]
    # the crop's offset in the scaled image padded to at least the crop; the padding is at the
    # bottom/right, so the crop's image part is its top-left region
    oy = int(rng.integers(0, max(new[0], ch) - ch + 1))
    ox = int(rng.integers(0, max(new[1], cw) - cw + 1))
    part = image[oy:oy + ch, ox:ox + cw]
    sizes = np.array(part.shape[:2], np.int32)
    out = images.normalize_and_pad([part], mean, std, (ch, cw))[0]
    if label is None:
        return out, None, sizes
    lab = images.pad([label[oy:oy + ch, ox:ox + cw]], (ch, cw), IGNORE_LABEL)[0]
    return out, lab.astype(np.int32), sizes


def eval_example(image: np.ndarray, label: np.ndarray, *, eval_size: Sequence[int],
                 mean: Sequence[float], std: Sequence[float]):
    """uint8 image [h, w, 3] and label [h, w] -> (image float32 [H, W, 3], label int32
    [H, W], mask bool [H, W]) on the ``eval_size`` canvas."""
    size = tuple(int(v) for v in eval_size)
    x = images.normalize_and_pad([image], mean, std, size)[0]
    y = images.pad([label.astype(np.int32)], size, IGNORE_LABEL)[0]
    mask = images.pad([np.ones(label.shape, bool)], size, False)[0]
    return x, y, mask
