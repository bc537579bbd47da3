"""Images/s and CPU-seconds per image of the training input pipeline (decode, scale, flip,
pad, crop, normalise, batch), Grain against the former tf.data one in one run.

    python -m launch.bench.input_pipeline --manual_dir ../shared/data/camvid480 \
        --out docs/results/input_pipeline_cpu.json

For each crop (the paper's 500x500, 512x512, 512x1024) it times ``--steps`` batches of
``--batch`` after ``--warmup`` batches, for Grain with 1 thread (one core's worth), with
``--threads`` threads in the training process, and with ``--workers`` worker processes;
and, where TensorFlow is installed, for ``launch/bench/tfdata_reference.py`` with a private
thread pool of 1 thread and with AUTOTUNE. CPU time is the process's and its children's
(psutil), so the CPU-seconds per image count worker processes too. Both read the same
images (TFDS builders in ArrayRecord and in TFRecord files, prepared into ``--data_dir`` on
the first run). Prints and writes one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time


def _processor() -> str:
    """The CPU's model name (Linux), else what ``platform`` says."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _cpu_seconds() -> float:
    import psutil

    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:
            pass
    return total


def _time(make, warmup: int, steps: int, batch: int) -> dict:
    it = make()
    for _ in range(warmup):
        next(it)
    wall, cpu = time.perf_counter(), _cpu_seconds()
    for _ in range(steps):
        next(it)
    wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
    images = steps * batch
    del it
    return {"images_per_s": round(images / wall, 1),
            "cpu_ms_per_image": round(1000 * cpu / images, 2),
            "cores_busy": round(cpu / wall, 2)}


def _config(a, crop, data_dir):
    from ssgan_jax.core.config import get_config

    config = get_config()
    config.data.name = "camvid"
    config.data.manual_dir, config.data.data_dir = a.manual_dir, data_dir
    config.data.crop_size = crop
    config.batch_size = a.batch
    return config


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--manual_dir", required=True)
    p.add_argument("--data_dir", default=os.path.join(tempfile.gettempdir(), "ssgan_bench_data"))
    p.add_argument("--crops", default="500x500,512x512,512x1024")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--workers", type=int, default=os.cpu_count())
    p.add_argument("--no_reference", action="store_true", help="skip tf.data")
    p.add_argument("--out", default="")
    a = p.parse_args()

    from ssgan_jax.data import open_prepared, pipeline

    try:
        import tensorflow  # noqa: F401

        from launch.bench import tfdata_reference
    except ImportError:
        tfdata_reference = None
    reference = tfdata_reference is not None and not a.no_reference
    result = {"machine": {"cpu_cores": os.cpu_count(), "processor": _processor(),
                          "python": platform.python_version()},
              "manual_dir": a.manual_dir, "batch": a.batch, "steps": a.steps, "crops": {}}
    ar_dir, tfr_dir = os.path.join(a.data_dir, "array_record"), os.path.join(a.data_dir,
                                                                            "tfrecord")
    for spec in a.crops.split(","):
        crop = tuple(int(v) for v in spec.split("x"))
        rows = {}
        variants = [("grain_1_thread", 1, 0), (f"grain_{a.threads}_threads", a.threads, 0),
                    (f"grain_{a.workers}_workers", 1, a.workers)]
        for name, threads, workers in variants:
            config = _config(a, crop, ar_dir)
            config.data.threads, config.data.workers = threads, workers
            config.data.prefetch = max(2, threads)
            rows[name] = _time(lambda c=config: pipeline.train_dataset(
                c, local_devices=1, dataset=open_prepared(c.data)), a.warmup, a.steps, a.batch)
            print(spec, name, rows[name], flush=True)
        if reference:
            for name, threads in (("tfdata_1_thread", 1), ("tfdata_autotune", 0)):
                config = _config(a, crop, tfr_dir)
                rows[name] = _time(lambda c=config, t=threads: tfdata_reference.train_dataset(
                    c, threads=t), a.warmup, a.steps, a.batch)
                print(spec, name, rows[name], flush=True)
        if "tfdata_1_thread" in rows:
            rows["grain_over_tfdata_cpu_per_image"] = round(
                rows["grain_1_thread"]["cpu_ms_per_image"]
                / rows["tfdata_1_thread"]["cpu_ms_per_image"], 3)
        # one core's worth of images/s, and the cores a GPU's demand needs at that rate
        one = rows["grain_1_thread"]["cpu_ms_per_image"]
        if one <= 0:
            raise SystemExit(f"{a.steps} batches of {a.batch} took too little CPU time to "
                             "measure: raise --steps or --batch")
        per_core = 1000.0 / one
        rows["grain_images_per_s_per_core"] = round(per_core, 1)
        rows["grain_images_per_s_16_cores"] = round(16 * per_core, 1)
        for demand in (72, 182):
            rows[f"cores_for_{demand}_images_per_s"] = round(demand / per_core, 2)
        result["crops"][spec] = rows
    text = json.dumps(result, indent=1)
    print(text)
    if a.out:
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        with open(a.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
