"""Configs that ship with the package, found by name from any directory; --help and
--mode=config."""

from __future__ import annotations

import os

import pytest

from ssgan_jax import configs

from .cli import run_cli, run_main


def test_names_resolve_to_the_packaged_files(tmp_path, monkeypatch):
    demo = configs.path_of("demo")
    assert os.path.isfile(demo) and demo.endswith(os.path.join("ssgan_jax", "configs", "demo.py"))
    monkeypatch.chdir(tmp_path)  # no configs/ folder here
    camvid = configs.path_of("camvid")
    assert configs.resolve("demo") == demo
    assert configs.resolve("demo.py:fcn8s_vgg16_baseline") == demo + ":fcn8s_vgg16_baseline"
    assert configs.resolve("camvid:fcn8s_vgg16_gan,cpu") == camvid + ":fcn8s_vgg16_gan,cpu"
    assert configs.resolve("folder,cpu") == configs.path_of("folder") + ":cpu"
    assert configs.resolve("configs/camvid.py:cpu") == camvid + ":cpu"  # another directory
    assert configs.resolve("nope") == "nope" and configs.resolve("/x/demo.py") == "/x/demo.py"
    (tmp_path / "demo").mkdir()
    (tmp_path / "mine.py").write_text("")
    assert configs.resolve("mine.py:x") == "mine.py:x"  # a file here is a file


def test_help_exits_0_and_lists_modes_and_configs(tmp_path):
    r = run_cli("--help", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    for text in ("Modes (--mode):", "  diagnose ", "  config ", "  camvid     CamVid",
                 "(sizes: full, cpu, gpu)", "--mode=config shows every key"):
        assert text in r.stdout, text
    assert "``" not in r.stdout  # no RST markup


@pytest.mark.slow
def test_a_packaged_config_by_name_from_another_directory_trains(tmp_path):
    """After pip install there is no configs/ folder: --config=demo finds the package's."""
    r = run_cli("--config=demo", "--mode=config", "--config.phase1.steps=7", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "phase1.steps = 7" in r.stdout and "data.crop_size = [64, 96]" in r.stdout
    r = run_cli("--config=demo:fcn8s_vgg16_baseline", f"--workdir={tmp_path / 'run'}",
                "--config.phase1.steps=2", "--config.train.eval_every=2",
                "--config.train.log_every=1", "--config.eval_batch_size=16",
                "--config.model.width=32", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "[phase 1] step 2/2" in r.stdout and (tmp_path / "run" / "checkpoints" / "2").is_dir()


def test_a_mistyped_key_is_one_clean_line(tmp_path):
    r = run_main("--config=demo", "--mode=config", "--config.phase1.stepz=7")
    assert r.returncode == 1
    line = r.stderr.strip()
    assert "\\'" not in line and "'stepz' Did you mean \"steps\"" in line
    assert "(from --config=demo --mode=config" in line


def test_eval_size_auto_is_the_largest_prepared_image(tmp_path):
    """data.eval_size="auto": from the command line (an override of a tuple default) and
    resolved once the dataset is prepared to the largest height and width it holds."""
    from ssgan_jax import checks
    from ssgan_jax.core import config as config_lib
    from ssgan_jax.data import pipeline

    from .data.conftest import write_camvid

    r = run_main("--config=demo", "--mode=config", "--config.data.eval_size=auto")
    assert r.returncode == 0 and "data.eval_size = 'auto'" in r.stdout, r.stderr[-2000:]
    r = run_main("--config=demo", "--mode=config", "--config.data.eval_size=(0, 5)")
    assert r.returncode == 1 and "data.eval_size must be (height, width) > 0, or" in r.stderr
    config = config_lib.get_config()
    config.data.manual_dir = write_camvid(str(tmp_path / "CamVid"))
    config.data.data_dir = str(tmp_path / "tfds")
    config.data.eval_size = "auto"
    checks.check(config)
    from ssgan_jax.data import open_prepared

    dataset = open_prepared(config.data)
    pipeline.resolve_eval_size(config.data, dataset)
    sizes = [(h, w) for split in ("train", "val", "test")
             for h, w in dataset.class_pixels(split)["shapes"]]
    assert config.data.eval_size == (max(h for h, _ in sizes), max(w for _, w in sizes))
    pipeline.check_eval_size(config.data, "val", dataset)  # every image fits
