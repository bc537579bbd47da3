"""Datasets: TFDS builders (one module each), their ArrayRecord files and the Grain pipeline."""

from __future__ import annotations

from ssgan_jax.core.errors import ConfigError

# config.data.name -> (module, builder class); imported lazily so that TF loads only when needed.
DATASETS = {
    "camvid": ("ssgan_jax.data.camvid", "Camvid"),
    "voc2012_aug": ("ssgan_jax.data.voc", "Voc2012Aug"),
    "cityscapes": ("ssgan_jax.data.cityscapes", "CityscapesTrainIds"),
}


def builder_class(name: str):
    import importlib

    if name not in DATASETS:
        raise ConfigError(f"config.data.name must be one of {sorted(DATASETS)}; got {name!r}")
    module, cls = DATASETS[name]
    return getattr(importlib.import_module(module), cls)
