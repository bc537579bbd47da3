"""The training loop: phase 1 (G alone), then phase 2 (G + A) (METHOD.md section 6).

``train_and_evaluate(config, workdir)`` resumes from ``<workdir>/checkpoints`` when it holds
a checkpoint, else starts from ImageNet weights (``config.weights``) or a phase-1 run
(``config.init_from``). One iteration = one global batch: in phase 1 one generator update,
in phase 2 ``phase2.d_steps`` adversary updates then ``phase2.g_steps`` generator updates.
The optimizers are re-created when phase 2 starts, as the paper does.

This module is the sequencing alone: resume, the phases, the validation and checkpoint
cadence, the calls that log. What a run checks and loads first is ``start``'s; its networks
and compiled steps ``experiment``'s; its batches ``batches``'; what it logs ``report``'s.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from flax import traverse_util

from ssgan_jax.core import checkpoints as ckpt_lib
from ssgan_jax.core import config as config_lib
from ssgan_jax.core import parallel
from ssgan_jax.core.errors import disk_space, quiet_disk_full
from ssgan_jax.data import balance, prepared, subset
from ssgan_jax.inference import metric_registry, tta
from ssgan_jax.inference.evaluator import EvalSteps, eval_steps, evaluate_split
from ssgan_jax.inference.generator import identity_record
from ssgan_jax.training import (
    diagnostics,
    health,
    monitor,
    optimizers,
    report,
    resume,
    start,
    stop,
    workdir_lock,
)
from ssgan_jax.training import state as state_lib
from ssgan_jax.training.batches import train_batches
from ssgan_jax.training.experiment import Experiment


@dataclasses.dataclass
class Run:
    """What the loop needs besides the state: networks and steps, writers, checkpoints."""

    config: ml_collections.ConfigDict
    experiment: Experiment
    dataset: prepared.Prepared
    checkpoints: ckpt_lib.Checkpoints
    writer: Any
    evals: EvalSteps
    config_record: dict[str, Any]
    last_saved: int | None = None
    requests: stop.Requests = dataclasses.field(default_factory=stop.Requests)


def _validate(run: Run, state) -> tuple[dict[str, Any], list]:
    keep = run.config.eval.tensorboard_images if jax.process_index() == 0 else 0
    nc = run.experiment.num_classes
    metrics = metric_registry.build(run.config, nc)
    summary = evaluate_split(run.config, run.evals.p_eval, state_lib.generator_variables(state),
                             run.config.data.val_split, nc, run.dataset.class_names, keep,
                             big_step=run.evals.big, own_canvas=run.evals.own_canvas,
                             host_metrics=metrics, dataset=run.dataset)
    return summary, metrics


def _save(run: Run, state, step: int, phase: int, validation=None) -> None:
    host = jax.device_get(state)  # the state is one copy on every device: fetches one
    if not jax.tree_util.tree_all(jax.tree.map(lambda x: np.isfinite(x).all(),
                                               (host.g_params, host.d_params))):
        raise health.TrainingDiverged(
            f"parameters hold NaN/Inf at step {step}; not saving. The last good checkpoint "
            f"(step {run.last_saved}) is kept; lower the learning rate or clip gradients.")
    meta = {"config": run.config_record, "step": step, "phase": phase,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if validation is not None:
        meta["validation"] = {k: v for k, v in validation.items()
                              if k not in ("confusion", "examples", "host_metric_keys")}
    run.checkpoints.check_space(host, step)
    with disk_space(run.checkpoints.directory, run.checkpoints.kept):
        run.checkpoints.save(step, host, meta,
                             None if validation is None else validation["miou"])
    run.last_saved = step


def _run_phase(run: Run, phase: int, state, batches, first: int, end: int,
               progress: monitor.ReportProgress, profile):
    """Iterations first..end-1 of one phase; returns the state (one copy on every device)."""
    config = run.config
    step_fn = run.experiment.train_step(phase)
    schedule = optimizers.phase_optimizers(config, phase).g_schedule
    probe = None
    if phase == 2 and config_lib.adversary_on(config) and config.train.probe_every:
        probe = (run.experiment.probe(),
                 diagnostics.ConfidenceWarning(config.train.confidence_share_warning))
    pending = report.StepMetrics(config)
    for step in range(first, end):
        with progress.timed("input"):  # the host waiting for the input pipeline
            batch = next(batches)
        if probe is not None and step % config.train.probe_every == 0:
            with progress.timed("probe"):
                report.probe(run.writer, *probe, state, batch, step)
        if step == first:  # the phase's program compiles in its first call: say so
            print(f"[phase {phase}] compiling the phase-{phase} iteration ...", flush=True)
            before = progress.parts["compile"]
            with progress.timed("compile"):
                state, metrics = step_fn(state, batch)
                jax.block_until_ready(metrics)
            print(f"[phase {phase}] compiled and ran the first iteration in "
                  f"{progress.parts['compile'] - before:.1f} s", flush=True)
        else:
            state, metrics = step_fn(state, batch)
        pending.add(metrics)
        done = step + 1
        log_now = done % config.train.log_every == 0 or done == end
        if log_now:  # (waits for the steps to finish: the rate is of computed steps)
            means = pending.fetch(done, run.last_saved)
        progress(done)
        if profile is not None:
            profile(done)
        if log_now:
            lr = float(schedule(done if phase == 1 else done - config.phase1.steps))
            report.training(run.writer, done, phase, means, lr, progress, pending.shown, end)
        validate_now = done % config.train.eval_every == 0 or done == progress.total
        if validate_now or done % config.train.checkpoint_every == 0:
            pending.fetch(done, run.last_saved)
            summary = None
            if validate_now:
                with progress.timed("validation"):
                    summary, metrics = _validate(run, state)
                report.validation(run.writer, config, done, summary, metrics,
                                  run.dataset.palette)
            with progress.timed("checkpoint"):
                _save(run, state, done, phase, summary)
        if run.requests.should_stop(done, config.train.log_every):  # SIGTERM / Ctrl-C
            pending.fetch(done, run.last_saved)
            if run.last_saved != done:
                with progress.timed("checkpoint"):
                    _save(run, state, done, phase)
            with disk_space(run.checkpoints.directory, run.checkpoints.kept):
                run.checkpoints.wait()
            raise stop.Stopped(run.requests.name, done,
                               os.path.join(run.checkpoints.directory, str(done)))
    return state


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Train both phases (resuming if possible); returns the final validation summary.

    Only one training process (or multi-process job) at a time writes into ``workdir``: a
    second one stops with ``workdir_lock.WorkdirLocked`` naming the first. SIGTERM and
    Ctrl-C save a checkpoint at the next step boundary and raise ``stop.Stopped``
    (``main`` turns it into one line and exit code 0, or 130 for Ctrl-C).
    The config must have passed ``checks.check`` (``main`` checks it at load).
    """
    workdir = os.path.abspath(workdir)
    start.check_start_files(config, workdir)
    os.makedirs(workdir, exist_ok=True)
    with workdir_lock.hold(workdir, enabled=jax.process_index() == 0), \
            stop.signals() as requests, quiet_disk_full():
        return _train(config, workdir, requests)


def _train(config: ml_collections.ConfigDict, workdir: str,
           requests: stop.Requests | None = None) -> dict[str, Any]:
    dataset = start.prepare_dataset(config)  # opened once, passed down
    labeled_ids = subset.labeled_ids(config, workdir, jax.process_index() == 0, dataset=dataset)
    balance.resolve_class_weights(config, labeled_ids, dataset)
    num_classes = len(dataset.class_names)
    p1, p2 = config.phase1.steps, config.phase2.steps
    total = p1 + p2
    record = identity_record(config, num_classes)
    checkpoints = ckpt_lib.Checkpoints(workdir, config.train.keep_checkpoints)
    checkpoints.check_compatible(record)
    resume.check_same_stream(checkpoints, config)
    finished = resume.finished(checkpoints, total,
                               lambda step: start.generator_restores(config, checkpoints, step,
                                                                     num_classes))
    if finished is not None:  # said before any network is built or compiled
        return finished

    experiment = Experiment(config, num_classes)
    fresh = experiment.initial_state(1 if p1 > 0 else 2)
    restored = checkpoints.restore(fresh)
    if restored is not None:
        state = restored.state
        print(f"resuming from {checkpoints.directory}/{restored.step} (phase "
              f"{restored.meta['phase']}, step {int(state.step)})", flush=True)
    else:
        state = start.initial_weights(config, fresh)
    start.record_config(workdir, record)
    step = int(state.step)

    writer = monitor.create_writer(workdir, jax.process_index(),
                                   step if restored is not None else None)
    run = Run(config=config, experiment=experiment, dataset=dataset,
              checkpoints=checkpoints, writer=writer,
              evals=eval_steps(experiment.generator, num_classes, config,
                               tta.from_config(config), oversize_images=False),
              config_record=record, last_saved=step if restored is not None else None,
              requests=requests or stop.Requests())
    if restored is None:
        run.writer.write_hparams(traverse_util.flatten_dict(record, sep="."))
    batches = parallel.prefetch(train_batches(config, step, labeled_ids, dataset))
    state = parallel.on_devices(state)
    progress = monitor.ReportProgress(total, step, config.train.log_every,
                                      writer if jax.process_index() == 0 else None,
                                      on_steps=(p1,))  # the loop also logs at the phase end
    profile = (monitor.profiler(workdir, config.train.profile_first_step,
                                config.train.profile_steps)
               if config.train.profile_steps and jax.process_index() == 0 else None)
    summary = None
    try:
        if step < p1:
            state = _run_phase(run, 1, state, batches, step, p1, progress, profile)
            step = p1
        if p2 > 0 and step < total:
            if step == p1:  # phase 2 starts here: fresh optimizers (METHOD.md section 6)
                state = parallel.on_devices(experiment.fresh_optimizers(jax.device_get(state),
                                                                        2))
                what = ("adversary on" if config_lib.adversarial_phase2(config) else
                        "loss.lam = 0, so G trains alone (no adversary)")
                print(f"phase 2 from step {p1}: {what}, optimizers re-created", flush=True)
            state = _run_phase(run, 2, state, batches, step, total, progress, profile)
        summary = resume.final_summary(checkpoints)
    finally:
        with disk_space(checkpoints.directory, checkpoints.kept):
            checkpoints.wait()
        run.writer.flush()
    return summary or {}
