"""The check every loaded config passes (``main``, ``Segmenter.from_workdir``): the values
that need no component to judge (``core.config.check``), then the dataset's, the networks',
the evaluation metrics' and G's loss terms' own checks (``data.check``, ``models.check``,
``inference.metric_registry.check``, ``training.loss_terms.check``), each beside what it
checks. Steps and loops trust a checked config."""

from __future__ import annotations

import ml_collections

from ssgan_jax import data, models
from ssgan_jax.core import config as config_lib
from ssgan_jax.inference import metric_registry


def check(config: ml_collections.ConfigDict, *, training: bool = True) -> None:
    """Raise ConfigError naming the first bad value of ``config`` and what it must be.
    ``training=False`` (``Segmenter``, eval, predict, export: they never train) leaves out
    G's loss terms, so that neither the training wing nor your loss terms' modules are
    imported."""
    config_lib.check(config)
    data.check(config)
    models.check(config)
    metric_registry.check(config)
    if training:
        from ssgan_jax.training import loss_terms  # the training wing's own check

        loss_terms.check(config)
