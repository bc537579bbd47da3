"""Synthetic records of the registered studies, for the tests of their reports and of the
results page: the GPU study's (``camvid_gpu_study``), the mechanism study's
(``camvid_mechanism``), the CamVid study's and the semi study's (``camvid_report``)."""

from __future__ import annotations

import json

import numpy as np

from launch.experiments import camvid_gpu_study as study
from launch.experiments import camvid_mechanism as mechanism


def val_curve(*mious):
    return [{"step": 250 * (i + 1), "val/miou": m} for i, m in enumerate(mious)]


def select_record(tmp_path, lam_small=(0.40, 0.45), lam_large=(0.41, 0.44)):
    record = {"unit": "select", "seed": study.SELECT_SEED, "settings": study.settings(False),
              "arms": {f"lam{study.LAMS[0]}": {"val": val_curve(*lam_small)},
                       f"lam{study.LAMS[1]}": {"val": val_curve(*lam_large)}}}
    (tmp_path / "select.json").write_text(json.dumps(record))
    return record


def unit_record(seed, control, ssgan, tiny=False, f1=(0.2, 0.2)):
    def arm(miou, bf1):
        ev = {"miou": miou, "boundary_f1": bf1}
        return {"last": ev, "best_on_val": {**ev, "miou": miou + 0.01}, "val": val_curve(miou)}

    split = dict.fromkeys(("uptime_s", "steps_s", "input_s", "validation_s", "checkpoint_s",
                           "outside_loop_s"), 1.0)
    return {"unit": f"seed{seed}", "seed": seed, "settings": study.settings(tiny),
            "machine": {"devices": ["NVIDIA H200"]},
            "phase1": {"train_wall_seconds": 300.0, "time_split": split},
            "arms": {"control": arm(control, f1[0]), "ssgan": arm(ssgan, f1[1])}}


def mechanism_run(miou, bf=0.5, entropy=0.3, share=0.95, changed=0.004):
    probe = {"d_real": 0.97, "d_fake": 0.5, "d_confident": 0.96, "entropy": entropy,
             "adv_ce_norm_ratio": 0.05, "adv_ce_cosine": 0.01, "adv_entropy_cosine": 0.55,
             "confidence_share": share}
    return {"last": {"miou": miou, "boundary_f1": bf, "per_class_iou": {"Sky": miou}},
            "diagnose": {"probe": probe, "changed_labels": {"changed_share": changed}},
            "train_wall_seconds": 60.0}


def mechanism_record(test_gains, pilot=(200, 201), test=tuple(range(300, 311))):
    rng = np.random.default_rng(0)
    results = {"settings": {**mechanism.settings(pilot), "extra": []}, "runs": {},
               "phase1": {}, "test_seeds": list(test)}
    for i, seed in enumerate([*pilot, *test]):
        base = 0.40 + 0.01 * rng.normal()
        gain = test_gains[i - len(pilot)] if i >= len(pilot) else 0.002 * (i + 1)
        results["runs"][f"seed{seed}"] = {
            "control": mechanism_run(base),
            "minimax": mechanism_run(base + gain, bf=0.51, entropy=0.25),
            "nonsat": mechanism_run(base - 0.001, bf=0.50),
            "layout": mechanism_run(base + 0.001, share=0.1, changed=0.03)}
    return results


def study_results(seeds=3):
    rng = np.random.default_rng(0)
    runs = {}
    for s in range(seeds):
        for v, shift in (("lam0", 0.0), ("lam0.1", 0.02), ("lam1.0", 0.0), ("ns_lam0.1", 0.0)):
            base = 0.3 + 0.01 * s
            test = {"miou": base + 0.001 * rng.normal(),  # mIoU: no effect
                    "per_class_iou": {"Sky": 0.8, "Pole": None},
                    # boundary F1 moves by +2 points for lam 0.1, consistently over seeds
                    "boundary_f1": {"mean": base + shift + 0.001 * s,
                                    "per_class": {"Sky": 0.5 + shift, "Pole": None}},
                    "fragmentation": {"mean": 1.5, "per_class": {"Sky": 1.0, "Pole": None}},
                    "speckle": 0.01}
            runs.setdefault(f"seed{s}", {})[v] = {
                "test": test, "val": [{"step": 1100, "val/miou": base + (0.01 if v == "lam0.1"
                                                                        else 0.0)}],
                "adversary_accuracy": [[1050, 0.7], [1100, 0.8]],
                "adversary_warnings": [] if v != "lam1.0" else ["WARNING at step 1100: won"]}
    return {"settings": {"phase2_steps": 600, "lams": ["0.1", "1.0"]},
            "best_lam_on_val": "0.1", "runs": {"deeplabv3_resnet50": runs}}


def semi_results():
    def run(miou, bf=0.3):
        return {"test": {"miou": miou, "boundary_f1": {"mean": bf}}}

    by_seed = {}
    for s, base in enumerate((0.30, 0.32, 0.28)):
        by_seed[f"seed{s}"] = {"control": run(base), "gan": run(base + 0.001 * (s - 1)),
                               "semi_adv": run(base + 0.02 + 0.001 * s),
                               "semi_st": run(base - 0.01 * s, bf=0.3 + 0.01 * s)}
    return {"settings": {"generator": "deeplabv3_resnet50", "phase2_steps": 300,
                         "semi": {"lam_semi": 0.1}},
            "splits": {"0.125": "docs/results/splits/camvid_train_0.125_seed0.txt"},
            "runs": {"0.125": by_seed}}
