"""Images/s of the training input pipeline (decode, scale, pad, crop, flip, batch).

    python -m launch.bench.input_pipeline --manual_dir ../shared/data/camvid --crop 512 \
        --batch 16 --steps 30

Prepares CamVid into a temporary data_dir if needed, skips 3 warm-up batches, then times
``--steps`` batches. Prints one JSON line.
"""

import argparse
import json
import os
import tempfile
import time

from ssgan_jax.core.config import get_config
from ssgan_jax.data.pipeline import as_numpy, train_dataset


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--manual_dir", required=True)
    p.add_argument("--data_dir", default=os.path.join(tempfile.gettempdir(), "ssgan_bench_tfds"))
    p.add_argument("--crop", type=int, default=512)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=30)
    a = p.parse_args()
    config = get_config()
    config.data.name = "camvid"
    config.data.manual_dir, config.data.data_dir = a.manual_dir, a.data_dir
    config.data.crop_size = (a.crop, a.crop)
    config.batch_size = a.batch
    it = iter(as_numpy(train_dataset(config, local_devices=1)))
    for _ in range(3):
        next(it)
    start = time.perf_counter()
    for _ in range(a.steps):
        next(it)
    dt = time.perf_counter() - start
    print(json.dumps({"crop": a.crop, "batch": a.batch, "steps": a.steps,
                      "images_per_s": round(a.steps * a.batch / dt, 1),
                      "cpu_cores": os.cpu_count()}))


if __name__ == "__main__":
    main()
