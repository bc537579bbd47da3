"""The registered studies' statistics (launch/experiments/stats.py) against SciPy and hand
values, and the replication's section (launch/experiments/camvid_semi_replication.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from launch.experiments import camvid_semi_replication as replication
from launch.experiments import stats

DIFFS = [0.3, 0.1, 0.5, -0.1, 0.4, 0.2]


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_paired_test_is_scipys_paired_t_test(alternative):
    a = np.array([30.0, 31.0, 29.5, 32.0, 30.5, 31.5])
    b = a + np.array(DIFFS)
    want = scipy_stats.ttest_rel(b, a, alternative=alternative)
    got = stats.paired_test(list(b - a), alternative)
    assert got["t"] == pytest.approx(want.statistic)
    assert got["p"] == pytest.approx(want.pvalue)
    assert got["n"] == 6 and got["mean"] == pytest.approx(0.2333333333)


def test_paired_test_refuses_what_it_cannot_test():
    with pytest.raises(ValueError, match="at least 2"):
        stats.paired_test([0.5])
    with pytest.raises(ValueError, match="alternative"):
        stats.paired_test(DIFFS, "bigger")
    same = stats.paired_test([0.2, 0.2, 0.2])  # no spread: t is infinite, p 0
    assert same["t"] == math.inf and same["p"] == 0.0


def test_estimate_interval_and_detectable_effect_by_hand():
    # mean 1, sd 1 over 4 differences: half-width t_{0.975, 3} * 1 / 2 = 3.1824 / 2
    e = stats.estimate([0.0, 1.0, 2.0, 1.0])
    sd = math.sqrt(2 / 3)
    assert e["mean"] == 1.0 and e["std"] == pytest.approx(sd)
    assert e["high"] - e["mean"] == pytest.approx(3.182446 * sd / 2, rel=1e-5)
    assert e["low"] == pytest.approx(2 * e["mean"] - e["high"])
    # MDE: (t_{0.95, 5} + t_{0.80, 5}) * sd / sqrt(6) = (2.015048 + 0.919544) * 0.24 / 2.449490
    assert stats.mde(0.24, 6) == pytest.approx((2.015048 + 0.919544) * 0.24 / math.sqrt(6),
                                               rel=1e-5)
    assert stats.mde(0.24, 6, one_sided=False) > stats.mde(0.24, 6)
    assert stats.mde(0.24, 12) < stats.mde(0.24, 6)
    # the MDE means what it says: simulated at that true effect, the test rejects ~80%
    rng = np.random.default_rng(0)
    effect = stats.mde(1.0, 6)
    hits = [stats.paired_test(list(rng.normal(effect, 1.0, 6)))["p"] < 0.05
            for _ in range(2000)]
    assert 0.74 < np.mean(hits) < 0.86


def _record(per_seed_gain):
    def run(miou, bf=0.4):
        ev = {"miou": miou, "boundary_f1": bf,
              "per_class_iou": {"Sky": miou + 0.2, "Pole": None if miou < 0 else 0.05}}
        return {"last": ev, "best_on_val": dict(ev), "train_wall_seconds": 120.0}

    results = {"settings": {**replication.settings(), "extra": []},
               "phase1": {}, "runs": {}}
    for i, seed in enumerate(replication.SEEDS):
        base = 0.30 + 0.01 * i
        key = f"seed{seed}"
        results["phase1"][key] = {"train_wall_seconds": 200.0,
                                  "labeled_ids": f"docs/results/splits/{key}.txt"}
        results["runs"][key] = {"control": run(base), "bn_control": run(base + 0.002),
                                "semi_adv": run(base + 0.002 + per_seed_gain[i])}
    return results


def test_section_reports_the_registered_test_and_the_estimates():
    gains = [0.004, 0.006, 0.005, 0.003, 0.007, 0.005]  # +0.5 points, consistently
    text = replication.section(_record(gains))
    want = stats.paired_test([100 * g for g in gains], "greater")
    assert want["p"] < 0.05
    assert "**H1 supported: semi_adv minus the BN-matched control is +0.50 test mIoU" in text
    assert f"p = {want['p']:.4f}, n = 6 seeds" in text
    assert "Complete seeds: 6 of 6" in text
    assert "| bn_control − control | miou | last | +0.20 [+0.20, +0.20]" in text
    assert "| seed10 | `docs/results/splits/seed10.txt` | 30.00 / 30.00 | 30.20 / 30.20 | " \
        "30.60 / 30.60 |" in text
    assert "| Pole | absent | absent | absent | |" not in text  # present in every run
    assert "| Sky |" in text
    # no gain: not supported, with the effect the seeds could have detected
    text = replication.section(_record([0.003, -0.004, 0.002, -0.001, 0.0, -0.002]))
    assert "**H1 not supported:" in text and "a smaller true gain is not excluded" in text
    # under way: the seeds with every arm only, and never "supported" before the last seed
    results = _record(gains)
    for key in ("seed14", "seed15"):
        del results["runs"][key]["semi_adv"]
    text = replication.section(results)
    assert "Complete seeds: 4 of 6" in text and "H1 not supported" in text
    assert "(Interim: the registered test is the one over all registered seeds.)" in text
    assert replication.diffs(results, "semi_adv", "bn_control", "miou", "last") == \
        pytest.approx([0.4, 0.6, 0.5, 0.3])
    del results["runs"]["seed11"]
    del results["runs"]["seed12"]
    del results["runs"]["seed13"]
    assert "Not enough complete seeds for the test yet." in replication.section(results)


def test_arms_differ_only_in_the_unlabelled_terms():
    """The BN-matched control and semi_adv resolve to configs that differ only in the
    adversarial term on unlabelled images and A judging them; both put unlabelled images in
    G's batch; the control has none."""
    from configs import camvid

    def resolved(arm):
        training, overrides = replication.ARMS[arm]
        config = camvid.get_config(f"{replication.GENERATOR}_{training},cpu")
        for o in overrides:
            key, value = o.removeprefix("--config.").split("=")
            section, name = key.split(".")
            config[section][name] = type(config[section][name])(
                value == "True" if isinstance(config[section][name], bool) else value)
        return config

    bn, semi, control = (resolved(a) for a in ("bn_control", "semi_adv", "control"))
    assert bn.semi.unlabeled_batch_size == semi.semi.unlabeled_batch_size == 8
    assert bn.semi.lam_adv_unlabeled == 0 and bn.semi.lam_semi == 0
    assert bn.semi.adversary_unlabeled is False
    assert semi.semi.lam_adv_unlabeled == pytest.approx(semi.loss.lam / 10) and semi.loss.lam > 0
    assert semi.semi.adversary_unlabeled is True and semi.semi.lam_semi == 0
    flat_bn, flat_semi = _flat(bn.to_dict()), _flat(semi.to_dict())
    assert {k for k in flat_bn if flat_bn[k] != flat_semi[k]} == {
        "semi.lam_adv_unlabeled", "semi.adversary_unlabeled"}
    assert bn.loss.lam > 0 and control.loss.lam == 0


def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
