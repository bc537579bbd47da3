"""The configs that ship with the package (big_vision keeps its configs in the package too):
``--config=<name>[:<argument>]`` (or ``<name>,<argument>``) finds ``<name>.py`` here from any
directory after ``pip install``; a path to a config file still works. The repository's
``configs/`` holds one-line files that point here, for the paths the docs show.

Each ``get_config(arg)`` takes big_vision-style arguments (``core/config.py: parse_arg``):
``generator=<...>,training=<...>[,size=<...>]`` or ``<generator>_<training>[,<size>]``.
"""

from __future__ import annotations

import os

NAMES = ("demo", "camvid", "folder", "voc2012", "cityscapes")
SIZES = {"camvid": ("full", "cpu", "gpu"), "folder": ("full", "cpu")}  # their size arguments


def path_of(name: str) -> str | None:
    """The file of packaged config ``name`` (``"demo"`` or ``"demo.py"``), or None."""
    name = name.removesuffix(".py")
    if name not in NAMES:
        return None
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py")


def resolve(spec: str) -> str:
    """A ``--config`` value with a packaged config's name replaced by its file:
    ``demo`` -> ``.../configs/demo.py``, ``camvid:fcn8s_vgg16_gan,cpu`` and
    ``folder,cpu`` -> ``.../configs/folder.py:cpu``; ``configs/demo.py`` too where no such file
    is (another directory). An existing file path, or anything else, is returned unchanged."""
    path, _, arg = spec.partition(":")
    if os.path.isfile(path):
        return spec
    name, _, rest = path.partition(",")
    # a bare name, or the checkout's configs/<name>.py asked for from another directory
    bare = os.sep not in name or name.startswith("configs" + os.sep)
    found = path_of(os.path.basename(name)) if bare else None
    if found is None:
        return spec
    argument = ",".join(a for a in (rest, arg) if a)
    return found + (f":{argument}" if argument else "")
