"""The official Cityscapes evaluation (cityscapesScripts 2.3.0's
csEvalPixelLevelSemanticLabeling) scores our ``--mode=predict`` label_ids/ exactly as our
``--mode=eval`` does, on a tiny Cityscapes val set written in the official layout."""

from __future__ import annotations

import copy
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("cityscapesscripts", reason="the test extra (pyproject.toml)")

# labelIds of the stripes: evaluated classes and some the evaluation ignores (0 unlabeled,
# 4 static, 9 parking); 24 person, 26 car and 33 bicycle are "things" with instances
STRIPES = (7, 0, 8, 11, 21, 23, 24, 26, 4, 33, 9, 17)
THINGS = (24, 26, 33)
H, W = 48, 96


def _write_split(root: pathlib.Path, split: str, cities: dict[str, int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    for city, count in cities.items():
        (root / "leftImg8bit" / split / city).mkdir(parents=True)
        (root / "gtFine" / split / city).mkdir(parents=True)
        for k in range(count):
            stem = f"{city}_{k:06d}_000019"
            shift = int(rng.integers(0, len(STRIPES)))
            columns = np.arange(W) * len(STRIPES) // W
            label_ids = np.array(STRIPES)[(columns + shift) % len(STRIPES)]
            label_ids = np.broadcast_to(label_ids, (H, W)).copy()
            label_ids[: H // 3] = 23  # sky on top
            instance_ids = label_ids.astype(np.int32)
            for thing in THINGS:  # two instances per thing stripe: top and bottom half
                where = label_ids == thing
                instance_ids[where] = thing * 1000 + (np.indices((H, W))[0][where] >= H // 2)
            image = (label_ids[..., None] * np.array([7, 13, 29]) % 256).astype(np.uint8)
            image = np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)
            Image.fromarray(image).save(root / "leftImg8bit" / split / city /
                                        f"{stem}_leftImg8bit.png")
            gt = root / "gtFine" / split / city
            Image.fromarray(label_ids.astype(np.uint8), mode="L").save(
                gt / f"{stem}_gtFine_labelIds.png")
            Image.fromarray(instance_ids.astype(np.uint16)).save(  # 16-bit, as the official
                gt / f"{stem}_gtFine_instanceIds.png")


def test_official_cityscapes_evaluation_agrees_with_ours(tmp_path):
    from ssgan_jax.inference.eval_checkpoint import run_eval
    from ssgan_jax.inference.predict import run_predict
    from ssgan_jax.training import loop

    from ..train_fixtures import tiny_config

    root = tmp_path / "cityscapes"
    _write_split(root, "train", {"aachen": 4}, 0)
    _write_split(root, "val", {"frankfurt": 2, "lindau": 2}, 1)
    _write_split(root, "test", {"berlin": 1}, 2)
    config = tiny_config(tmp_path, "fcn8s_vgg16")
    config.data.name = "cityscapes"
    config.data.manual_dir = str(root)
    config.data.crop_size = (H, W)
    config.data.eval_size = (H, W)
    config.batch_size = config.eval_batch_size = 2
    config.phase1.steps, config.phase2.steps = 12, 0
    config.phase1.lr = config.phase1.end_lr = 3e-3
    config.train.eval_every = 12
    workdir = tmp_path / "run"
    loop.train_and_evaluate(config, str(workdir))

    config.eval.checkpoint = "latest"
    ours = run_eval(config, str(workdir))
    # FCN-8s on a canvas twice the images' size: the same numbers (each image as alone)
    padded = copy.deepcopy(config)
    padded.data.eval_size = (2 * H, 2 * W)
    moved = np.abs(np.asarray(run_eval(padded, str(workdir))["confusion"]) -
                   np.asarray(ours["confusion"])).sum() / 2
    assert moved <= 1e-3 * np.asarray(ours["confusion"]).sum(), moved
    config.predict.output_dir = str(tmp_path / "pred")
    run_predict(config, str(workdir))
    label_ids = sorted((tmp_path / "pred" / "label_ids").iterdir())
    assert [p.name for p in label_ids][:1] == ["frankfurt_000000_000019_leftImg8bit.png"]
    assert len(label_ids) == 4
    predicted = np.unique(np.concatenate([np.array(Image.open(p)).ravel() for p in label_ids]))
    assert len(predicted) >= 3, predicted  # a comparison over several classes

    # cityscapesScripts as its README runs it: CITYSCAPES_DATASET / CITYSCAPES_RESULTS; it
    # still calls np.in1d, which NumPy 2.4 removed: bridged to np.isin (same values, raveled)
    bridge = ("import numpy as np, runpy\n"
              "if not hasattr(np, 'in1d'):\n"
              "    np.in1d = lambda a, b, **k: np.isin(np.ravel(a), b, **k)\n"
              "runpy.run_module('cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling',"
              " run_name='__main__')\n")
    env = {**os.environ, "CITYSCAPES_DATASET": str(root),
           "CITYSCAPES_RESULTS": str(tmp_path / "pred" / "label_ids"),
           "CITYSCAPES_EXPORT_DIR": str(tmp_path / "official")}
    (tmp_path / "official").mkdir()
    done = subprocess.run([sys.executable, "-c", bridge], env=env, capture_output=True,
                          text=True, timeout=300, check=False, cwd=tmp_path)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
    official = json.loads((tmp_path / "official" /
                           "resultPixelLevelSemanticLabeling.json").read_text())
    assert official["averageScoreClasses"] == pytest.approx(ours["miou"], abs=1e-6)
    for name, iou in ours["per_class_iou"].items():
        theirs = official["classScores"][name]
        if iou is None:  # absent from ground truth and predictions: NaN there
            assert theirs != theirs, name
        else:
            assert theirs == pytest.approx(iou, abs=1e-6), name
