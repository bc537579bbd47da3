"""The training loop end to end on a synthetic CamVid: resume, 2 processes, bad input."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import types

import jax
import ml_collections
import numpy as np
import pytest

from ssgan_jax import checks
from ssgan_jax.core import checkpoints as ckpt_lib
from ssgan_jax.core import config as config_lib
from ssgan_jax.main import _resolve_paths  # noqa: F401 - main must import without flags
from ssgan_jax.training import loop, start
from ssgan_jax.training.batches import train_batches
from ssgan_jax.training.experiment import Experiment

from ..cli import run_main
from ..train_fixtures import loop_config

REPO = pathlib.Path(__file__).resolve().parents[2]


def _config(tmp):
    return loop_config(tmp)


def _final_state(workdir, config):
    fresh = Experiment(config, 11).initial_state(1)
    state, meta, step = ckpt_lib.Checkpoints(str(workdir), read_only=True).restore(fresh)
    return state, meta, step


def _assert_same(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


@pytest.fixture
def reference(trained_run):
    """One uninterrupted run: 4 phase-1 + 4 phase-2 iterations on 2 devices (conftest)."""
    return trained_run


def test_run_writes_checkpoints_metrics_and_validation(reference):
    config, workdir, summary = reference
    state, meta, step = _final_state(workdir, config)
    assert step == 8 and int(state.step) == 8 and meta["phase"] == 2
    assert sorted(os.listdir(workdir / "checkpoints")) == ["4", "6", "8"]  # keep 3 (+ best)
    assert 0.0 <= summary["miou"] <= 1.0 and summary["num_images"] == 3
    lines = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]
    by_step = {x["step"]: x for x in lines if "step" in x}
    assert "train/ce" in by_step[2] and "train/loss_d" not in by_step[2]  # phase 1: G alone
    for key in ("train/loss_g", "train/adv", "train/loss_d", "train/d_acc_real",
                "train/d_acc_fake", "train/d_out_real", "train/d_out_fake"):
        assert key in by_step[6], key
    assert by_step[8]["val/miou"] == pytest.approx(summary["miou"]) or any(
        x.get("val/miou") == pytest.approx(summary["miou"]) for x in lines)
    assert json.loads((workdir / "config.json").read_text())["model"]["name"] == "fcn8s_vgg16"
    assert list((workdir / "tensorboard").iterdir())
    # validation's region metrics and pictures (image | truth | prediction)
    at_8 = {k: v for x in lines if x.get("step") == 8 for k, v in x.items()}
    for key in ("val/boundary_f1", "val/fragmentation", "val/speckle", "steps_per_sec"):
        assert key in at_8, key
    assert any(b"val/image_truth_prediction" in f.read_bytes()
               for f in (workdir / "tensorboard").rglob("*") if f.is_file())
    assert 0.0 <= meta["validation"]["boundary_f1"]["mean"] <= 1.0
    assert "examples" not in meta["validation"]


def test_killed_and_resumed_run_equals_uninterrupted(reference, tmp_path, monkeypatch):
    config, ref_dir, _ = reference
    real = loop.parallel.prefetch

    def dies_at_batch(k):
        def prefetch(it, size=2):
            for i, x in enumerate(real(it, size)):
                if i == k:
                    raise KeyboardInterrupt("killed")
                yield x
        return prefetch

    monkeypatch.setattr(loop.parallel, "prefetch", dies_at_batch(5))
    workdir = tmp_path / "run"
    killed = _config(tmp_path)
    killed.train.log_every = 1  # (logging changes no number: step 5 is logged, then killed)
    with pytest.raises(KeyboardInterrupt):
        loop.train_and_evaluate(killed, str(workdir))
    assert sorted(os.listdir(workdir / "checkpoints")) == ["2", "4"]  # died during step 6
    monkeypatch.setattr(loop.parallel, "prefetch", real)
    assert not (workdir / "loop.lock").exists()  # released on the way out
    loop.train_and_evaluate(killed.copy_and_resolve_references(), str(workdir))  # again
    resumed, _, step = _final_state(workdir, config)
    want, _, _ = _final_state(ref_dir, config)
    assert step == 8
    _assert_same(resumed, want)
    # metrics.jsonl: step 5, logged before the kill and again after the resume from 4, once;
    # the validations those of the uninterrupted run
    rows = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "train/ce" in r] == list(range(1, 9))
    val = {r["step"]: r["val/miou"] for r in rows if "val/miou" in r}
    ref_rows = [json.loads(x) for x in (ref_dir / "metrics.jsonl").read_text().splitlines()]
    assert val == pytest.approx({r["step"]: r["val/miou"] for r in ref_rows
                                 if "val/miou" in r}, abs=1e-6) and sorted(val) == [4, 8]
    assert sum("hparams" in r for r in rows) == 1


def test_corrupt_latest_checkpoint_falls_back_and_keeps_it(reference, tmp_path, capsys):
    config, ref_dir, _ = reference
    workdir = tmp_path / "run"
    shutil.copytree(ref_dir, workdir)
    for f in (workdir / "checkpoints" / "8" / "state").rglob("*"):
        if f.is_file():
            f.write_bytes(b"garbage")
    loop.train_and_evaluate(_config(tmp_path), str(workdir))
    out = capsys.readouterr().out
    assert "checkpoint 8" in out and "cannot be restored" in out and "moved" in out
    aside = list((workdir / "checkpoints_corrupt").iterdir())
    assert len(aside) == 1 and aside[0].name.startswith("8_")  # kept, not deleted
    again, _, step = _final_state(workdir, config)  # retrained 6 -> 8
    want, _, _ = _final_state(ref_dir, config)
    assert step == 8
    _assert_same(again, want)


def test_workdir_of_another_experiment_is_refused_untouched(reference, tmp_path):
    _, ref_dir, _ = reference
    workdir = tmp_path / "run"
    shutil.copytree(ref_dir, workdir)
    before = sorted(p.name for p in (workdir / "checkpoints").iterdir())
    config = _config(tmp_path)
    config.model.width = 16
    with pytest.raises(ckpt_lib.CheckpointError, match=r"another experiment[\s\S]*model.width"):
        loop.train_and_evaluate(config, str(workdir))
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == before


def test_missing_weights_file_and_bad_values_are_named(tmp_path):
    config = _config(tmp_path)
    config.weights.generator = str(tmp_path / "vgg16.safetensors")
    with pytest.raises(FileNotFoundError, match="vgg16.safetensors"):
        loop.train_and_evaluate(config, str(tmp_path / "run"))
    # checked first: before the dataset is prepared and before the workdir is made
    assert not (tmp_path / "tfds").exists() and not (tmp_path / "run").exists()
    config.weights.generator = ""
    config.weights.adversary = str(tmp_path / "resnet50.safetensors")
    with pytest.raises(FileNotFoundError, match="resnet50.safetensors"):
        loop.train_and_evaluate(config, str(tmp_path / "run"))
    config.weights.adversary = ""
    config.init_from = f"{tmp_path / 'baseline'}:4"
    with pytest.raises(ckpt_lib.CheckpointError, match=r"init_from=.*baseline:4.*baseline/"
                                                       r"checkpoints does not exist"):
        loop.train_and_evaluate(config, str(tmp_path / "run"))
    assert not (tmp_path / "tfds").exists()
    # a run that resumes from its own checkpoints reads neither, so they need not exist
    (tmp_path / "run" / "checkpoints" / "4").mkdir(parents=True)
    config.weights.generator = str(tmp_path / "vgg16.safetensors")
    start.check_start_files(config, str(tmp_path / "run"))
    config = _config(tmp_path)
    config.rescaling.eps = 1.5
    with pytest.raises(ValueError, match=r"rescaling.eps must be in \(0, 1\)"):
        checks.check(config)
    config = _config(tmp_path)
    config.phase2.d_steps = 0
    with pytest.raises(ValueError, match="phase2.d_steps"):
        checks.check(config)
    config = _config(tmp_path)
    config.phase2.g_steps = 2  # a second G update needs its own forward
    with pytest.raises(ValueError, match="share_generator_forward=False"):
        checks.check(config)
    config.phase2.share_generator_forward = False
    checks.check(config)


def test_override_mistakes_exit_with_one_clear_line(tmp_path):
    for override, expected in (("--config.model.widht=3", 'Did you mean "width"'),
                               ("--config.model.width=abc", "invalid literal for int"),
                               ("--config.phase1.lr=fast", "could not convert")):
        r = run_main("--config=configs/demo.py", f"--workdir={tmp_path}", override)
        assert r.returncode != 0
        assert "config error:" in r.stderr and expected in r.stderr, r.stderr[-2000:]
        assert "Traceback" not in r.stderr
    r = run_main("--config=configs/demo.py:fcn8s_vgg16_wgan", f"--workdir={tmp_path}")
    assert r.returncode != 0 and "unknown config variant" in r.stderr


@pytest.mark.slow
def test_two_process_job_matches_single_process(reference, tmp_path):
    """launch/cluster/cpu_2proc.sh: 2 processes x 1 CPU device == 1 process x 2 devices."""
    config, ref_dir, _ = reference
    config_file = tmp_path / "cfg.py"
    (tmp_path / "cfg.json").write_text(config.to_json())
    config_file.write_text(
        "import json, ml_collections\n"
        "def get_config(arg=None):\n"
        f"    return ml_collections.ConfigDict(json.load(open({str(tmp_path / 'cfg.json')!r})))\n")
    env = {**os.environ, "PYTHON": sys.executable, "LOG1": str(tmp_path / "proc1.log")}
    r = subprocess.run(["bash", str(REPO / "launch" / "cluster" / "cpu_2proc.sh"),
                        f"--config={config_file}",
                        f"--workdir={tmp_path / 'run'}"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=600)
    log1 = (tmp_path / "proc1.log").read_text() if (tmp_path / "proc1.log").exists() else ""
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:], log1[-3000:])
    assert "process 0/2" in r.stdout
    got, _, step = _final_state(tmp_path / "run", config)
    want, _, _ = _final_state(ref_dir, config)
    assert step == 8
    _assert_same(got, want)


def test_phase2_without_adversarial_term_trains_g_alone(tmp_path, capsys):
    """loss.lam = 0 (the CamVid baseline): phase 2 resets G's optimizer and skips A."""
    config = _config(tmp_path)
    config.phase1.steps, config.phase2.steps = 1, 2
    config.train.eval_every = 100
    config.loss.lam = 0.0
    loop.train_and_evaluate(config, str(tmp_path / "run"))
    out = capsys.readouterr().out
    assert "G trains alone (no adversary)" in out and "adversary.width" not in out
    state, meta, step = _final_state(tmp_path / "run", config)
    fresh = Experiment(config, 11).initial_state(1)  # the run's own initial state
    assert step == 3 and meta["phase"] == 2
    _assert_same(state.d_params, fresh.d_params)  # A untouched
    counts = [int(v) for path, v in jax.tree_util.tree_flatten_with_path(state.g_opt)[0]
              if "count" in jax.tree_util.keystr(path)]
    assert counts and set(counts) == {2}  # G's optimizer re-created at step 1: 2 updates since
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert not any("train/loss_d" in x for x in lines)


def test_phase2_as_separate_steps_trains_like_the_fused_iteration(reference, tmp_path):
    """share_generator_forward=False: the loop runs d_steps A steps, then a G step, each with
    its own G forward. Without dropout that computes what the fused iteration did in the
    reference run (4 phase-1 + 4 phase-2 iterations)."""
    config, workdir, _ = reference
    config = ml_collections.ConfigDict(config.to_dict())
    config.phase2.share_generator_forward = False
    loop.train_and_evaluate(config, str(tmp_path / "separate"))
    separate, meta, step = _final_state(tmp_path / "separate", config)
    fused, _, _ = _final_state(workdir, config)
    assert step == 8 and meta["phase"] == 2
    counts = [int(v) for path, v in jax.tree_util.tree_flatten_with_path(separate.d_opt)[0]
              if "count" in jax.tree_util.keystr(path)]
    assert counts and set(counts) == {4}  # one A update in each of the 4 phase-2 iterations
    for x, y in zip(jax.tree.leaves(fused), jax.tree.leaves(separate), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)


def test_no_recompilation_after_the_first_step_of_each_phase(tmp_path, monkeypatch):
    """Lowerings to XLA happen before the first step of each phase and at validation only."""
    from jax import monitoring

    config = _config(tmp_path)
    config.phase1.steps, config.phase2.steps = 3, 3
    config.train.log_every = 1
    config.train.checkpoint_every = 2  # saves at 2, 4 (the first of phase 2) and 6
    config.train.eval_every = 100  # validation only after the last step
    events: list = []

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/jaxpr_to_mlir_module_duration":  # a new lowering
            events.append("lowered")

    real_line = loop.monitor.progress_line

    def line(done, *args, **kwargs):
        events.append(done)
        return real_line(done, *args, **kwargs)

    monkeypatch.setattr(loop.monitor, "progress_line", line)
    monitoring.register_event_duration_secs_listener(listener)
    try:
        loop.train_and_evaluate(config, str(tmp_path / "run"))
    finally:
        monitoring.unregister_event_duration_listener(listener)
    logged = [e for e in events if e != "lowered"]
    assert logged == [1, 2, 3, 4, 5, 6]
    between = {step: 0 for step in logged}
    current = 0
    for e in events:
        if e == "lowered":
            between[current] = between.get(current, 0) + 1
        else:
            current = e
    assert between.get(0, 0) > 0 and between[3] > 0  # first steps of phase 1 and phase 2
    # the steps after them (phase 1: 2, 3; phase 2: 5, 6) and the save at 4 compile nothing
    # new (the first save, after step 2, compiles its host-copy ops once)
    assert between[1] == 0 and between[4] == 0 and between[5] == 0, between


def test_an_eval_size_smaller_than_the_val_images_is_refused_before_the_first_step(tmp_path):
    from ssgan_jax.data.common import DataError

    config = _config(tmp_path)
    config.data.eval_size = (48, 48)  # val images are up to 56x56
    with pytest.raises(DataError, match=r"val_\d+\.png is \d+x56 \(HxW\), larger than "
                                        r"data.eval_size=\(48, 48\); set --config.data."
                                        r"eval_size='\(\d+, 56\)'"):
        loop.train_and_evaluate(config, str(tmp_path / "run"))
    assert not (tmp_path / "run" / "checkpoints").exists()  # before anything was trained


def test_crops_mostly_padding_are_said_once(tmp_path, capsys):
    """The loop's batches (what its steps take) report a batch of mostly padding once."""
    from ssgan_jax.data import open_prepared

    config = _config(tmp_path)
    config.data.crop_size = (160, 192)  # images of at most 64x56, scaled by at most 1.5
    batches = train_batches(config, 0, None, open_prepared(config.data))
    for _ in range(3):
        next(batches)
    out = capsys.readouterr().out
    assert out.count("of the crops on average (data.crop_size=(160, 192)") == 1, out
    assert "warning: step 1: the images fill" in out


def test_a_full_disk_while_saving_a_checkpoint_is_one_line(tmp_path):
    """ENOSPC from the checkpoint writer (Orbax wraps it) ends the run with one DiskFull line
    naming the checkpoint folder and the checkpoints that are kept."""
    import errno
    import types

    from ssgan_jax.core.errors import DiskFull

    class FullDisk:
        directory = str(tmp_path / "checkpoints")
        kept = ckpt_lib.Checkpoints.kept

        def check_space(self, host, step):
            pass  # (the check before the save: below)

        def steps(self):
            return [4, 6, 8]

        def save(self, *args):
            try:
                raise OSError(errno.ENOSPC, "No space left on device")
            except OSError as e:
                raise ValueError("Orbax: save failed") from e

    for step in (4, 6):
        (tmp_path / "checkpoints" / str(step)).mkdir(parents=True)
    (tmp_path / "checkpoints" / "8.orbax-checkpoint-tmp").mkdir()  # a save under way
    run = types.SimpleNamespace(checkpoints=FullDisk(), config_record={}, last_saved=6)
    state = types.SimpleNamespace(g_params={"w": np.ones(2)}, d_params={"w": np.ones(2)})
    with pytest.raises(DiskFull, match=r"no space left on the device of .*checkpoints; the "
                                       r"checkpoints of steps \[4, 6\] are kept"):
        loop._save(run, state, 8, 2)
    assert run.last_saved == 6
    # checked before writing: a state larger than the free space is refused up front (a
    # zero-stride view: nbytes of more than the free space, one byte of memory)
    free = shutil.disk_usage(tmp_path).free
    huge = np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), (free + (64 << 20),), (0,))
    with pytest.raises(DiskFull, match=r"not enough space on the device of .* for checkpoint 8 "
                                       r"\(about \d+ MB needed"):
        ckpt_lib.Checkpoints.check_space(FullDisk(), {"g_params": {"w": huge}}, 8)


def test_a_finished_run_says_nothing_to_do_without_building_a_network(reference, monkeypatch,
                                                                       capsys):
    """Rerunning a finished run's command answers at once: no network is built or compiled
    (the answer took 56 s on the demo when the whole state was built first)."""
    config, workdir, summary = reference

    def refuse(*args, **kwargs):
        raise AssertionError("a network was built for a finished run")

    monkeypatch.setattr(loop.state_lib, "init_state", refuse)
    monkeypatch.setattr(loop.state_lib, "build_networks", refuse)
    again = loop.train_and_evaluate(config.copy_and_resolve_references(), str(workdir))
    out = capsys.readouterr().out
    assert "nothing to do: the checkpoint is at step 8 and the config asks for 8" in out
    assert again["miou"] == summary["miou"]


def test_resuming_with_another_batch_size_is_refused(reference, tmp_path):
    """The stream continues at iteration x batch size: another batch size would skip examples
    (80-159 after 20 steps of 4 then 8), so it is refused before anything is built, and the
    checkpoints are left as they were."""
    config, workdir, _ = reference
    run = tmp_path / "run"
    shutil.copytree(workdir / "checkpoints", run / "checkpoints")
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    config = config.copy_and_resolve_references()
    config.phase2.steps += 2
    config.batch_size = 8
    with pytest.raises(config_lib.ConfigError, match=r"config.batch_size=8 but the run in .* "
                                                      r"trained with 4 \(checkpoint 8\).*"
                                                      r"--config.batch_size=4"):
        loop.train_and_evaluate(config, str(run))
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before


def test_init_from_a_run_of_another_generator_is_refused_before_prepare(reference, tmp_path):
    """Named at once with what differs and the right way out (it used to come after the
    dataset was prepared, advising a new --workdir, which does not help)."""
    _, workdir, _ = reference
    config = _config(tmp_path)
    config.model.width = 16
    config.init_from = str(workdir)
    config.phase1.steps = 0
    with pytest.raises(ckpt_lib.CheckpointError, match=r"that run's generator is not the one "
                                                       r"this config trains:\n  model.width: "
                                                       r"32 there, 16 now\ninit_from continues"):
        loop.train_and_evaluate(config, str(tmp_path / "run"))
    assert not (tmp_path / "tfds").exists()


def test_a_full_disk_is_said_once_not_by_every_writer_thread():
    """While training: the libraries' logged tracebacks of a full disk and the "Event loop is
    closed" of abandoned checkpoint writes are dropped (a 4 MB tmpfs filled mid-save printed
    1205 stderr lines before the one-line DiskFull; 1 after); any other error still shows."""
    import errno
    import logging
    import sys

    from ssgan_jax.core.errors import DiskFull, quiet_disk_full

    seen = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    handler = Keep()
    logger = logging.getLogger("absl")
    logger.addHandler(handler)
    unraisable = []
    before = sys.unraisablehook
    sys.unraisablehook = unraisable.append
    try:
        full = OSError(errno.ENOSPC, "No space left on device")
        with pytest.raises(DiskFull), quiet_disk_full():
            try:
                raise ValueError("save failed") from full
            except ValueError as e:
                logger.error("orbax: save failed", exc_info=(type(e), e, e.__traceback__))
            logger.error("another problem", exc_info=(ValueError, ValueError("x"), None))
            sys.unraisablehook(types.SimpleNamespace(exc_value=RuntimeError(
                "Event loop is closed")))
            sys.unraisablehook(types.SimpleNamespace(exc_value=KeyError("kept")))
            raise DiskFull("no space left")
        assert seen == ["another problem"]
        assert [type(u.exc_value) for u in unraisable] == [KeyError]
    finally:
        logger.removeHandler(handler)
        sys.unraisablehook = before


def test_a_run_opens_its_dataset_once(tmp_path, monkeypatch):
    """Training prepares and opens its dataset once and passes it down (validation, batches,
    the eval-size check): its source files are checked once, not at every access; so does
    --mode=eval."""
    from ssgan_jax.data import records
    from ssgan_jax.inference.eval_checkpoint import run_eval

    opened = []
    real = records.ensure_prepared
    monkeypatch.setattr(records, "ensure_prepared",
                        lambda data, cls: opened.append(1) or real(data, cls))
    config = _config(tmp_path)
    config.phase1.steps = config.phase2.steps = 2
    config.train.eval_every = config.train.checkpoint_every = 2
    loop.train_and_evaluate(config, str(tmp_path / "run"))
    assert len(opened) == 1  # two validations, two phases' batches: one opening
    opened.clear()
    config.eval.split = "test"
    run_eval(config, str(tmp_path / "run"))
    assert len(opened) == 1
