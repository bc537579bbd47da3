"""``--mode=predict``: prediction files from a checkpoint, for a glob of images or a split.

Per image ``<stem>``, under ``config.predict.output_dir`` (default
``<workdir>/predictions/<split or files>_step_<N>[_<inference tag>]``):

* ``train_ids/<stem>.png``: class indices (0..C-1), single channel;
* ``color/<stem>.png``: the indices in the dataset's palette;
* ``overlay/<stem>.jpg``: the colour map blended over the image (``predict.overlay_alpha``);
* Cityscapes only, ``label_ids/<stem>.png``: labelIds named after the input image
  (``<city>_<seq>_<frame>_leftImg8bit.png``), the files the evaluation server takes.

Images are padded to ``data.eval_size`` and spread over all devices in batches of
``eval_batch_size``; inference follows ``config.eval`` (whole/sliding, scales, flip). An image
larger than ``data.eval_size`` is not refused: it runs alone, padded to a multiple of
``evaluate.OVERSIZE_BUCKET`` pixels (one compilation per bucket), through sliding windows of
``data.eval_size`` (``inference.oversize_settings``; the run's own windows if it slides).
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Callable, Iterator

import jax
import ml_collections
import numpy as np

from ssgan_jax import inference, steps
from ssgan_jax.data import builder_class, pipeline
from ssgan_jax.data.common import DataError, decode_rgb
from ssgan_jax.errors import ConfigError
from ssgan_jax.evaluate import oversize_bucket, sum_over_processes
from ssgan_jax.run_eval import load_generator

OUTPUTS = ("train_ids", "color", "overlay")


def colorize(pred: np.ndarray, palette) -> np.ndarray:
    """Class indices [H, W] -> RGB uint8 [H, W, 3] (indices outside the palette: black)."""
    table = np.zeros((256, 3), np.uint8)
    table[: len(palette)] = np.asarray(palette, np.uint8)
    return table[pred.astype(np.uint8)]


def blend(image: np.ndarray, color: np.ndarray, alpha: float) -> np.ndarray:
    """``alpha * color + (1 - alpha) * image``, uint8."""
    out = alpha * color.astype(np.float32) + (1.0 - alpha) * image.astype(np.float32)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _save_png(path: str, array: np.ndarray, mode: str | None = None) -> None:
    from PIL import Image

    Image.fromarray(array, mode=mode).save(path, format="PNG")


def write_prediction(
    out_dir: str,
    name: str,
    image: np.ndarray,
    pred: np.ndarray,
    palette,
    alpha: float = 0.5,
    server_labels: Callable[[np.ndarray], np.ndarray] | None = None,
) -> dict[str, str]:
    """Write one image's files (see the module doc); returns {output kind: path}."""
    from PIL import Image

    stem = os.path.splitext(os.path.basename(name))[0]
    color = colorize(pred, palette)
    paths = {kind: os.path.join(out_dir, kind, f"{stem}.{'jpg' if kind == 'overlay' else 'png'}")
             for kind in OUTPUTS}
    if server_labels is not None:
        paths["label_ids"] = os.path.join(out_dir, "label_ids", f"{stem}.png")
    for path in paths.values():
        os.makedirs(os.path.dirname(path), exist_ok=True)
    _save_png(paths["train_ids"], pred.astype(np.uint8), "L")
    _save_png(paths["color"], color, "RGB")
    Image.fromarray(blend(image, color, alpha), mode="RGB").save(paths["overlay"], quality=92)
    if server_labels is not None:
        _save_png(paths["label_ids"], server_labels(pred).astype(np.uint8), "L")
    return paths


def _glob_inputs(pattern: str) -> list[tuple[str, Callable[[], np.ndarray]]]:
    files = sorted(f for f in glob.glob(os.path.expanduser(pattern), recursive=True)
                   if os.path.isfile(f))
    if not files:
        raise DataError(f"config.predict.input={pattern!r} matches no file; give a glob of "
                        "images, e.g. 'photos/*.jpg' (quoted), or '' for a dataset split")
    stems: dict[str, str] = {}
    for f in files:
        stem = os.path.splitext(os.path.basename(f))[0]
        if stem in stems:
            raise DataError(f"{stems[stem]} and {f} would write the same prediction files "
                            f"({stem}.png); narrow config.predict.input")
        stems[stem] = f

    def reader(path: str):
        def read() -> np.ndarray:
            try:
                with open(path, "rb") as fh:
                    data = fh.read()
            except OSError as e:
                raise DataError(f"{path}: cannot read input image ({e})") from e
            return decode_rgb(data, path)
        return read

    return [(f, reader(f)) for f in files]


def _split_inputs(config, split: str) -> Iterator[tuple[str, Callable[[], np.ndarray]]]:
    import tensorflow_datasets as tfds

    builder = pipeline.ensure_prepared(config.data)
    pipeline.check_split(builder, split)
    ds = builder.as_dataset(split=split, shuffle_files=False,
                            decoders={"image": tfds.decode.SkipDecoding()})
    for ex in tfds.as_numpy(ds):
        name = ex["file_name"].decode()
        data = ex["image"]
        yield name, (lambda data=data, name=name: decode_rgb(data, name))


def _batches(items, size: int, limit: int):
    batch = []
    for i, item in enumerate(items):
        if limit and i >= limit:
            break
        if i % jax.process_count() != jax.process_index():
            continue
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _normalized(image: np.ndarray, data, size: tuple[int, int]) -> np.ndarray:
    """``image`` normalised and padded (bottom/right, 0 = the mean colour, as evaluation pads)
    to ``size``."""
    h, w = image.shape[:2]
    mean = np.asarray(data.mean, np.float32) * 255.0
    std = np.asarray(data.std, np.float32) * 255.0
    out = np.zeros((*size, 3), np.float32)
    out[:h, :w] = (image.astype(np.float32) - mean) / std
    return out


def _fits(image: np.ndarray, size: tuple[int, int]) -> bool:
    return image.shape[0] <= size[0] and image.shape[1] <= size[1]


def run_predict(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Write prediction files for ``config.predict.input`` (or ``config.eval.split``)."""
    settings = inference.from_config(config)
    builder = builder_class(config.data.name)
    class_names = tuple(builder.CLASS_NAMES)
    pattern = config.predict.input
    split = config.eval.split or config.data.val_split
    if not 0.0 <= config.predict.overlay_alpha <= 1.0:
        raise ConfigError(f"config.predict.overlay_alpha must be in [0, 1]; got "
                         f"{config.predict.overlay_alpha}")
    items = _glob_inputs(pattern) if pattern else _split_inputs(config, split)
    loaded = load_generator(config, workdir, len(class_names))
    step, path = loaded.step, loaded.path
    tag = settings.tag()
    source = "files" if pattern else pipeline.split_tag(split)
    out_dir = config.predict.output_dir or os.path.join(
        os.path.abspath(workdir), "predictions",
        f"{source}_step_{step}" + (f"_{tag}" if tag else ""))
    devices = jax.local_device_count()
    per_device = pipeline.per_device_batch(config.eval_batch_size, devices, jax.process_count())
    size = (devices * per_device)
    eh, ew = config.data.eval_size
    p_predict = steps.pmap_eval(inference.make_predict_fn(loaded.generator, settings))
    variables = steps.on_devices(loaded.variables)
    server_labels = getattr(builder, "SERVER_LABELS", None)
    written = 0
    print(f"predicting with checkpoint step {step} into {out_dir}", flush=True)
    # images larger than data.eval_size: one at a time, padded to a multiple of
    # OVERSIZE_BUCKET, through sliding windows of eval_size (inference.oversize_settings)
    big_predict = jax.jit(inference.make_predict_fn(
        loaded.generator, inference.oversize_settings(settings, (eh, ew))))
    one_device = None  # G's variables on one device, copied at the first oversize image
    oversize = 0
    for batch in _batches(items, size, config.predict.max_images):
        images = [read() for _, read in batch]
        fit = [i for i, image in enumerate(images) if _fits(image, (eh, ew))]
        preds: dict[int, np.ndarray] = {}
        if fit:
            x = np.zeros((size, eh, ew, 3), np.float32)
            for j, i in enumerate(fit):
                x[j] = _normalized(images[i], config.data, (eh, ew))
            out = np.asarray(p_predict(variables, x.reshape(devices, per_device, eh, ew, 3)))
            preds.update(zip(fit, out.reshape(size, eh, ew), strict=False))
        for i in (i for i in range(len(images)) if i not in preds):
            h, w = images[i].shape[:2]
            x = _normalized(images[i], config.data, oversize_bucket(h, w))[None]
            if one_device is None:
                one_device = jax.device_put(loaded.variables, jax.local_devices()[0])
            preds[i] = np.asarray(big_predict(one_device, x))[0]
            oversize += 1
        for i, ((name, _), image) in enumerate(zip(batch, images, strict=True)):
            h, w = image.shape[:2]
            write_prediction(out_dir, name, image, preds[i][:h, :w], builder.PALETTE,
                             config.predict.overlay_alpha, server_labels)
            written += 1
        print(f"  {written} images", flush=True)
    if oversize:
        print(f"  {oversize} images larger than data.eval_size={(eh, ew)} went through "
              f"sliding windows of that size", flush=True)
    # every process wrote its share of the images
    written = int(sum_over_processes(np.asarray(written, np.int64)))
    summary = {"step": step, "checkpoint": path, "source": pattern or split,
               "images": written, "output_dir": out_dir, "class_names": list(class_names),
               "inference": settings.as_dict()}
    if jax.process_index() == 0:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "predictions.json"), "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=1)
    print(json.dumps({k: summary[k] for k in ("step", "source", "images", "output_dir")}),
          flush=True)
    return summary
