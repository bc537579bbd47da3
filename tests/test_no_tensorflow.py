"""The README demo from the command line (shortened) in processes where TensorFlow cannot be
imported, as on the lent GPU machines: launch/bench/gpu_demo.sh, the command that runs it there
from carried wheels (here the wheels are already installed: an empty wheel folder), with the
semi-supervised variant so that both phases and both input streams run."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.no_tensorflow import env, tensorflow_modules

from .conftest import REPO


@pytest.mark.slow
def test_semi_supervised_demo_trains_evaluates_and_predicts_without_tensorflow(tmp_path):
    out = tmp_path / "out"
    environment = env(tmp_path / "no_tensorflow")
    environment["CONFIG"] = "configs/demo.py:fcn8s_vgg16_semi"
    environment["PYTHON"] = sys.executable
    (tmp_path / "wheels").mkdir()
    short = ["--config.phase1.steps=4", "--config.phase2.steps=4",
             "--config.train.log_every=2", "--config.train.eval_every=4",
             "--config.train.checkpoint_every=4", "--config.model.width=8",
             "--config.eval.checkpoint=latest"]
    done = subprocess.run(["bash", str(REPO / "launch" / "bench" / "gpu_demo.sh"),
                           str(tmp_path / "wheels"), str(out), *short], cwd=REPO,
                          env=environment, capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    for mode in ("train", "eval", "predict"):
        log = (out / f"demo_{mode}.log").read_text()
        assert tensorflow_modules(log) == 0, (mode, log[-2000:])  # the report: none loaded
        # no third-party noise: TFDS's preparing lines and warnings, JAX's dtype warnings
        for noise in ("dataset_info.json", "Downloading and preparing", "UserWarning",
                      "Generating splits"):
            assert noise not in log, (mode, noise)
    train = (out / "demo_train.log").read_text()
    assert "labelled subset: 5 images" in train  # 1/8 of the 40 train images
    assert "[phase 1] step 2/8" in train and "[phase 2] step 8/8" in train
    assert "phase 2 from step 4" in train and "validation at step 8" in train
    assert "adv_unlabeled" in train
    final = json.loads(train.strip().splitlines()[-2])  # (the last line: the module report)
    assert final["final_step"] == 8 and 0 <= final["final_val_miou"] <= 1
    times = json.loads((out / "demo_times.json").read_text())
    assert set(times) == {"train_s", "eval_s", "predict_s"}
    assert (out / "demo" / "eval" / "test_step_8.json").exists()
    assert len(list((out / "demo" / "predictions").rglob("*.png"))) >= 16
    assert list((out / "demo" / "tensorboard").iterdir())  # events written without TF
