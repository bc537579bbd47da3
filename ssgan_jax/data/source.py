"""Which files a prepared dataset was built from: ``prepare`` records its ``manual_dir`` and a
fingerprint of the files there (relative paths and sizes) beside the TFDS dataset; a run whose
``data.manual_dir`` holds other files is refused instead of silently training on the old ones.
It also records the size of each ArrayRecord shard it wrote: a shard truncated since
(``check_shards``) is named before a run spends any step on it.
"""

from __future__ import annotations

import hashlib
import json
import os

from ssgan_jax.data.common import DataError

RECORD = "ssgan_source.json"
_checked: set[tuple[str, str]] = set()  # (dataset folder, manual_dir) checked in this process


def fingerprint(manual_dir: str) -> dict:
    """{"files": count, "bytes": total, "sha256": of the sorted (relative path, size) list}."""
    entries, total = [], 0
    for root, dirs, files in os.walk(manual_dir):
        dirs.sort()
        for name in files:
            path = os.path.join(root, name)
            try:
                size = os.path.getsize(path)
            except OSError:
                continue
            entries.append(f"{os.path.relpath(path, manual_dir)}\t{size}")
            total += size
    entries.sort()
    digest = hashlib.sha256("\n".join(entries).encode()).hexdigest()
    return {"files": len(entries), "bytes": total, "sha256": digest}


def record(dataset_dir: str, manual_dir: str, identity: dict | None = None) -> None:
    """Write the source record of a dataset just prepared from ``manual_dir``; ``identity``:
    more that makes the dataset what it is (a folder dataset's classes file digest)."""
    manual_dir = os.path.abspath(os.path.expanduser(manual_dir))
    body = {"manual_dir": manual_dir, **fingerprint(manual_dir), **(identity or {}),
            "shards": shard_sizes(dataset_dir)}
    tmp = os.path.join(dataset_dir, RECORD + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(body, f, indent=1)
    os.replace(tmp, os.path.join(dataset_dir, RECORD))
    _checked.add((dataset_dir, manual_dir))


def shard_sizes(dataset_dir: str) -> dict[str, int]:
    """{file name: bytes} of the dataset's ArrayRecord shards."""
    return {n: os.path.getsize(os.path.join(dataset_dir, n))
            for n in sorted(os.listdir(dataset_dir)) if ".array_record-" in n}


def check_shards(dataset_dir: str, name: str) -> None:
    """DataError naming a shard that is missing or whose size changed since it was written
    (truncated by a full disk, a copy cut short); nothing where no sizes were recorded."""
    try:
        with open(os.path.join(dataset_dir, RECORD), encoding="utf-8") as f:
            then = json.load(f).get("shards")
    except (OSError, ValueError):
        return
    if not then:
        return
    now = shard_sizes(dataset_dir)
    for shard, size in then.items():
        if now.get(shard) != size:
            found = "is missing" if shard not in now else f"is {now[shard]} bytes"
            raise DataError(
                f"{os.path.join(dataset_dir, shard)} {found}; it was {size} bytes when the "
                f"{name} dataset was prepared: the prepared files are damaged. Delete "
                f"{os.path.dirname(dataset_dir)} and prepare again: python -m ssgan_jax.main "
                "--mode=prepare --config=<your config> (with the same data.data_dir)")


def identity(builder) -> dict:
    """What else than its files a dataset is made of (a folder dataset's classes file), as its
    TFDS builder says."""
    return dict(getattr(builder, "IDENTITY", {}))


def check(dataset_dir: str, manual_dir: str, name: str, data_dir: str,
          identity: dict | None = None) -> None:
    """DataError when the dataset in ``dataset_dir`` was prepared from other files than those
    in ``manual_dir`` now (once per process; a dataset without a record is recorded now)."""
    if not manual_dir:
        return
    manual_dir = os.path.abspath(os.path.expanduser(manual_dir))
    if (dataset_dir, manual_dir) in _checked or not os.path.isdir(manual_dir):
        return
    path = os.path.join(dataset_dir, RECORD)
    now = fingerprint(manual_dir)
    try:
        with open(path, encoding="utf-8") as f:
            then = json.load(f)
    except (OSError, ValueError):
        then = None
    if then is None:  # prepared before records were kept: take the files there now
        record(dataset_dir, manual_dir, identity)
        return
    changed = sorted(k for k, v in (identity or {}).items() if then.get(k) != v)
    if changed:
        raise DataError(
            f"the {name} dataset in {dataset_dir} was prepared with another {', '.join(changed)}"
            f" (another classes file): set --config.data.data_dir to a new folder (it is "
            f"prepared there), or delete {os.path.dirname(dataset_dir)} and run --mode=prepare "
            f"with data_dir={data_dir} to rebuild it")
    if then.get("sha256") != now["sha256"]:
        raise DataError(
            f"the {name} dataset in {dataset_dir} was prepared from {then.get('manual_dir')} "
            f"({then.get('files')} files, {then.get('bytes')} bytes), but "
            f"config.data.manual_dir={manual_dir} holds other files ({now['files']} files, "
            f"{now['bytes']} bytes): set --config.data.data_dir to a new folder (it is "
            f"prepared there), or delete {os.path.dirname(dataset_dir)} and run --mode=prepare "
            f"with data_dir={data_dir} to rebuild it")
    _checked.add((dataset_dir, manual_dir))
