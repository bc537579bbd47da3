"""Speed of the train steps: ``python -m ssgan_jax.main --mode=benchmark --config=configs/X.py``.

Prints one JSON object: backend, device kind and count, per-device batch, crop; compile
seconds, median/min/max milliseconds, FLOPs (XLA cost analysis) and achieved FLOP/s of the
phase-1 generator step, one adversary update, one phase-2 generator update and a full
phase-2 iteration as training runs it (one program: ``phase2.d_steps`` adversary and
``phase2.g_steps`` generator updates, sharing G's forward pass with
``phase2.share_generator_forward``; with ``semi.unlabeled_batch_size`` > 0 the semi-supervised
iteration, on that many unlabelled images more); images/s;
eval forward images/s at ``data.eval_size``; peak host RSS and, where the backend reports it,
peak device memory; achieved FLOP/s as a fraction of the devices' peak, where the peak is
known (``config.benchmark.peak_flops_per_s``, or ``PEAK_FLOPS`` by device kind and dtype).
Inputs are random arrays already on the devices (no input pipeline); warm-up iterations are
excluded and every timing ends with ``block_until_ready``. Knobs: ``config.benchmark.*``
(iterations, warm-up, eval on/off, which steps to time, peak FLOP/s).
"""

from __future__ import annotations

import resource
import statistics
import time
from typing import Any

import jax
import ml_collections
import numpy as np

from ssgan_jax import data as data_lib
from ssgan_jax.core import config as config_lib
from ssgan_jax.core import parallel
from ssgan_jax.core.errors import ConfigError
from ssgan_jax.inference import tta
from ssgan_jax.models import conv as conv_lib
from ssgan_jax.models import norm as norm_lib
from ssgan_jax.training import state as state_lib
from ssgan_jax.training.experiment import Experiment

STEPS = ("generator_phase1", "adversary", "generator_phase2", "phase2_iteration")

# Dense (no sparsity) tensor-core peak FLOP/s of one device, from NVIDIA's data sheets, by
# compute dtype: XLA runs float32 convs and matmuls on these GPUs in TF32 at default precision,
# so "float32" is the TF32 peak. Matched against jax's device_kind by its substrings (all must
# occur), first match wins; anything else needs config.benchmark.peak_flops_per_s.
PEAK_FLOPS = (
    (("H200",), {"bfloat16": 989.4e12, "float32": 494.7e12}),
    (("H100", "PCIe"), {"bfloat16": 756.0e12, "float32": 378.0e12}),
    (("H100", "HBM3"), {"bfloat16": 989.4e12, "float32": 494.7e12}),  # SXM5
    (("H100", "SXM"), {"bfloat16": 989.4e12, "float32": 494.7e12}),
    (("A100",), {"bfloat16": 312.0e12, "float32": 156.0e12}),
)


def _flops(lowered) -> float | None:
    """FLOPs of one call per device, from XLA's cost analysis of the program as lowered
    (None if not reported). The lowered program, not the compiled one: after XLA:GPU's
    passes the convolutions are cuDNN custom calls, which its cost analysis counts as 0
    (the H100 run of 2026-11-26 reported 1.5 GFLOP for a 280-GFLOP forward pass)."""
    try:
        cost = lowered.cost_analysis()
    except Exception:  # noqa: BLE001 - some backends do not implement it
        return None
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else None
    if not cost or "flops" not in cost:
        return None
    return float(cost["flops"])


def peak_flops(device_kind: str, dtype: str, configured: float = 0.0) -> tuple[float | None, str]:
    """(peak FLOP/s of one device, where the figure comes from): ``configured`` when > 0,
    else ``PEAK_FLOPS``'s entry for ``device_kind`` and ``dtype``, else (None, why not)."""
    if configured < 0:
        raise ConfigError(f"config.benchmark.peak_flops_per_s must be >= 0 (0 = look up the "
                         f"device kind); got {configured}")
    if configured:
        return float(configured), "config.benchmark.peak_flops_per_s"
    for words, by_dtype in PEAK_FLOPS:
        if all(w in device_kind for w in words) and dtype in by_dtype:
            return by_dtype[dtype], f"data sheet, dense {dtype}: {' '.join(words)}"
    return None, (f"unknown for {device_kind!r} ({dtype}); set "
                  "--config.benchmark.peak_flops_per_s to the peak of one device")


def _timings(seconds: list[float]) -> dict[str, float]:
    ms = [1000 * s for s in seconds]
    return {"median_ms": statistics.median(ms), "min_ms": min(ms), "max_ms": max(ms)}


def _device_peak_bytes() -> int | None:
    stats = jax.local_devices()[0].memory_stats()
    if not stats:
        return None
    return stats.get("peak_bytes_in_use")


def _program_memory(compiled) -> dict[str, int] | None:
    """What one device holds while the compiled step runs, from XLA's buffer assignment:
    arguments, outputs (less those aliased to donated arguments), temporaries (activations,
    convolution workspaces). Unlike ``peak_bytes_in_use`` it leaves out what compiling took
    (autotuning's trial workspaces) and the other steps' buffers."""
    try:
        stats = compiled.memory_analysis()
    except (NotImplementedError, jax.errors.JaxRuntimeError):
        return None
    if stats is None:
        return None
    parts = {k: int(getattr(stats, f"{k}_size_in_bytes"))
             for k in ("argument", "output", "alias", "temp")}
    parts["total"] = parts["argument"] + parts["output"] - parts["alias"] + parts["temp"]
    return parts


def _time_chain(fns, state, args_per_fn, iterations: int, warmup: int):
    """Run ``fns`` in sequence (state threaded through) ``warmup + iterations`` times."""
    seconds = []
    for i in range(warmup + iterations):
        start = time.perf_counter()
        for fn, args in zip(fns, args_per_fn, strict=True):
            state, metrics = fn(state, *args)
        jax.block_until_ready((state, metrics))
        if i >= warmup:
            seconds.append(time.perf_counter() - start)
    return state, seconds


def run_benchmark(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """Measure; returns the JSON-ready dict that ``main`` prints. ``config`` is checked
    (``config.check``: iterations >= 1, warmup >= 0)."""
    bench = config.benchmark
    wanted = tuple(bench.steps)
    unknown = [name for name in wanted if name not in STEPS]
    if unknown or not wanted:
        raise ConfigError(f"config.benchmark.steps has {unknown or 'nothing'}; choose from "
                         f"{list(STEPS)}")
    kind = jax.local_devices()[0].device_kind
    peak, peak_source = peak_flops(kind, config.model.dtype, bench.peak_flops_per_s)
    num_classes = data_lib.num_classes(config.data)
    config_lib.check_devices(config, training=True)
    devices = jax.local_device_count()
    per_device = config.batch_size // devices
    ch, cw = config.data.crop_size
    rng = np.random.default_rng(config.seed)
    batch = parallel.shard_batch({
        "image": rng.normal(size=(devices, per_device, ch, cw, 3)).astype(np.float32),
        "label": rng.integers(0, num_classes, size=(devices, per_device, ch, cw)).astype(
            np.int32),
        # as training's crops: each one's image region (models.canvas), here the whole crop
        "sizes": np.broadcast_to(np.asarray([ch, cw], np.int32), (devices, per_device, 2))})

    unlabeled = config.semi.unlabeled_batch_size if config_lib.adversary_on(config) else 0
    if unlabeled:  # the semi-supervised phase-2 iteration
        batch = {**batch, **parallel.shard_batch({
            "unlabeled": rng.normal(size=(devices, unlabeled // devices, ch, cw, 3)).astype(
                np.float32),
            "unlabeled_sizes": np.broadcast_to(np.asarray([ch, cw], np.int32),
                                               (devices, unlabeled // devices, 2))})}
    experiment = Experiment(config, num_classes)
    state = parallel.on_devices(experiment.initial_state(2))
    makers = {
        "generator_phase1": lambda: experiment.train_step(1),
        "adversary": lambda: experiment.update("adversary"),
        "generator_phase2": lambda: experiment.update("generator"),
        "phase2_iteration": lambda: experiment.train_step(2),
    }
    compiled, result_steps = {}, {}
    for name in (n for n in makers if n in wanted):
        start = time.perf_counter()
        lowered = makers[name]().lower(state, batch)
        compiled[name] = lowered.compile()
        result_steps[name] = {"compile_s": time.perf_counter() - start,
                              "flops_per_device": _flops(lowered),
                              "memory": _program_memory(compiled[name])}
    it, warm = bench.iterations, bench.warmup
    images = config.batch_size
    for name, fn in compiled.items():
        state, seconds = _time_chain([fn], state, [(batch,)], it, warm)
        result_steps[name].update(_timings(seconds))
    if "phase2_iteration" in result_steps:
        result_steps["phase2_iteration"]["shared_generator_forward"] = bool(
            config.phase2.share_generator_forward)
    result_steps = {n: r for n, r in result_steps.items() if n in wanted}
    for r in result_steps.values():
        f = r.get("flops_per_device")
        r["achieved_flops_per_s"] = (f * devices / (r["median_ms"] / 1000)) if f else None
        r["fraction_of_peak"] = (r["achieved_flops_per_s"] / (peak * devices)
                                 if peak and f else None)
        r["images_per_s"] = images / (r["median_ms"] / 1000)
    ratio = None
    if {"generator_phase1", "phase2_iteration"} <= set(result_steps):
        ratio = (result_steps["phase2_iteration"]["median_ms"]
                 / result_steps["generator_phase1"]["median_ms"])
    out: dict[str, Any] = {
        "backend": jax.default_backend(),
        "device_kind": kind,
        "device_count": jax.device_count(),
        "local_device_count": devices,
        "model": config.model.name,
        "width": config.model.width,
        "dtype": config.model.dtype,
        "matmul_precision": config.model.matmul_precision,
        "bn_mode": config.model.bn_mode,
        "conv_rewrites": config.model.conv_rewrites,
        "conv_gemm_forms": conv_lib.use_gemm_forms(config.model.conv_rewrites),
        "bn_vjp": config.model.bn_vjp,
        "bn_custom_vjp": norm_lib.module_for(config.model.bn_vjp) is norm_lib.BatchNorm,
        "global_batch": config.batch_size,
        "unlabeled_batch": unlabeled,
        "per_device_batch": per_device,
        "crop": [ch, cw],
        "iterations": it,
        "warmup": warm,
        "steps": result_steps,
        "phase2_iteration_over_phase1_step": ratio,
        "peak_flops_per_s_per_device": peak,
        "peak_flops_source": peak_source,
    }
    if bench.eval:
        out["eval"] = _eval_speed(config, experiment.generator, state, num_classes, it, warm)
    out["peak_host_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["peak_device_bytes"] = _device_peak_bytes()
    return out


def _eval_speed(config, generator, state, num_classes, iterations, warmup) -> dict[str, Any]:
    devices = jax.local_device_count()
    per_device = max(1, config.eval_batch_size // devices)
    if config.data.eval_size == "auto":
        from ssgan_jax.core.errors import ConfigError

        raise ConfigError("the benchmark times the eval forward pass at data.eval_size, which "
                          "is \"auto\" (known only from a prepared dataset): give a size, "
                          "e.g. --config.data.eval_size=(512,512)")
    eh, ew = config.data.eval_size
    images = parallel.shard_batch(np.random.default_rng(0).normal(
        size=(devices, per_device, eh, ew, 3)).astype(np.float32))
    variables = state_lib.generator_variables(state)
    start = time.perf_counter()
    lowered = parallel.pmap_eval(tta.make_predict_fn(
        generator, tta.from_config(config))).lower(variables, images)
    fn = lowered.compile()
    compile_s = time.perf_counter() - start
    seconds = []
    for i in range(warmup + iterations):
        start = time.perf_counter()
        jax.block_until_ready(fn(variables, images))
        if i >= warmup:
            seconds.append(time.perf_counter() - start)
    timing = _timings(seconds)
    return {"size": [eh, ew], "batch": devices * per_device, "compile_s": compile_s,
            "flops_per_device": _flops(lowered), **timing,
            "images_per_s": devices * per_device / (timing["median_ms"] / 1000)}
