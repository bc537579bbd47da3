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
larger than ``data.eval_size`` is not refused: its sliding windows of ``data.eval_size`` are
cut on the host and run through one program for all sizes (``oversize.WindowedPredictor``;
with several scales, one program per ``oversize.BUCKET``-padded size), so images of any mix
of sizes compile a bounded number of programs.

``predictions.json`` is written after every batch (the images done so far, ``complete``
false until the end): rerunning the same command after a stop resumes after the last image
written; after a complete one it predicts everything again. In a job of several processes
each writes its own share and its own progress (``predictions.process<k>.json`` beside it);
a resume skips what any of them wrote, and at the end process 0 lists every image in
``predictions.json`` and removes the others' files.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Callable, Iterator

import jax
import ml_collections
import numpy as np

from ssgan_jax.core import parallel
from ssgan_jax.data import builder_class, open_prepared, pipeline, prepared
from ssgan_jax.data import images as image_prep
from ssgan_jax.data.common import DataError, decode_rgb
from ssgan_jax.inference import oversize, tta
from ssgan_jax.inference.generator import load_generator
from ssgan_jax.models import registry

OUTPUTS = ("train_ids", "color", "overlay")


def _process() -> tuple[int, int]:
    """(this process's index, the job's process count): each takes every count-th image."""
    return jax.process_index(), jax.process_count()


def _save_png(path: str, array: np.ndarray, mode: str | None = None) -> None:
    from PIL import Image

    _atomic(path, lambda tmp: Image.fromarray(array, mode=mode).save(tmp, format="PNG"))


def _atomic(path: str, write: Callable[[str], None]) -> None:
    """``write(temporary path)`` then rename it to ``path``: a killed run leaves no half
    file under the final name (a resumed predict skips the images predictions.json lists).
    """
    tmp = path + ".tmp"
    write(tmp)
    os.replace(tmp, path)


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
    color = image_prep.colorize(pred, palette)
    paths = {kind: os.path.join(out_dir, kind, f"{stem}.{'jpg' if kind == 'overlay' else 'png'}")
             for kind in OUTPUTS}
    if server_labels is not None:
        paths["label_ids"] = os.path.join(out_dir, "label_ids", f"{stem}.png")
    for path in paths.values():
        os.makedirs(os.path.dirname(path), exist_ok=True)
    _save_png(paths["train_ids"], pred.astype(np.uint8), "L")
    _save_png(paths["color"], color, "RGB")
    overlay = Image.fromarray(image_prep.blend(image, color, alpha), mode="RGB")
    _atomic(paths["overlay"], lambda tmp: overlay.save(tmp, format="JPEG", quality=92))
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


def _split_inputs(dataset: prepared.Prepared,
                  split: str) -> Iterator[tuple[str, Callable[[], np.ndarray]]]:
    examples = dataset.examples(split)
    for i in range(len(examples)):
        ex = examples[i]
        name, data = prepared.file_name(ex), ex["image"]
        yield name, (lambda data=data, name=name: decode_rgb(data, name))


def _batches(items, size: int, limit: int, process: int, processes: int):
    batch = []
    for i, item in enumerate(items):
        if limit and i >= limit:
            break
        if i % processes != process:
            continue
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _read(batch, skip: bool, skipped: list[str]):
    """(the items whose image reads, their RGB arrays); an unreadable one stops the run with
    its DataError, or with ``skip`` is said, recorded in ``skipped`` and left out."""
    kept, rgbs = [], []
    for name, read in batch:
        try:
            rgbs.append(read())
        except DataError as e:
            if not skip:
                raise DataError(f"{e} (or --config.predict.skip_unreadable=True to skip such "
                                "files)") from None
            print(f"  skipped {name}: {e}", flush=True)
            skipped.append(name)
            continue
        kept.append((name, read))
    return kept, rgbs


SUMMARY = "predictions.json"
PROGRESS = "predictions.process{}.json"  # another process's progress ({}: its index)
SAME = ("step", "checkpoint", "source", "inference", "output_dir")  # what a resume must share


def _progress_path(out_dir: str, process: int) -> str:
    """Where ``process`` records what it wrote: process 0 in the summary itself."""
    return os.path.join(out_dir, SUMMARY if process == 0 else PROGRESS.format(process))


def _others(out_dir: str) -> list[str]:
    """The progress files of processes other than 0 in ``out_dir``."""
    return sorted(glob.glob(os.path.join(glob.escape(out_dir), PROGRESS.format("*"))))


def _resumable(out_dir: str, summary: dict) -> dict[str, dict]:
    """{progress file: its record} of a stopped predict of the same checkpoint, source and
    settings in ``out_dir``, every process's ({} if there is none, it was made with other
    settings, or it completed)."""
    found = {}
    for path in [os.path.join(out_dir, SUMMARY), *_others(out_dir)]:
        try:
            with open(path, encoding="utf-8") as f:
                before = json.load(f)
        except (OSError, ValueError):
            continue
        if (all(before.get(k) == summary[k] for k in SAME) and "written" in before
                and not before.get("complete")):
            found[path] = before
    return found


def _save_summary(out_dir: str, summary: dict, process: int) -> None:
    """``process``'s progress (process 0's: the summary)."""
    os.makedirs(out_dir, exist_ok=True)
    _atomic(_progress_path(out_dir, process), lambda tmp: _dump(tmp, summary))


def _merged(out_dir: str, summary: dict) -> dict:
    """Process 0, once every process has finished its share: the summary listing every
    image written and every one skipped (its own and the other processes' progress), whose
    files it then removes."""
    done = _resumable(out_dir, summary)
    written = sorted({n for d in [summary, *done.values()] for n in d["written"]})
    skipped = sorted({n for d in [summary, *done.values()] for n in d["skipped_unreadable"]})
    for path in _others(out_dir):
        os.remove(path)
    return {**summary, "written": written, "skipped_unreadable": skipped,
            "images": len(written)}


def _dump(path: str, body: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(body, f, indent=1)


def run_predict(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Write prediction files for ``config.predict.input`` (or ``config.eval.split``)."""
    settings = tta.from_config(config)
    builder = builder_class(config.data)
    class_names = tuple(builder.CLASS_NAMES)
    pattern = config.predict.input
    split = config.eval.split or config.data.val_split
    files = _glob_inputs(pattern) if pattern else None
    loaded = load_generator(config, workdir)  # (no checkpoint: said before any data is read)
    step, path = loaded.step, loaded.path
    # the prepared dataset, opened once: a split's images, or the size "auto" stands for
    needs_dataset = not pattern or config.data.eval_size == "auto"
    dataset = open_prepared(config.data) if needs_dataset else None
    if dataset is not None:
        pipeline.resolve_eval_size(config.data, dataset)  # "auto" (a run without its config)
    items = files if pattern else _split_inputs(dataset, split)
    tag = settings.tag()
    source = "files" if pattern else pipeline.split_tag(split)
    out_dir = config.predict.output_dir or os.path.join(
        os.path.abspath(workdir), "predictions",
        f"{source}_step_{step}" + (f"_{tag}" if tag else ""))
    devices = jax.local_device_count()
    process, processes = _process()
    per_device = pipeline.per_device_batch(config.eval_batch_size, devices, processes)
    size = (devices * per_device)
    eh, ew = config.data.eval_size
    p_predict = parallel.pmap_eval(tta.make_predict_fn(loaded.generator, settings), 2)
    variables = parallel.on_devices(loaded.variables)
    server_labels = getattr(builder, "SERVER_LABELS", None)
    summary = {"step": step, "checkpoint": path, "source": pattern or split, "images": 0,
               "skipped_unreadable": [], "output_dir": out_dir,
               "class_names": list(class_names), "inference": settings.as_dict(),
               "complete": False, "written": []}
    done = _resumable(out_dir, summary)  # a stopped predict: go on after it
    mine = done.get(_progress_path(out_dir, process))
    if mine is not None:
        summary.update(images=mine["images"], written=mine["written"],
                       skipped_unreadable=mine["skipped_unreadable"])
    finished = {n for d in done.values() for n in d["written"]}  # by any process
    if done:
        print(f"resuming: {len(finished)} images of {out_dir} are done", flush=True)
    print(f"predicting with checkpoint step {step} into {out_dir}", flush=True)
    # a generator not told its images' sizes takes each image off the canvas on its own
    own = registry.own_canvas(loaded.generator)
    windowed = tuple(settings.scales) == (1.0,) and not own  # host windows: one program
    big_predict = (oversize.WindowedPredictor(loaded.generator, settings, (eh, ew), devices,
                                              per_device) if windowed else
                   oversize.predictor(loaded.generator, settings, (eh, ew),
                                      oversize.windows_per_call(config),
                                      bucket=1 if own else oversize.BUCKET))
    # the oversize path's variables: the devices' copy (windows on the host), or one device's,
    # copied at the first oversize image
    big_variables = None
    larger = 0
    skipped: list[str] = summary["skipped_unreadable"]
    from tqdm import tqdm

    if pattern:
        total = len(items)
    else:
        total = dataset.split_size(split)
    if config.predict.max_images:
        total = min(total, config.predict.max_images)
    bar = tqdm(desc="predicting", total=total, unit=" images", mininterval=2.0,
               dynamic_ncols=True, disable=process != 0)
    for batch in _batches(items, size, config.predict.max_images, process, processes):
        todo = [item for item in batch if item[0] not in finished]
        if len(todo) < len(batch):
            bar.update((len(batch) - len(todo)) * processes)
        batch, rgbs = _read(todo, config.predict.skip_unreadable, skipped)
        if not batch:
            continue
        fit = [i for i, image in enumerate(rgbs)
               if (image.shape[:2] == (eh, ew) if own else image_prep.fits(image.shape,
                                                                           (eh, ew)))]
        preds: dict[int, np.ndarray] = {}
        if fit:
            x = image_prep.normalize_and_pad([rgbs[i] for i in fit], config.data.mean,
                                         config.data.std, (eh, ew), batch=size)
            sizes = image_prep.sizes([rgbs[i].shape for i in fit], batch=size)
            out = np.asarray(p_predict(variables, x.reshape(devices, per_device, eh, ew, 3),
                                       sizes.reshape(devices, per_device, 2)))
            out = out.reshape(size, eh, ew)
            preds.update(zip(fit, image_prep.crop_back(out, [rgbs[i].shape for i in fit]),
                             strict=True))
        for i in (i for i in range(len(rgbs)) if i not in preds):
            if big_variables is None:
                big_variables = variables if windowed else parallel.one_device(variables)
            preds[i] = big_predict(big_variables, image_prep.normalize(rgbs[i], config.data.mean,
                                                                config.data.std))
            larger += 1
        for i, ((name, _), image) in enumerate(zip(batch, rgbs, strict=True)):
            write_prediction(out_dir, name, image, preds[i], builder.PALETTE,
                             config.predict.overlay_alpha, server_labels)
            summary["written"].append(name)
        summary["images"] = len(summary["written"])
        _save_summary(out_dir, summary, process)  # as it goes: a stopped run resumes from here
        bar.update(len(batch) * processes)
    bar.close()
    if larger:
        print(f"  {larger} images " + ("not of" if own else "larger than") +
              f" data.eval_size={(eh, ew)} went " + ("one by one on their own canvas" if own
                                                     else "through sliding windows of that "
                                                     "size"), flush=True)
    # (a barrier too: every process has written its share and its progress)
    images = int(parallel.sum_over_processes(np.asarray(len(summary["written"]), np.int64)))
    if process != 0:
        return {**summary, "images": images, "complete": True}
    summary = {**_merged(out_dir, summary), "complete": True}
    _save_summary(out_dir, summary, process)
    print(json.dumps({k: summary[k] for k in ("step", "source", "images", "output_dir")}),
          flush=True)
    return summary
