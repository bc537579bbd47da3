"""What the CamVid experiment scripts share: the command line of one run of ours, running
it with a log, the arguments every experiment takes, its results file, and a paired phase-2
run from a shared phase 1."""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# The ``,cpu`` size of configs/camvid.py as the studies of docs/RESULTS.md ran it (until
# 2026-12-02, when that size became the class-balanced, longer recipe): these scripts pin it,
# so that they reproduce their committed records
STUDY_CPU_SETTINGS = ["--config.loss.class_balance=", "--config.phase1.steps=1000",
                      "--config.phase1.lr=0.001", "--config.phase1.end_lr=0.0001",
                      "--config.phase2.steps=300",
                      "--config.train.eval_every=100", "--config.train.checkpoint_every=100"]


def main_cmd(config: str, workdir: str, extra: list[str], data: str, data_dir: str,
             pin: bool = True):
    """The command line of one ``python -m ssgan_jax.main`` run on CamVid folder ``data``
    (with ``pin``, ``STUDY_CPU_SETTINGS`` first for a ``,cpu`` config; ``extra`` overrides
    them; without, the ``,cpu`` recipe as configs/camvid.py defines it)."""
    pinned = STUDY_CPU_SETTINGS if pin and config.endswith(",cpu") else []
    return [sys.executable, "-m", "ssgan_jax.main", f"--config={config}", f"--workdir={workdir}",
            f"--config.data.manual_dir={data}", f"--config.data.data_dir={data_dir}", *pinned,
            *extra]


def run(cmd: list[str], log: str) -> float:
    """Run ``cmd`` appending its output to ``log``; returns wall seconds; exits on failure."""
    os.makedirs(os.path.dirname(log), exist_ok=True)
    print(f"$ {' '.join(cmd[1:])}  (log: {log})", flush=True)
    start = time.time()
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"\n$ {' '.join(cmd)}\n")
        f.flush()
        r = subprocess.run(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
    seconds = time.time() - start
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}) after {seconds:.0f}s: see {log}")
    return seconds


def add_time(workdir: str, key: str, seconds: float) -> None:
    """Add ``seconds`` to ``key`` of ``<workdir>/wall_seconds.json``."""
    path = os.path.join(workdir, "wall_seconds.json")
    times = json.load(open(path)) if os.path.exists(path) else {}
    times[key] = times.get(key, 0.0) + seconds
    with open(path, "w") as f:
        json.dump(times, f)


def collect(workdir: str) -> dict:
    """A finished run's results: its test eval JSON (no confusion) and its curves."""
    evals = sorted(glob.glob(os.path.join(workdir, "eval", "test_step_*.json")))
    with open(evals[-1]) as f:
        test = json.load(f)
    test.pop("confusion", None)
    return {"test": test, **curves(workdir)}


def curves(workdir: str) -> dict:
    """A run's validation curve, the adversary's mean accuracy over training and the health
    warnings its log printed."""
    val, adversary = [], []
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        for line in f:
            m = json.loads(line)
            if "val/miou" in m:
                val.append({k: m.get(k) for k in ("step", "val/miou", "val/boundary_f1",
                                                  "val/fragmentation", "val/speckle")})
            if "train/d_acc_real" in m:
                adversary.append([m["step"], 0.5 * (m["train/d_acc_real"]
                                                    + m["train/d_acc_fake"])])
    with open(os.path.join(workdir, "log.txt")) as f:
        health = [line.strip() for line in f if line.startswith("WARNING at step")]
    return {"val": val, "adversary_accuracy": adversary, "adversary_warnings": health}


def add_experiment_arguments(parser: argparse.ArgumentParser, name: str, seeds: str,
                             phase2_steps: int) -> None:
    """The arguments every CamVid experiment script takes (camvid_study, camvid_semi)."""
    parser.add_argument("--data", default=os.path.join(REPO, "..", "shared", "data", "camvid"))
    parser.add_argument("--out", default=os.path.join(REPO, "runs", name))
    parser.add_argument("--results", default=os.path.join(REPO, "docs", "results",
                                                          f"{name}.json"))
    parser.add_argument("--seeds", default=seeds)
    parser.add_argument("--phase2-steps", type=int, default=phase2_steps)
    parser.add_argument("--generator", default="deeplabv3_resnet50",
                        choices=("deeplabv3_resnet50", "fcn8s_vgg16"))
    parser.add_argument("--extra", default="", help="more overrides for every run, "
                        "space-separated (e.g. for a quick trial)")
    parser.add_argument("--docs", default=os.path.join(REPO, "docs"))


def camvid_folder(path: str) -> str:
    """``path`` made absolute; exits unless it is a CamVid folder."""
    data = os.path.abspath(path)
    if not os.path.isdir(os.path.join(data, "trainannot")):
        sys.exit(f"--data={data} is not a CamVid folder (no trainannot/)")
    return data


def load_results(path: str, settings: dict) -> dict:
    """The results recorded in ``path`` so far (none if it does not exist), with
    ``settings``; exits if they were recorded with other settings."""
    results = {}
    if os.path.exists(path):
        with open(path) as f:
            results = json.load(f)
    if results.get("settings", settings) != settings:
        sys.exit(f"{path} holds results with other settings ({results['settings']}); give "
                 "another --results")
    results["settings"] = settings
    return results


def save_results(results: dict, path: str) -> None:
    """``results`` to ``path`` as JSON, atomically."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def phase2_run(config_arg: str, workdir: str, common: list[str], start_from: str, data: str,
               data_dir: str) -> dict:
    """Phase 2 alone from the phase-1 run ``start_from`` (``init_from``: paired runs), then
    ``--mode=eval``; returns ``collect``'s results and the training wall seconds."""
    log = os.path.join(workdir, "log.txt")
    start = time.time()
    run(main_cmd(config_arg, workdir, [*common, f"--config.init_from={start_from}",
                                         "--config.phase1.steps=0"], data, data_dir), log)
    train_s = time.time() - start
    run(main_cmd(config_arg, workdir, [*common, "--mode=eval"], data, data_dir), log)
    return {**collect(workdir), "train_wall_seconds": train_s}


def evaluate(base: list[str], workdir: str, checkpoint: str, log: str) -> dict:
    """``--mode=eval`` of the run ``base`` (its training command line) at ``checkpoint``
    ("latest", "best" or a step) on the test split: its step, mIoU, per-class IoU, accuracies
    and mean boundary F1."""
    run([*base, "--mode=eval", f"--config.eval.checkpoint={checkpoint}",
         "--config.eval.split=test"], log)
    found = sorted(os.listdir(os.path.join(workdir, "eval")),
                   key=lambda n: os.path.getmtime(os.path.join(workdir, "eval", n)))
    with open(os.path.join(workdir, "eval", found[-1])) as f:
        out = json.load(f)
    return {"step": out["step"], "miou": out["miou"], "per_class_iou": out["per_class_iou"],
            "pixel_accuracy": out["pixel_accuracy"], "mean_accuracy": out["mean_accuracy"],
            "boundary_f1": out["boundary_f1"]["mean"]}


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        cpu = f"{names[0]}, {len(names)} cores" if names else cpu
    except OSError:
        pass
    # JAX's version from its metadata, not from a backend: starting one here would hold GPU
    # memory while the runs train (the devices are asked in a child process where needed:
    # camvid_gpu_study._machine)
    from importlib import metadata

    try:
        jax_version = f"JAX {metadata.version('jax')}"
    except metadata.PackageNotFoundError:
        jax_version = "no JAX"
    return f"{cpu}, {platform.system()}, {jax_version}"


def rebuild_page(docs: str) -> None:
    """docs/RESULTS.md rebuilt from the records by ``launch.experiments.results_page``, in a
    child process: the experiment scripts that results_page imports for their sections do
    not import it back."""
    subprocess.run([sys.executable, "-m", "launch.experiments.results_page", f"--docs={docs}"],
                   cwd=REPO, check=True)
