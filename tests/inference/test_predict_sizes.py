"""--mode=predict on images of many sizes: a bounded number of compiled programs, the summary
written as it goes, and a stopped predict resumed where it stopped."""

from __future__ import annotations

import copy
import json

import jax
import numpy as np
import pytest
from PIL import Image

from ssgan_jax.inference import predict as predict_lib
from ssgan_jax.inference.predict import run_predict

SIZES = [(20, 30), (50, 50), (96, 64), (200, 30), (130, 170), (97, 65), (300, 250),
         (61, 400), (150, 64), (96, 300), (180, 120), (45, 500)]  # eval_size is (96, 64)


def _images(folder):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(SIZES):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
            folder / f"im{i:02d}.png")


def _config(trained_run, folder, out):
    config = copy.deepcopy(trained_run[0])
    config.predict.input = str(folder / "*.png")
    config.predict.output_dir = str(out)
    return config


@pytest.fixture
def compiles():
    seen = []

    def listen(name, seconds, **kwargs):
        if name == "/jax/core/compile/backend_compile_duration":
            seen.append(seconds)

    jax.monitoring.register_event_duration_secs_listener(listen)
    yield seen
    jax.monitoring.unregister_event_duration_listener(listen)


@pytest.mark.slow
def test_many_sizes_compile_a_bounded_number_of_programs(trained_run, tmp_path, compiles):
    """12 images, 9 of them larger than data.eval_size in 9 different ways: the windows are
    cut on the host, so all of them run through one program (before: one per 64-pixel
    bucket, 57 compilations for 60 images of 50x50 to 1500x1100)."""
    _images(tmp_path / "in")
    result = run_predict(_config(trained_run, tmp_path / "in", tmp_path / "out"),
                         str(trained_run[1]))
    assert result["images"] == 12 and result["complete"]
    assert len(compiles) <= 4, len(compiles)
    for i, (h, w) in enumerate(SIZES):
        assert np.array(Image.open(tmp_path / "out" / "train_ids" / f"im{i:02d}.png")).shape \
            == (h, w)


@pytest.mark.slow
def test_a_stopped_predict_resumes_after_the_last_image_written(trained_run, tmp_path,
                                                                 monkeypatch, capsys):
    _images(tmp_path / "in")
    config = _config(trained_run, tmp_path / "in", tmp_path / "out")
    real = predict_lib.write_prediction
    calls = []

    def stop_at_the_fifth(out_dir, name, *args, **kwargs):
        if len(calls) == 4:
            raise KeyboardInterrupt  # killed while writing the fifth
        calls.append(name)
        return real(out_dir, name, *args, **kwargs)

    monkeypatch.setattr(predict_lib, "write_prediction", stop_at_the_fifth)
    with pytest.raises(KeyboardInterrupt):
        run_predict(config, str(trained_run[1]))
    summary = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert not summary["complete"] and summary["images"] == len(summary["written"]) >= 1
    assert not list((tmp_path / "out").rglob("*.tmp"))
    kept = {n: (tmp_path / "out" / "color" / f"{n.rsplit('/', 1)[1][:-4]}.png").stat().st_mtime
            for n in summary["written"]}
    monkeypatch.setattr(predict_lib, "write_prediction", real)
    capsys.readouterr()
    result = run_predict(config, str(trained_run[1]))
    assert f"resuming: {summary['images']} images" in capsys.readouterr().out
    assert result["complete"] and result["images"] == 12
    for name, mtime in kept.items():  # not written again
        assert (tmp_path / "out" / "color" / f"{name.rsplit('/', 1)[1][:-4]}.png"
                ).stat().st_mtime == mtime


@pytest.mark.slow
def test_a_job_of_two_processes_resumes_each_share_and_lists_every_image(trained_run, tmp_path,
                                                                          monkeypatch):
    """Two processes, run one after the other (each takes every second image, two a batch):
    process 1 is stopped while writing its second batch, and its resume writes only the rest
    of its share (before, only process 0's progress was kept: the others did all again); the
    end of process 0 lists all 12 images and removes process 1's progress file."""
    _images(tmp_path / "in")
    config = _config(trained_run, tmp_path / "in", tmp_path / "out")
    out = tmp_path / "out"
    monkeypatch.setattr(predict_lib.parallel, "sum_over_processes", lambda x: x)  # one host
    real = predict_lib.write_prediction
    calls: list[str] = []
    stop = {"after": None}

    def counted(out_dir, name, *args, **kwargs):
        if len(calls) == stop["after"]:
            raise KeyboardInterrupt  # killed while writing
        calls.append(name)
        return real(out_dir, name, *args, **kwargs)

    monkeypatch.setattr(predict_lib, "write_prediction", counted)
    monkeypatch.setattr(predict_lib, "_process", lambda: (1, 2))
    stop["after"] = 3
    with pytest.raises(KeyboardInterrupt):
        run_predict(copy.deepcopy(config), str(trained_run[1]))
    first = json.loads((out / "predictions.process1.json").read_text())["written"]
    assert len(first) == 2 and not (out / "predictions.json").exists()
    calls.clear()
    stop["after"] = None
    run_predict(copy.deepcopy(config), str(trained_run[1]))  # process 1 again: the rest
    odd = sorted(str(tmp_path / "in" / f"im{i:02d}.png") for i in range(1, 12, 2))
    assert sorted(calls) == sorted(set(odd) - set(first))
    calls.clear()
    monkeypatch.setattr(predict_lib, "_process", lambda: (0, 2))
    result = run_predict(copy.deepcopy(config), str(trained_run[1]))
    assert sorted(calls) == [str(tmp_path / "in" / f"im{i:02d}.png") for i in range(0, 12, 2)]
    summary = json.loads((out / "predictions.json").read_text())
    assert summary["complete"] and summary["images"] == 12 == result["images"]
    assert summary["written"] == sorted(str(p) for p in (tmp_path / "in").glob("*.png"))
    assert not list(out.glob("predictions.process*.json"))
