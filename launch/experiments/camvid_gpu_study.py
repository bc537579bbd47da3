"""The registered full-width CamVid study for one GPU (docs/results/prereg_camvid_gpu.md):
does SS-GAN's phase 2 beat the matched lam = 0 control from the same phase 1?

One *unit* per command, sized to finish inside one call of a lent GPU (at most 10 minutes,
nothing carried between calls): a phase-1 run of G (``configs/camvid.py:deeplabv3_resnet50_
<training>,gpu`` with ``SETTINGS``' overrides), then two phase-2 runs from that same G
(``init_from``: paired), each evaluated on the test split at its last and its best-on-val
checkpoint. The unit's record is written to ``--results-dir/<unit>.json`` after each arm;
a unit cut short is run again whole (its phase 1 does not survive the call).

    # the lam choice (validation only): arms lam0.01 and lam0.1 on seed SELECT_SEED
    python -m launch.experiments.camvid_gpu_study --unit=select --data=shared/camvid480 \
        --out=$OUT/study --results-dir=$OUT/records
    # each registered seed: arms control (lam = 0) and ssgan (the chosen lam)
    python -m launch.experiments.camvid_gpu_study --unit=seed1 --data=shared/camvid480 \
        --out=$OUT/study --results-dir=docs/results/gpu/camvid_gpu_study
    # here, from the committed records: docs/RESULTS.md rebuilt, the registered test in it
    python -m launch.experiments.camvid_gpu_study --report

A seed unit reads the chosen lam from ``select.json`` in ``--results-dir`` (copy the committed
one there). ``--tiny`` runs a unit at toy sizes (a CPU test); its records say so and the
report refuses to mix them with registered ones.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

from launch.experiments import stats
from launch.experiments.common import (
    REPO,
    camvid_folder,
    curves,
    evaluate,
    machine,
    main_cmd,
    rebuild_page,
    run,
    save_results,
)

# registered (docs/results/prereg_camvid_gpu.md): change nothing here once a unit is recorded
GENERATOR = "deeplabv3_resnet50"
CONFIG = "configs/camvid.py:" + GENERATOR + "_{training},gpu"
PHASE1_STEPS = 3000
PHASE2_STEPS = 750
SETTINGS = [  # on top of the ,gpu size: bf16 compute, a schedule that fits one call
    "--config.model.dtype=bfloat16", f"--config.phase1.steps={PHASE1_STEPS}",
    "--config.train.eval_every=250", "--config.train.checkpoint_every=250",
    "--config.train.log_every=50"]
SELECT_SEED = 100
LAMS = ("0.01", "0.1")
SEEDS = (1, 2, 3, 4, 5)
PRIMARY = ("ssgan", "control", "miou", "last")  # arm, control, metric, checkpoint
ALTERNATIVE = "greater"
SECONDARY = (("ssgan", "control", "boundary_f1", "last"),
             ("ssgan", "control", "miou", "best_on_val"))
TINY = [  # toy sizes for a CPU test of the whole unit; FCN-8s, the generator that compiles
    # fastest: the test is of the unit's plumbing (the study's DeepLabv3 SS-GAN steps run on
    # the CPU in launch/bench/gpu_check.py's parity check and in tests/training)
    "--config.model.name=fcn8s_vgg16",
    "--config.model.dtype=float32", "--config.model.width=32", "--config.adversary.width=32",
    "--config.adversary.map_features=(8,8)", "--config.adversary.trunk_features=(8,8,8,8)",
    "--config.model.conv_rewrites=off", "--config.batch_size=2", "--config.eval_batch_size=2",
    "--config.data.crop_size=(32,48)", "--config.data.eval_size=(96,64)",
    "--config.phase1.steps=2", "--config.train.eval_every=2", "--config.train.checkpoint_every=2",
    "--config.train.log_every=1", "--config.train.health_window=1"]
TINY_PHASE2_STEPS = 2
BEGIN = "<!-- gpu study: written by launch/experiments/camvid_gpu_study.py -->"
END = "<!-- /gpu study -->"
RECORDS = os.path.join(REPO, "docs", "results", "gpu", "camvid_gpu_study")


def settings(tiny: bool) -> dict:
    """What the registration fixes (a unit recorded with other settings is refused)."""
    return {"config": CONFIG, "settings": SETTINGS, "phase2_steps": PHASE2_STEPS,
            "select_seed": SELECT_SEED, "lams": list(LAMS), "seeds": list(SEEDS),
            "primary": list(PRIMARY), "alternative": ALTERNATIVE, "tiny": tiny}


def arms(unit: str, results_dir: str) -> dict[str, tuple[str, list[str]]]:
    """The unit's phase-2 arms: name -> (config training, overrides)."""
    if unit == "select":
        return {f"lam{lam}": ("gan", [f"--config.loss.lam={lam}"]) for lam in LAMS}
    return {"control": ("baseline", []),
            "ssgan": ("gan", [f"--config.loss.lam={chosen_lam(results_dir)}"])}


def chosen_lam(results_dir: str) -> str:
    """The lam whose select arm has the higher best validation mIoU; exits without one."""
    path = os.path.join(results_dir, "select.json")
    if not os.path.exists(path):
        sys.exit(f"{path} is missing: run --unit=select first (or copy its committed record "
                 "into --results-dir)")
    with open(path) as f:
        record = json.load(f)
    if any(f"lam{lam}" not in record["arms"] for lam in LAMS):
        sys.exit(f"{path} is incomplete: run --unit=select again")
    return best_lam(record)[0]


def best_lam(select: dict) -> tuple[str, dict[str, float]]:
    """The selection unit's choice: the lam whose arm has the higher best validation mIoU
    (ties: the first, the smaller lam), and each arm's best validation mIoU."""
    best = {f"lam{lam}": max(v["val/miou"] for v in select["arms"][f"lam{lam}"]["val"])
            for lam in LAMS}
    return max(LAMS, key=lambda lam: best[f"lam{lam}"]), best


def time_split(workdir: str, wall_s: float) -> dict[str, float]:
    """Where a run's training command's ``wall_s`` went, from its last progress report in
    metrics.jsonl (at the last step, before that step's validation and checkpoint): the
    loop's uptime, its input waits, validations and checkpoints, the rest of the loop
    (steps, compilation included), and outside the loop (start-up, dataset preparation,
    the last validation and checkpoint), in seconds; the last steps/s."""
    last = {}
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        for line in f:
            row = json.loads(line)
            if "uptime" in row:
                last = row
    parts = {k: last.get(f"time/{k}_s", 0.0) for k in ("input", "validation", "checkpoint")}
    return {"uptime_s": last.get("uptime", 0.0), **{f"{k}_s": v for k, v in parts.items()},
            "steps_s": last.get("uptime", 0.0) - sum(parts.values()),
            "outside_loop_s": wall_s - last.get("uptime", 0.0),
            "last_steps_per_sec": last.get("steps_per_sec", 0.0)}


def run_unit(unit: str, data: str, out: str, results_dir: str, tiny: bool) -> dict:
    seed = SELECT_SEED if unit == "select" else int(unit.removeprefix("seed"))
    extra = [*SETTINGS, *(TINY if tiny else [])]
    phase2_steps = TINY_PHASE2_STEPS if tiny else PHASE2_STEPS
    unit_arms = arms(unit, results_dir)  # before any training: a seed needs select.json
    path = os.path.join(results_dir, f"{unit}.json")
    record = {"unit": unit, "seed": seed, "settings": settings(tiny), "arms": {},
              "date": time.strftime("%Y-%m-%d"), "machine": _machine()}
    data_dir = os.path.join(out, "tfds")
    phase1 = os.path.join(out, unit, "phase1")
    log = os.path.join(phase1, "log.txt")
    start = time.time()
    run(main_cmd(CONFIG.format(training="gan"), phase1,
                 [*extra, "--config.phase2.steps=0", f"--config.seed={seed}"], data, data_dir),
        log)
    wall = time.time() - start
    record["phase1"] = {"train_wall_seconds": wall, "time_split": time_split(phase1, wall),
                        "val": curves(phase1)["val"]}
    save_results(record, path)
    for arm, (training, overrides) in unit_arms.items():
        workdir = os.path.join(out, unit, arm)
        log = os.path.join(workdir, "log.txt")
        base = main_cmd(CONFIG.format(training=training), workdir,
                        [*extra, *overrides, f"--config.seed={seed}",
                         f"--config.phase2.steps={phase2_steps}"], data, data_dir)
        start = time.time()
        run([*base, f"--config.init_from={phase1}", "--config.phase1.steps=0"], log)
        wall = time.time() - start
        record["arms"][arm] = {"overrides": overrides, "train_wall_seconds": wall,
                               "time_split": time_split(workdir, wall),
                               "last": evaluate(base, workdir, "latest", log),
                               "best_on_val": evaluate(base, workdir, "best", log),
                               **curves(workdir)}
        save_results(record, path)
    return record


def _machine() -> dict:
    """The host and JAX's devices, asked in a child process: JAX in this process would hold
    GPU memory while the runs train."""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", "import json, jax; print(json.dumps([d.device_kind for d in "
         "jax.devices()]))"], capture_output=True, text=True, check=False, timeout=300,
        env={**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"})
    devices = (json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0
               else [f"unknown (exit status {done.returncode})"])
    return {"host": machine(), "devices": devices, "cpu_cores": os.cpu_count()}


def load_records(results_dir: str) -> dict[str, dict]:
    """The complete unit records in ``results_dir`` (unit -> record); exits on a record
    with other settings, or on tiny and registered records mixed."""
    out = {}
    for name in sorted(os.listdir(results_dir)) if os.path.isdir(results_dir) else []:
        if not name.endswith(".json"):
            continue
        with open(os.path.join(results_dir, name)) as f:
            record = json.load(f)
        unit = record["unit"]
        if len(record["arms"]) < 2:
            continue  # cut short: run again
        out[unit] = record
    kinds = {r["settings"]["tiny"] for r in out.values()}
    if len(kinds) > 1:
        sys.exit(f"{results_dir} mixes tiny and registered records")
    for unit, r in out.items():
        if r["settings"] != settings(r["settings"]["tiny"]):
            sys.exit(f"{results_dir}/{unit}.json was recorded with other settings "
                     f"({r['settings']}); the registration fixes {settings(False)}")
    return out


def diffs(records: dict, arm: str, control: str, metric: str, checkpoint: str) -> list[float]:
    """Per recorded seed unit, ``arm`` minus ``control`` in points (x 100)."""
    return [100 * (records[u]["arms"][arm][checkpoint][metric]
                   - records[u]["arms"][control][checkpoint][metric])
            for u in _seed_units(records)]


def _seed_units(records: dict) -> list[str]:
    return sorted((u for u in records if u != "select"), key=lambda u: int(u[4:]))


def section(records: dict) -> str:
    """The RESULTS.md section: the lam choice, the registered test exactly as registered,
    the secondary estimates, the per-seed table and where the wall time went."""
    units = _seed_units(records)
    out = [BEGIN, "## Registered GPU study: SS-GAN phase 2 vs the lam = 0 control, full width",
           "", "Registered in [prereg_camvid_gpu.md](results/prereg_camvid_gpu.md) before the "
           "first run; records: `docs/results/gpu/camvid_gpu_study/` (one per unit), written "
           "by `python -m launch.experiments.camvid_gpu_study`. DeepLabv3-ResNet50 at full "
           f"width from random init on CamVid 480x360, {PHASE1_STEPS} phase-1 + {PHASE2_STEPS} "
           f"phase-2 iterations. Seeds recorded: {len(units)} of {len(SEEDS)}.", ""]
    if "select" in records:
        lam, best = best_lam(records["select"])
        out += ["**lam (validation only, seed "
                f"{SELECT_SEED})**: " + ", ".join(f"{a} best val {100 * v:.2f}%"
                                                  for a, v in best.items())
                + f"; chosen lam = {lam}.", ""]
    d = diffs(records, *PRIMARY)
    if len(d) < 2:
        return "\n".join([*out, "Not enough seeds for the test yet.", "", END]) + "\n"
    out += stats.registered_lines(
        "H2", "SS-GAN minus the control", d, len(SEEDS),
        [(f"{a} − {c}", m, ck, diffs(records, a, c, m, ck)) for a, c, m, ck in SECONDARY])
    out += ["", "### Per seed (test mIoU %, last / best-on-val; devices)", "",
            "| seed | control | ssgan | device | phase 1 wall |", "|---|---|---|---|---|"]
    for u in units:
        r = records[u]
        cells = [f"{100 * r['arms'][a]['last']['miou']:.2f} / "
                 f"{100 * r['arms'][a]['best_on_val']['miou']:.2f}" for a in ("control", "ssgan")]
        out.append(f"| {r['seed']} | " + " | ".join(cells) + f" | {r['machine']['devices'][0]} "
                   f"| {r['phase1']['train_wall_seconds'] / 60:.1f} min |")
    split = [records[u]["phase1"]["time_split"] for u in units]
    out += ["", "Phase 1's wall time (mean over seeds, s): " + ", ".join(
        f"{k.removesuffix('_s')} {statistics.fmean(s[k] for s in split):.0f}"
        for k in ("uptime_s", "steps_s", "input_s", "validation_s", "checkpoint_s",
                  "outside_loop_s"))
        + " (steps include compilation; outside the loop: start-up, dataset preparation, the "
        "last validation and checkpoint).", "", END]
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--unit", help="select, or seed<N> for a registered seed")
    parser.add_argument("--report", action="store_true",
                        help="rebuild --docs/RESULTS.md (this study's section from the records "
                        "in docs/results/gpu/camvid_gpu_study)")
    parser.add_argument("--data", default=os.path.join(REPO, "..", "shared", "data",
                                                       "camvid480"))
    parser.add_argument("--out", default=os.path.join(REPO, "runs", "camvid_gpu_study"))
    parser.add_argument("--results-dir", default=RECORDS)
    parser.add_argument("--docs", default=os.path.join(REPO, "docs"))
    parser.add_argument("--tiny", action="store_true", help="toy sizes (a CPU test)")
    args = parser.parse_args()
    if args.report:  # the whole page, this study's section in its place
        rebuild_page(args.docs)
        return
    units = ["select", *(f"seed{s}" for s in SEEDS)]
    if args.unit not in units:
        sys.exit(f"--unit={args.unit!r}: choose from {units} (or --report)")
    record = run_unit(args.unit, camvid_folder(args.data), os.path.abspath(args.out),
                      os.path.abspath(args.results_dir), args.tiny)
    print(json.dumps({a: {"last_miou": r["last"]["miou"],
                          "best_on_val_miou": r["best_on_val"]["miou"]}
                      for a, r in record["arms"].items()}), flush=True)


if __name__ == "__main__":
    main()
