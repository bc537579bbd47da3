"""Does an answer move with the padding? One checkpoint, every inference path, compared.

    python -m launch.bench.padding --config=configs/demo.py --workdir=/tmp/ssgan_demo \
        [--config.x=y ...]

For ``config.eval.checkpoint`` of the workdir and the split ``config.eval.split``:

* ``--mode=eval``'s mIoU with ``data.eval_size`` equal to the split's largest image, twice
  that, and the config's own (each image is computed as alone at its own size, so these agree
  up to float rounding);
* the class maps of ``--mode=predict`` (eval_size canvas), ``Segmenter.from_workdir`` with
  buckets 32, 64 and 128, ``Segmenter.from_export`` and onnxruntime on the ONNX file (both at
  ``export.size`` = twice the largest image), each image's share of pixels on which each
  agrees with the image run alone (no padding at all).

Prints one JSON object; ``--out`` also writes it to a file.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import tempfile

import numpy as np
from absl import app, flags
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", None, "Config file (configs/X.py[:args]).")
flags.DEFINE_string("workdir", None, "The run whose checkpoint to use.")
flags.DEFINE_string("out", "", "Also write the JSON here.")


def main(_):
    import jax
    import jax.numpy as jnp
    from PIL import Image

    from ssgan_jax import Segmenter, checks
    from ssgan_jax.data import images as image_prep
    from ssgan_jax.data import open_prepared, prepared
    from ssgan_jax.data.common import decode_rgb
    from ssgan_jax.inference import export, tta
    from ssgan_jax.inference.eval_checkpoint import run_eval
    from ssgan_jax.inference.generator import load_generator
    from ssgan_jax.inference.predict import run_predict

    config, workdir = flags.FLAGS.config, os.path.abspath(flags.FLAGS.workdir)
    if not config.data.data_dir:
        config.data.data_dir = os.path.join(workdir, "tensorflow_datasets")
    checks.check(config)
    split = config.eval.split or config.data.val_split
    dataset = open_prepared(config.data)  # opened once
    sizes = [(h, w) for _, h, w in dataset.image_sizes(split)]
    largest = (max(h for h, _ in sizes), max(w for _, w in sizes))
    scratch = tempfile.mkdtemp(prefix="ssgan_padding_")
    result = {"workdir": workdir, "split": split, "images": len(sizes), "largest": largest,
              "eval_miou": {}}
    for size in (largest, (2 * largest[0], 2 * largest[1]), tuple(config.data.eval_size)):
        cfg = copy.deepcopy(config)
        cfg.data.eval_size = size
        out = run_eval(cfg, workdir)
        result["eval_miou"][f"{size[0]}x{size[1]}"] = out["miou"]
        result["step"] = out["step"]
    values = list(result["eval_miou"].values())
    result["eval_miou_spread_points"] = 100 * (max(values) - min(values))

    # every path's class maps of every image, against the image alone
    loaded = load_generator(config, workdir)
    alone_fn = jax.jit(tta.make_predict_fn(loaded.generator, tta.from_config(config)))
    cfg = copy.deepcopy(config)
    cfg.predict.output_dir = os.path.join(scratch, "predict")
    run_predict(cfg, workdir)
    cfg.export.output_dir = os.path.join(scratch, "export")
    cfg.export.size = (2 * largest[0], 2 * largest[1])
    export.run_export(cfg, workdir)
    from_export = Segmenter.from_export(cfg.export.output_dir)
    buckets = {b: Segmenter.from_workdir(workdir, checkpoint=config.eval.checkpoint, bucket=b)
               for b in (32, 64, 128)}
    session = None
    if os.path.exists(os.path.join(cfg.export.output_dir, export.ONNX_FILE)):
        with open(os.path.join(cfg.export.output_dir, export.ONNX_FILE), "rb") as f:
            session = export.onnx_session(f.read())
    agree: dict[str, list[float]] = {}
    files = sorted(os.listdir(os.path.join(cfg.predict.output_dir, "train_ids")))
    # the image bytes decoded as --mode=predict decodes them (PIL), so every path sees the
    # same pixels
    examples = dataset.examples(split)
    for ex in (examples[i] for i in range(len(examples))):
        name = prepared.file_name(ex)
        rgb, stem = decode_rgb(ex["image"], name), os.path.splitext(name)[0]
        x = image_prep.normalize(rgb, config.data.mean, config.data.std)[None]
        alone = np.asarray(alone_fn(loaded.variables, jnp.asarray(x)))[0]
        maps = {"predict": np.asarray(Image.open(os.path.join(
            cfg.predict.output_dir, "train_ids", f"{stem}.png")))}
        for b, seg in buckets.items():
            maps[f"segmenter_bucket{b}"] = seg.predict(rgb)
        maps["segmenter_from_export"] = from_export.predict(rgb)
        if session is not None:
            h, w = rgb.shape[:2]
            canvas = image_prep.pad([rgb], cfg.export.size, image_prep.padding_colour(
                config.data.mean), dtype=np.uint8)
            (logits,) = session.run(None, {"images": canvas,
                                           "sizes": np.asarray([[h, w]], np.int32)})
            maps["onnxruntime"] = logits[0, :h, :w].argmax(-1)
        for name, m in maps.items():
            agree.setdefault(name, []).append(float(np.mean(m == alone)))
    assert len(files) == len(agree["predict"])
    result["agreement_with_the_image_alone"] = {
        k: {"mean": float(np.mean(v)), "min": float(np.min(v))} for k, v in agree.items()}
    result["machine"] = f"{os.cpu_count()} CPUs, JAX {jax.__version__} {jax.default_backend()}"
    text = json.dumps(result, indent=1)
    print(text)
    if flags.FLAGS.out:
        with open(flags.FLAGS.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    flags.mark_flags_as_required(["config", "workdir"])
    app.run(main, argv=sys.argv)
