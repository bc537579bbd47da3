"""The registered adversary mechanism study on CamVid (docs/results/prereg_adversary_mechanism.md).

    python -m launch.experiments.camvid_mechanism [--data=../shared/data/camvid] \
        [--out=runs/camvid_mechanism] [--results=docs/results/camvid_mechanism.json]

Does SS-GAN's phase 2 change a good generator, and if not, was the adversarial term delivered?
Per seed, one phase-1 run of G (the CamVid ``,cpu`` recipe, ``PHASE1_STEPS`` iterations), then
the ``ARMS``' phase-2 runs of ``PHASE2_STEPS`` iterations from that same G (``init_from``:
paired, same data order and dropout keys): the lam = 0 control, the paper's minimax loss
(primary), the non-saturating loss (secondary) and the layout-judging adversary
(exploratory). Each run is scored on the test split at its last checkpoint and probed
(``--mode=diagnose``: A's scores on the real map, G's map and G's labels made confident, G's
entropy, the adversarial gradient's share and direction; the share of test pixels whose label
differs from the control's).

Seeds: ``PILOT_SEEDS`` first (they size the study and are not in its test), then
``TEST_SEEDS``, which the pre-registration's amendment fixes from the pilot before the first
test seed runs; while it is empty the script stops after the pilot.

Resumable: each finished phase 1 and arm is recorded in ``--results`` (committed as it lands)
and not trained again; an interrupted run continues from its checkpoint. The study's section
of docs/RESULTS.md is written from the record by ``python -m launch.experiments.results_page``
(``section``).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import statistics
import sys
import time

from launch.experiments import stats
from launch.experiments.common import (
    REPO,
    camvid_folder,
    curves,
    evaluate,
    load_results,
    machine,
    main_cmd,
    run,
    save_results,
)

# registered (docs/results/prereg_adversary_mechanism.md): change nothing here once runs exist
CONFIG = "deeplabv3_resnet50_gan,cpu"
PHASE1_STEPS = 5000
PHASE2_STEPS = 2000
PILOT_SEEDS = (200, 201)
TEST_SEEDS: tuple[int, ...] = tuple(range(300, 311))  # the prereg's amendment (11 seeds)
ARMS = {  # run name -> overrides of its phase 2
    "control": ["--config.loss.lam=0"],
    "minimax": ["--config.loss.lam=0.01", "--config.loss.adv_form=minimax"],
    "nonsat": ["--config.loss.lam=0.1", "--config.loss.adv_form=non_saturating"],
    "layout": ["--config.loss.lam=0.01", "--config.loss.adv_form=minimax",
               "--config.adversary.rescale_fake=True",
               "--config.adversary.map_full_resolution=True"],
}
PRIMARY = ("minimax", "control", "miou")
EQUIVALENCE_MARGIN = 0.5  # mIoU points: a third of the paper's gains
SECONDARY = (("nonsat", "control", "miou"), ("minimax", "control", "boundary_f1"),
             ("nonsat", "control", "boundary_f1"))  # one-sided paired t, Holm over the three
EXPLORATORY = ("layout", "control", "miou")
POWER_EFFECT, POWER_SD_FLOOR, MAX_TEST_SEEDS = 0.5, 0.6, 20
COMMON = ["--config.train.probe_every=100"]
BEGIN = "<!-- mechanism: written by launch/experiments/results_page.py -->"
END = "<!-- /mechanism -->"


def settings(pilot=PILOT_SEEDS) -> dict:
    """What the registration fixes; a results file recorded with others is refused. The test
    seeds are not among them: the amendment adds them to a record that holds the pilot."""
    return {"config": f"configs/camvid.py:{CONFIG}", "phase1_steps": PHASE1_STEPS,
            "phase2_steps": PHASE2_STEPS, "pilot_seeds": list(pilot),
            "arms": {a: list(o) for a, o in ARMS.items()}, "primary": list(PRIMARY),
            "equivalence_margin": EQUIVALENCE_MARGIN, "common": COMMON}


def planned_test_seeds(pilot_diffs: list[float]) -> int:
    """The registered sample-size rule: the smallest number of test seeds whose simulated
    one-sided paired t-test (alpha 0.05) detects +``POWER_EFFECT`` points with 80% power at
    the larger of the pilot's paired sd (primary contrast) and ``POWER_SD_FLOOR``, at most
    ``MAX_TEST_SEEDS``."""
    sd = max(statistics.stdev(pilot_diffs), POWER_SD_FLOOR)
    return stats.seeds_for_power(POWER_EFFECT, sd, cap=MAX_TEST_SEEDS)


def probe_curve(workdir: str) -> list[list[float]]:
    """The probe logged in phase 2: [step, d_real, d_fake, d_confident, entropy,
    adv_ce_norm_ratio, adv_ce_cosine, adv_entropy_cosine] rows."""
    keys = ("d_real", "d_fake", "d_confident", "entropy", "adv_ce_norm_ratio",
            "adv_ce_cosine", "adv_entropy_cosine")
    rows = []
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        for line in f:
            m = json.loads(line)
            if "probe/d_real" in m:
                rows.append([m["step"], *(round(m[f"probe/{k}"], 6) for k in keys)])
    return rows


def current_phase1(recorded: dict) -> dict:
    """The test outputs of the phase-1 G a seed's arms start from now: its last training's
    (``recorded``: the seed's phase-1 record)."""
    if recorded.get("retrained"):
        last = recorded["retrained"][-1]
        return last.get("test") or {"miou": last["test_miou"]}
    return recorded["test"]


def same_outputs(a: dict, b: dict) -> bool:
    """Whether two phase-1 Gs gave the same test outputs to the last digit (the values both
    records hold): the same G, e.g. trained again on the same kind of machine."""
    keys = [k for k in ("miou", "pixel_accuracy", "mean_accuracy", "boundary_f1",
                        "per_class_iou") if k in a and k in b]
    return bool(keys) and all(a[k] == b[k] for k in keys)


def complete_seeds(results: dict, seeds) -> list[str]:
    """The seeds of ``seeds`` with every arm recorded, in the given order."""
    runs = results.get("runs", {})
    return [f"seed{s}" for s in seeds if all(a in runs.get(f"seed{s}", {}) for a in ARMS)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.path.join(REPO, "..", "shared", "data", "camvid"))
    parser.add_argument("--out", default=os.path.join(REPO, "runs", "camvid_mechanism"))
    parser.add_argument("--results", default=os.path.join(REPO, "docs", "results",
                                                          "camvid_mechanism.json"))
    parser.add_argument("--extra", default="", help="overrides for every run (a toy trial; "
                        "recorded in the settings, so a registered record refuses them)")
    parser.add_argument("--pilot-seeds", default=",".join(map(str, PILOT_SEEDS)),
                        help="the registered ones unless a toy trial says otherwise")
    parser.add_argument("--test-seeds", default=",".join(map(str, TEST_SEEDS)),
                        help="the amendment's (empty until it is committed)")
    args = parser.parse_args()
    pilot = [int(s) for s in args.pilot_seeds.split(",") if s]
    test = [int(s) for s in args.test_seeds.split(",") if s]
    data, out = camvid_folder(args.data), os.path.abspath(args.out)
    data_dir = os.path.join(out, "tfds")
    config = f"{os.path.join(REPO, 'configs', 'camvid.py')}:{CONFIG}"
    extra = args.extra.split()
    results = load_results(args.results, {**settings(pilot), "extra": extra})
    if test:
        if results.setdefault("test_seeds", test) != test:
            sys.exit(f"{args.results} holds test seeds {results['test_seeds']}, not {test}")
    runs = results.setdefault("runs", {})

    def save():
        save_results(results, args.results)

    def cmd(workdir: str, seed: int, overrides: list[str]) -> list[str]:
        return main_cmd(config, workdir, [*COMMON, f"--config.seed={seed}",
                                          f"--config.phase1.steps={PHASE1_STEPS}",
                                          f"--config.phase2.steps={PHASE2_STEPS}",
                                          *extra, *overrides], data, data_dir, pin=False)

    def trained(workdir: str) -> bool:
        return bool(glob.glob(os.path.join(workdir, "checkpoints", "[0-9]*")))

    def phase1(seed: int) -> str:
        """The seed's phase-1 workdir, trained if its record is missing, or again if its
        checkpoints are gone (the record kept; the new run's test mIoU noted beside it)."""
        workdir = os.path.join(out, f"seed{seed}", "phase1")
        key, log = f"seed{seed}", os.path.join(workdir, "log.txt")
        recorded = results.setdefault("phase1", {}).get(key)
        if recorded is not None and trained(workdir):
            return workdir
        base = cmd(workdir, seed, ["--config.phase2.steps=0"])
        seconds = run(base, log)
        test_eval = evaluate(base, workdir, "latest", log)
        if recorded is None:
            results["phase1"][key] = {
                "train_wall_seconds": seconds, "test": test_eval, "machine": machine(),
                "val_curve": [[r["step"], r["val/miou"]] for r in curves(workdir)["val"]]}
        else:  # retrained on another machine or session: what it gave, beside the record
            before = current_phase1(recorded)
            recorded.setdefault("retrained", []).append(
                {"test_miou": test_eval["miou"], "test": test_eval, "machine": machine(),
                 "date": time.strftime("%Y-%m-%d")})
            # every arm of a seed starts from one phase-1 G: unless the new G gives the lost
            # one's test outputs to the last digit, arms recorded from the lost one are set
            # aside (kept in the record, left out of every analysis) and train again
            if not same_outputs(before, test_eval):
                dropped = runs.pop(key, None)
                if dropped:
                    results.setdefault("discarded", {}).setdefault(key, []).append(
                        {"reason": "phase 1 retrained (its checkpoints were gone) to another "
                                   "G; the seed's arms must share one phase-1 G",
                         "arms": dropped})
                for arm in ARMS:
                    shutil.rmtree(os.path.join(out, key, arm), ignore_errors=True)
        save()
        return workdir

    def phase1_miou(seed: int) -> float:
        """The test mIoU of the phase-1 G the seed's arms start from now (its last
        training), the arms' record of which phase 1 they share."""
        return current_phase1(results["phase1"][f"seed{seed}"])["miou"]

    def control(seed: int) -> str:
        """The seed's control workdir (the reference of the other arms' changed labels),
        trained again from the phase-1 G if its checkpoints are gone."""
        workdir = os.path.join(out, f"seed{seed}", "control")
        if not trained(workdir):
            run([*cmd(workdir, seed, ARMS["control"]), f"--config.init_from={phase1(seed)}",
                 "--config.phase1.steps=0"], os.path.join(workdir, "log.txt"))
        return workdir

    def run_arm(seed: int, arm: str) -> None:
        if arm in runs.get(f"seed{seed}", {}):
            return
        start_from = phase1(seed)
        workdir = os.path.join(out, f"seed{seed}", arm)
        log = os.path.join(workdir, "log.txt")
        base = cmd(workdir, seed, ARMS[arm])
        start = time.time()
        run([*base, f"--config.init_from={start_from}", "--config.phase1.steps=0"], log)
        seconds = time.time() - start
        test_eval = evaluate(base, workdir, "latest", log)
        reference = ([] if arm == "control" else
                     [f"--config.diagnose.reference={control(seed)}"])
        run([*base, "--mode=diagnose", "--config.eval.split=test",  # at the last checkpoint,
             "--config.eval.checkpoint=latest", *reference], log)  # as the reference's
        found = sorted(glob.glob(os.path.join(workdir, "diagnose", "test_step_*.json")),
                       key=os.path.getmtime)
        with open(found[-1]) as f:
            diagnose = json.load(f)
        runs.setdefault(f"seed{seed}", {})[arm] = {
            "train_wall_seconds": seconds, "machine": machine(),
            "date": time.strftime("%Y-%m-%d"), "last": test_eval, "diagnose": diagnose,
            "phase1_test_miou": phase1_miou(seed),
            "probe_curve": probe_curve(workdir), **curves(workdir)}
        save()

    def run_seed(seed: int) -> None:
        """The seed's arms, all from one phase-1 G: phase 1 first (retrained, and arms
        recorded from a lost one set aside, before any arm runs)."""
        if complete_seeds(results, [seed]):
            return
        phase1(seed)
        for arm in ARMS:
            run_arm(seed, arm)

    started = time.time()
    for seed in pilot:
        run_seed(seed)
    if not test:
        d = diffs(results, pilot, *PRIMARY)
        print(f"pilot done: {len(d)} seeds, primary differences {d}; the registered rule "
              f"gives {planned_test_seeds(d) if len(d) >= 2 else '?'} test seeds. Commit them "
              "as TEST_SEEDS in the prereg's amendment before running them.", flush=True)
    for seed in test:
        run_seed(seed)
    results["wall_seconds_last_invocation"] = time.time() - started
    save()
    print(f"done: {args.results}; rebuild docs/RESULTS.md with "
          "python -m launch.experiments.results_page", flush=True)


def _value(run_record: dict, metric: str) -> float:
    return run_record["last"][metric]


def diffs(results: dict, seeds, arm: str, control: str, metric: str) -> list[float]:
    """Per complete seed of ``seeds`` (ints), ``arm`` minus ``control`` in ``metric`` at the
    last checkpoint, in points (x 100)."""
    runs = results.get("runs", {})
    return [100 * (_value(runs[s][arm], metric) - _value(runs[s][control], metric))
            for s in complete_seeds(results, seeds)]


def checks(results: dict, seeds, arm: str) -> list[tuple[str, list[float]]]:
    """The registered manipulation checks of ``arm`` over the complete ``seeds``: (name,
    per-seed values)."""
    runs = [results["runs"][s] for s in complete_seeds(results, seeds)]
    probe = [r[arm]["diagnose"]["probe"] for r in runs]
    return [
        ("G's entropy, arm − control (nats, training crops)",
         [p["entropy"] - r["control"]["diagnose"]["probe"]["entropy"]
          for p, r in zip(probe, runs, strict=True)]),
        ("test pixels whose label differs from the control's (%)",
         [100 * r[arm]["diagnose"]["changed_labels"]["changed_share"] for r in runs]),
        ("A's confidence share at the end (1 = confidence, 0 = labels)",
         [p["confidence_share"] if p["confidence_share"] is not None else float("nan")
          for p in probe]),
        ("A's score: real − G's labels made confident",
         [p["d_real"] - p["d_confident"] for p in probe]),
        ("adversarial gradient / cross-entropy gradient at the logits",
         [p["adv_ce_norm_ratio"] for p in probe]),
        ("cosine of the adversarial gradient with the entropy's",
         [p["adv_entropy_cosine"] for p in probe]),
        ("test boundary F1, arm − control (points)",
         [100 * (r[arm]["last"]["boundary_f1"] - r["control"]["last"]["boundary_f1"])
          for r in runs]),
    ]


def reading(results: dict, seeds, arm: str = PRIMARY[0]) -> str:
    """The registered reading of ``arm``'s treatment over the complete ``seeds``: "not
    delivered" when A's mean confidence share is at least 0.9 or under 1% of the test labels
    changed against the control; "delivered" when the share is below 0.5 and at least 1%
    changed; "unclear" otherwise (also when A never separated real from fake, so that no
    share is defined)."""
    values = dict(checks(results, seeds, arm))
    changed = statistics.fmean(values["test pixels whose label differs from the control's (%)"])
    shares = [v for v in values["A's confidence share at the end (1 = confidence, 0 = labels)"]
              if v == v]
    share = statistics.fmean(shares) if shares else None
    shown = "undefined (A did not separate real from fake)" if share is None else f"{share:.2f}"
    if (share is not None and share >= 0.9) or changed < 1.0:
        word = "not delivered"
    elif share is not None and share < 0.5:
        word = "delivered"
    else:
        word = "unclear"
    return (f"{word} (mean confidence share {shown}; {changed:.2f}% of the test labels changed "
            "against the control)")


def _cell(values: list[float]) -> str:
    finite = [v for v in values if v == v]
    if len(finite) < 2:
        return " / ".join("n/a" if v != v else f"{v:.3g}" for v in values) or "-"
    e = stats.estimate(finite)
    return f"{e['mean']:+.3g} [{e['low']:+.3g}, {e['high']:+.3g}]" + (
        f" ({len(finite)} of {len(values)} defined)" if len(finite) < len(values) else "")


def section(results: dict) -> str:
    """The RESULTS.md section: the pilot, then the registered test, the equivalence test, the
    secondary tests (Holm), the manipulation checks and the exploratory arm, each with its
    95% CI."""
    pilot = results["settings"]["pilot_seeds"]
    test = results.get("test_seeds", [])
    done_pilot, done_test = complete_seeds(results, pilot), complete_seeds(results, test)
    out = [BEGIN, "## Registered: does the adversary help, and is it delivered? (CamVid, "
           "`,cpu` recipe)", "",
           "Registered in [prereg_adversary_mechanism.md](results/prereg_adversary_mechanism.md)"
           " before the first run; record: [camvid_mechanism.json](results/camvid_mechanism.json)"
           ", written by `python -m launch.experiments.camvid_mechanism`. DeepLabv3-ResNet50 at "
           f"the `,cpu` recipe ({PHASE1_STEPS} phase-1 iterations, each seed its own), then "
           f"{PHASE2_STEPS} phase-2 iterations per arm from that G: control (lam = 0), "
           "**minimax lam = 0.01 (primary)**, non-saturating lam = 0.1 (secondary), the "
           "layout-judging adversary (`adversary.rescale_fake`, `map_full_resolution`; "
           "exploratory). Last checkpoint, test split.", "",
           f"Pilot seeds complete: {len(done_pilot)} of {len(pilot)}; "
           + (f"test seeds complete: {len(done_test)} of {len(test)}." if test else
              "test seeds: not fixed yet (the amendment fixes them after the pilot)."), ""]
    if len(done_pilot) >= 2:
        d = diffs(results, pilot, *PRIMARY)
        out += ["**Pilot** (not part of the test): minimax − control in test mIoU points "
                f"{stats.describe(stats.estimate(d))}; the registered rule gives "
                f"{planned_test_seeds(d)} test seeds. The primary arm's treatment: "
                f"{reading(results, pilot)}; the pilot's checks were read at the "
                "best-on-val checkpoint, its changed labels against the control's last "
                "(the test seeds' at the last, amendment 3).", ""]
    if len(done_test) < 2:
        return "\n".join([*out, "Not enough complete test seeds for the registered test yet.",
                          "", END]) + "\n"
    arm, control, metric = PRIMARY
    d = diffs(results, test, arm, control, metric)
    out += stats.registered_lines("H1", "minimax (lam 0.01) minus the lam = 0 control", d,
                                  len(test), [])[:4]
    eq = stats.tost(d, EQUIVALENCE_MARGIN)
    final = len(d) == len(test)
    out += [f"**Equivalence (TOST, ±{EQUIVALENCE_MARGIN} points):** "
            + ("shown" if eq["equivalent"] and final else "not shown")
            + f" (p = {eq['p']:.4f}; the effect is "
            + ("within" if eq["equivalent"] else "not shown to be within")
            + f" ±{EQUIVALENCE_MARGIN} points)" + ("" if final else " (interim)") + ".", "",
            f"**The treatment (registered reading):** {reading(results, test)}.", "",
            "### Secondary (one-sided paired t, Holm-adjusted over the three)", "",
            "| comparison | metric | estimate [95% CI] | p | Holm p |", "|---|---|---|---|---|"]
    secondary = [(a, c, m, diffs(results, test, a, c, m)) for a, c, m in SECONDARY]
    p = [stats.paired_test(x, "greater")["p"] for *_, x in secondary]
    for (a, c, m, x), pi, hi in zip(secondary, p, stats.holm(p), strict=True):
        out.append(f"| {a} − {c} | {m} | {stats.describe(stats.estimate(x))} | {pi:.4f} | "
                   f"{hi:.4f} |")
    a, c, m = EXPLORATORY
    out += ["", "### Exploratory (no test): the layout-judging adversary", "",
            f"{a} − {c}, test mIoU: {stats.describe(stats.estimate(diffs(results, test, a, c, m)))}"
            ".", "", "### Manipulation checks (registered; estimates, 95% CI over the test "
            "seeds)", "", "| check | " + " | ".join(x for x in ARMS if x != "control") + " |",
            "|---|" + "---|" * (len(ARMS) - 1)]
    by_arm = {x: checks(results, test, x) for x in ARMS if x != "control"}
    for i, (name, _) in enumerate(by_arm["minimax"]):
        out.append(f"| {name} | " + " | ".join(_cell(by_arm[x][i][1]) for x in by_arm) + " |")
    out += ["", "### Per seed (test mIoU %, last checkpoint)", "",
            "| seed | " + " | ".join(ARMS) + " |", "|---|" + "---|" * len(ARMS)]
    for s in done_test:
        out.append(f"| {s} | " + " | ".join(f"{100 * results['runs'][s][x]['last']['miou']:.2f}"
                                           for x in ARMS) + " |")
    return "\n".join([*out, "", END]) + "\n"


if __name__ == "__main__":
    sys.exit(main())
