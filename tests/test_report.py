"""launch/camvid_report.py: run collection, mean ± std tables and the paired verdict."""

from __future__ import annotations

import json
import pathlib

import pytest
from scipy import stats

from .launch_scripts import load


def _report():
    return load("camvid_report")


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
    test = report.paired_t(MIOU["baseline"], MIOU["gan"])
    want = stats.ttest_rel(MIOU["gan"], MIOU["baseline"])
    assert test["t"] == pytest.approx(want.statistic) and test["p"] == pytest.approx(want.pvalue)
    assert test["mean"] == pytest.approx((0.01 + 0.02 + 0.005) / 3)
    text = report.verdict(runs, "gan")
    assert "+1.17 ± 0.76 mIoU points" in text and "paired over 3 seeds" in text
    assert ("not significant" in text) == (want.pvalue >= 0.05)
    assert report.paired_t([0.1], [0.2]) is None
