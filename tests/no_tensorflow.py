"""Processes in which TensorFlow is not installed, as far as Python can tell.

``NO_TENSORFLOW`` is Python source that hides every ``tensorflow`` module from the import
system (``import tensorflow`` raises ModuleNotFoundError and ``importlib.util.find_spec``
returns None, as where it was never installed; putting None in ``sys.modules`` instead makes
TFDS think TensorFlow is loaded). ``env`` gives a subprocess environment that runs it at
start-up (a ``sitecustomize`` module) and, at exit, writes the TensorFlow modules it holds to
stderr as ``TENSORFLOW-MODULES <n>``.
"""

from __future__ import annotations

import os
import pathlib

NO_TENSORFLOW = '''
import importlib.machinery as _machinery
import sys as _sys


class _NoTensorFlow(_machinery.PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            return None
        return _machinery.PathFinder.find_spec(name, path, target)


_sys.meta_path[:] = [_NoTensorFlow if f is _machinery.PathFinder else f
                     for f in _sys.meta_path]
'''

_REPORT = '''
import atexit as _atexit


def _report():
    held = [m for m in _sys.modules if m.split(".")[0] == "tensorflow"]
    print(f"TENSORFLOW-MODULES {len(held)}", file=_sys.stderr, flush=True)


_atexit.register(_report)
'''


def env(folder: pathlib.Path) -> dict[str, str]:
    """``os.environ`` plus a ``sitecustomize`` in ``folder`` that hides TensorFlow."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(NO_TENSORFLOW + _REPORT)
    path = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


def tensorflow_modules(stderr: str) -> int:
    """The count ``env``'s report wrote, from a subprocess's stderr (-1: no report)."""
    for line in reversed(stderr.splitlines()):
        if line.startswith("TENSORFLOW-MODULES "):
            return int(line.split()[1])
    return -1
