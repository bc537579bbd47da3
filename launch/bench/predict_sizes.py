"""``--mode=predict`` on images of many sizes: compilations, images/s and peak memory.

    python -m launch.bench.predict_sizes --config=configs/demo.py --workdir=RUN \
        [--images=300] [--out=/tmp/predict_sizes] [--min=50,50] [--max=1500,1100]

Writes ``--images`` random RGB images whose heights and widths are drawn uniformly between
``--min`` and ``--max`` (seeded), predicts them with the run's checkpoint in this process,
and prints one JSON line: the images, the distinct sizes, how many of them are larger than
``data.eval_size``, the XLA compilations (JAX's backend-compile events), the wall time,
images/s and the process's peak resident memory. docs/PERFORMANCE.md, "Predict on images of
many sizes", quotes it with its machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--out", default="/tmp/predict_sizes")
    parser.add_argument("--min", default="50,50", help="smallest height,width")
    parser.add_argument("--max", default="1500,1100", help="largest height,width")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    lo = [int(v) for v in args.min.split(",")]
    hi = [int(v) for v in args.max.split(",")]

    from PIL import Image

    folder = os.path.join(args.out, "images")
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    shapes = []
    for i in range(args.images):
        h, w = int(rng.integers(lo[0], hi[0] + 1)), int(rng.integers(lo[1], hi[1] + 1))
        shapes.append((h, w))
        path = os.path.join(folder, f"im{i:04d}.jpg")
        if not os.path.exists(path):
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)

    import jax

    compiles = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda name, secs, **kw: compiles.append(secs)
        if name == "/jax/core/compile/backend_compile_duration" else None)

    from ssgan_jax import configs
    from ssgan_jax.core import run_config
    from ssgan_jax.inference.predict import run_predict

    path, _, arg = configs.resolve(args.config).partition(":")
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config(arg or None)
    config.predict.input = os.path.join(folder, "*.jpg")
    config.predict.output_dir = os.path.join(args.out, "predictions")
    config, _ = run_config.with_recorded(config, args.workdir,
                                         ["predict.input", "predict.output_dir"])
    eh, ew = config.data.eval_size
    if os.path.exists(os.path.join(config.predict.output_dir, "predictions.json")):
        os.remove(os.path.join(config.predict.output_dir, "predictions.json"))
    start = time.time()
    summary = run_predict(config, args.workdir)
    wall = time.time() - start
    print(json.dumps({
        "images": summary["images"], "distinct_sizes": len(set(shapes)),
        "larger_than_eval_size": sum(h > eh or w > ew for h, w in shapes),
        "eval_size": [eh, ew], "compilations": len(compiles),
        "compile_seconds": round(sum(compiles), 1), "wall_seconds": round(wall, 1),
        "images_per_second": round(summary["images"] / wall, 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                   f"JAX {jax.__version__} ({jax.default_backend()})",
        "date": time.strftime("%Y-%m-%d")}), flush=True)


if __name__ == "__main__":
    main()
