"""The training loop: phase 1 (G alone), then phase 2 (G + A) (METHOD.md section 6).

``train_and_evaluate(config, workdir)`` resumes from ``<workdir>/checkpoints`` when it holds
a checkpoint, else starts from ImageNet weights (``config.weights``) or a phase-1 run
(``config.init_from``). One iteration = one global batch: in phase 1 one generator update,
in phase 2 ``phase2.d_steps`` adversary updates then ``phase2.g_steps`` generator updates.
The optimizers are re-created when phase 2 starts, as the paper does.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from flax import traverse_util

from ssgan_jax import data as data_lib
from ssgan_jax.core import checkpoints as ckpt_lib
from ssgan_jax.core import config as config_lib
from ssgan_jax.core import parallel
from ssgan_jax.core.errors import ConfigError, DiskFull, disk_space, quiet_disk_full
from ssgan_jax.data import builder_class, pipeline, records, subset
from ssgan_jax.data import images as image_prep
from ssgan_jax.inference import metric_registry, tta
from ssgan_jax.inference.evaluator import eval_steps, evaluate_split
from ssgan_jax.inference.generator import abstract_variables, identity_record, load_generator
from ssgan_jax.models import build_generator, registry
from ssgan_jax.training import (
    diagnostics,
    losses,
    monitor,
    optimizers,
    resume,
    steps,
    stop,
    workdir_lock,
)
from ssgan_jax.training import state as state_lib
from ssgan_jax.training.weights import check_weights_file, load_pretrained


@dataclasses.dataclass
class Run:
    """What the loop needs besides the state: data, compiled steps, writers, checkpoints."""

    config: ml_collections.ConfigDict
    workdir: str
    num_classes: int
    class_names: tuple[str, ...]
    generator: Any
    checkpoints: ckpt_lib.Checkpoints
    writer: Any
    evals: Any  # inference.evaluator.EvalSteps
    config_record: dict[str, Any]
    last_saved: int | None = None
    requests: stop.Requests = dataclasses.field(default_factory=stop.Requests)


def _dataset_classes(config) -> tuple[str, ...]:
    """Prepare the dataset once (process 0), then every process opens it."""
    if jax.process_index() == 0:
        pipeline.ensure_prepared(config.data)
    parallel.barrier("ssgan_dataset_prepared")
    pipeline.resolve_eval_size(config.data)  # "auto": before the config is recorded
    # validation refuses images larger than data.eval_size: say so now, not at its first pass
    pipeline.check_eval_size(config.data, config.data.val_split)
    if config_lib.semi_phase2(config) and config.data.unlabeled_glob:
        pipeline.check_unlabeled_files(config.data.unlabeled_glob)  # before phase 1, not in 2
    return data_lib.class_names(config.data)


def _parse_init_from(spec: str) -> tuple[str, int | None]:
    """``<workdir>[:<step>]`` -> (workdir, step or None); CheckpointError if it has no
    checkpoints folder."""
    path, sep, step = spec.rpartition(":")
    path, step = (path, int(step)) if sep and step.isdigit() else (spec, None)
    if not os.path.isdir(os.path.join(path, "checkpoints")):
        raise ckpt_lib.CheckpointError(
            f"config.init_from={spec!r}: {path}/checkpoints does not exist; give "
            "the workdir of a finished phase-1 run (optionally '<workdir>:<step>')")
    return path, step


def _check_start_files(config, workdir: str) -> None:
    """A fresh run's weight files and init_from run exist, checked before the dataset is
    prepared or anything compiles (a run that resumes from its checkpoints reads neither)."""
    if ckpt_lib.Checkpoints(workdir, read_only=True).steps():
        return
    for path in (config.weights.generator, config.weights.adversary):
        if path:
            check_weights_file(path)
    if config.init_from:
        _check_init_from(config)


def _check_init_from(config) -> None:
    """``init_from`` names a run whose generator this config can continue (same network,
    width, output stride, dataset and classes), said before the dataset is prepared."""
    path, step = _parse_init_from(config.init_from)
    source = ckpt_lib.Checkpoints(path, read_only=True)
    steps = source.steps()
    if not steps:
        raise ckpt_lib.CheckpointError(f"config.init_from={config.init_from!r}: {path} has no "
                                       "checkpoint; train its phase 1 first")
    try:
        saved = source.read_meta(step if step is not None else steps[-1])["config"]
    except Exception:  # noqa: BLE001 - unreadable or missing: load_generator says which
        return
    diffs = ckpt_lib.identity_differences(
        saved, identity_record(config, data_lib.num_classes(config.data)), generator_only=True)
    if diffs:
        raise ckpt_lib.CheckpointError(
            f"config.init_from={config.init_from!r}: that run's generator is not the one this "
            "config trains:\n  " + "\n  ".join(d.replace(" in the checkpoint", " there")
                                                for d in diffs)
            + "\ninit_from continues a run's generator as it is. Point it at a run of this "
            "network, width and dataset; for another dataset or class list, start from an "
            "ImageNet backbone (config.weights.generator) instead. Nothing was prepared or "
            "trained.")


def _initial_weights(config, state: state_lib.TrainState) -> state_lib.TrainState:
    """ImageNet weights / a phase-1 run's generator, with a warning for random init."""
    w = config.weights
    if w.generator:
        g_vars = {"params": state.g_params, "batch_stats": state.g_batch_stats}
        preset = registry.lookup(config.model.name).weights  # (config.check: it has one)
        g_vars, report = load_pretrained(preset, g_vars, w.generator)
        print(f"generator backbone from {w.generator}: {report.summary()}", flush=True)
        state = state.replace(g_params=g_vars["params"],
                              g_batch_stats=g_vars.get("batch_stats", {}))
    elif not config.init_from:
        print("WARNING: config.weights.generator is empty: G starts from random weights, "
              "not ImageNet (METHOD.md section 6); see README 'Pretrained weights'", flush=True)
    if config_lib.adversarial_phase2(config):
        if w.adversary:
            d_vars = {"params": state.d_params, "batch_stats": state.d_batch_stats}
            d_vars, report = load_pretrained("adversary", d_vars, w.adversary)
            print(f"adversary image branch from {w.adversary}: {report.summary()}", flush=True)
            state = state.replace(d_params=d_vars["params"],
                                  d_batch_stats=d_vars.get("batch_stats", {}))
        else:
            print("WARNING: config.weights.adversary is empty: A's image branch starts from "
                  "random weights, not ImageNet (METHOD.md section 3)", flush=True)
    if config.init_from:
        path, step = _parse_init_from(config.init_from)
        try:
            source = load_generator(config, path, "latest" if step is None else step)
        except ckpt_lib.CheckpointError as e:
            raise ckpt_lib.CheckpointError(f"config.init_from={config.init_from!r}: {e}") from e
        state = state.replace(g_params=source.variables["params"],
                              g_batch_stats=source.variables.get("batch_stats", {}))
        print(f"generator from {path} step {source.step} (init_from)", flush=True)
    return state


def _record_config(workdir: str, record: dict[str, Any]) -> None:
    """Write <workdir>/config.json; an earlier, different one is kept as config.<time>.json."""
    if jax.process_index() != 0:
        return
    path = os.path.join(workdir, "config.json")
    text = json.dumps(record, indent=2, sort_keys=True)
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return
        os.replace(path, os.path.join(workdir, f"config.{time.strftime('%Y%m%d-%H%M%S')}.json"))
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _validate(run: Run, state) -> tuple[dict[str, Any], list]:
    keep = run.config.eval.tensorboard_images if jax.process_index() == 0 else 0
    metrics = metric_registry.build(run.config, run.num_classes)
    summary = evaluate_split(run.config, run.evals.p_eval,
                             state_lib.generator_variables(state), run.config.data.val_split,
                             run.num_classes, run.class_names, keep, big_step=run.evals.big,
                             own_canvas=run.evals.own_canvas, host_metrics=metrics)
    return summary, metrics


def _save(run: Run, state, step: int, phase: int, validation=None) -> None:
    host = jax.device_get(state)  # the state is one copy on every device: fetches one
    if not jax.tree_util.tree_all(jax.tree.map(lambda x: np.isfinite(x).all(),
                                               (host.g_params, host.d_params))):
        raise monitor.TrainingDiverged(
            f"parameters hold NaN/Inf at step {step}; not saving. The last good checkpoint "
            f"(step {run.last_saved}) is kept; lower the learning rate or clip gradients.")
    meta = {"config": run.config_record, "step": step, "phase": phase,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if validation is not None:
        meta["validation"] = {k: v for k, v in validation.items()
                              if k not in ("confusion", "examples", "host_metric_keys")}
    _check_space(run, host, step)
    with disk_space(run.checkpoints.directory, lambda: _kept(run)):
        run.checkpoints.save(step, host, meta,
                             None if validation is None else validation["miou"])
    run.last_saved = step


def _kept(run: Run) -> str:
    """The complete checkpoints on disk (a save under way has only its temporary folder)."""
    directory = run.checkpoints.directory
    steps = [s for s in run.checkpoints.steps() if os.path.isdir(os.path.join(directory, str(s)))]
    return (f"the checkpoints of steps {steps} are kept" if steps else
            "no checkpoint was saved yet")


def _check_space(run: Run, host, step: int) -> None:
    """DiskFull before a save that cannot fit: the device's free space against the state's
    size (+10% and 1 MB for metadata). Checked first because a save that runs out of space
    midway makes Orbax's writer threads print hundreds of traceback lines before the error
    reaches the loop (seen: 2621 lines on a full 3 MB tmpfs)."""
    directory = run.checkpoints.directory
    needed = sum(int(np.asarray(x).nbytes) for x in jax.tree.leaves(host))
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        return
    if free < 1.1 * needed + (1 << 20):
        raise DiskFull(f"not enough space on the device of {directory} for checkpoint {step} "
                       f"(about {needed / 2**20:.0f} MB needed, {free / 2**20:.0f} MB free); "
                       f"{_kept(run)}. Free space (or point --workdir elsewhere) and run the "
                       "same command again")


def _report_validation(run: Run, step: int, summary: dict[str, Any], metrics) -> None:
    scalars = {"val/miou": summary["miou"] or 0.0,
               "val/pixel_accuracy": summary["pixel_accuracy"] or 0.0}
    scalars.update({f"val_iou/{k}": v for k, v in summary["per_class_iou"].items()
                    if v is not None})
    scalars.update(metric_registry.validation_scalars(metrics, summary))
    shown = "".join(f", {metric.describe(summary)}" for metric in metrics)
    run.writer.write_scalars(step, scalars)
    if summary.get("examples"):
        run.writer.write_images(step, {"val/image_truth_prediction": image_prep.side_by_side(
            summary["examples"], builder_class(run.config.data).PALETTE,
            run.config.data.mean, run.config.data.std)})
    miou = summary["miou"]
    print(f"validation at step {step} on {run.config.data.val_split} "
          f"({summary['num_images']} images): mIoU "
          f"{_percent(miou)}{shown}", flush=True)


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def labeled_subset(config, workdir: str) -> list[str] | None:
    """The labelled ids of ``data.labeled`` (None = all of train_split), written to
    ``<workdir>/labeled_ids.txt`` and checked against the file a previous start wrote."""
    if not config.data.labeled:
        return None
    ids = subset.choose(pipeline.split_ids(config.data, config.data.train_split),
                        config.data.labeled, config.data.split_seed)
    path = os.path.join(workdir, subset.IDS_FILE)
    if ids is None:
        return None
    if os.path.exists(path):
        before = subset.read_ids(path)
        if before != ids:
            raise ConfigError(
                f"the labelled subset of this start ({len(ids)} images: data.labeled="
                f"{config.data.labeled!r}, split_seed {config.data.split_seed}) differs from "
                f"{path} ({len(before)} images), written when this run started; keep the "
                f"run's subset with --config.data.labeled={path}, or use a new workdir")
    elif jax.process_index() == 0:
        subset.write_ids(path, ids)
    print(f"labelled subset: {len(ids)} images of {config.data.train_split} "
          f"(data.labeled={config.data.labeled!r}, split_seed {config.data.split_seed}) -> "
          f"{path}", flush=True)
    return ids


def _said(batches, config, step: int):
    """``batches``, with a warning the first time one is mostly void or padding
    (``monitor.InputHealth``)."""
    health = monitor.InputHealth(config)
    for i, batch in enumerate(batches, start=step + 1):
        for warning in health.check(i, batch):
            print(warning, flush=True)
        yield batch


def _train_batches(config, step: int, labeled_ids):
    """The training batches from iteration ``step`` on: labelled ones and, in a
    semi-supervised phase 2, each with its batch of unlabelled images (``"unlabeled"``)."""
    kw = {"local_devices": jax.local_device_count(), "process_index": jax.process_index(),
          "process_count": jax.process_count(), "labeled_ids": labeled_ids}
    labelled = _said(pipeline.train_dataset(
        config, start_example=step * config.batch_size, **kw), config, step)
    if not config_lib.semi_phase2(config):
        yield from labelled
        return
    p1 = config.phase1.steps
    unlabelled = None
    for i, batch in enumerate(labelled, start=step):
        if i >= p1:
            if unlabelled is None:  # opened at phase 2 only: phase 1 never reads it
                unlabelled = pipeline.unlabeled_dataset(
                    config, start_example=(i - p1) * config.semi.unlabeled_batch_size, **kw)
            extra = next(unlabelled)
            batch["unlabeled"], batch["unlabeled_sizes"] = extra["image"], extra["sizes"]
        yield batch


def _run_phase(run: Run, phase: int, state, batches, start: int, end: int,
               progress: monitor.ReportProgress, profile):
    """Iterations start..end-1 of one phase; returns the state (one copy on every device)."""
    config = run.config
    nets = state_lib.build_networks(config, run.num_classes, phase)
    step_fn = parallel.pmap_step(steps.make_train_step(nets, config, phase),
                              donate=config.train.donate)
    schedule = optimizers.phase_optimizers(config, phase).g_schedule
    health = monitor.AdversaryHealth(config.train.health_window,
                                     config.train.adversary_won_accuracy,
                                     config.train.adversary_idle_margin)
    probe = None
    if phase == 2 and config_lib.adversary_on(config) and config.train.probe_every:
        probe = (parallel.pmap_metrics(steps.make_probe(nets, config)),
                 diagnostics.ConfidenceWarning(config.train.confidence_share_warning))
    pending: list[dict[str, Any]] = []

    def flush(step: int) -> dict[str, float]:
        fetched = [{k: float(v) for k, v in m.items()} for m in jax.device_get(pending)]
        pending.clear()
        for i, m in enumerate(fetched):
            monitor.check_finite(step - len(fetched) + i + 1, m, run.last_saved)
            if "d_acc_real" in m:
                warning = health.update(step - len(fetched) + i + 1, m["d_acc_real"],
                                        m["d_acc_fake"])
                if warning:
                    print(warning, flush=True)
        return {k: float(np.mean([m[k] for m in fetched])) for k in fetched[0]} if fetched else {}

    for step in range(start, end):
        with progress.timed("input"):  # the host waiting for the input pipeline
            batch = next(batches)
        if probe is not None and step % config.train.probe_every == 0:
            with progress.timed("probe"):
                _probe(run, probe, state, batch, step)
        if step == start:  # the phase's program compiles in its first call: say so
            print(f"[phase {phase}] compiling the phase-{phase} iteration ...", flush=True)
            before = progress.parts["compile"]
            with progress.timed("compile"):
                state, metrics = step_fn(state, batch)
                jax.block_until_ready(metrics)
            print(f"[phase {phase}] compiled and ran the first iteration in "
                  f"{progress.parts['compile'] - before:.1f} s", flush=True)
        else:
            state, metrics = step_fn(state, batch)
        pending.append(metrics)
        done = step + 1
        log_now = done % config.train.log_every == 0 or done == end
        if log_now:
            means = flush(done)  # waits for the steps to finish: the rate is of computed steps
        progress(done)
        if profile is not None:
            profile(done)
        if log_now:
            lr = float(schedule(done if phase == 1 else done - config.phase1.steps))
            # (steps_per_sec and uptime: written by ReportProgress at these steps)
            run.writer.write_scalars(done, {**{f"train/{k}": v for k, v in means.items()},
                                            "train/g_lr": lr, "train/phase": phase})
            shown = {k: means[k] for k in ("ce", "adv", "adv_unlabeled", "semi_mask_share",
                                           "loss_g", "loss_d", "d_acc_real", "d_acc_fake")
                     if k in means}
            print(monitor.progress_line(done, progress.total, phase, shown, progress.rate,
                                        progress.steady_rate),
                  flush=True)
        validate_now = done % config.train.eval_every == 0 or done == progress.total
        if validate_now or done % config.train.checkpoint_every == 0:
            if pending:
                flush(done)
            summary = None
            if validate_now:
                with progress.timed("validation"):
                    summary, metrics = _validate(run, state)
                _report_validation(run, done, summary, metrics)
            with progress.timed("checkpoint"):
                _save(run, state, done, phase, summary)
        if run.requests.should_stop(done, config.train.log_every):  # SIGTERM / Ctrl-C
            if pending:
                flush(done)
            if run.last_saved != done:
                with progress.timed("checkpoint"):
                    _save(run, state, done, phase)
            with disk_space(run.checkpoints.directory, lambda: _kept(run)):
                run.checkpoints.wait()
            raise stop.Stopped(run.requests.name, done,
                               os.path.join(run.checkpoints.directory, str(done)))
    return state


def _probe(run: Run, probe, state, batch, step: int) -> None:
    """The adversary probe of the state after ``step`` iterations on the next batch
    (``steps.make_probe``): logged as probe/*, a line, and the confidence warning once."""
    p_probe, warning = probe
    m = {k: float(v) for k, v in jax.device_get(p_probe(state, batch)).items()}
    share = diagnostics.confidence_share(m["d_real"], m["d_fake"], m["d_confident"])
    scalars = {f"probe/{k}": v for k, v in m.items()}
    if share is not None:
        scalars["probe/confidence_share"] = share
    run.writer.write_scalars(step, scalars)
    print(monitor.probe_line(step, m, share), flush=True)
    said = warning.update(step, m["d_real"], m["d_fake"], m["d_confident"])
    if said:
        print(said, flush=True)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Train both phases (resuming if possible); returns the final validation summary.

    Only one training process (or multi-process job) at a time writes into ``workdir``: a
    second one stops with ``workdir_lock.WorkdirLocked`` naming the first. SIGTERM and
    Ctrl-C save a checkpoint at the next step boundary and raise ``stop.Stopped``
    (``main`` turns it into one line and exit code 0, or 130 for Ctrl-C).
    The config must have passed ``config.check`` (``main`` checks it at load).
    """
    workdir = os.path.abspath(workdir)
    _check_start_files(config, workdir)
    os.makedirs(workdir, exist_ok=True)
    with workdir_lock.hold(workdir, enabled=jax.process_index() == 0), \
            stop.signals() as requests, quiet_disk_full():
        return _train(config, workdir, requests)


def resolve_class_weights(config, labeled_ids) -> None:
    """``loss.class_balance`` resolved into ``loss.class_weights`` (before the config is
    recorded: a resumed run recomputes and compares them), from the stored pixel counts of
    the training labels (only the labelled subset's, in a semi-supervised run)."""
    if not config.loss.class_balance or tuple(config.loss.class_weights):
        return
    counts = records.class_pixels(config.data, config.data.train_split)
    keep = None if labeled_ids is None else set(labeled_ids)
    rows = [i for i, k in enumerate(counts["ids"]) if keep is None or k in keep]
    pixels = np.asarray(counts["pixels"], np.float64)[rows]
    sizes = np.prod(np.asarray(counts["shapes"], np.float64)[rows], axis=1)
    image_pixels = ((pixels > 0) * sizes[:, None]).sum(0)
    weights = losses.median_frequency_weights(pixels.sum(0), image_pixels)
    weights = weights ** config.loss.class_balance_power
    config.loss.class_weights = tuple(round(float(w), 6) for w in weights)
    print(f"class weights ({config.loss.class_balance} ** {config.loss.class_balance_power}, "
          f"from {len(rows)} training labels): "
          + ", ".join(f"{n} {w:.3g}" for n, w in zip(data_lib.class_names(config.data),
                                                     config.loss.class_weights, strict=True)),
          flush=True)


def _generator_restores(config, checkpoints: ckpt_lib.Checkpoints, step: int,
                        num_classes: int) -> bool:
    """Whether checkpoint ``step``'s generator reads back (G alone, traced not compiled: a
    finished run answers in seconds, and a damaged newest checkpoint still goes the restore
    path, which moves it aside and trains on from the one before)."""
    generator = build_generator(config.model, num_classes)
    shapes = abstract_variables(generator, config.data.crop_size)
    reader = ckpt_lib.Checkpoints(checkpoints.workdir, read_only=True)  # (a manager restores
    try:  # one way: training's restores whole states)
        reader.restore_part({"g_params": shapes["params"]}, step)
    except ckpt_lib.UnreadableCheckpoint:
        return False
    return True


def _train(config: ml_collections.ConfigDict, workdir: str,
           requests: stop.Requests | None = None) -> dict[str, Any]:
    class_names = _dataset_classes(config)
    labeled_ids = labeled_subset(config, workdir)
    resolve_class_weights(config, labeled_ids)
    num_classes = len(class_names)
    p1, p2 = config.phase1.steps, config.phase2.steps
    total = p1 + p2
    record = identity_record(config, num_classes)
    checkpoints = ckpt_lib.Checkpoints(workdir, config.train.keep_checkpoints)
    checkpoints.check_compatible(record)
    resume.check_same_stream(checkpoints, config)
    finished = resume.finished(checkpoints, total,
                               lambda step: _generator_restores(config, checkpoints, step,
                                                                num_classes))
    if finished is not None:  # said before any network is built or compiled
        return finished

    init_key, train_key = state_lib.run_keys(config.seed)
    nets = state_lib.build_networks(config, num_classes, 1 if p1 > 0 else 2)
    ch, cw = config.data.crop_size
    fresh = jax.device_get(state_lib.init_state(nets, init_key, train_key, (1, ch, cw, 3),
                                            num_classes))
    restored = checkpoints.restore(fresh)
    if restored is not None:
        state = restored.state
        print(f"resuming from {checkpoints.directory}/{restored.step} (phase "
              f"{restored.meta['phase']}, step {int(state.step)})", flush=True)
    else:
        state = _initial_weights(config, fresh)
    _record_config(workdir, record)
    step = int(state.step)

    generator = nets.generator
    writer = monitor.create_writer(workdir, jax.process_index())
    run = Run(config=config, workdir=workdir, num_classes=num_classes, class_names=class_names,
              generator=generator, checkpoints=checkpoints, writer=writer,
              evals=eval_steps(generator, num_classes, config, tta.from_config(config),
                               oversize_images=False),
              config_record=record, last_saved=step if restored is not None else None,
              requests=requests or stop.Requests())
    if restored is None:
        run.writer.write_hparams(traverse_util.flatten_dict(record, sep="."))
    batches = parallel.prefetch(_train_batches(config, step, labeled_ids))
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
                state = parallel.on_devices(state_lib.fresh_optimizers(
                    jax.device_get(state), state_lib.build_networks(config, num_classes, 2)))
                what = ("adversary on" if config_lib.adversarial_phase2(config) else
                        "loss.lam = 0, so G trains alone (no adversary)")
                print(f"phase 2 from step {p1}: {what}, optimizers re-created", flush=True)
            state = _run_phase(run, 2, state, batches, step, total, progress, profile)
        summary = resume.final_summary(checkpoints)
    finally:
        with disk_space(checkpoints.directory, lambda: _kept(run)):
            checkpoints.wait()
        run.writer.flush()
    return summary or {}
