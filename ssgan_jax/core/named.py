"""What a config names as an importable ``module:attribute`` (your own generator,
``model.name``; your own metrics, ``eval.metrics``): imported, or a ConfigError saying which
part failed."""

from __future__ import annotations

import importlib
from typing import Any

from ssgan_jax.core.errors import ConfigError


def import_attribute(name: str, where: str, malformed: str) -> Any:
    """The attribute ``name`` (``"module:attribute"``) names. ConfigError: ``malformed`` when
    ``name`` is not of that form; else ``<where>: cannot import module ...`` or
    ``<where>: module ... has no attribute ...``."""
    module_name, _, attribute = name.partition(":")
    if not module_name or not attribute:
        raise ConfigError(malformed)
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(f"{where}: cannot import module {module_name!r} ({e}); install the "
                          "package that holds it, or put its folder on PYTHONPATH") from e
    if not hasattr(module, attribute):
        raise ConfigError(f"{where}: module {module_name!r} has no attribute {attribute!r}")
    return getattr(module, attribute)
