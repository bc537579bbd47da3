"""launch/experiments/results_page.py: docs/RESULTS.md rebuilt from the committed records."""

from __future__ import annotations

import json
import pathlib

from launch.experiments import camvid_gpu_study, camvid_mechanism, camvid_report, results_page

from .record_fixtures import (
    mechanism_record,
    select_record,
    semi_results,
    study_results,
    unit_record,
)

REPO = pathlib.Path(__file__).resolve().parents[2]


def _recipe(test_last, vals):
    per_class = {"Sky": 0.8, "Pole": None}
    return {"train_wall_s": 600.0, "machine": {"description": "a 2-core VM"},
            "curve": [{"step": 500 * (i + 1), "val_miou": v} for i, v in enumerate(vals)],
            "test_last": {"miou": test_last, "boundary_f1": 0.2, "per_class_iou": per_class},
            "test_best_on_val": {"miou": test_last - 0.01, "per_class_iou": per_class}}


def test_the_page_is_rebuilt_from_the_records_in_order(tmp_path):
    docs = tmp_path / "docs"
    results = docs / "results"
    results.mkdir(parents=True)
    (results / "RESULTS_header.md").write_text("# Results\n\nmade {date}\n")
    names = [name for name, _ in results_page.RECIPE_RECORDS]
    # the default run is best on val but below the goal; another passes it, unchosen
    (results / names[0]).write_text(json.dumps(_recipe(0.38, [0.40, 0.55])))
    (results / names[1]).write_text(json.dumps(_recipe(0.42, [0.40, 0.50])))
    (results / "camvid_study.json").write_text(json.dumps(study_results()))
    (results / "camvid_semi.json").write_text(json.dumps(semi_results()))
    (results / "camvid_mechanism.json").write_text(json.dumps(mechanism_record([0.0] * 11)))
    gpu = results / "gpu" / "camvid_gpu_study"
    gpu.mkdir(parents=True)
    select_record(gpu)
    for seed in (1, 2):
        (gpu / f"seed{seed}.json").write_text(json.dumps(unit_record(seed, 0.5, 0.5 + seed / 100)))
    repro = f"{camvid_report.REPRO_BEGIN}\n## First comparison\nkept\n{camvid_report.REPRO_END}"
    (docs / "RESULTS.md").write_text("# old header\n\n" + repro + "\n\nhand-written, lost\n")
    path = pathlib.Path(results_page.refresh(str(docs)))
    text = path.read_text()
    assert text.startswith("# Results\n\nmade 20") and "old header" not in text
    order = [text.index(m) for m in (results_page.RECIPE_BEGIN, camvid_mechanism.BEGIN,
                                     camvid_gpu_study.BEGIN,
                                     camvid_report.STUDY_BEGIN,
                                     camvid_report.SEMI_BEGIN, camvid_report.REPRO_BEGIN)]
    assert order == sorted(order) and "\nkept\n" in text and "hand-written" not in text
    assert "Seeds recorded: 2 of 5" in text and "H2 not supported" in text
    assert "reaches 37.00% test mIoU at the checkpoint validation chose (step 1000; 38.00% at " \
        "its last checkpoint): the 40% goal is not met" in text
    assert "test seeds complete: 11 of 11" in text
    assert "passes it, but was not the run validation chose" in text
    assert "| 55.0 (1000) | 38.00 | 37.00 | 20.00 |" in text
    assert "| Sky | Pole |" in text and "| 80.0 | - |" in text
    for figure in (results_page.RECIPE_CURVES, results_page.STUDY_CURVES):
        assert (results / figure).stat().st_size > 1000 and f"(results/{figure})" in text
    # a second refresh changes nothing but the date
    assert results_page.refresh(str(docs)) and path.read_text() == text


def test_the_committed_page_is_the_one_its_records_give(tmp_path):
    """docs/RESULTS.md as committed equals a refresh of its committed records (figures made
    in a copy): nobody edited it by hand, and no record changed without it."""
    import shutil

    docs = tmp_path / "docs"
    shutil.copytree(REPO / "docs", docs)
    results_page.refresh(str(docs))
    strip = lambda t: "\n".join(line for line in t.splitlines() if "Page made" not in line)
    assert strip((docs / "RESULTS.md").read_text()) == strip(
        (REPO / "docs" / "RESULTS.md").read_text())
