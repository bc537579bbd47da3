"""What a training run does before its first step: the dataset prepared and checked, the
files a fresh start reads (weights, ``init_from``) checked before anything is prepared or
compiled, the initial weights, the config recorded, and whether a finished run's newest
checkpoint still reads back."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import jax

from ssgan_jax import data as data_lib
from ssgan_jax.core import checkpoints as ckpt_lib
from ssgan_jax.core import config as config_lib
from ssgan_jax.core import parallel
from ssgan_jax.data import open_prepared, pipeline, prepared
from ssgan_jax.inference.generator import abstract_variables, identity_record, load_generator
from ssgan_jax.models import build_generator, registry
from ssgan_jax.training import state as state_lib
from ssgan_jax.training.weights import check_weights_file, load_pretrained


def open_dataset(config) -> prepared.Prepared:
    """The dataset prepared once (process 0 of the job), then opened by every process, once:
    the run passes this object down."""
    dataset = open_prepared(config.data) if jax.process_index() == 0 else None
    parallel.barrier("ssgan_dataset_prepared")
    return dataset or open_prepared(config.data)


def prepare_dataset(config) -> prepared.Prepared:
    """``open_dataset``, with the checks a training run makes before its first step."""
    dataset = open_dataset(config)
    pipeline.resolve_eval_size(config.data, dataset)  # "auto": before the config is recorded
    # validation refuses images larger than data.eval_size: say so now, not at its first pass
    pipeline.check_eval_size(config.data, config.data.val_split, dataset)
    if config_lib.semi_phase2(config) and config.data.unlabeled_glob:
        pipeline.check_unlabeled_files(config.data.unlabeled_glob)  # before phase 1, not in 2
    return dataset


def parse_init_from(spec: str) -> tuple[str, int | None]:
    """``<workdir>[:<step>]`` -> (workdir, step or None); CheckpointError if it has no
    checkpoints folder."""
    path, sep, step = spec.rpartition(":")
    path, step = (path, int(step)) if sep and step.isdigit() else (spec, None)
    if not os.path.isdir(os.path.join(path, "checkpoints")):
        raise ckpt_lib.CheckpointError(
            f"config.init_from={spec!r}: {path}/checkpoints does not exist; give "
            "the workdir of a finished phase-1 run (optionally '<workdir>:<step>')")
    return path, step


def check_start_files(config, workdir: str) -> None:
    """A fresh run's weight files and init_from run exist, checked before the dataset is
    prepared or anything compiles (a run that resumes from its checkpoints reads neither)."""
    if ckpt_lib.Checkpoints(workdir, read_only=True).steps():
        return
    for path in (config.weights.generator, config.weights.adversary):
        if path:
            check_weights_file(path)
    if config.init_from:
        check_init_from(config)


def check_init_from(config) -> None:
    """``init_from`` names a run whose generator this config can continue (same network,
    width, output stride, dataset and classes), said before the dataset is prepared."""
    path, step = parse_init_from(config.init_from)
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


def initial_weights(config, state: state_lib.TrainState) -> state_lib.TrainState:
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
        path, step = parse_init_from(config.init_from)
        try:
            source = load_generator(config, path, "latest" if step is None else step)
        except ckpt_lib.CheckpointError as e:
            raise ckpt_lib.CheckpointError(f"config.init_from={config.init_from!r}: {e}") from e
        state = state.replace(g_params=source.variables["params"],
                              g_batch_stats=source.variables.get("batch_stats", {}))
        print(f"generator from {path} step {source.step} (init_from)", flush=True)
    return state


def record_config(workdir: str, record: dict[str, Any]) -> None:
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


def generator_restores(config, checkpoints: ckpt_lib.Checkpoints, step: int,
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
