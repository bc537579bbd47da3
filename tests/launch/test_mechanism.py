"""The registered mechanism study (launch/experiments/camvid_mechanism.py): the statistics it
adds (TOST, Holm, simulated power) against SciPy and hand values, its sample-size rule, and
its RESULTS.md section from a synthetic record."""

from __future__ import annotations

import math

import pytest
from scipy import stats as scipy_stats

from launch.experiments import camvid_mechanism as mechanism
from launch.experiments import stats

from .record_fixtures import mechanism_record


def test_tost_is_two_one_sided_scipy_tests_and_the_90_percent_ci():
    d = [0.1, -0.2, 0.05, 0.15, -0.1, 0.0, 0.2, -0.05]
    got = stats.tost(d, 0.5)
    lower = scipy_stats.ttest_1samp(d, -0.5, alternative="greater").pvalue
    upper = scipy_stats.ttest_1samp(d, 0.5, alternative="less").pvalue
    assert got["p"] == pytest.approx(max(lower, upper))
    assert got["equivalent"]
    # equivalence at alpha 0.05 <=> the 90% CI inside the margins
    e = stats.estimate(d, level=0.90)
    assert -0.5 < e["low"] and e["high"] < 0.5
    wide = stats.tost([1.0, -1.0, 0.8, -0.9], 0.5)
    assert not wide["equivalent"] and wide["p"] > 0.05
    with pytest.raises(ValueError, match="margin"):
        stats.tost(d, 0.0)


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 -> 3 x 0.01, max(0.03, 2 x 0.03), max(0.06, 1 x 0.04)
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])
    assert stats.holm([0.02]) == pytest.approx([0.02])


def _exact_power(effect, sd, n, alpha=0.05):
    """The one-sided paired t-test's power from the noncentral t distribution."""
    crit = scipy_stats.t.ppf(1 - alpha, n - 1)
    return 1 - scipy_stats.nct.cdf(crit, n - 1, effect / (sd / math.sqrt(n)))


def test_simulated_power_matches_the_noncentral_t_and_the_rule_gives_11_at_sd_06():
    for n in (5, 11, 12):
        assert stats.simulated_power(0.5, 0.6, n) == pytest.approx(_exact_power(0.5, 0.6, n),
                                                                   abs=0.01)
    exact = next(n for n in range(2, 40) if _exact_power(0.5, 0.6, n) >= 0.8)
    assert stats.seeds_for_power(0.5, 0.6) == exact == 11
    # the registered rule: the pilot's sd, floored at 0.6, capped at 20 seeds
    assert mechanism.planned_test_seeds([0.1, 0.2]) == 11  # sd 0.07 -> the floor
    assert mechanism.planned_test_seeds([-0.5, 0.5]) == stats.seeds_for_power(0.5, math.sqrt(0.5))
    assert 11 < mechanism.planned_test_seeds([-0.5, 0.5]) < mechanism.MAX_TEST_SEEDS
    assert mechanism.planned_test_seeds([-3.0, 3.0]) == mechanism.MAX_TEST_SEEDS


def test_section_reports_pilot_test_equivalence_secondary_and_checks():
    gains = [0.0005, -0.001, 0.0, 0.001, -0.0005, 0.0015, -0.001, 0.0, 0.0005, -0.0015, 0.001]
    text = mechanism.section(mechanism_record(gains))
    d = [100 * g for g in gains]
    want = stats.paired_test(d, "greater")
    assert "Pilot seeds complete: 2 of 2; test seeds complete: 11 of 11" in text
    assert "**Pilot** (not part of the test): minimax − control in test mIoU points +0.30" in text
    # confidence share 0.95 and 0.4% of the labels changed: not delivered
    assert "**The treatment (registered reading):** not delivered (mean confidence share 0.95; " \
        "0.40% of the test labels changed" in text
    assert "**H1 not supported: minimax (lam 0.01) minus the lam = 0 control is +0.00" in text
    assert f"p = {want['p']:.4f}, n = 11 seeds" in text
    eq = stats.tost(d, 0.5)
    assert eq["equivalent"] and f"**Equivalence (TOST, ±0.5 points):** shown (p = {eq['p']:.4f}" \
        in text
    # secondary: three rows with Holm p; minimax's boundary F1 +1 point in every seed
    assert "| minimax − control | boundary_f1 | +1.00 [+1.00, +1.00]" in text
    assert text.count("| nonsat − control |") == 2
    assert "### Exploratory (no test): the layout-judging adversary" in text
    assert "| test pixels whose label differs from the control's (%) | +0.4 [+0.4, +0.4] | " \
        "+0.4 [+0.4, +0.4] | +3 [+3, +3] |" in text
    assert "| G's entropy, arm − control (nats, training crops) | -0.05 [-0.05, -0.05] |" in text
    assert text.count("| seed3") == 11


def test_section_while_the_study_is_under_way():
    results = mechanism_record([0.01] * 11)
    del results["test_seeds"]
    for s in range(300, 311):
        del results["runs"][f"seed{s}"]
    del results["runs"]["seed201"]["layout"]
    text = mechanism.section(results)
    assert "Pilot seeds complete: 1 of 2; test seeds: not fixed yet" in text
    assert "Not enough complete test seeds for the registered test yet." in text
    # an interim test is never "shown" or "supported"
    results = mechanism_record([0.01] * 11)
    for s in range(303, 311):
        del results["runs"][f"seed{s}"]["control"]
    text = mechanism.section(results)
    assert "test seeds complete: 3 of 11" in text and "**H1 not supported" in text
    assert "(Interim" in text and "not shown" in text


def test_the_record_refuses_other_settings(tmp_path):
    from launch.experiments.common import load_results, save_results

    path = str(tmp_path / "record.json")
    save_results({"settings": {**mechanism.settings(), "extra": []}}, path)
    assert load_results(path, {**mechanism.settings(), "extra": []})["settings"]["phase2_steps"] \
        == mechanism.PHASE2_STEPS
    with pytest.raises(SystemExit, match="other settings"):
        load_results(path, {**mechanism.settings(), "extra": ["--config.phase1.steps=10"]})


def test_the_registered_reading_of_a_null():
    results = mechanism_record([0.0] * 11)
    seeds = results["test_seeds"]
    runs = results["runs"]

    def set_all(share, changed):
        for s in seeds:
            d = runs[f"seed{s}"]["minimax"]["diagnose"]
            d["probe"]["confidence_share"], d["changed_labels"]["changed_share"] = share, changed

    set_all(0.3, 0.02)
    assert mechanism.reading(results, seeds).startswith("delivered (mean confidence share 0.30")
    set_all(0.3, 0.005)  # A judges labels, but phase 2 changed almost none
    assert mechanism.reading(results, seeds).startswith("not delivered")
    set_all(0.7, 0.05)
    assert mechanism.reading(results, seeds).startswith("unclear")
    set_all(None, 0.05)  # A never separated real from fake
    assert mechanism.reading(results, seeds).startswith(
        "unclear (mean confidence share undefined")


def test_a_seeds_arms_share_one_phase_1_across_lost_files(tmp_path, monkeypatch):
    """The runner's bookkeeping, its commands faked: a seed interrupted after two arms whose
    phase-1 files are then lost (a fresh machine) retrains phase 1, sets the two arms aside
    and runs all four again from the new G; every recorded arm names the phase-1 G it
    started from; a phase 1 trained again to the same G keeps the seed's arms."""
    import json
    import os
    import sys

    def load_results(path, _):
        with open(path) as f:
            return json.load(f)

    trained = {"phase1": 0}
    miou = iter([0.40, 0.41, 0.42, 0.43, 0.44, 0.45, 0.46, 0.47, 0.48, 0.49, 0.5, 0.51])

    def fake_run(cmd, log):
        workdir = next(a.split("=", 1)[1] for a in cmd if a.startswith("--workdir="))
        if "--mode=diagnose" in cmd:
            # the registered checks read the last checkpoint, as the primary test does
            assert "--config.eval.checkpoint=latest" in cmd
            os.makedirs(os.path.join(workdir, "diagnose"), exist_ok=True)
            with open(os.path.join(workdir, "diagnose", "test_step_2000.json"), "w") as f:
                json.dump({"probe": {}}, f)
        elif not any(a.startswith("--mode=") for a in cmd):
            os.makedirs(os.path.join(workdir, "checkpoints", "1"), exist_ok=True)
            if workdir.endswith("phase1"):
                trained["phase1"] += 1
            if workdir.endswith("nonsat") and trained.get("crash"):
                raise SystemExit("the machine went away")
        return 1.0

    monkeypatch.setattr(mechanism, "run", fake_run)
    def fake_evaluate(base, workdir, checkpoint, log):
        if workdir.endswith("phase1") and trained.get("same_g"):
            return {"miou": trained["same_g"], "pixel_accuracy": 0.9}
        return {"miou": next(miou), "pixel_accuracy": 0.9}

    monkeypatch.setattr(mechanism, "evaluate", fake_evaluate)
    monkeypatch.setattr(mechanism, "curves", lambda workdir: {"val": []})
    monkeypatch.setattr(mechanism, "probe_curve", lambda workdir: [])
    monkeypatch.setattr(mechanism, "camvid_folder", lambda path: path)
    out, record = tmp_path / "runs", str(tmp_path / "record.json")
    argv = ["camvid_mechanism", "--out", str(out), "--results", record, "--test-seeds", "",
            "--pilot-seeds", "7", "--data", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    trained["crash"] = True
    with pytest.raises(SystemExit, match="went away"):
        mechanism.main()
    first = load_results(record, None)
    assert sorted(first["runs"]["seed7"]) == ["control", "minimax"]
    assert first["runs"]["seed7"]["control"]["phase1_test_miou"] == 0.40

    import shutil

    # a fresh machine of the same kind: phase 1 trained again to the same G (its test
    # outputs to the last digit): the seed keeps its two arms
    shutil.rmtree(out)
    trained["same_g"] = 0.40
    with pytest.raises(SystemExit, match="went away"):
        mechanism.main()
    kept = load_results(record, None)
    assert trained["phase1"] == 2 and "discarded" not in kept
    assert kept["runs"]["seed7"] == first["runs"]["seed7"]

    # a fresh machine of another kind: another G; the two arms are set aside
    shutil.rmtree(out)
    trained["crash"], trained["same_g"] = False, None
    mechanism.main()
    done = load_results(record, None)
    assert trained["phase1"] == 3
    assert done["phase1"]["seed7"]["test"]["miou"] == 0.40  # the first record is kept
    new_g = done["phase1"]["seed7"]["retrained"][-1]["test_miou"]
    assert new_g != 0.40
    arms = done["runs"]["seed7"]
    assert sorted(arms) == sorted(mechanism.ARMS)
    assert {a["phase1_test_miou"] for a in arms.values()} == {new_g}
    (aside,) = done["discarded"]["seed7"]
    assert sorted(aside["arms"]) == ["control", "minimax"] and "retrained" in aside["reason"]
    assert mechanism.complete_seeds(done, [7]) == ["seed7"]
