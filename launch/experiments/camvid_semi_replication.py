"""The registered semi-supervised replication on CamVid (docs/results/prereg_semi_replication.md).

    python -m launch.experiments.camvid_semi_replication [--data=../shared/data/camvid] \
        [--out=runs/camvid_semi_replication]

H1: the adversarial term on unlabelled images raises test mIoU over a BatchNorm-matched
control, at 1/8 of the labels. Per seed (``SEEDS``, each drawing its own labelled subset:
``data.split_seed`` = the seed), one phase-1 run of G on the labelled images alone, then the
``ARMS``' phase-2 runs from that same G (``init_from``: paired), which differ only in what
phase 2 does with the unlabelled images:

* ``control``: G alone on the labelled images (``loss.lam = 0``); no unlabelled images;
* ``bn_control``: SS-GAN on the labelled images, with the unlabelled images in G's batch
  (so in its BatchNorm statistics) and every unlabelled loss term at 0: no adversarial term
  on them, A does not judge them, no self-training;
* ``semi_adv``: ``bn_control`` plus the adversarial term on the unlabelled images
  (``semi.lam_adv_unlabeled`` = lam / 10) and A judging G's maps of them.

Every run is evaluated on the test split at its last checkpoint (the registered number) and
at its best-on-val one. Settings are the ``,cpu`` study settings the earlier semi study ran
(``common.STUDY_CPU_SETTINGS``), fixed here so that the registration names them.

Resumable: each finished run is recorded in ``--results`` (committed) the moment it ends and
not trained again; an interrupted run continues from its checkpoint. When every seed is done
the replication section of docs/RESULTS.md is written from the record.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import statistics
import sys
import time

from launch.experiments import stats
from launch.experiments.camvid_report import write_section
from launch.experiments.common import (
    REPO,
    camvid_folder,
    curves,
    evaluate,
    load_results,
    main_cmd,
    run,
    save_results,
)

# registered (docs/results/prereg_semi_replication.md): change nothing here once runs exist
SEEDS = (10, 11, 12, 13, 14, 15)
FRACTION = "0.125"
PHASE2_STEPS = 300
GENERATOR = "deeplabv3_resnet50"
ARMS = {  # run name -> (config training, overrides of phase 2)
    "control": ("baseline", []),
    "bn_control": ("semi", ["--config.semi.lam_semi=0", "--config.semi.lam_adv_unlabeled=0",
                            "--config.semi.adversary_unlabeled=False"]),
    "semi_adv": ("semi", ["--config.semi.lam_semi=0"]),
}
PRIMARY = ("semi_adv", "bn_control", "miou", "last")  # arm, control, metric, checkpoint
ALTERNATIVE = "greater"
SECONDARY = (  # (arm, control, metric, checkpoint): estimates with 95% CIs, no tests
    ("semi_adv", "bn_control", "miou", "best_on_val"),
    ("semi_adv", "bn_control", "boundary_f1", "last"),
    ("bn_control", "control", "miou", "last"),
    ("semi_adv", "control", "miou", "last"),
)
BEGIN = "<!-- replication: written by launch/experiments/camvid_semi_replication.py -->"
END = "<!-- /replication -->"


def settings(seeds=SEEDS) -> dict:
    """What the registration fixes; a results file recorded with others is refused."""
    return {"generator": GENERATOR, "fraction": FRACTION, "seeds": list(seeds),
            "phase2_steps": PHASE2_STEPS, "arms": {a: list(o) for a, (_, o) in ARMS.items()},
            "config": f"configs/camvid.py:{GENERATOR}_<training>,cpu",
            "primary": list(PRIMARY), "alternative": ALTERNATIVE}


def complete_seeds(results: dict) -> list[str]:
    """The seeds with every arm recorded, in seed order."""
    return [s for s in sorted(results.get("runs", {}), key=lambda s: int(s.removeprefix("seed")))
            if all(a in results["runs"][s] for a in ARMS)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.path.join(REPO, "..", "shared", "data", "camvid"))
    parser.add_argument("--out", default=os.path.join(REPO, "runs", "camvid_semi_replication"))
    parser.add_argument("--results", default=os.path.join(
        REPO, "docs", "results", "camvid_semi_replication.json"))
    parser.add_argument("--docs", default=os.path.join(REPO, "docs"))
    parser.add_argument("--extra", default="", help="overrides for every run (a toy trial; "
                        "recorded in the settings, so a registered record refuses them)")
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)),
                        help="the registered ones unless a toy trial says otherwise")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    data, out = camvid_folder(args.data), os.path.abspath(args.out)
    data_dir = os.path.join(out, "tfds")
    config = os.path.join(REPO, "configs", "camvid.py")
    extra = args.extra.split()
    results = load_results(args.results, {**settings(seeds), "extra": extra})
    runs = results.setdefault("runs", {})

    def save():
        save_results(results, args.results)

    def phase1(seed: int) -> str:
        workdir = os.path.join(out, f"seed{seed}", "phase1")
        key = f"seed{seed}"
        if key not in results.setdefault("phase1", {}):
            seconds = run(main_cmd(f"{config}:{GENERATOR}_gan,cpu", workdir,
                                   [*extra, "--config.phase2.steps=0",
                                    f"--config.seed={seed}",
                                    f"--config.data.labeled={FRACTION}",
                                    f"--config.data.split_seed={seed}"],
                                   data, data_dir), os.path.join(workdir, "log.txt"))
            split = os.path.join(args.docs, "results", "splits",
                                 f"camvid_train_{FRACTION}_seed{seed}.txt")
            os.makedirs(os.path.dirname(split), exist_ok=True)
            shutil.copy(os.path.join(workdir, "labeled_ids.txt"), split)
            results["phase1"][key] = {"train_wall_seconds": seconds,
                                      "labeled_ids": os.path.relpath(split, REPO),
                                      "val_curve": [[r["step"], r["val/miou"]]
                                                    for r in curves(workdir)["val"]]}
            save()
        return workdir

    def run_arm(seed: int, arm: str) -> None:
        if arm in runs.get(f"seed{seed}", {}):
            return
        start_from = phase1(seed)
        training, overrides = ARMS[arm]
        workdir = os.path.join(out, f"seed{seed}", arm)
        log = os.path.join(workdir, "log.txt")
        split = os.path.join(REPO, results["phase1"][f"seed{seed}"]["labeled_ids"])
        base = main_cmd(f"{config}:{GENERATOR}_{training},cpu", workdir,
                        [*overrides, f"--config.seed={seed}",
                         f"--config.phase2.steps={PHASE2_STEPS}",
                         f"--config.data.labeled={split}", *extra], data, data_dir)
        start = time.time()
        run([*base, f"--config.init_from={start_from}", "--config.phase1.steps=0"], log)
        seconds = time.time() - start
        record = {"train_wall_seconds": seconds,
                  "last": evaluate(base, workdir, "latest", log),
                  "best_on_val": evaluate(base, workdir, "best", log), **curves(workdir)}
        runs.setdefault(f"seed{seed}", {})[arm] = record
        save()

    started = time.time()
    for seed in seeds:
        for arm in ARMS:
            run_arm(seed, arm)
    results["wall_seconds_last_invocation"] = time.time() - started
    save()
    first = f"seed{seeds[0]}"
    colour_dirs = {}
    for arm in ARMS:  # a few test predictions of the first seed, for the pictures
        workdir = os.path.join(out, first, arm)
        found = glob.glob(os.path.join(workdir, "predictions", "test_step_*", "color"))
        if not found:
            training, overrides = ARMS[arm]
            run([*main_cmd(f"{config}:{GENERATOR}_{training},cpu", workdir,
                           [*overrides, *extra], data, data_dir),
                 "--mode=predict", "--config.eval.checkpoint=latest",
                 "--config.eval.split=test", "--config.predict.max_images=4"],
                os.path.join(workdir, "log.txt"))
            found = glob.glob(os.path.join(workdir, "predictions", "test_step_*", "color"))
        colour_dirs[arm] = sorted(found)[-1]
    plot(results, colour_dirs, data, os.path.join(args.docs, "results"))
    write_section(section(results), os.path.join(args.docs, "RESULTS.md"), BEGIN, END)
    print(f"done: {args.results} and the replication section of {args.docs}/RESULTS.md",
          flush=True)


CURVES = "camvid_semi_replication_curves.png"
PICTURES = "camvid_semi_replication_pictures.png"
COLOURS = {"control": "tab:blue", "bn_control": "tab:orange", "semi_adv": "tab:red"}


def plot(results: dict, colour_dirs: dict[str, str], data: str, out_dir: str) -> None:
    """The curves of the runs the section reports (phase 1 of every seed, then each arm's
    phase 2, mean over seeds; the adversary's accuracy) and test predictions of the first
    seed's arms (``colour_dirs``: arm -> its ``--mode=predict`` colour folder)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from launch.experiments.camvid_report import plot_prediction_grid, save_curves
    from ssgan_jax.data.camvid import PALETTE

    complete = complete_seeds(results)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    offset = 0
    for i, s in enumerate(complete):
        curve = results["phase1"][s]["val_curve"]
        offset = max(offset, curve[-1][0])
        ax1.plot([c[0] for c in curve], [100 * c[1] for c in curve], color="grey", alpha=0.6,
                 lw=1, label="phase 1 (one line per seed)" if i == 0 else None)
    for arm in ARMS:
        by_step: dict[int, list[float]] = {}
        acc: dict[int, list[float]] = {}
        for s in complete:
            for row in results["runs"][s][arm]["val"]:
                by_step.setdefault(row["step"], []).append(100 * row["val/miou"])
            for step, a in results["runs"][s][arm]["adversary_accuracy"]:
                acc.setdefault(step, []).append(a)
        steps = sorted(by_step)
        ax1.plot([offset + x for x in steps], [statistics.fmean(by_step[x]) for x in steps],
                 color=COLOURS[arm], marker="o", ms=3, label=f"{arm} (mean)")
        if acc:
            steps = sorted(acc)
            ax2.plot(steps, [statistics.fmean(acc[x]) for x in steps], color=COLOURS[arm],
                     label=arm)
    save_curves(fig, ax1, ax2, os.path.join(out_dir, CURVES), "validation mIoU",
                "iteration (phase 2 after phase 1)",
                "adversary accuracy (mean of real and fake), mean over seeds")
    plot_prediction_grid({f"{a} ({complete[0]}, last)": d for a, d in colour_dirs.items()},
                         data, os.path.join(out_dir, PICTURES), PALETTE)


def diffs(results: dict, arm: str, control: str, metric: str, checkpoint: str) -> list[float]:
    """Per complete seed (every arm recorded), ``arm`` minus ``control`` in ``metric`` at
    ``checkpoint``, in points (x 100)."""
    runs = results.get("runs", {})
    return [100 * (runs[s][arm][checkpoint][metric] - runs[s][control][checkpoint][metric])
            for s in complete_seeds(results)]


def section(results: dict) -> str:
    """The RESULTS.md section: the registered test exactly as registered, then the secondary
    estimates, the per-seed and per-class tables."""
    complete = complete_seeds(results)
    arm, control, metric, checkpoint = PRIMARY
    out = [BEGIN, "## Registered replication: semi-supervised adversarial term vs a "
           "BatchNorm-matched control", "",
           "Registered in [prereg_semi_replication.md](results/prereg_semi_replication.md) "
           "before the first run; record: "
           "[camvid_semi_replication.json](results/camvid_semi_replication.json), written by "
           "`python -m launch.experiments.camvid_semi_replication`. DeepLabv3-ResNet50 at the "
           f"`,cpu` study size, 1/8 of the labels, each seed its own labelled subset, "
           f"{PHASE2_STEPS} phase-2 iterations from each seed's shared phase 1. "
           f"Complete seeds: {len(complete)} of {len(results['settings']['seeds'])} "
           f"({', '.join(complete) or 'none yet'}).", "",
           f"![curves](results/{CURVES})", "", f"![test predictions](results/{PICTURES})", ""]
    d = diffs(results, arm, control, metric, checkpoint)
    if len(d) < 2:
        return "\n".join([*out, "Not enough complete seeds for the test yet.", "", END]) + "\n"
    out += stats.registered_lines(
        "H1", "semi_adv minus the BN-matched control", d, len(results["settings"]["seeds"]),
        [(f"{a} − {c}", m, ck, diffs(results, a, c, m, ck)) for a, c, m, ck in SECONDARY])
    out += ["", "### Per seed (test, %)", "",
            "| seed | labelled subset | " + " | ".join(f"{a} last / best-on-val" for a in ARMS)
            + " |", "|---|---|" + "---|" * len(ARMS)]
    for s in complete:
        arms = results["runs"][s]
        cells = [f"{100 * arms[a]['last']['miou']:.2f} / {100 * arms[a]['best_on_val']['miou']:.2f}"
                 for a in ARMS]
        out.append(f"| {s} | `{results['phase1'][s]['labeled_ids']}` | " + " | ".join(cells)
                   + " |")
    out += ["", "### Per-class test IoU (%, last checkpoint, mean over seeds)", "",
            "| class | " + " | ".join(ARMS) + " | semi_adv − bn_control [95% CI] |",
            "|---|" + "---|" * (len(ARMS) + 1)]
    classes = list(results["runs"][complete[0]]["control"]["last"]["per_class_iou"])
    for name in classes:
        values = {a: [results["runs"][s][a]["last"]["per_class_iou"][name] for s in complete]
                  for a in ARMS}
        if any(v is None for vs in values.values() for v in vs):
            out.append(f"| {name} | " + " | ".join("absent" for _ in ARMS) + " | |")
            continue
        e = stats.estimate([100 * (x - y) for x, y in zip(values["semi_adv"],
                                                           values["bn_control"], strict=True)])
        out.append(f"| {name} | " + " | ".join(f"{100 * statistics.fmean(values[a]):.1f}"
                                               for a in ARMS)
                   + f" | {e['mean']:+.2f} [{e['low']:+.2f}, {e['high']:+.2f}] |")
    wall = [results["phase1"][s]["train_wall_seconds"] for s in complete]
    arm_wall = {a: statistics.fmean(results["runs"][s][a]["train_wall_seconds"]
                                    for s in complete) for a in ARMS}
    out += ["", "Wall time per seed (training only): phase 1 "
            f"{statistics.fmean(wall) / 60:.1f} min; phase 2 " + ", ".join(
                f"{a} {t / 60:.1f} min" for a, t in arm_wall.items()) + ".", "", END]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
