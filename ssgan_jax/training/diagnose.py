"""``--mode=diagnose``: the adversary probe of a trained run, and how far its labels moved from
a reference run's (METHOD.md section 5, "Diagnosing the adversary").

``run_diagnose(config, workdir)`` restores checkpoint ``eval.checkpoint`` of the run whole
(G and A), averages ``steps.make_probe`` over ``diagnose.batches`` training batches (the
stream the run trained on, from its first example: G in train mode as in phase 2), and, with
``diagnose.reference`` (another run's workdir, e.g. the lam = 0 control sharing the phase 1),
counts the pixels of ``eval.split`` (default the validation split) whose predicted label
differs between the two runs' generators (each image predicted as ``eval`` says). Writes
``<workdir>/diagnose/<split>_step_<N>.json`` and prints one summary line.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import ml_collections
import numpy as np

from ssgan_jax.core import checkpoints as ckpt_lib
from ssgan_jax.core import parallel
from ssgan_jax.data import pipeline, prepared
from ssgan_jax.inference import tta
from ssgan_jax.inference.evaluator import make_eval_step
from ssgan_jax.inference.generator import load_generator, resolve_step
from ssgan_jax.training import diagnostics
from ssgan_jax.training.experiment import Experiment
from ssgan_jax.training.start import open_dataset


def probe_checkpoint(config: ml_collections.ConfigDict, workdir: str, num_classes: int,
                     dataset: prepared.Prepared) -> tuple[int, dict[str, float]]:
    """(step, the probe's metrics averaged over ``diagnose.batches`` training batches) of
    checkpoint ``eval.checkpoint`` of the run in ``workdir``."""
    checkpoints = ckpt_lib.Checkpoints(workdir, read_only=True)
    step = resolve_step(checkpoints, config.eval.checkpoint)
    experiment = Experiment(config, num_classes)
    restored = checkpoints.restore(experiment.initial_state(2), step)
    state = parallel.on_devices(restored.state)
    probe = experiment.probe()
    batches = parallel.prefetch(pipeline.train_dataset(
        config, local_devices=jax.local_device_count(), process_index=jax.process_index(),
        process_count=jax.process_count(), dataset=dataset))
    rows = [jax.device_get(probe(state, next(batches))) for _ in range(config.diagnose.batches)]
    return step, {k: float(np.mean([float(r[k]) for r in rows])) for k in rows[0]}


def changed_labels(config: ml_collections.ConfigDict, workdir: str, reference: str,
                   split: str, num_classes: int,
                   dataset: prepared.Prepared) -> dict[str, Any]:
    """The share of the image pixels of ``split`` whose predicted label differs between G of
    ``workdir`` (``eval.checkpoint``) and G of ``reference``
    (``diagnose.reference_checkpoint``)."""
    ours = load_generator(config, workdir)
    theirs = load_generator(config, reference, config.diagnose.reference_checkpoint)
    step = parallel.pmap_eval(make_eval_step(ours.generator, num_classes,
                                             config.loss.ignore_label, tta.from_config(config)))
    a, b = parallel.on_devices(ours.variables), parallel.on_devices(theirs.variables)
    changed = total = 0
    for batch in pipeline.eval_dataset(config, split, local_devices=jax.local_device_count(),
                                       process_index=jax.process_index(),
                                       process_count=jax.process_count(), dataset=dataset):
        (_, pa), (_, pb) = step(a, batch), step(b, batch)
        mask = np.asarray(batch["mask"]) & np.asarray(batch["valid"])[..., None, None]
        c, t = diagnostics.changed_label_share(jax.device_get(pa), jax.device_get(pb), mask)
        changed, total = changed + c, total + t
    changed, total = (int(v) for v in parallel.sum_over_processes(
        np.asarray([changed, total], np.int64)))
    return {"reference": os.path.abspath(reference), "reference_step": theirs.step,
            "split": split, "pixels": total, "changed_pixels": changed,
            "changed_share": changed / max(total, 1)}


def run_diagnose(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """The probe (and, with ``diagnose.reference``, the changed-label share) of a run, written
    to ``<workdir>/diagnose/<split>_step_<N>.json``; returns the record."""
    workdir = os.path.abspath(workdir)
    if not os.path.isdir(os.path.join(workdir, "checkpoints")):
        raise ckpt_lib.CheckpointError(
            f"no checkpoint in {workdir}: {workdir}/checkpoints does not exist; point "
            "--workdir at a trained run")
    if config.diagnose.reference and not os.path.isdir(
            os.path.join(config.diagnose.reference, "checkpoints")):
        raise ckpt_lib.CheckpointError(
            f"config.diagnose.reference={config.diagnose.reference!r} has no checkpoints/ "
            "folder; give the workdir of a trained run of the same generator")
    dataset = open_dataset(config)  # opened once, passed down
    pipeline.resolve_eval_size(config.data, dataset)  # "auto" (a run without its config)
    from ssgan_jax.data.balance import resolve_class_weights

    resolve_class_weights(config, None, dataset)  # the probe's cross-entropy is the run's
    num_classes = len(dataset.class_names)
    step, probe = probe_checkpoint(config, workdir, num_classes, dataset)
    share = diagnostics.confidence_share(probe["d_real"], probe["d_fake"],
                                         probe["d_confident"])
    record: dict[str, Any] = {"step": step, "probe": {**probe, "confidence_share": share},
                              "probe_batches": config.diagnose.batches,
                              "lam": config.loss.lam, "adv_form": config.loss.adv_form}
    split = config.eval.split or config.data.val_split
    if config.diagnose.reference:
        record["changed_labels"] = changed_labels(config, workdir, config.diagnose.reference,
                                                  split, num_classes, dataset)
    from ssgan_jax.training import monitor

    print(monitor.probe_line(step, probe, share), flush=True)
    record["reading"] = diagnostics.reading(probe["d_real"], probe["d_fake"],
                                            probe["d_confident"],
                                            config.train.confidence_share_warning)
    print(record["reading"], flush=True)
    if "changed_labels" in record:
        c = record["changed_labels"]
        print(f"labels changed against {c['reference']} (step {c['reference_step']}) on "
              f"{split}: {100 * c['changed_share']:.2f}% of {c['pixels']} pixels", flush=True)
    if jax.process_index() == 0:
        out = os.path.join(workdir, "diagnose", f"{split}_step_{step}.json")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1, sort_keys=True)
        print(f"written to {out}", flush=True)
    return record
