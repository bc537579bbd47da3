"""python -m ssgan_jax.benchmark: a smoke test of its JSON (keys and sanity, not speed)."""

from __future__ import annotations

import pytest

from ssgan_jax.benchmark import run_benchmark

from .train_fixtures import tiny_config


def test_benchmark_reports_every_figure(tmp_path):
    config = tiny_config(tmp_path, "fcn8s_vgg16")
    config.benchmark.iterations = 2
    config.benchmark.warmup = 1
    out = run_benchmark(config)
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
    # the fused phase-2 iteration is one adversary and one generator update sharing one G
    # forward: more FLOPs than the G step, fewer than both steps
    steps = out["steps"]
    assert steps["phase2_iteration"]["shared_generator_forward"] is True
    assert steps["generator_phase2"]["flops_per_device"] < steps["phase2_iteration"][
        "flops_per_device"] < (steps["adversary"]["flops_per_device"]
                               + steps["generator_phase2"]["flops_per_device"])
    assert steps["generator_phase2"]["flops_per_device"] > steps["generator_phase1"][
        "flops_per_device"]  # the adversary's forward/backward through G's output
    assert out["eval"]["size"] == [96, 64] and out["eval"]["images_per_s"] > 0
    assert out["peak_host_rss_mb"] > 100


def test_benchmark_times_only_the_steps_asked_for(tmp_path):
    config = tiny_config(tmp_path, "fcn8s_vgg16")  # same step as above: a compile-cache hit
    config.benchmark.iterations = 1
    config.benchmark.warmup = 0
    config.benchmark.eval = False
    config.benchmark.steps = ("generator_phase1",)
    out = run_benchmark(config)
    assert set(out["steps"]) == {"generator_phase1"}
    assert out["phase2_iteration_over_phase1_step"] is None and "eval" not in out
    # without the shared forward, the iteration is the separate steps (compile-cache hits)
    config.phase2.share_generator_forward = False
    config.benchmark.steps = ("adversary", "generator_phase2", "phase2_iteration")
    steps = run_benchmark(config)["steps"]
    assert steps["phase2_iteration"]["shared_generator_forward"] is False
    assert steps["phase2_iteration"]["flops_per_device"] == (
        steps["adversary"]["flops_per_device"] + steps["generator_phase2"]["flops_per_device"])
    config.benchmark.steps = ("generator_phase3",)
    with pytest.raises(ValueError, match="generator_phase3"):
        run_benchmark(config)
