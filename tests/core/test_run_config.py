"""A run remembers its settings (ssgan_jax/core/run_config.py): eval starts from the run's
recorded config, command-line overrides on top, and a result made with other settings gets
its own file."""

from __future__ import annotations

import json

import pytest

from ssgan_jax.core import config as config_lib
from ssgan_jax.core import run_config

from ..cli import run_main


def test_overrides_are_read_off_the_command_line():
    argv = ["main", "--config=configs/demo.py", "--workdir=w", "--config.eval.split=test",
            "--config.data.eval_size", "(1, 2)", "--mode=eval", "--config.eval.flip=True"]
    assert run_config.cli_overrides(argv) == ["eval.split", "data.eval_size", "eval.flip"]


def test_the_run_s_values_win_except_where_the_command_line_sets_them(tmp_path):
    run = config_lib.get_config()
    run.data.eval_size = (360, 480)
    run.model.width = 8
    run.loss.class_weights = (0.5, 2.0)
    record = {**json.loads(run.to_json_best_effort()), "num_classes": 11}
    del record["diagnose"]  # a key the package added after the run
    (tmp_path / "config.json").write_text(json.dumps(record))
    given = config_lib.get_config()  # the command line's file: all defaults ...
    given.eval.split = "test"  # ... plus two overrides
    given.eval.scales = (0.75, 1.0)
    given.diagnose.batches = 3
    merged, report = run_config.with_recorded(given, str(tmp_path), ["eval.split", "eval.scales"])
    assert merged.data.eval_size == (360, 480) and merged.model.width == 8
    assert merged.loss.class_weights == (0.5, 2.0)
    assert merged.eval.split == "test" and merged.eval.scales == (0.75, 1.0)
    assert merged.diagnose.batches == 3  # not in the record: the command line's
    assert report["overrides"] == {"eval.split": "test", "eval.scales": [0.75, 1.0]}
    assert report["differs"] == {"eval.split": ["", "test"], "eval.scales": [[1.0], [0.75, 1.0]]}
    # neither changes which file a result goes to beyond the split and the inference tag
    assert run_config.result_suffix(report) == ""
    assert "eval.split='test'" in run_config.describe(report)
    given.data.eval_size = (128, 128)
    _, report = run_config.with_recorded(given, str(tmp_path), ["data.eval_size"])
    suffix = run_config.result_suffix(report)
    assert suffix.startswith("_cfg") and len(suffix) == 12
    assert run_config.result_differences(report) == {"data.eval_size": [[360, 480], [128, 128]]}
    # no record: the command line's config as given
    same, report = run_config.with_recorded(given, str(tmp_path / "none"), [])
    assert same is given and report["path"] is None and run_config.describe(report) is None
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(Exception, match="recorded config"):
        run_config.with_recorded(given, str(tmp_path), [])


@pytest.mark.slow
def test_eval_without_the_training_overrides_gives_the_training_numbers(trained_run):
    """The tiny run trained FCN-8s at width 32 with data.eval_size (96, 64) and its own data
    folders; eval is given configs/camvid.py (DeepLabv3 at full width, eval_size (512, 512))
    and no override at all, and still evaluates the run as trained: the numbers validation
    logged. A changed setting writes its own file and leaves that one alone."""
    from ssgan_jax.core import checkpoints as ckpt_lib

    _, workdir, _ = trained_run
    r = run_main("--config=configs/camvid.py", f"--workdir={workdir}", "--mode=eval")
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"settings from the run's {workdir}/config.json" in r.stdout
    assert "evaluating val: 100%" in r.stderr and "images/s" in r.stderr  # a progress bar
    logged = ckpt_lib.Checkpoints(str(workdir), read_only=True).read_meta(8)["validation"]
    first = json.loads((workdir / "eval" / "val_step_8.json").read_text())
    assert first["miou"] == pytest.approx(logged["miou"], abs=1e-9)
    assert first["settings_differing_from_run"] == {}
    r = run_main("--config=configs/camvid.py", f"--workdir={workdir}", "--mode=eval",
                 "--config.data.eval_size=(128, 128)")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "differs from the run's: data.eval_size [96, 64] -> [128, 128]" in r.stdout
    other = [p for p in (workdir / "eval").glob("val_step_8_cfg*.json")]
    assert len(other) == 1
    record = json.loads(other[0].read_text())
    assert record["settings_differing_from_run"] == {"data.eval_size": [[96, 64], [128, 128]]}
    assert record["miou"] == pytest.approx(first["miou"], abs=1e-9)  # padding-independent
    assert json.loads((workdir / "eval" / "val_step_8.json").read_text()) == first
