"""launch/bench/gpu_check.py: the GPU slot's one command, run here at toy size on the CPU."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from launch.bench import gpu_check

REPO = pathlib.Path(__file__).resolve().parents[2]


def _reference():
    arrays = dict(np.load(gpu_check.REFERENCE))
    before = {k[6:]: v for k, v in arrays.items() if k.startswith("state/")}
    want = {k[4:]: v for k, v in arrays.items() if k.startswith("ref/phase2/")}
    return want, before


def test_compare_accepts_the_reference_and_names_what_is_off():
    want, before = _reference()
    same = gpu_check.compare({k: v.copy() for k, v in want.items()}, want, before)
    assert same["within_tolerance"] and same["update_share_off"] == 0.0
    assert same["parameters"] > 10_000  # G and A updated

    loss = {**want, "phase2/metric/loss_d": want["phase2/metric/loss_d"] * 1.01}
    off = gpu_check.compare(loss, want, before)
    assert not off["within_tolerance"]
    assert off["worst_at"]["loss_rel"] == "phase2/metric/loss_d"

    # a tenth of G's and A's updates with the wrong sign: a broken gradient, not rounding
    flipped = dict(want)
    for key in [k for k in want if "/g_params/" in k or "/d_params/" in k]:
        start = before[key.split("/", 1)[1]]
        update = want[key] - start
        mask = np.arange(update.size).reshape(update.shape) % 10 == 0
        flipped[key] = np.where(mask, start - update, want[key])
    bad = gpu_check.compare(flipped, want, before)
    assert not bad["within_tolerance"]
    assert bad["update_share_off"] > gpu_check.TOLERANCE["update_share_off"]


def _ours(phase1_ms, peak=None, program=None):
    memory = {"total": program} if program else None
    return {"result": {"steps": {"generator_phase1": {"median_ms": phase1_ms, "memory": memory},
                                 "phase2_iteration": {"median_ms": 2 * phase1_ms}},
                       "eval": {"median_ms": 10.0}, "peak_device_bytes": peak}}


def _torch(ms, peak=None, steady=None):
    return {"result": {"median_ms": ms, "eval": {"median_ms": 20.0},
                       "peak_device_bytes": peak, "peak_device_bytes_train": steady}}


def test_summary_ratios_and_goals():
    result = {"parts": {"parity": {"within_tolerance": True}, "tests": {"passed": False}},
              "rows": {"ours_paper_tf32": _ours(90.0), "torch_paper_tf32": _torch(100.0),
                       "ours_throughput": _ours(120.0), "torch_throughput": _torch(100.0),
                       "ours_throughput_bnvjp": _ours(60.0),
                       # ours: the program's memory, not the peak that compiling reached
                       "ours_memory_cityscapes": _ours(1.0, peak=40 * 2**30,
                                                       program=5 * 2**30),
                       "ours_memory_cityscapes_autotune0": _ours(1.0, program=4 * 2**30),
                       # torch: the timed iterations' peak, not cuDNN autotuning's
                       "torch_memory_cityscapes": _torch(1.0, peak=70 * 2**30,
                                                         steady=7 * 2**30),
                       "ours_paper_fp32": {"skipped": "10 s left, needs 80"}}}
    s = gpu_check.summarize(result)
    assert s["paper_tf32"]["ours_over_torch_step"] == pytest.approx(0.9)
    assert s["throughput"]["ours_over_torch_step"] == pytest.approx(1.2)
    assert s["paper_tf32"]["ours_over_torch_eval"] == pytest.approx(0.5)
    assert s["paper_tf32"]["ours_phase2_iteration_ms"] == 180.0
    assert "paper_fp32" not in s
    assert s["kernel_ms_over_default"] == {"bnvjp": pytest.approx(0.5)}
    assert s["memory_cityscapes"]["ours_gib"] == pytest.approx(5.0)
    assert s["memory_cityscapes"]["ours_peak_incl_compile_gib"] == pytest.approx(40.0)
    assert s["memory_cityscapes"]["ours_autotune0_gib"] == pytest.approx(4.0)
    assert s["memory_cityscapes"]["torch_gib"] == pytest.approx(7.0)
    assert s["goals"] == {"ours_over_torch_at_most_1": False, "memory_within_mmseg": True,
                          "parity_within_tolerance": True, "tests_passed": False}


def test_a_rows_xla_flags_add_to_the_callers():
    """The autotune row keeps the test's (or a user's) XLA_FLAGS and adds its own: replacing
    them dropped the tests' two devices and their cheap-compile settings."""
    env = {"XLA_FLAGS": "--xla_backend_optimization_level=0", "HOME": "/h"}
    row = {"XLA_FLAGS": "--xla_gpu_autotune_level=0"}
    assert gpu_check._with_row_env(env, row) == {
        "XLA_FLAGS": "--xla_backend_optimization_level=0 --xla_gpu_autotune_level=0",
        "HOME": "/h"}
    assert gpu_check._with_row_env({"HOME": "/h"}, row) == {**row, "HOME": "/h"}
    assert gpu_check._with_row_env(env, {}) == env


def _run(tmp_path, *args, timeout=600):
    # as on the lent GPU image: no TensorFlow, TFDS or clu in any process of the run
    blocker = tmp_path / "no_tensorflow"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\nfor n in ('tensorflow', 'tensorflow_datasets', 'clu'):\n"
        "    sys.modules[n] = None\n")
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(blocker)}
    done = subprocess.run([sys.executable, "-m", "launch.bench.gpu_check", str(tmp_path / "out"),
                           *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((tmp_path / "out" / "gpu_check.json").read_text())


def test_parts_that_do_not_fit_the_budget_are_skipped(tmp_path):
    result = _run(tmp_path, "--budget-s=1", "--rows=ours_paper_tf32", timeout=60)
    for part in ("env", "parity", "tests"):
        assert "needs" in result["parts"][part]["skipped"]
    assert "needs" in result["rows"]["ours_paper_tf32"]["skipped"]
    assert result["summary"]["goals"]["parity_within_tolerance"] is None


def test_tiny_run_of_every_part_on_the_cpu(tmp_path):
    # (ours_memory_cityscapes runs the same command as its autotune0 row, without the row's
    # environment: the row with the environment covers both)
    result = _run(tmp_path, "--tiny", "--rows=torch_paper_tf32,ours_memory_cityscapes_autotune0",
                  "--torch-python=/nonexistent/python")
    parts = result["parts"]
    assert parts["env"]["backend"] == "cpu" and parts["env"]["jax"]
    parity = parts["parity"]
    assert parity["within_tolerance"], parity
    assert set(parity["checks"]) == {"phase1:default_device_vs_reference",
                                     "phase2:default_device_vs_reference"}
    assert parts["tests"]["passed"] and parts["tests"]["tests"] > 0
    assert (tmp_path / "out" / "tests.xml").exists()
    ours = result["rows"]["ours_memory_cityscapes_autotune0"]["result"]
    assert set(ours["steps"]) == {"generator_phase1"} and "eval" not in ours
    assert ours["steps"]["generator_phase1"]["median_ms"] > 0 and ours["crop"] == [32, 48]
    assert ours["steps"]["generator_phase1"]["memory"]["total"] > 0
    row = result["rows"]["ours_memory_cityscapes_autotune0"]  # its own XLA_FLAGS
    assert row["env"] == {"XLA_FLAGS": "--xla_gpu_autotune_level=0"} and row["result"]
    # (the summary's memory figures from these rows: test_summary_ratios_and_goals)
    assert "no torch" in result["rows"]["torch_paper_tf32"]["skipped"]
    assert result["summary"]["goals"]["parity_within_tolerance"] is True
    assert (tmp_path / "out" / "gpu_check.log").stat().st_size > 0


def test_what_the_gpu_slot_runs_needs_no_tensorflow():
    """The lent GPU image has no TensorFlow, TFDS or clu: the configs of the full-size rows and
    launch/bench/torch_steps.py load without them (the tiny run above runs the rest with them
    blocked)."""
    code = """
import importlib.util, sys
for name in ("tensorflow", "tensorflow_datasets", "clu"):
    sys.modules[name] = None  # import fails
import launch.bench.torch_steps
for path, arg in (("configs/voc2012.py", "deeplabv3_resnet50_gan"),
                  ("configs/cityscapes.py", "deeplabv3_resnet50_gan")):
    spec = importlib.util.spec_from_file_location("c", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.get_config(arg)
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
