"""docs/RESULTS.md from the runs of launch/experiments/camvid_repro.py: tables, curves, pictures.

    python -m launch.experiments.camvid_report --runs=runs/camvid_repro --data=PATH/CamVid \
        [--docs=docs]

Reads ``<runs>/<generator>/seed<k>/<variant>/`` (eval/test_step_*.json, metrics.jsonl,
wall_seconds.json, predictions/) and writes ``<docs>/RESULTS.md`` plus
``<docs>/results/camvid_curves.png`` and ``camvid_pictures.png`` (needs matplotlib:
``pip install -e ".[repro]"``). The verdict on the adversarial gain comes from a paired t-test
over seeds (each seed's runs share their phase-1 generator), so it is computed, not written.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import re
import statistics
from typing import Any

import numpy as np

from launch.experiments import stats
from launch.experiments.common import machine, rebuild_page

VARIANT_NAMES = {
    "baseline": "baseline (G alone, lam = 0)",
    "gan": "SS-GAN, minimax (paper)",
    "gan_ns": "SS-GAN, non-saturating",
}


def load_runs(root: str) -> dict[str, dict[str, dict[int, dict[str, Any]]]]:
    """{generator: {variant: {seed: run}}}, run = {eval, curve, adversary, wall, dir}."""
    out: dict[str, dict[str, dict[int, dict[str, Any]]]] = {}
    for run_dir in sorted(glob.glob(os.path.join(root, "*", "seed*", "*"))):
        generator, seed_dir, variant = run_dir.split(os.sep)[-3:]
        if variant == "phase1" or not os.path.isdir(run_dir):
            continue
        evals = sorted(glob.glob(os.path.join(run_dir, "eval", "test_step_*.json")))
        evals = [e for e in evals if re.fullmatch(r"test_step_\d+\.json", os.path.basename(e))]
        if not evals:
            continue
        with open(evals[-1]) as f:
            result = json.load(f)
        curve, adversary = [], []
        metrics = os.path.join(run_dir, "metrics.jsonl")
        if os.path.exists(metrics):
            with open(metrics) as f:
                for line in f:
                    m = json.loads(line)
                    if "val/miou" in m:
                        curve.append((m["step"], m["val/miou"]))
                    if "train/d_acc_real" in m:
                        adversary.append((m["step"], 0.5 * (m["train/d_acc_real"]
                                                            + m["train/d_acc_fake"])))
        wall_path = os.path.join(run_dir, "wall_seconds.json")
        wall = json.load(open(wall_path)) if os.path.exists(wall_path) else {}
        seed = int(seed_dir.removeprefix("seed"))
        out.setdefault(generator, {}).setdefault(variant, {})[seed] = {
            "eval": result, "curve": dict(curve), "adversary": dict(adversary),
            "wall": wall, "dir": run_dir}
    return out


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}"


def summary_table(runs: dict[str, dict[int, dict[str, Any]]]) -> str:
    """Markdown: one row per variant, test mIoU mean ± std over seeds and per seed."""
    rows = ["| variant | seeds | test mIoU % (mean ± std) | per seed | pixel acc. % | "
            "train wall / run |", "|---|---|---|---|---|---|"]
    for variant, by_seed in runs.items():
        seeds = sorted(by_seed)
        mious = [by_seed[s]["eval"]["miou"] for s in seeds]
        m, sd = mean_std(mious)
        acc = statistics.fmean(by_seed[s]["eval"]["pixel_accuracy"] for s in seeds)
        walls = [by_seed[s]["wall"].get("train") for s in seeds if by_seed[s]["wall"]]
        wall = f"{statistics.fmean(walls) / 60:.1f} min" if walls else "n/a"
        per_seed = ", ".join(f"{s}: {100 * v:.2f}" for s, v in zip(seeds, mious, strict=True))
        rows.append(f"| {VARIANT_NAMES.get(variant, variant)} | {len(seeds)} | "
                    f"{100 * m:.2f} ± {100 * sd:.2f} | {per_seed} | {100 * acc:.2f} | {wall} |")
    return "\n".join(rows)


def per_class_table(runs: dict[str, dict[int, dict[str, Any]]]) -> str:
    variants = list(runs)
    first = next(iter(next(iter(runs.values())).values()))["eval"]["per_class_iou"]
    rows = ["| class | " + " | ".join(VARIANT_NAMES.get(v, v) for v in variants) + " |",
            "|---|" + "---|" * len(variants)]
    for name in first:
        cells = []
        for v in variants:
            values = [r["eval"]["per_class_iou"][name] for r in runs[v].values()
                      if r["eval"]["per_class_iou"][name] is not None]
            if values:
                m, s = mean_std(values)
                cells.append(f"{100 * m:.1f} ± {100 * s:.1f}")
            else:
                cells.append("absent")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def difference(control: list[float], arm: list[float], scale: float = 100.0) -> dict | None:
    """``arm`` minus ``control`` paired by seed, times ``scale``: the mean with its 95% CI,
    the minimal detectable effect of the design (80% power, two-sided 5%) and how many seeds
    went up (``up``); None with fewer than 2 pairs."""
    d = [scale * (b - a) for a, b in zip(control, arm, strict=True)]
    if len(d) < 2:
        return None
    return {**stats.estimate(d), "up": sum(x > 0 for x in d), "down": sum(x < 0 for x in d)}


def difference_cell(e: dict | None) -> str:
    """A table cell for ``difference``'s result."""
    if e is None:
        return "n/a"
    return (f"{e['mean']:+.2f} [{e['low']:+.2f}, {e['high']:+.2f}]; {e['up']}/{e['n']} up; "
            f"MDE {e['mde']:.2f}")


def excludes_zero(e: dict | None) -> bool:
    return e is not None and (e["low"] > 0 or e["high"] < 0)


def verdict(runs: dict[str, dict[int, dict[str, Any]]], variant: str) -> str:
    """One sentence on ``variant`` minus baseline, paired by seed: the estimate, its 95% CI
    and the smallest effect the seeds could have detected."""
    if "baseline" not in runs or variant not in runs:
        return f"{variant}: no baseline to compare with."
    seeds = sorted(set(runs["baseline"]) & set(runs[variant]))
    e = difference([runs["baseline"][s]["eval"]["miou"] for s in seeds],
                   [runs[variant][s]["eval"]["miou"] for s in seeds])
    name = VARIANT_NAMES.get(variant, variant)
    if e is None:
        return f"{name}: only {len(seeds)} paired seed(s); no estimate possible."
    word = ("the 95% CI excludes 0" if excludes_zero(e) else
            "no difference established; effects smaller than that are not excluded")
    return (f"{name} minus baseline, paired over {e['n']} seeds: {e['mean']:+.2f} mIoU points "
            f"(95% CI [{e['low']:+.2f}, {e['high']:+.2f}]); these seeds detect a true "
            f"difference of {e['mde']:.2f} points with 80% power: {word}.")


def plot_curves(runs: dict[str, dict[int, dict[str, Any]]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    colours = {"baseline": "tab:blue", "gan": "tab:red", "gan_ns": "tab:green"}
    for variant, by_seed in runs.items():
        c = colours.get(variant)
        for i, run in enumerate(by_seed.values()):
            steps = sorted(run["curve"])
            ax1.plot(steps, [100 * run["curve"][s] for s in steps], color=c, alpha=0.8,
                     marker="o", ms=3, label=VARIANT_NAMES.get(variant, variant) if i == 0
                     else None)
            if run["adversary"]:
                steps = sorted(run["adversary"])
                ax2.plot(steps, [run["adversary"][s] for s in steps], color=c, alpha=0.8,
                         label=VARIANT_NAMES.get(variant, variant) if i == 0 else None)
    save_curves(fig, ax1, ax2, path, "validation mIoU (one line per seed)")


def save_curves(fig, ax1, ax2, path: str, val_title: str,
                val_xlabel: str = "phase-2 iteration",
                acc_title: str = "adversary accuracy (mean of real and fake)") -> None:
    """Label the two panels of a curves figure (validation mIoU, the adversary's accuracy)
    and write it to ``path``."""
    import matplotlib.pyplot as plt

    ax1.set(xlabel=val_xlabel, ylabel="validation mIoU %", title=val_title)
    ax2.set(xlabel="phase-2 iteration", ylabel="accuracy", ylim=(0.4, 1.02), title=acc_title)
    ax2.axhline(0.5, color="grey", lw=0.8, ls="--")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_pictures(runs: dict[str, dict[int, dict[str, Any]]], data: str, path: str,
                  palette, count: int = 4) -> None:
    seed = min(next(iter(runs.values())))
    columns = [v for v in ("baseline", "gan", "gan_ns") if v in runs and seed in runs[v]]
    dirs = {v: sorted(glob.glob(os.path.join(runs[v][seed]["dir"], "predictions", "*",
                                             "color"))) for v in columns}
    if not all(dirs.values()):
        return
    plot_prediction_grid({(VARIANT_NAMES[v].split(" (")[0] if v == "baseline"
                           else VARIANT_NAMES[v]): dirs[v][-1] for v in columns},
                         data, path, palette, count)


def plot_prediction_grid(columns: dict[str, str], data: str, path: str, palette,
                         count: int = 4) -> None:
    """Rows of test images: the image, its ground truth, then each column's colour map
    (``columns``: title -> a ``--mode=predict`` colour folder)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    first = next(iter(columns.values()))
    stems = sorted(os.path.splitext(f)[0] for f in os.listdir(first))[:count]
    table = np.zeros((256, 3), np.uint8)
    table[: len(palette)] = palette
    fig, axes = plt.subplots(len(stems), 2 + len(columns),
                             figsize=(2.6 * (2 + len(columns)), 2.1 * len(stems)), squeeze=False)
    for row, stem in enumerate(stems):
        image = next(iter(glob.glob(os.path.join(data, "test", stem + ".*"))))
        label = np.array(Image.open(os.path.join(data, "testannot", stem + ".png")))
        label = np.where(label == 11, 255, label)  # CamVid void -> black
        panels = [np.array(Image.open(image).convert("RGB")), table[label]]
        panels += [np.array(Image.open(os.path.join(d, stem + ".png")))
                   for d in columns.values()]
        titles = ["image", "ground truth", *columns]
        for col, (panel, title) in enumerate(zip(panels, titles, strict=True)):
            ax = axes[row, col]
            ax.imshow(panel)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


STUDY_BEGIN = "<!-- study: written by launch/experiments/camvid_study.py -->"
STUDY_END = "<!-- /study -->"
STUDY_METRICS = (  # (key in the test JSON, label, scale, higher is better)
    ("miou", "test mIoU %", 100.0, True),
    ("boundary_f1", "boundary F1 %", 100.0, True),
    ("fragmentation", "fragmentation (pred/true regions)", 1.0, None),
    ("speckle", "speckle % of pixels", 100.0, False),
)


def _study_value(test: dict[str, Any], key: str) -> float | None:
    value = test.get(key)
    return value.get("mean") if isinstance(value, dict) else value


def _study_name(variant: str) -> str:
    if variant == "lam0":
        return "control (G alone, lam = 0)"
    if variant.startswith("ns_"):
        return f"SS-GAN non-saturating, lam = {variant.removeprefix('ns_lam')}"
    return f"SS-GAN minimax, lam = {variant.removeprefix('lam')}"


def _power_verdict(diffs: dict[tuple[str, str], dict | None], n: int, main: str) -> str:
    """The verdict of an unregistered comparison of (variant, metric) differences: what the
    seeds could detect in ``main``, which 95% CIs exclude 0 (uncorrected, so leads) and which
    differences had the same sign in every seed."""
    if n < 2 or not any(diffs.values()):
        return f"not yet: a paired estimate needs at least 2 complete seeds ({n} so far)"
    mdes = [e["mde"] for (_, metric), e in diffs.items() if e and metric == main]
    text = (f"with {n} seeds, a difference in {main} had to be at least "
            f"{min(mdes):.2f}-{max(mdes):.2f} points to be detected with 80% power, so "
            "smaller effects are neither shown nor excluded")
    leads = [f"{v}, {metric}: {e['mean']:+.2f} [{e['low']:+.2f}, {e['high']:+.2f}]"
             for (v, metric), e in diffs.items() if excludes_zero(e)]
    same = [f"{v}, {metric} ({'up' if e['up'] else 'down'} in {e['n']} of {e['n']})"
            for (v, metric), e in diffs.items()
            if e and e["n"] >= 3 and e["n"] in (e["up"], e["down"]) and not excludes_zero(e)]
    text += ("; 95% CIs that exclude 0 (one of " + str(len(diffs)) + " comparisons each, "
             "uncorrected: leads to register, not findings): " + "; ".join(leads)
             if leads else "; no 95% CI excludes 0")
    if same:
        text += "; the same sign in every seed: " + "; ".join(same)
    return text


def study_section(results: dict[str, Any], curves: str = "") -> str:
    """The markdown of launch/experiments/camvid_study.py's results (see that script), with
    the figure at ``curves`` (a path relative to docs/) if given."""
    settings = results["settings"]
    out = [STUDY_BEGIN, "## Study: what does the adversary change?", ""]
    if curves:
        out += [f"![study curves]({curves})", ""]
    for generator, by_seed in results["runs"].items():
        variants = ["lam0", *(f"lam{x}" for x in settings["lams"])]
        # the seeds whose control and minimax runs are all done (a study still under way)
        seeds = sorted((s for s in by_seed if all(v in by_seed[s] for v in variants)),
                       key=lambda s: int(s.removeprefix("seed")))
        if results.get("best_lam_on_val"):
            variants.append(f"ns_lam{results['best_lam_on_val']}")
        variants = [v for v in variants if seeds and all(v in by_seed[s] for s in seeds)]
        done = sum(len(runs) for runs in by_seed.values())
        planned = len(settings.get("seeds", seeds))
        partial = (f" **(partial: {len(seeds)} of {planned} seeds complete; rerun "
                   "launch/experiments/camvid_study.py to finish)**"
                   if len(seeds) < planned else "")
        out += [f"### {generator}: {len(seeds)} seeds ({', '.join(seeds)}), phase 2 = "
                f"{settings['phase2_steps']} iterations, {done} phase-2 runs{partial}", "",
                "Test split, each run's best-on-val checkpoint; mean ± std over seeds. "
                "Fragmentation: predicted / true 8-connected regions per class (1 = as many as "
                "the truth); speckle: share of predicted pixels in regions under 0.05% of the "
                "image. Best minimax lam on val (mean best validation mIoU): "
                f"{results.get('best_lam_on_val', 'not chosen yet')}.", ""]
        out.append("| variant | " + " | ".join(m[1] for m in STUDY_METRICS)
                   + " | adversary warnings |")
        out.append("|---|" + "---|" * (len(STUDY_METRICS) + 1))
        for v in variants:
            cells = []
            for key, _, scale, _ in STUDY_METRICS:
                values = [_study_value(by_seed[s][v]["test"], key) for s in seeds]
                values = [x for x in values if x is not None]
                m, sd = mean_std(values) if values else (math.nan, math.nan)
                cells.append(f"{scale * m:.2f} ± {scale * sd:.2f}")
            warnings = sum(len(by_seed[s][v]["adversary_warnings"]) for s in seeds)
            out.append(f"| {_study_name(v)} | " + " | ".join(cells) + f" | {warnings} |")
        out += ["", "Paired differences to the control (same seed, same phase-1 generator): "
                "mean [95% CI]; seeds where the variant is higher; MDE = the smallest true "
                "difference these seeds detect with 80% power (two-sided 5%). Estimates, not "
                "tests: the study registered no hypothesis.", ""]
        out.append("| variant | " + " | ".join(m[1] for m in STUDY_METRICS) + " |")
        out.append("|---|" + "---|" * len(STUDY_METRICS))
        diffs = {(v, key): difference([_study_value(by_seed[s]["lam0"]["test"], key)
                                       for s in seeds],
                                      [_study_value(by_seed[s][v]["test"], key) for s in seeds],
                                      scale)
                 for v in variants[1:] for key, _, scale, _ in STUDY_METRICS}
        for v in variants[1:]:
            out.append(f"| {_study_name(v)} | " + " | ".join(
                difference_cell(diffs[(v, key)]) for key, *_ in STUDY_METRICS) + " |")
        out.append("")
        main_variant = f"lam{results.get('best_lam_on_val')}" if results.get(
            "best_lam_on_val") in settings["lams"] else None
        if main_variant in variants:
            first = by_seed[seeds[0]]["lam0"]["test"]
            out += [f"Per class, control vs {_study_name(main_variant)} (the main variant: "
                    "best minimax lam on val), test, mean over seeds:", "",
                    "| class | IoU % control | IoU % SS-GAN | BF % control | BF % SS-GAN | "
                    "fragmentation control | fragmentation SS-GAN |",
                    "|---|---|---|---|---|---|---|"]
            for name in first["per_class_iou"]:
                row = [name]
                for getter, scale in ((lambda t, n=name: t["per_class_iou"][n], 100.0),
                                      (lambda t, n=name: t["boundary_f1"]["per_class"][n], 100.0),
                                      (lambda t, n=name: t["fragmentation"]["per_class"][n], 1.0)):
                    for v in ("lam0", main_variant):
                        vals = [getter(by_seed[s][v]["test"]) for s in seeds]
                        vals = [x for x in vals if x is not None]
                        row.append(f"{scale * statistics.fmean(vals):.2f}" if vals else "-")
                out.append("| " + " | ".join(row) + " |")
            out.append("")
        steps = sorted({step for s in seeds for v in variants[1:]
                        for step, _ in by_seed[s][v]["adversary_accuracy"]})
        shown = steps[::max(1, len(steps) // 6)][:6] + steps[-1:] if steps else []
        shown = sorted(set(shown))
        if shown:
            out += ["The adversary's accuracy (real and fake maps, mean of the log window), "
                    "mean over seeds, by phase-2 step:", "",
                    "| variant | " + " | ".join(str(x) for x in shown) + " |",
                    "|---|" + "---|" * len(shown)]
            for v in variants[1:]:
                cells = []
                for step in shown:
                    vals = [a for s in seeds for st, a in by_seed[s][v]["adversary_accuracy"]
                            if st == step]
                    cells.append(f"{statistics.fmean(vals):.3f}" if vals else "-")
                out.append(f"| {_study_name(v)} | " + " | ".join(cells) + " |")
            out.append("")
        verdict_text = _power_verdict(
            {(_study_name(v), label.split(" (")[0]): diffs[(v, key)]
             for v in variants[1:] for key, label, *_ in STUDY_METRICS}, len(seeds),
            "test mIoU %")
        out += [f"**Verdict ({generator}, computed from the table)**: {verdict_text}.", ""]
    out.append(STUDY_END)
    return "\n".join(out) + "\n"


def write_study_section(results: dict[str, Any], path: str) -> None:
    """Put ``study_section(results)`` into RESULTS.md (replacing an earlier one)."""
    write_section(study_section(results), path, STUDY_BEGIN, STUDY_END)


def write_section(section: str, path: str, begin: str, end: str) -> None:
    """Put ``section`` (which starts with ``begin`` and ends with ``end``) into the file at
    ``path``, replacing the earlier one between those markers, else at the end."""
    text = open(path).read() if os.path.exists(path) else "# Results\n"
    text = _without_study(text, begin, end).rstrip("\n") + "\n\n" + section
    with open(path, "w") as f:
        f.write(text)


def _without_study(text: str, begin: str = STUDY_BEGIN, end: str = STUDY_END) -> str:
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        return head + rest.split(end, 1)[1]
    return text


def _study_of(text: str, begin: str = STUDY_BEGIN, end: str = STUDY_END) -> str:
    if begin in text and end in text:
        return begin + text.split(begin, 1)[1].split(end, 1)[0] + end
    return ""


REPRO_BEGIN = "<!-- repro: written by launch/experiments/camvid_report.py -->"
REPRO_END = "<!-- /repro -->"
REPRO_SETUP = """## First comparison: baseline vs SS-GAN, 3 seeds, 300 phase-2 iterations

Written by `python -m launch.experiments.camvid_report` from the runs of
`python -m launch.experiments.camvid_repro --data=PATH/CamVid` (resumable; one command
trains, evaluates and predicts what is not done yet, then writes this section and its
figures). The study below repeats it with 5 seeds, 600 iterations and more variants.

- **Networks** (`configs/camvid.py:<generator>_<training>,cpu` with the study settings of
  `launch/experiments/common.py`): the generator at 1/8 of the torchvision width, random
  init, BatchNorm with batch statistics; the adversary at 1/8 width with a shallow trunk.
- **Schedule**: per seed, one phase-1 run (G alone, 1000 iterations of batch 8 on 128x160
  crops, Adam 1e-3 -> 1e-4, no class balancing); then three phase-2 runs of 300 iterations
  from that same generator (`init_from`), G's Adam re-created at 3e-4 -> 3e-5:
  *baseline* (`loss.lam = 0`, the matched control), *SS-GAN minimax* (the paper's loss,
  `loss.lam = 0.01`, adversary SGD momentum 0.9 at 1e-3, gradients clipped at 10,
  eps-rescaling 0.9) and *SS-GAN non-saturating* (Luc et al.'s generator loss).
- **Metric**: test mIoU of each run's best-on-val checkpoint (validation every 100
  iterations), paired by seed.
- **Machine**: {machine}; wall times measured while other work shared it (upper bounds).
"""
SEMI_TRIED = """\
**What was tried on val.** The four arms above use AdvSemiSeg's settings, fixed before any run.
After them, one knob was searched on val only (1/8 of the labels, seed 0, from the same phase-1
generator, best-on-val checkpoint): the weight of the adversarial term on unlabelled images,
`semi.lam_adv_unlabeled` = 0.001 (the default, lam / 10), 0.01 and 0.1 gave val mIoU 37.97,
38.08 and 38.71 (the control: 37.69); 0.1 became arm (c'), then run on every fraction and seed
like the others (`launch/experiments/camvid_semi.py`, arm `semi_adv_lamu0.1`). The trials' run
folders: `runs/camvid_semi_trials/` (not in git). On 2026-11-26 the networks' bilinear
upsampling changed from `jax.image.resize` to two matrix products (same numbers to ~1e-5; for
the ONNX export), so the runs started after the change (most of seed 2 and arm (c')) used the
new form."""
SEMI_BEGIN = "<!-- semi: written by launch/experiments/camvid_semi.py -->"
SEMI_END = "<!-- /semi -->"
SEMI_ARMS = (  # (run name, description)
    ("control", "(a) labelled images only, G alone (lam = 0)"),
    ("gan", "(b) SS-GAN on the labelled images only"),
    ("semi_adv", "(c) semi-supervised SS-GAN: adversarial term on unlabelled images"),
    ("semi_st", "(d) (c) + self-training on confident unlabelled pixels"),
)
# arms added later (launch/experiments/camvid_semi.py ARMS): shown where every complete seed
# has them
SEMI_EXTRA_ARMS = (
    ("semi_adv_lamu0.1", "(c') (c) with lam_adv_unlabeled = 0.1 = 10 lam (chosen on val: "
                         "1/8, seed 0, of 0.001 / 0.01 / 0.1)"),
)


def semi_section(results: dict[str, Any]) -> str:
    """The markdown of launch/experiments/camvid_semi.py's results (see that script)."""
    settings = results["settings"]
    names = dict(SEMI_ARMS + SEMI_EXTRA_ARMS)
    out = [SEMI_BEGIN, "## Semi-supervised SS-GAN on CamVid (exploratory)", "",
           f"{settings['generator']} at the `,cpu` size (configs/camvid.py), phase 1 on the "
           f"labelled images alone, then {settings['phase2_steps']} phase-2 iterations from that "
           "same generator in every arm (paired). Unlabelled images: the rest of the train "
           "split (their labels are never read). One labelled subset per fraction (split seed "
           "0) for every seed. Test split, best-on-val checkpoint; mean ± std over seeds; "
           "differences to (a): mean [95% CI], seeds up, MDE (the smallest true difference "
           "these seeds detect with 80% power, two-sided 5%). No hypothesis was registered: "
           "estimates, not tests. In arms (c), (d), (c') the unlabelled images also enter G's "
           "BatchNorm statistics, which (a) lacks: the registered replication separates the "
           "two. Semi settings: "
           f"`{settings['semi']}`.", ""]
    diffs: dict[tuple[str, str], dict | None] = {}
    for fraction, by_seed in sorted(results["runs"].items()):
        seeds = sorted((s for s in by_seed if all(a in by_seed[s] for a, _ in SEMI_ARMS)),
                       key=lambda s: int(s.removeprefix("seed")))
        split = results.get("splits", {}).get(fraction, "?")
        arms = SEMI_ARMS + tuple(a for a in SEMI_EXTRA_ARMS
                                 if seeds and all(a[0] in by_seed[s] for s in seeds))
        out += [f"### {float(fraction):.3g} of the labels ({split}): {len(seeds)} complete "
                f"seeds ({', '.join(seeds) or 'none yet'})", "",
                "| arm | test mIoU % | boundary F1 % | Δ mIoU vs (a) | Δ boundary F1 vs (a) |",
                "|---|---|---|---|---|"]
        for arm, _ in arms:
            cells = []
            for key in ("miou", "boundary_f1"):
                values = [_study_value(by_seed[s][arm]["test"], key) for s in seeds]
                m, sd = mean_std(values) if values else (math.nan, math.nan)
                cells.append(f"{100 * m:.2f} ± {100 * sd:.2f}" if values else "n/a")
            for key in ("miou", "boundary_f1"):
                if arm == "control":
                    cells.append("")
                    continue
                e = difference([_study_value(by_seed[s]["control"]["test"], key)
                                for s in seeds],
                               [_study_value(by_seed[s][arm]["test"], key) for s in seeds])
                label = "test mIoU %" if key == "miou" else "boundary F1 %"
                diffs[(f"{float(fraction):.3g} labels, {names[arm].split(' ')[0]}", label)] = e
                cells.append(difference_cell(e))
            out.append(f"| {names[arm]} | " + " | ".join(cells) + " |")
        out.append("")
    n = min((len([s for s in by_seed if all(a in by_seed[s] for a, _ in SEMI_ARMS)])
             for by_seed in results["runs"].values()), default=0)
    verdict_text = _power_verdict(diffs, n, "test mIoU %")
    out += [SEMI_TRIED, "", f"**Verdict (computed from the tables)**: {verdict_text}.", "",
            SEMI_END]
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", required=True)
    parser.add_argument("--data", required=True, help="the CamVid folder the runs used")
    parser.add_argument("--docs", default="docs")
    args = parser.parse_args()
    from ssgan_jax.data.camvid import PALETTE

    all_runs = load_runs(args.runs)
    if not all_runs:
        raise SystemExit(f"no evaluated runs under {args.runs}; run "
                         "python -m launch.experiments.camvid_repro")
    os.makedirs(os.path.join(args.docs, "results"), exist_ok=True)
    machine_path = os.path.join(args.runs, "machine.txt")
    host = open(machine_path).read().strip() if os.path.exists(machine_path) else machine()
    sections = []
    for generator, runs in all_runs.items():
        curves = f"results/camvid_{generator}_curves.png"
        pictures = f"results/camvid_{generator}_pictures.png"
        plot_curves(runs, os.path.join(args.docs, curves))
        plot_pictures(runs, args.data, os.path.join(args.docs, pictures), PALETTE)
        verdicts = "\n".join(f"- {verdict(runs, v)}" for v in runs if v != "baseline")
        phase1 = [json.load(open(p)).get("train") for p in sorted(glob.glob(os.path.join(
            args.runs, generator, "seed*", "phase1", "wall_seconds.json")))]
        if phase1:
            verdicts += (f"\n\nPhase 1, shared by the three variants of a seed: "
                         f"{statistics.fmean(phase1) / 60:.1f} min of training per seed "
                         f"({len(phase1)} seeds); the wall column above is phase 2 alone.")
        sections.append(
            f"### {generator}: test mIoU (best-on-val checkpoint)\n\n"
            f"{summary_table(runs)}\n\n{verdicts}\n\n#### Per-class test IoU % (mean ± std "
            f"over seeds)\n\n{per_class_table(runs)}\n\n#### Learning curves\n\n"
            f"![curves]({curves})\n\n#### Test predictions (seed "
            f"{min(next(iter(runs.values())))})\n\n![pictures]({pictures})\n")
    section = (f"{REPRO_BEGIN}\n{REPRO_SETUP.replace('{machine}', host)}\n"
               + "\n".join(sections) + f"\n{REPRO_END}\n")
    write_section(section, os.path.join(args.docs, "RESULTS.md"), REPRO_BEGIN, REPRO_END)
    rebuild_page(args.docs)


if __name__ == "__main__":
    main()
