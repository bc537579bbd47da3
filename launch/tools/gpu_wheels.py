"""The wheels a machine needs to train with this package, beyond the packages it already has.

    python -m launch.tools.gpu_wheels                  # list them (name==version, size)
    python -m launch.tools.gpu_wheels --download .whl  # fetch them for the lent GPU image

Walks the package's requirements (``pip install .``, no extras) through this environment's
installed distributions, leaves out what ``--have`` lists (default: ``launch/tools/
gpu_image_packages.txt``, the lent GPU image's package list, 2026-11-17) and pins the rest to
the versions installed here, which the test suite ran with. ``--download`` fetches them as
binary wheels for ``--python`` (the image's CPython 3.12) on manylinux x86_64, without their
dependencies (each is listed itself); a package published as source only is built into a
wheel here (pure Python ones only). Then, on that machine::

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGE = os.path.join(HERE, "gpu_image_packages.txt")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64",
             "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_names(dist: md.Distribution) -> list[str]:
    """The names ``dist`` requires, without extras and markers that do not hold here."""
    from packaging.requirements import Requirement

    names = []
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        names.append(canonical(req.name))
    return names


def needed(root: str = "ssgan-jax") -> dict[str, str]:
    """{canonical name: installed version} of ``root``'s requirements, recursively."""
    seen: dict[str, str] = {}
    todo = _requirement_names(md.distribution(root))
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue  # required only where a marker holds elsewhere
        seen[name] = dist.version
        todo.extend(_requirement_names(dist))
    return seen


def image_packages(path: str) -> set[str]:
    with open(path) as f:
        return {canonical(line.split("#")[0].strip()) for line in f if line.split("#")[0].strip()}


def missing(have: set[str]) -> dict[str, str]:
    return {k: v for k, v in sorted(needed().items()) if k not in have}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--have", default=IMAGE, help="the target machine's packages, one a line")
    p.add_argument("--download", default="", help="folder to fetch the wheels into")
    p.add_argument("--python", default="3.12")
    a = p.parse_args()
    wanted = missing(image_packages(a.have))
    if a.download:
        args = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                "--python-version", a.python, "--implementation", "cp", "-d", a.download]
        for plat in PLATFORMS:
            args += ["--platform", plat]
        for k, v in wanted.items():
            if subprocess.run(args + [f"{k}=={v}"], check=False,
                              stderr=subprocess.DEVNULL).returncode:
                # no binary wheel published (promise): build one from its source, pure Python
                subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                                a.download, f"{k}=={v}"], check=True)
        sizes = {f: os.path.getsize(os.path.join(a.download, f))
                 for f in sorted(os.listdir(a.download)) if f.endswith(".whl")}
        print(json.dumps({"wheels": sizes, "mib": round(sum(sizes.values()) / 2**20, 1)},
                         indent=1))
    else:
        print("\n".join(f"{k}=={v}" for k, v in wanted.items()))


if __name__ == "__main__":
    main()
