"""Image preparation, one copy for every path that feeds or shows G (METHOD.md, "Inference").

G takes images normalised with ``data.mean``/``data.std`` (RGB in [0, 1]), so an image of
uint8 RGB becomes ``(image - 255 mean) / (255 std)``; a padded canvas is padded at the
bottom/right with zeros after normalisation, which is the mean colour (labels with the ignore
value, the validity mask with False). Evaluation pads to ``data.eval_size``, ``Segmenter``
and images larger than eval_size to a size bucket (``round_up``); outputs are cropped back to
each image. The same module turns class maps into pictures (``colorize``, ``blend``,
``side_by_side``). Used by the input pipeline's normalisation constants, predict, eval,
``Segmenter``, the export and training's validation pictures. NumPy only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def scale(mean: Sequence[float], std: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(255 mean, 255 std) float32 [3]: the normalisation of uint8 RGB values."""
    return np.asarray(mean, np.float32) * 255.0, np.asarray(std, np.float32) * 255.0


def normalize(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """uint8 RGB ``[..., 3]`` -> float32 ``(image - 255 mean) / (255 std)``."""
    m, s = scale(mean, std)
    return (np.asarray(image).astype(np.float32) - m) / s


def denormalize(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """``normalize``'s inverse, clipped to uint8 (for pictures)."""
    m, s = scale(mean, std)
    return np.clip(np.asarray(image, np.float32) * s + m, 0, 255).astype(np.uint8)


def padding_colour(mean: Sequence[float]) -> list[int]:
    """The uint8 RGB that pads images before normalisation: the mean colour (zero after it),
    rounded."""
    return [int(round(255.0 * m)) for m in mean]


def round_up(h: int, w: int, multiple: int) -> tuple[int, int]:
    """(h, w) rounded up to multiples of ``multiple``: the size bucket of an image (one
    compilation per bucket, not per image size)."""
    if multiple < 1:
        raise ValueError(f"a size bucket must be >= 1 pixel; got {multiple}")
    return -(-h // multiple) * multiple, -(-w // multiple) * multiple


def fits(shape: Sequence[int], size: Sequence[int]) -> bool:
    """Whether an image of ``shape`` (H, W, ...) fits a canvas of ``size`` (H, W)."""
    return shape[0] <= size[0] and shape[1] <= size[1]


def pad(arrays: Sequence[np.ndarray], size: Sequence[int], fill=0, batch: int | None = None,
        dtype=None) -> np.ndarray:
    """``arrays`` (each [h, w, ...], at most ``size``) stacked into one ``[batch, H, W, ...]``
    canvas, each at the top-left, the rest ``fill`` (a scalar or one value per channel);
    ``batch`` (default: as many as given) adds canvases of ``fill`` only."""
    first = np.asarray(arrays[0])
    n = len(arrays) if batch is None else batch
    if n < len(arrays):
        raise ValueError(f"batch {n} is smaller than the {len(arrays)} arrays given")
    out = np.empty((n, *size, *first.shape[2:]), dtype or first.dtype)
    out[...] = fill
    for i, a in enumerate(arrays):
        if not fits(a.shape, size):
            raise ValueError(f"array {i} of shape {a.shape} does not fit {tuple(size)}")
        out[i, :a.shape[0], :a.shape[1]] = a
    return out


def normalize_and_pad(images: Sequence[np.ndarray], mean: Sequence[float],
                      std: Sequence[float], size: Sequence[int],
                      batch: int | None = None) -> np.ndarray:
    """uint8 RGB images -> G's input float32 ``[batch, H, W, 3]``: each normalised, padded
    with the mean colour (zero) to ``size``; see ``pad``."""
    return pad([normalize(im, mean, std) for im in images], size, 0.0, batch, np.float32)


def sizes(shapes: Sequence[Sequence[int]], batch: int | None = None) -> np.ndarray:
    """int32 ``[batch, 2]``: the (h, w) of each image on its canvas (``pad``), for G's
    ``sizes`` argument (``models.canvas``); filler canvases get (0, 0)."""
    out = np.zeros((len(shapes) if batch is None else batch, 2), np.int32)
    for i, s in enumerate(shapes):
        out[i] = s[0], s[1]
    return out


def crop_back(outputs: np.ndarray, shapes: Sequence[Sequence[int]]) -> list[np.ndarray]:
    """Each image's own top-left ``h x w`` of a padded batch of outputs ``[N, H, W, ...]``."""
    return [outputs[i, :s[0], :s[1]] for i, s in enumerate(shapes)]


def colorize(pred: np.ndarray, palette) -> np.ndarray:
    """Class indices [H, W] -> RGB uint8 [H, W, 3] (indices outside the palette: black)."""
    table = np.zeros((256, 3), np.uint8)
    table[: len(palette)] = np.asarray(palette, np.uint8)
    return table[np.asarray(pred).astype(np.uint8)]


def blend(image: np.ndarray, color: np.ndarray, alpha: float) -> np.ndarray:
    """``alpha * color + (1 - alpha) * image``, uint8."""
    out = alpha * color.astype(np.float32) + (1.0 - alpha) * image.astype(np.float32)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def side_by_side(examples, palette, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """[N, H, 3W, 3] uint8: each (normalised image, label, prediction) example as image |
    truth | prediction, the maps in ``palette`` (ignore: black), all padded to the largest."""
    rows = [np.concatenate([denormalize(image, mean, std), colorize(label, palette),
                            colorize(pred, palette)], axis=1)
            for image, label, pred in examples]
    h = max(r.shape[0] for r in rows)
    w = max(r.shape[1] for r in rows)
    return pad(rows, (h, w), 0)
