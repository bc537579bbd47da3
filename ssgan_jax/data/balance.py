"""Class balancing of G's cross-entropy (``loss.class_balance``; not the paper's, off in its
configs): SegNet's median-frequency weights from the training labels' pixel counts, counted
when the dataset is prepared (``prepared.class_pixels``)."""

from __future__ import annotations

import numpy as np

from ssgan_jax import data as data_lib
from ssgan_jax.data import prepared


def median_frequency_weights(pixels, image_pixels) -> np.ndarray:
    """Median-frequency class weights (Eigen and Fergus, ICCV 2015; SegNet's CamVid training):
    freq_c = ``pixels[c]`` / ``image_pixels[c]`` (the pixels of the images where c appears),
    w_c = median over the classes seen of freq / freq_c; 0 for a class never seen."""
    pixels = np.asarray(pixels, np.float64)
    image_pixels = np.asarray(image_pixels, np.float64)
    seen = (pixels > 0) & (image_pixels > 0)
    freq = np.where(seen, pixels / np.maximum(image_pixels, 1.0), 0.0)
    median = np.median(freq[seen]) if seen.any() else 1.0
    return np.where(seen, median / np.where(seen, freq, 1.0), 0.0).astype(np.float32)


def resolve_class_weights(config, labeled_ids, dataset: prepared.Prepared) -> None:
    """``loss.class_balance`` resolved into ``loss.class_weights`` (before the config is
    recorded: a resumed run recomputes and compares them), from the stored pixel counts of
    the training labels (only the labelled subset's, in a semi-supervised run)."""
    if not config.loss.class_balance or tuple(config.loss.class_weights):
        return
    counts = dataset.class_pixels(config.data.train_split)
    keep = None if labeled_ids is None else set(labeled_ids)
    rows = [i for i, k in enumerate(counts["ids"]) if keep is None or k in keep]
    pixels = np.asarray(counts["pixels"], np.float64)[rows]
    sizes = np.prod(np.asarray(counts["shapes"], np.float64)[rows], axis=1)
    image_pixels = ((pixels > 0) * sizes[:, None]).sum(0)
    weights = median_frequency_weights(pixels.sum(0), image_pixels)
    weights = weights ** config.loss.class_balance_power
    config.loss.class_weights = tuple(round(float(w), 6) for w in weights)
    print(f"class weights ({config.loss.class_balance} ** {config.loss.class_balance_power}, "
          f"from {len(rows)} training labels): "
          + ", ".join(f"{n} {w:.3g}" for n, w in zip(data_lib.class_names(config.data),
                                                     config.loss.class_weights, strict=True)),
          flush=True)
