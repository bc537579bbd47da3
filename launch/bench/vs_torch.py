"""Our train step against torchvision's, on the same machine, in the same run, interleaved.

    python -m launch.bench.vs_torch --torch-python=/path/to/torchvenv/bin/python --rounds=3

Each round runs ``launch/bench/torch_steps.py`` (torchvision's DeepLabv3-ResNet50 train step)
and then ``python -m ssgan_jax.main --mode=benchmark`` (our phase-1 generator step on the same
model, batch, crop and
thread count), each in a fresh process, so both see the same machine load; a shared VM's
neighbours move single figures by 10-20%, so compare the medians over rounds. Prints one JSON
object with every round's medians and the ratio ours / torch of the medians over rounds.

torch and torchvision are not project dependencies: install them in a separate environment and
point ``--torch-python`` at its interpreter. Our side runs with ``sys.executable``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

from launch.bench import torch_steps

ROOT = Path(__file__).resolve().parents[2]  # the repository
MODELS = {  # torch_steps.MODELS -> our config variant
    "deeplabv3_resnet50": "deeplabv3_resnet50_gan",
    "fcn_vgg16": "fcn8s_vgg16_gan",
}


def _json_from(cmd: list[str], env: dict[str, str]) -> dict:
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    out = done.stdout
    return json.loads(out[out.index("{"):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--torch-python", required=True,
                        help="python of an environment with torch and torchvision")
    torch_steps.add_step_arguments(parser)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    h, w = args.crop
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    torch_cmd = [args.torch_python, "launch/bench/torch_steps.py", *torch_steps.step_argv(args)]
    ours_cmd = [sys.executable, "-m", "ssgan_jax.main", "--mode=benchmark",
                f"--config=configs/camvid.py:{MODELS[args.model]}",
                f"--config.batch_size={args.batch}", f"--config.data.crop_size=({h},{w})",
                "--config.model.bn_mode=train", "--config.benchmark.steps=('generator_phase1',)",
                "--config.benchmark.eval=False", f"--config.benchmark.iterations={args.iterations}",
                f"--config.benchmark.warmup={args.warmup}"]
    rounds = []
    for r in range(args.rounds):
        torch_out = _json_from(torch_cmd, env)
        ours_out = _json_from(ours_cmd, env)
        step = ours_out["steps"]["generator_phase1"]
        rounds.append({"torch_median_ms": torch_out["median_ms"],
                       "ours_median_ms": step["median_ms"],
                       "ours_compile_s": step["compile_s"]})
        print(f"round {r + 1}/{args.rounds}: torch {torch_out['median_ms']:.0f} ms, "
              f"ours {step['median_ms']:.0f} ms", file=sys.stderr, flush=True)
    torch_ms = statistics.median(x["torch_median_ms"] for x in rounds)
    ours_ms = statistics.median(x["ours_median_ms"] for x in rounds)
    print(json.dumps({
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "torch": torch_out["framework"], "torch_note": torch_out.get("note"),
        "ours": f"jax {ours_out['backend']} {ours_out['device_kind']}",
        "model": args.model, "batch": args.batch, "crop": [h, w], "threads": args.threads,
        "iterations": args.iterations, "rounds": rounds,
        "torch_median_ms": torch_ms, "ours_median_ms": ours_ms,
        "ours_over_torch": ours_ms / torch_ms,
    }, indent=1))


if __name__ == "__main__":
    main()
