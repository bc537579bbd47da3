"""The training loop's batches: the labelled stream from any iteration on, each checked by
the input-health monitor, and in a semi-supervised phase 2 each with its batch of
unlabelled images."""

from __future__ import annotations

import jax

from ssgan_jax.core import config as config_lib
from ssgan_jax.data import pipeline
from ssgan_jax.training import health


def _said(batches, config, step: int):
    """``batches``, with a warning the first time one is mostly void or padding
    (``health.InputHealth``)."""
    watch = health.InputHealth(config)
    for i, batch in enumerate(batches, start=step + 1):
        for warning in watch.check(i, batch):
            print(warning, flush=True)
        yield batch


def train_batches(config, step: int, labeled_ids, dataset):
    """The training batches from iteration ``step`` on: labelled ones and, in a
    semi-supervised phase 2, each with its batch of unlabelled images (``"unlabeled"``)."""
    kw = {"local_devices": jax.local_device_count(), "process_index": jax.process_index(),
          "process_count": jax.process_count(), "labeled_ids": labeled_ids,
          "dataset": dataset}
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
