"""launch/experiments/camvid_gpu_study.py: the registered GPU study's lam choice, its records,
its report, and one whole unit through launch/bench/gpu_study.sh at toy size on the CPU, in
processes without TensorFlow (as on the lent GPU image)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from launch.experiments import camvid_gpu_study as study
from launch.experiments import stats
from tests.no_tensorflow import env, tensorflow_modules

from ..conftest import REPO
from ..data.conftest import write_camvid
from .record_fixtures import select_record, unit_record


def test_lam_is_chosen_on_validation_alone(tmp_path):
    with pytest.raises(SystemExit, match="select.json is missing: run --unit=select first"):
        study.chosen_lam(str(tmp_path))
    select_record(tmp_path)  # best val 0.45 vs 0.44
    assert study.chosen_lam(str(tmp_path)) == study.LAMS[0]
    select_record(tmp_path, lam_large=(0.30, 0.46))
    assert study.chosen_lam(str(tmp_path)) == study.LAMS[1]
    select_record(tmp_path, lam_large=(0.45,))  # a tie: the smaller lam
    assert study.chosen_lam(str(tmp_path)) == study.LAMS[0]
    arms = study.arms("seed3", str(tmp_path))
    assert arms == {"control": ("baseline", []),
                    "ssgan": ("gan", [f"--config.loss.lam={study.LAMS[0]}"])}


def test_report_runs_the_registered_test_on_the_recorded_seeds(tmp_path):
    select_record(tmp_path)
    pairs = {1: (0.50, 0.52), 2: (0.51, 0.515), 3: (0.49, 0.50), 4: (0.52, 0.53),
             5: (0.50, 0.505)}
    for seed, (c, s) in pairs.items():
        (tmp_path / f"seed{seed}.json").write_text(json.dumps(unit_record(seed, c, s)))
    records = study.load_records(str(tmp_path))
    assert sorted(records) == ["seed1", "seed2", "seed3", "seed4", "seed5", "select"]
    d = study.diffs(records, *study.PRIMARY)
    assert d == pytest.approx([100 * (s - c) for c, s in pairs.values()])
    text = study.section(records)
    test, est = stats.paired_test(d, "greater"), stats.estimate(d)
    assert f"H2 {'supported' if test['p'] < 0.05 else 'not supported'}" in text
    assert f"{est['mean']:+.2f} test mIoU points" in text and f"p = {test['p']:.4f}" in text
    assert f"chosen lam = {study.LAMS[0]}" in text and "Interim" not in text
    assert text.startswith(study.BEGIN) and text.rstrip().endswith(study.END)

    # an interim report says so; a unit cut short (one arm) is left out
    (tmp_path / "seed5.json").write_text(json.dumps({**unit_record(5, 0.5, 0.6), "arms": {
        "control": unit_record(5, 0.5, 0.6)["arms"]["control"]}}))
    interim = study.section(study.load_records(str(tmp_path)))
    assert "Seeds recorded: 4 of 5" in interim and "Interim" in interim
    assert "H2 not supported" in interim  # never supported before every registered seed


def test_records_with_other_settings_or_tiny_ones_mixed_in_are_refused(tmp_path):
    (tmp_path / "seed1.json").write_text(json.dumps(unit_record(1, 0.5, 0.5)))
    (tmp_path / "seed2.json").write_text(json.dumps(unit_record(2, 0.5, 0.5, tiny=True)))
    with pytest.raises(SystemExit, match="mixes tiny and registered records"):
        study.load_records(str(tmp_path))
    other = unit_record(2, 0.5, 0.5)
    other["settings"]["phase2_steps"] = 10
    (tmp_path / "seed2.json").write_text(json.dumps(other))
    with pytest.raises(SystemExit, match="seed2.json was recorded with other settings"):
        study.load_records(str(tmp_path))


def test_time_split_adds_up_to_the_wall_time(tmp_path):
    rows = [{"step": 1, "uptime": 5.0, "steps_per_sec": 1.0, "time/input_s": 0.5},
            {"step": 2, "val/miou": 0.3},
            {"step": 4, "uptime": 20.0, "steps_per_sec": 3.0, "time/input_s": 1.0,
             "time/validation_s": 4.0, "time/checkpoint_s": 2.0}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    split = study.time_split(str(tmp_path), wall_s=26.0)
    assert split == {"uptime_s": 20.0, "input_s": 1.0, "validation_s": 4.0, "checkpoint_s": 2.0,
                     "steps_s": 13.0, "outside_loop_s": 6.0, "last_steps_per_sec": 3.0}


@pytest.mark.slow
def test_a_seed_unit_runs_whole_through_the_gpu_script(tmp_path):
    data = write_camvid(str(tmp_path / "CamVid"), sizes={"train": 8, "val": 3, "test": 2})
    out = tmp_path / "out"
    (out / "records").mkdir(parents=True)
    select_record(out / "records", lam_large=(0.30, 0.46))  # lam = LAMS[1] chosen
    environment = env(tmp_path / "no_tensorflow")
    environment.update({"PYTHON": sys.executable, "DATA": data,
                        "SSGAN_RUNS": str(tmp_path / "runs")})
    (tmp_path / "wheels").mkdir()
    done = subprocess.run(["bash", str(REPO / "launch" / "bench" / "gpu_study.sh"),
                           str(tmp_path / "wheels"), str(out), "seed2", "--tiny"], cwd=REPO,
                          env=environment, capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    record = json.loads((out / "records" / "seed2.json").read_text())
    assert record["seed"] == 2 and record["settings"] == study.settings(True)
    assert set(record["arms"]) == {"control", "ssgan"}
    assert record["arms"]["ssgan"]["overrides"] == [f"--config.loss.lam={study.LAMS[1]}"]
    for arm in record["arms"].values():
        assert arm["last"]["step"] == study.TINY_PHASE2_STEPS  # phase 2 alone, from phase 1
        assert 0 <= arm["last"]["miou"] <= 1 and arm["val"]
        split = arm["time_split"]
        assert split["uptime_s"] > 0 and split["outside_loop_s"] > 0
    # the control's phase 2 trains G alone; SS-GAN's trains the adversary
    assert not record["arms"]["control"]["adversary_accuracy"]
    assert record["arms"]["ssgan"]["adversary_accuracy"]
    assert record["machine"]["devices"] == ["cpu", "cpu"]
    for run in ("phase1", "control", "ssgan"):
        log = (out / f"seed2_{run}.log").read_text()
        reports = [ln for ln in log.splitlines() if ln.startswith("TENSORFLOW-MODULES ")]
        assert reports and tensorflow_modules(log) == 0  # each process: none loaded
        assert all(ln == "TENSORFLOW-MODULES 0" for ln in reports), reports
    assert "phase 2 from step 0" in (out / "seed2_ssgan.log").read_text()
