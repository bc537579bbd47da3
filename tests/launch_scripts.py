"""Import a script of ``launch/`` (not a package) as a module, for its tests."""

from __future__ import annotations

import importlib.util
import pathlib
from types import ModuleType

LAUNCH = pathlib.Path(__file__).resolve().parents[1] / "launch"


def load(name: str) -> ModuleType:
    """``launch/<name>.py`` as a fresh module."""
    spec = importlib.util.spec_from_file_location(name, LAUNCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
