"""Datasets: one registry of those a run can name (``DATASETS``, your own folder dataset
included), TFDS builders (one module each), their ArrayRecord files and the Grain pipeline.

``open_prepared(config.data)`` is the one way in: the dataset prepared first if it is not, its
source files checked, opened once (``prepared.Prepared``) and passed down from there."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

from ssgan_jax.core.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A dataset a run can name (``config.data.name``): ``builder(config.data)`` -> its TFDS
    builder class (imported only then, so that TFDS loads only when data is read),
    ``class_names(config.data)`` -> its classes in label order (no TFDS), and
    ``identity(config.data)`` -> what makes the dataset the same beyond its config, recorded
    with each checkpoint ({} when the config says all)."""

    builder: Callable[[Any], type]
    class_names: Callable[[Any], tuple[str, ...]]
    identity: Callable[[Any], dict] = lambda data: {}


def _shipped(name: str, module: str, cls: str) -> Dataset:
    """A dataset that ships with the package: its builder in ``module``, its classes in
    ``classes.py``."""

    def builder(data):
        return getattr(importlib.import_module(module), cls)

    def names(data):
        from ssgan_jax.data import classes

        return classes.class_names(name)

    return Dataset(builder, names)


def _folder() -> Dataset:
    """Your own dataset (``folder.py``): its builder, classes and identity come from its
    classes file."""

    def builder(data):
        from ssgan_jax.data import folder

        return folder.builder_class(data)

    def names(data):
        from ssgan_jax.data import folder

        return folder.read_classes(folder.classes_path(data)).names

    def identity(data):
        from ssgan_jax.data import folder

        return {"classes_sha256": folder.read_classes(folder.classes_path(data)).sha256}

    return Dataset(builder, names, identity)


# config.data.name -> Dataset: every dataset a run can name, yours included
DATASETS: dict[str, Dataset] = {
    "camvid": _shipped("camvid", "ssgan_jax.data.camvid", "Camvid"),
    "voc2012_aug": _shipped("voc2012_aug", "ssgan_jax.data.voc", "Voc2012Aug"),
    "cityscapes": _shipped("cityscapes", "ssgan_jax.data.cityscapes", "CityscapesTrainIds"),
    "folder": _folder(),
}


def lookup(name: str) -> Dataset:
    """The entry of ``DATASETS`` for ``name``; ConfigError naming the choices."""
    if name not in DATASETS:
        raise ConfigError(f"config.data.name must be one of {sorted(DATASETS)}; got {name!r}")
    return DATASETS[name]


def builder_class(data):
    """The TFDS builder class of ``data`` (``config.data``; a shipped dataset's name will do
    too, the folder dataset needs the config)."""
    if isinstance(data, str):
        if data == "folder":
            raise ValueError("the folder dataset's builder needs config.data, not its name")
        return lookup(data).builder(None)
    return lookup(data.name).builder(data)


def open_prepared(data):
    """The dataset ``data`` (``config.data``) names, prepared from ``data.manual_dir`` first if
    it is not, its source files checked, opened once (``prepared.Prepared``)."""
    from ssgan_jax.data import prepared, records

    builder = records.ensure_prepared(data, builder_class(data))
    return prepared.Prepared(data, builder)


def prepare(data) -> dict:
    """``--mode=prepare``: the dataset ``data`` names built from ``data.manual_dir`` (or checked
    to be, if it was before); what it holds (``records.prepare``)."""
    from ssgan_jax.data import records

    return records.prepare(data, builder_class(data))


def class_names(data) -> tuple[str, ...]:
    """The class names of ``data`` (``config.data``) in label order (a folder dataset's from
    its classes file, ``folder.py``); ConfigError for an unknown ``data.name``."""
    return lookup(data.name).class_names(data)


def num_classes(data) -> int:
    """How many classes G predicts for ``data`` (``config.data``)."""
    return len(class_names(data))


def check(config) -> None:
    """ConfigError for what the dataset judges: its name, and one class weight per class."""
    from ssgan_jax.core.config import require

    n = num_classes(config.data)
    weights = tuple(config.loss.class_weights)
    require(config, not weights or (len(weights) == n and min(weights) >= 0
                                    and max(weights) > 0), "loss.class_weights",
            f"() or {n} weights >= 0, one per class, not all 0")


def identity(data) -> dict:
    """What makes a run's dataset the same beyond its config (``Dataset.identity``): a folder
    dataset's classes file (its digest); nothing for the shipped datasets. Recorded with each
    checkpoint."""
    return lookup(data.name).identity(data)
