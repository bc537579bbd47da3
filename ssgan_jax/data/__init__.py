"""Datasets: TFDS builders (one module each), their ArrayRecord files and the Grain pipeline."""

from __future__ import annotations

from ssgan_jax.core.errors import ConfigError

# config.data.name -> (module, builder class); imported lazily so that TF loads only when needed.
DATASETS = {
    "camvid": ("ssgan_jax.data.camvid", "Camvid"),
    "voc2012_aug": ("ssgan_jax.data.voc", "Voc2012Aug"),
    "cityscapes": ("ssgan_jax.data.cityscapes", "CityscapesTrainIds"),
}


FOLDER = "folder"  # your own dataset (folder.py): its classes come from its classes file


def builder_class(data):
    """The TFDS builder class of ``data`` (``config.data``; a shipped dataset's name will do
    too, the folder dataset needs the config)."""
    import importlib

    name = data if isinstance(data, str) else data.name
    if name == FOLDER:
        if isinstance(data, str):
            raise ValueError("the folder dataset's builder needs config.data, not its name")
        from ssgan_jax.data import folder

        return folder.builder_class(data)
    if name not in DATASETS:
        raise ConfigError(f"config.data.name must be one of {sorted([*DATASETS, FOLDER])}; "
                          f"got {name!r}")
    module, cls = DATASETS[name]
    return getattr(importlib.import_module(module), cls)


def class_names(data) -> tuple[str, ...]:
    """The class names of ``data`` (``config.data``) in label order (a folder dataset's from
    its classes file, ``folder.py``); ConfigError for an unknown ``data.name``."""
    if data.name == FOLDER:
        from ssgan_jax.data import folder

        return folder.read_classes(folder.classes_path(data)).names
    from ssgan_jax.data import classes

    if data.name not in DATASETS:
        raise ConfigError(f"config.data.name must be one of {sorted([*DATASETS, FOLDER])}; "
                          f"got {data.name!r}")
    return classes.class_names(data.name)


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
    """What makes a run's dataset the same beyond its config: a folder dataset's classes file
    (its digest); nothing for the shipped datasets. Recorded with each checkpoint."""
    if data.name != FOLDER:
        return {}
    from ssgan_jax.data import folder

    return {"classes_sha256": folder.read_classes(folder.classes_path(data)).sha256}
