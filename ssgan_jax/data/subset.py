"""The labelled subset of a training split, for semi-supervised runs (``data.labeled``).

``data.labeled`` is one of:

* ``""``: every image of ``data.train_split`` is labelled (the supervised default);
* a fraction ``0 < f <= 1`` ("0.125"): ``round(f * n)`` images, at least 1;
* a count ("46"): that many images;
* a path to a text file of image ids (file stems, one per line; blank lines and ``#``
  comments ignored), e.g. one of ``docs/results/splits/``.

A fraction or count draws its images with ``numpy.random.default_rng(data.split_seed)`` from the
split's ids in sorted order: the choice depends on the split's contents and ``split_seed`` only,
not on ``seed``, the number of processes or devices, or when the run started, so every process
of a job, a resumed run and a rerun get the same subset. The images left out form the
unlabelled pool (their labels are never read). Ids are file stems (``os.path.splitext`` of
the example's ``file_name``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np

from ssgan_jax.core.errors import ConfigError
from ssgan_jax.data.common import DataError

IDS_FILE = "labeled_ids.txt"


def stem(file_name: str) -> str:
    """The id of an example: its file name without folder and extension."""
    return os.path.splitext(os.path.basename(file_name))[0]


def read_ids(path: str) -> list[str]:
    """Ids listed in ``path`` (one per line; blank lines and ``#`` comments skipped)."""
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise ConfigError(f"config.data.labeled={path!r}: cannot read the id file ({e}); give "
                          "a fraction (0.125), a count (46) or a file of image ids") from e
    ids = [line.split("#", 1)[0].strip() for line in lines]
    ids = [i for i in ids if i]
    if not ids:
        raise ConfigError(f"config.data.labeled={path!r} lists no image id")
    return ids


def _number(spec: str) -> float | int | None:
    try:
        value = float(spec)
    except ValueError:
        return None
    return int(value) if value.is_integer() and value > 1 else value


def choose(all_ids: Sequence[str], spec: str, split_seed: int) -> list[str] | None:
    """The labelled ids (sorted) that ``spec`` (``data.labeled``) selects from ``all_ids``;
    None when every image is labelled (``spec`` is "" or 1)."""
    spec = str(spec).strip()
    ids = sorted(set(all_ids))
    if len(ids) != len(all_ids):
        dupes = sorted({i for i in all_ids if list(all_ids).count(i) > 1})[:5]
        raise DataError(f"the training split has several images with the same id {dupes}; "
                        "ids (file stems) must be unique to choose a labelled subset")
    if not spec:
        return None
    number = _number(spec)
    if number is None:  # a file of ids
        wanted = read_ids(spec)
        unknown = sorted(set(wanted) - set(ids))
        if unknown:
            raise DataError(f"config.data.labeled={spec!r} names {len(unknown)} id(s) not in "
                            f"the training split, e.g. {unknown[:5]}; ids are file stems like "
                            f"{ids[:3]}")
        return sorted(set(wanted))
    if isinstance(number, float):
        if not 0.0 < number <= 1.0:
            raise ConfigError(f"config.data.labeled={spec!r}: a fraction must be in (0, 1]; "
                              "or give a count (46) or a file of image ids")
        if number == 1.0:
            return None
        count = max(1, round(number * len(ids)))
    else:
        count = number
    if not 1 <= count <= len(ids):
        raise ConfigError(f"config.data.labeled={spec!r}: the training split has {len(ids)} "
                          f"images; give a count in 1..{len(ids)} or a fraction")
    if count == len(ids):
        return None
    order = np.random.default_rng(split_seed).permutation(len(ids))
    return sorted(ids[i] for i in order[:count])


def write_ids(path: str, ids: Iterable[str]) -> None:
    """``ids`` to ``path``, one per line, sorted (written atomically)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("".join(f"{i}\n" for i in sorted(ids)))
    os.replace(tmp, path)


def labeled_ids(config, workdir: str, write: bool = True, *, dataset) -> list[str] | None:
    """The labelled ids of ``data.labeled`` (None = all of train_split), written to
    ``<workdir>/labeled_ids.txt`` (where ``write``: one process of a job) and checked
    against the file a previous start wrote. ``dataset``: the prepared dataset
    (``prepared.Prepared``), opened once by the caller."""
    if not config.data.labeled:
        return None
    ids = choose(dataset.split_ids(config.data.train_split),
                 config.data.labeled, config.data.split_seed)
    path = os.path.join(workdir, IDS_FILE)
    if ids is None:
        return None
    if os.path.exists(path):
        before = read_ids(path)
        if before != ids:
            raise ConfigError(
                f"the labelled subset of this start ({len(ids)} images: data.labeled="
                f"{config.data.labeled!r}, split_seed {config.data.split_seed}) differs from "
                f"{path} ({len(before)} images), written when this run started; keep the "
                f"run's subset with --config.data.labeled={path}, or use a new workdir")
    elif write:
        write_ids(path, ids)
    print(f"labelled subset: {len(ids)} images of {config.data.train_split} "
          f"(data.labeled={config.data.labeled!r}, split_seed {config.data.split_seed}) -> "
          f"{path}", flush=True)
    return ids
