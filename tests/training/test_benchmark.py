"""``python -m ssgan_jax.main --mode=benchmark``: a smoke test of its JSON (keys and sanity,
not speed)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest

from launch.bench import table as bench_table
from ssgan_jax.data.classes import class_names
from ssgan_jax.training.benchmark import peak_flops, run_benchmark

from ..train_fixtures import tiny_config


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """(config, JSON) of one benchmark of every step, shared by this file's tests."""
    config = tiny_config(tmp_path_factory.mktemp("bench"), "fcn8s_vgg16")
    config.model.conv_rewrites = "auto"  # what a CPU run uses
    config.benchmark.iterations = 2
    config.benchmark.warmup = 0
    return config, run_benchmark(config)


def test_benchmark_reports_every_figure(full, tmp_path):
    _, out = full
    for key in ("backend", "device_kind", "device_count", "per_device_batch", "crop", "steps",
                "phase2_iteration_over_phase1_step", "eval", "peak_host_rss_mb",
                "peak_device_bytes"):
        assert key in out, key
    assert out["backend"] == "cpu" and out["device_count"] == 2 and out["per_device_batch"] == 2
    assert out["crop"] == [32, 48]
    assert out["conv_rewrites"] == "auto" and out["conv_gemm_forms"] is True  # auto on CPU
    assert set(out["steps"]) == {"generator_phase1", "adversary", "generator_phase2",
                                 "phase2_iteration"}
    for name, r in out["steps"].items():
        assert 0 < r["min_ms"] <= r["median_ms"] <= r["max_ms"], name
        assert r["images_per_s"] > 0 and r["flops_per_device"] > 0, name
        assert r["compile_s"] > 0, name
        m = r["memory"]  # XLA's buffer assignment for the step's program
        assert m["total"] == m["argument"] + m["output"] - m["alias"] + m["temp"], name
        assert m["argument"] > 0 and m["temp"] > 0, name
    # the fused phase-2 iteration is one adversary and one generator update sharing one G
    # forward: more FLOPs than the G step, fewer than both steps
    steps = out["steps"]
    assert steps["phase2_iteration"]["shared_generator_forward"] is True
    assert steps["generator_phase2"]["flops_per_device"] < steps["phase2_iteration"][
        "flops_per_device"] < (steps["adversary"]["flops_per_device"]
                               + steps["generator_phase2"]["flops_per_device"])
    assert steps["generator_phase2"]["flops_per_device"] > steps["generator_phase1"][
        "flops_per_device"]  # the adversary's forward/backward through G's output
    # the state holds A's parameters too: phase 2's arguments are G's and A's, phase 1's also
    assert steps["phase2_iteration"]["memory"]["temp"] > steps["generator_phase1"]["memory"][
        "temp"]  # the adversary's activations
    assert out["eval"]["size"] == [96, 64] and out["eval"]["images_per_s"] > 0
    assert out["peak_host_rss_mb"] > 100
    # no peak is known for a CPU: no fraction, and the JSON says how to give one
    assert out["peak_flops_per_s_per_device"] is None
    assert "--config.benchmark.peak_flops_per_s" in out["peak_flops_source"]
    assert all(r["fraction_of_peak"] is None for r in steps.values())

    # launch/bench/table.py: the PERFORMANCE.md row of this JSON
    (tmp_path / "tiny.json").write_text("log line before the object\n" + json.dumps(out))
    lines = bench_table.table([tmp_path / "tiny.json"]).splitlines()
    cells = dict(zip(bench_table.COLUMNS, (c.strip() for c in lines[2].strip("|").split("|")),
                     strict=True))
    g1 = steps["generator_phase1"]
    assert cells["run"] == "tiny" and cells["batch"] == "4" and cells["crop"] == "32x48"
    assert cells["G phase 1 ms"] == f"{g1['median_ms']:.1f}"
    assert cells["phase-2 iteration ms"] == f"{steps['phase2_iteration']['median_ms']:.1f}"
    assert cells["GFLOP / step"] == f"{g1['flops_per_device'] * 2 / 1e9:.1f}"
    assert cells["of peak"] == "-" and cells["device"] == "2 x cpu"


def test_benchmark_times_only_the_steps_asked_for(full):
    config = copy.deepcopy(full[0])
    config.benchmark.iterations = 1
    config.benchmark.warmup = 0
    config.benchmark.eval = False
    config.benchmark.steps = ("generator_phase1",)
    config.benchmark.peak_flops_per_s = 2e11
    out = run_benchmark(config)
    assert set(out["steps"]) == {"generator_phase1"}
    step = out["steps"]["generator_phase1"]
    # achieved FLOP/s of both devices over both devices' peak
    assert out["peak_flops_per_s_per_device"] == 2e11
    assert step["fraction_of_peak"] == pytest.approx(
        step["flops_per_device"] * 2 / (step["median_ms"] / 1000) / (2 * 2e11))
    assert out["phase2_iteration_over_phase1_step"] is None and "eval" not in out
    # without the shared forward, the iteration runs the separate updates (each with its own G
    # forward) in one program: their FLOPs (counted on the lowered programs, before XLA merges
    # anything) plus a few scalar ops of bookkeeping, more than the G update alone
    # (the single updates are the same programs either way: their FLOPs from the full run)
    config.phase2.share_generator_forward = False
    config.benchmark.steps = ("phase2_iteration",)
    steps = {**full[1]["steps"], **run_benchmark(config)["steps"]}
    assert steps["phase2_iteration"]["shared_generator_forward"] is False
    assert steps["generator_phase2"]["flops_per_device"] < steps["phase2_iteration"][
        "flops_per_device"] <= 1.001 * (steps["adversary"]["flops_per_device"]
                                        + steps["generator_phase2"]["flops_per_device"])
    config.benchmark.steps = ("generator_phase3",)
    with pytest.raises(ValueError, match="generator_phase3"):
        run_benchmark(config)


def test_benchmark_of_the_semi_iteration(full):
    """With unlabelled images the phase-2 iteration does more work: FLOPs grow with them."""
    config, plain = copy.deepcopy(full[0]), full[1]  # the plain iteration: the full run's
    config.benchmark.iterations = 1
    config.benchmark.warmup = 0
    config.benchmark.eval = False
    config.benchmark.steps = ("phase2_iteration",)
    config.semi.unlabeled_batch_size = 4  # as many as labelled
    semi = run_benchmark(config)
    assert (plain["unlabeled_batch"], semi["unlabeled_batch"]) == (0, 4)
    ratio = (semi["steps"]["phase2_iteration"]["flops_per_device"]
             / plain["steps"]["phase2_iteration"]["flops_per_device"])
    assert 1.5 < ratio < 2.2  # G and A see twice the images; A's real pairs stay labelled
    config.semi.unlabeled_batch_size = 3
    with pytest.raises(ValueError, match="not divisible by the 2 devices"):
        run_benchmark(config)


def test_peak_flops_by_device_kind_and_dtype():
    """Dense tensor-core peaks of NVIDIA's data sheets; float32 is TF32 (XLA's default on these
    GPUs); a configured peak wins; unknown devices say which flag to set."""
    assert peak_flops("NVIDIA H100 80GB HBM3", "float32") == (
        494.7e12, "data sheet, dense float32: H100 HBM3")
    assert peak_flops("NVIDIA H100 80GB HBM3", "bfloat16")[0] == 989.4e12
    assert peak_flops("NVIDIA H100 PCIe", "bfloat16")[0] == 756.0e12
    assert peak_flops("NVIDIA H200", "bfloat16")[0] == 989.4e12
    assert peak_flops("NVIDIA A100-SXM4-80GB", "float32")[0] == 156.0e12
    assert peak_flops("NVIDIA H100 80GB HBM3", "float32", 1e12) == (
        1e12, "config.benchmark.peak_flops_per_s")
    peak, why = peak_flops("cpu", "float32")
    assert peak is None and "'cpu'" in why and "peak_flops_per_s" in why
    assert peak_flops("NVIDIA H100 NVL", "float32")[0] is None  # not in the table
    with pytest.raises(ValueError, match="peak_flops_per_s must be >= 0"):
        peak_flops("cpu", "float32", -1.0)


def test_benchmark_needs_no_tensorflow():
    """GPU machines may have JAX but no TF/TFDS: the benchmark's imports and its class lookup
    work with both made unimportable (the TFDS builders take their classes from the same
    table, so the counts cannot drift)."""
    code = (
        "import sys\n"
        "for m in ('tensorflow', 'tensorflow_datasets'):\n"
        "    sys.modules[m] = None  # import raises ImportError\n"
        "import ssgan_jax.main, ssgan_jax.training.benchmark\n"
        "from ssgan_jax.data.classes import class_names\n"
        "print([len(class_names(n)) for n in ('camvid', 'voc2012_aug', 'cityscapes')])\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[11, 21, 19]"
    from ssgan_jax.data import builder_class

    for name in ("camvid", "voc2012_aug", "cityscapes"):
        assert builder_class(name).CLASS_NAMES == class_names(name)
    with pytest.raises(ValueError, match="config.data.name must be one of"):
        class_names("ade20k")
