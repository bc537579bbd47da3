"""The check every loaded config passes (``main``, ``Segmenter.from_workdir``): the values
that need no component to judge (``core.config.check``), then the dataset's, the networks'
the evaluation metrics' and G's loss terms' own checks (``data.check``, ``models.check``,
``inference.metric_registry.check``, ``training.loss_terms.check``), each beside what it
checks. Steps and loops trust a
checked config."""

from __future__ import annotations

import ml_collections

from ssgan_jax import data, models
from ssgan_jax.core import config as config_lib
from ssgan_jax.inference import metric_registry
from ssgan_jax.training import loss_terms


def check(config: ml_collections.ConfigDict) -> None:
    """Raise ConfigError naming the first bad value of ``config`` and what it must be."""
    config_lib.check(config)
    data.check(config)
    models.check(config)
    metric_registry.check(config)
    loss_terms.check(config)
