"""launch/experiments/camvid_report.py: run collection, mean ± std tables and the paired verdict."""

from __future__ import annotations

import json
import pathlib

import pytest
from scipy import stats

from launch.experiments import camvid_report, camvid_study

from .record_fixtures import semi_results, study_results


def _report():
    return camvid_report


MIOU = {"baseline": [0.40, 0.42, 0.38], "gan": [0.41, 0.44, 0.385]}


def _fake_runs(root: pathlib.Path):
    for variant, values in MIOU.items():
        for seed, miou in enumerate(values):
            d = root / "deeplabv3_resnet50" / f"seed{seed}" / variant
            (d / "eval").mkdir(parents=True)
            per_class = {"Sky": miou + 0.1, "Pole": None, "Road": miou - 0.1}
            (d / "eval" / "test_step_300.json").write_text(json.dumps(
                {"miou": miou, "pixel_accuracy": 0.8, "per_class_iou": per_class}))
            (d / "eval" / "val_step_300_flip.json").write_text("{}")  # other settings: unused
            (d / "metrics.jsonl").write_text("\n".join(json.dumps(m) for m in (
                {"step": 100, "val/miou": miou - 0.05},
                {"step": 100, "train/d_acc_real": 0.9, "train/d_acc_fake": 0.7},
                {"step": 300, "val/miou": miou})))
            (d / "wall_seconds.json").write_text(json.dumps({"train": 120.0 + seed}))
    (root / "deeplabv3_resnet50" / "seed0" / "phase1" / "eval").mkdir(parents=True)


def test_tables_and_paired_verdict(tmp_path):
    report = _report()
    _fake_runs(tmp_path)
    runs = report.load_runs(str(tmp_path))["deeplabv3_resnet50"]
    assert sorted(runs) == ["baseline", "gan"] and sorted(runs["gan"]) == [0, 1, 2]
    assert runs["gan"][1]["curve"] == {100: pytest.approx(0.39), 300: 0.44}
    assert runs["gan"][1]["adversary"] == {100: pytest.approx(0.8)}
    table = report.summary_table(runs)
    assert "| 40.00 ± 2.00 | 0: 40.00, 1: 42.00, 2: 38.00 | 80.00 | 2.0 min |" in table
    per_class = report.per_class_table(runs)
    assert "| Pole | absent | absent |" in per_class and "| Sky | 50.0 ± 2.0 |" in per_class
    e = report.difference(MIOU["baseline"], MIOU["gan"])
    d = [100 * (g - b) for b, g in zip(MIOU["baseline"], MIOU["gan"], strict=True)]
    half = stats.t.ppf(0.975, 2) * stats.tstd(d) / 3 ** 0.5
    assert e["mean"] == pytest.approx((1 + 2 + 0.5) / 3)
    assert (e["low"], e["high"]) == pytest.approx((e["mean"] - half, e["mean"] + half))
    assert e["up"] == 3 and e["n"] == 3
    assert e["mde"] == pytest.approx((stats.t.ppf(0.975, 2) + stats.t.ppf(0.8, 2))
                                     * stats.tstd(d) / 3 ** 0.5)
    text = report.verdict(runs, "gan")
    assert "+1.17 mIoU points (95% CI [" in text and "paired over 3 seeds" in text
    assert f"detect a true difference of {e['mde']:.2f} points" in text
    assert ("no difference established" in text) == (e["low"] < 0 < e["high"])
    assert report.difference([0.1], [0.2]) is None
    assert "no estimate possible" in report.verdict(
        {"baseline": {0: runs["baseline"][0]}, "gan": {0: runs["gan"][0]}}, "gan")


def test_study_section_tables_tests_and_verdict(tmp_path):
    report = _report()
    results = study_results()
    study = camvid_study
    assert study._best_lam(results["runs"], "deeplabv3_resnet50", [0, 1, 2],
                           ["0.1", "1.0"]) == "0.1"
    assert study._variant_args("ns_lam0.1") == ("gan", ["--config.loss.lam=0.1",
                                                        "--config.loss.adv_form=non_saturating"])
    assert study._variant_args("lam0") == ("baseline", [])
    text = report.study_section(results)
    assert "| SS-GAN minimax, lam = 0.1 | 30.97 ± 0.95 | 33.10 ± 1.10 | 1.50 ± 0.00 | " \
        "1.00 ± 0.00 | 0 |" in text
    # boundary F1 moved by +2 points for lam 0.1 in every seed, mIoU did not: the verdict
    # names it as a lead (its CI excludes 0), with what the seeds could detect in mIoU
    row = next(line for line in text.splitlines()
               if line.startswith("| SS-GAN minimax, lam = 0.1 |") and "MDE" in line)
    assert "| +2.00 [+2.00, +2.00]; 3/3 up; MDE 0.00 |" in row
    verdict = text.split("**Verdict")[1]
    assert "with 3 seeds, a difference in test mIoU % had to be at least" in verdict
    assert "SS-GAN minimax, lam = 0.1, boundary F1 %: +2.00 [+2.00, +2.00]" in verdict
    # unchanged metrics are neither leads nor "down in every seed"
    assert "fragmentation" not in verdict and "speckle" not in verdict
    assert "SS-GAN minimax, lam = 0.1, test mIoU" not in verdict
    assert "significant" not in text and "*" not in text.replace("**", "")
    assert "| SS-GAN minimax, lam = 1.0 |" in text and "| 3 |" in text  # 3 warnings
    assert "Per class, control vs SS-GAN minimax, lam = 0.1" in text
    assert "| Sky | 80.00 | 80.00 | 50.00 | 52.00 | 1.00 | 1.00 |" in text
    # a study under way: only the seeds with every control/minimax run are tabulated
    del results["runs"]["deeplabv3_resnet50"]["seed2"]["lam1.0"]
    results["settings"]["seeds"] = [0, 1, 2, 3, 4]
    partial = report.study_section(results)
    assert "2 seeds (seed0, seed1)" in partial and "partial: 2 of 5 seeds complete" in partial
    for seed in ("seed1", "seed2"):
        del results["runs"]["deeplabv3_resnet50"][seed]
    assert "not yet: a paired estimate needs at least 2 complete seeds (1 so far)" in \
        report.study_section(results)
    results = study_results()
    # the section replaces an earlier one and survives camvid_report's regeneration
    path = tmp_path / "RESULTS.md"
    path.write_text("# Results\n\nold table\n")
    report.write_study_section(results, str(path))
    report.write_study_section(results, str(path))
    written = path.read_text()
    assert written.count(report.STUDY_BEGIN) == 1 and "old table" in written
    assert report._study_of("# new\n" + report._study_of(written)) == report._study_of(written)


def test_semi_section_tables_tests_and_verdict(tmp_path):
    report = _report()
    results = semi_results()
    text = report.semi_section(results)
    assert "### 0.125 of the labels (docs/results/splits/camvid_train_0.125_seed0.txt): 3 " \
        "complete seeds (seed0, seed1, seed2)" in text
    row = next(line for line in text.splitlines() if line.startswith("| (c)"))
    # +2.00, +2.10, +2.20 points: a consistent gain, an estimate whose CI excludes 0
    half = stats.t.ppf(0.975, 2) * 0.1 / 3 ** 0.5
    assert row.startswith("| (c) semi-supervised SS-GAN: adversarial term on unlabelled images "
                          f"| 32.10 ± 1.95 | 30.00 ± 0.00 | +2.10 [{2.1 - half:+.2f}, "
                          f"{2.1 + half:+.2f}]; 3/3 up; MDE")
    verdict = text.split("**Verdict (computed from the tables)**: ")[1]
    assert "0.125 labels, (c), test mIoU %: +2.10 [" in verdict
    assert "leads to register, not findings" in verdict and "*" not in verdict.strip("*\n")
    for arm in ("semi_adv", "semi_st"):  # no gain anywhere
        for s, seed in enumerate(results["runs"]["0.125"].values()):
            seed[arm]["test"]["miou"] = seed["control"]["test"]["miou"] + (0.01 if s else -0.01)
    text = report.semi_section(results)
    assert "0.125 labels, (c), test mIoU" not in text.split("Verdict")[1]
    assert "a difference in test mIoU % had to be at least" in text
    # an arm added later: a row once every complete seed has it
    for s, seed in enumerate(results["runs"]["0.125"].values()):
        seed["semi_adv_lamu0.1"] = {"test": {"miou": seed["control"]["test"]["miou"] + 0.03
                                             + 0.001 * s,
                                             "boundary_f1": {"mean": 0.3}}}
    text = report.semi_section(results)
    assert "| (c') (c) with lam_adv_unlabeled = 0.1" in text
    assert "0.125 labels, (c'), test mIoU %: +3.10 [" in text.split("Verdict")[1]
    del results["runs"]["0.125"]["seed2"]["semi_adv_lamu0.1"]
    assert "| (c')" not in report.semi_section(results)
    # an experiment under way: seeds with every arm only; no estimate below 2 seeds
    for seed in ("seed1", "seed2"):
        del results["runs"]["0.125"][seed]["semi_st"]
    assert "not yet: a paired estimate needs at least 2 complete seeds" in \
        report.semi_section(results)
    # its section and the study's live side by side in RESULTS.md
    path = tmp_path / "RESULTS.md"
    report.write_study_section(study_results(), str(path))
    for _ in range(2):
        report.write_section(report.semi_section(semi_results()), str(path),
                             report.SEMI_BEGIN, report.SEMI_END)
    written = path.read_text()
    assert written.count(report.SEMI_BEGIN) == 1 and written.count(report.STUDY_BEGIN) == 1
