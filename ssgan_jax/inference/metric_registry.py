"""The evaluation metrics computed on the host from each image's class maps, one interface
for all (README, "Your own metric").

Beside the confusion matrix (mIoU, accuracies: ``metrics``, computed on the devices), every
evaluation (``--mode=eval`` and training's validation) feeds each image's prediction and
label, cropped to the image, to the metrics ``config.eval`` names: the built-in region
metrics (boundary F1, fragmentation, speckle; ``eval.region_metrics``) and any in
``eval.metrics``, each an importable ``module:attribute`` built as
``attribute(num_classes=..., ignore_label=...)``. The evaluator, the eval JSON and table,
validation's scalars and its printed line all iterate over them; nothing else names a metric.

A metric has (``HostMetric``):

- ``add(pred, label)``: one image's class maps ``[H, W]`` (``label`` holds ``ignore_label``);
- ``state() -> float64 vector`` and ``load_state(vector) -> self``: its sums, added over the
  processes of a job;
- ``summary(class_names) -> dict``: its entries of the eval JSON (merged at the top level);
- ``scalars(summary) -> {key: value}``: what validation logs, ``val/<key>`` (a key
  ``group/class`` is logged as ``val_group/class``); None values are left out;
- ``columns(summary) -> [(header, per_class {name: value}, mean, scale)]``: columns of the
  per-class table (values times ``scale``; None shown as "-");
- ``describe(summary) -> str``: one line for the terminal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from ssgan_jax.core.errors import ConfigError
from ssgan_jax.core.named import import_attribute


class HostMetric(Protocol):
    def add(self, pred: np.ndarray, label: np.ndarray) -> None: ...

    def state(self) -> np.ndarray: ...

    def load_state(self, state: np.ndarray) -> HostMetric: ...

    def summary(self, class_names: Sequence[str] | None = None) -> dict[str, Any]: ...

    def scalars(self, summary: dict[str, Any]) -> dict[str, float | None]: ...

    def columns(self, summary: dict[str, Any]) -> list[tuple[str, dict, Any, float]]: ...

    def describe(self, summary: dict[str, Any]) -> str: ...


def _region(config, num_classes: int) -> HostMetric | None:
    if not config.eval.region_metrics:
        return None
    from ssgan_jax.inference.region_metrics import RegionMetrics

    return RegionMetrics(num_classes, config.loss.ignore_label, config.eval.boundary_tolerance,
                         config.eval.min_region)


# name -> factory(config, num_classes) -> a metric, or None when config turns it off
BUILTIN: dict[str, Callable[..., HostMetric | None]] = {"region": _region}


def _import(name: str):
    return import_attribute(name, "config.eval.metrics",
                            f"config.eval.metrics: {name!r} is not an importable "
                            "'module:attribute' (e.g. 'my_package.metrics:ForegroundShare')")


def names(config) -> tuple[str, ...]:
    """The ``module:attribute`` names of ``config.eval.metrics`` (a tuple, or one
    comma-separated string from the command line)."""
    value = config.eval.metrics
    if isinstance(value, str):
        value = value.split(",")
    return tuple(v.strip() for v in value if v.strip())


def check(config) -> None:
    """ConfigError for a name of ``eval.metrics`` that does not import (said at load)."""
    for name in names(config):
        if not callable(_import(name)):
            raise ConfigError(f"config.eval.metrics: {name!r} is not a class or factory")


def build(config, num_classes: int) -> list[HostMetric]:
    """Fresh metrics of one evaluation: the built-in ones ``config`` turns on, then those of
    ``eval.metrics``."""
    out = [m for m in (factory(config, num_classes) for factory in BUILTIN.values())
           if m is not None]
    for name in names(config):
        try:
            metric = _import(name)(num_classes=num_classes,
                                   ignore_label=config.loss.ignore_label)
        except TypeError as e:
            raise ConfigError(f"config.eval.metrics: {name!r} cannot be built as "
                              f"{name.partition(':')[2]}(num_classes={num_classes}, "
                              f"ignore_label={config.loss.ignore_label}): {e}") from e
        missing = [a for a in ("add", "state", "load_state", "summary", "scalars", "columns",
                               "describe") if not callable(getattr(metric, a, None))]
        if missing:
            raise ConfigError(f"config.eval.metrics: {name!r} has no {', '.join(missing)} "
                              "(the interface: inference/metric_registry.py)")
        out.append(metric)
    return out


def validation_scalars(metrics: Sequence[HostMetric], summary: dict[str, Any]) -> dict:
    """Every metric's scalars as validation logs them (``val/<key>``, ``val_<group>/<c>``)."""
    out = {}
    for metric in metrics:
        for key, value in metric.scalars(summary).items():
            if value is not None:
                group, _, rest = key.partition("/")
                out[f"val_{group}/{rest}" if rest else f"val/{key}"] = value
    return out
