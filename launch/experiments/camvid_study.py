"""What does the adversary change? An exploratory CamVid study of 5 seeds (its seeds detect
test-mIoU differences of 1-2.3 points with 80% power, docs/RESULTS.md; smaller ones are
neither shown nor excluded).

    python -m launch.experiments.camvid_study --data=PATH/CamVid [--out=runs/camvid_study] \
        [--seeds=0,1,2,3,4]

Per seed: one phase-1 run (G alone, ``configs/camvid.py:<generator>_gan,cpu``), then phase-2
runs of ``--phase2-steps`` iterations (default 600, twice the CamVid table's) from that same
generator (``init_from``, so the comparison is paired), which differ only in the adversarial
term: ``lam0`` (the control: G alone, the same schedule and optimizer reset), SS-GAN minimax at
each lam of ``--lams`` (``lam0.01`` ...), and non-saturating (``ns_lam<best>``) at the lam whose
minimax runs have the best mean validation mIoU over the seeds (chosen on val only). Each run is
evaluated on the test split from its best-on-val checkpoint: mIoU, boundary F1, fragmentation
and speckle (README, "Evaluate").

Resumable, also across machines: each finished run's results (test metrics, its validation
curve and the adversary's accuracy curve) go to ``--results`` (default
``docs/results/camvid_study.json``, committed), and a run found there is not trained again. The
last step writes the study's section of docs/RESULTS.md (``launch/experiments/camvid_report.py``'s
``study_section``).
"""

from __future__ import annotations

import argparse
import os
import time

from launch.experiments.common import (
    REPO,
    add_experiment_arguments,
    camvid_folder,
    load_results,
    main_cmd,
    phase2_run,
    save_results,
)


def _variant_args(variant: str) -> tuple[str, list[str]]:
    """``lam0`` / ``lam<x>`` / ``ns_lam<x>`` -> (training, overrides)."""
    if variant == "lam0":
        return "baseline", []
    form = "non_saturating" if variant.startswith("ns_") else "minimax"
    lam = variant.removeprefix("ns_").removeprefix("lam")
    return "gan", [f"--config.loss.lam={lam}", f"--config.loss.adv_form={form}"]


def _best_lam(results: dict, generator: str, seeds: list[int], lams: list[str]) -> str:
    """The minimax lam with the best mean (over seeds) best validation mIoU."""
    def best_val(run):
        return max(v["val/miou"] for v in run["val"])

    scores = {lam: sum(best_val(results[generator][f"seed{s}"][f"lam{lam}"]) for s in seeds)
              / len(seeds) for lam in lams}
    return max(scores, key=scores.get)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_experiment_arguments(parser, "camvid_study", seeds="0,1,2,3,4", phase2_steps=600)
    parser.add_argument("--lams", default="0.01,0.1,1.0")
    args = parser.parse_args()
    data, out = camvid_folder(args.data), os.path.abspath(args.out)
    data_dir = os.path.join(out, "tfds")
    gen, seeds, lams = args.generator, [int(s) for s in args.seeds.split(",")], \
        args.lams.split(",")
    config = os.path.join(REPO, "configs", "camvid.py")
    extra = args.extra.split()
    results = load_results(args.results, {
        "generator": gen, "phase2_steps": args.phase2_steps, "lams": lams, "seeds": seeds,
        "extra": extra, "config": f"configs/camvid.py:{gen}_<training>,cpu"})
    runs = results.setdefault("runs", {}).setdefault(gen, {})

    def save():
        save_results(results, args.results)

    def phase1(seed: int) -> str:
        workdir = os.path.join(out, gen, f"seed{seed}", "phase1")
        if not os.path.exists(os.path.join(workdir, "done")):
            t = run(main_cmd(f"{config}:{gen}_gan,cpu", workdir,
                               ["--config.phase2.steps=0", f"--config.seed={seed}", *extra],
                               data, data_dir), os.path.join(workdir, "log.txt"))
            results.setdefault("phase1_wall_seconds", {})[f"seed{seed}"] = t
            open(os.path.join(workdir, "done"), "w").close()
        return workdir

    def run(seed: int, variant: str) -> None:
        if variant in runs.get(f"seed{seed}", {}):
            return
        training, overrides = _variant_args(variant)
        common = [*overrides, f"--config.seed={seed}",
                  f"--config.phase2.steps={args.phase2_steps}", *extra]
        runs.setdefault(f"seed{seed}", {})[variant] = phase2_run(
            f"{config}:{gen}_{training},cpu", os.path.join(out, gen, f"seed{seed}", variant),
            common, phase1(seed), data, data_dir)
        save()

    started = time.time()
    for seed in seeds:
        for variant in ["lam0", *(f"lam{lam}" for lam in lams)]:
            run(seed, variant)
    best = _best_lam(results["runs"], gen, seeds, lams)
    results["best_lam_on_val"] = best
    save()
    for seed in seeds:
        run(seed, f"ns_lam{best}")
    results["wall_seconds_this_invocation"] = time.time() - started
    save()
    from launch.experiments.camvid_report import write_study_section

    write_study_section(results, os.path.join(args.docs, "RESULTS.md"))
    print(f"done: {args.results} and the study section of {args.docs}/RESULTS.md", flush=True)


if __name__ == "__main__":
    main()
