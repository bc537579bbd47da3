"""A run remembers its settings: eval, predict, export and diagnose start from the config a
training run recorded (``<workdir>/config.json``), with the command line's overrides on top.

Without this, every training override had to be typed again at evaluation, and a forgotten
one changed the results without a word (a run trained with ``data.eval_size=(360, 480)`` was
evaluated at the default size, through sliding windows, and wrote over the earlier result).

``cli_overrides(argv)`` names the ``--config.<key>`` flags given; ``with_recorded(config,
workdir, overrides)`` returns the run's config with those keys taken from ``config`` (the
command line's) and the keys the run set differently from the command line's file named.
``result_suffix`` names a result made with settings that differ from the run's, so that it
never overwrites one made with the run's own.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from typing import Any

import ml_collections

from ssgan_jax.core.errors import ConfigError

CONFIG_FILE = "config.json"
# Recorded beside the config (not config keys): the classes, a folder dataset's digest
RECORD_EXTRAS = ("num_classes", "classes_sha256")
# Settings that cannot change an evaluation's numbers: where files are, how they are batched
# or which checkpoint and split are read (both are in the result's name already), and what
# the other modes write. ``eval.*`` inference settings are named by ``Settings.tag``.
NEUTRAL = ("eval.checkpoint", "eval.split", "eval.windows_per_call", "eval.tensorboard_images",
           "eval.metrics",  # your own metrics add entries; they change none of the others
           "eval_batch_size", "batch_size", "data.data_dir", "data.manual_dir", "data.threads",
           "data.prefetch", "data.workers", "predict.", "export.", "diagnose.", "benchmark.",
           "train.", "init_from", "weights.")
INFERENCE_TAGGED = ("eval.mode", "eval.window", "eval.stride", "eval.scales", "eval.flip")

_FLAG = re.compile(r"^--config\.([\w.]+)(=|$)")


def cli_overrides(argv: list[str]) -> list[str]:
    """The config keys the command line sets (``--config.a.b=v`` or ``--config.a.b v``)."""
    return [m.group(1) for arg in argv[1:] if (m := _FLAG.match(arg))]


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = list(value) if isinstance(value, (list, tuple)) else value
    return out


def read_record(workdir: str) -> dict[str, Any] | None:
    """The config the run in ``workdir`` recorded (None if it recorded none)."""
    path = os.path.join(os.path.abspath(workdir), CONFIG_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path} cannot be read ({e}); it is the run's recorded config: "
                          "restore it, or move it aside to use --config as given") from e


def with_recorded(config: ml_collections.ConfigDict, workdir: str, overrides: list[str]
                  ) -> tuple[ml_collections.ConfigDict, dict[str, Any]]:
    """(the run's config with ``overrides`` taken from ``config``, a report).

    Keys the record lacks (added to the package since the run) keep ``config``'s values.
    The report: ``path`` of the record (None without one: ``config`` is returned as given),
    ``overrides`` (key -> value applied on top), ``differs`` (key -> [run's, now] for the
    overrides whose value differs from the run's)."""
    record = read_record(workdir)
    if record is None:
        return config, {"path": None, "overrides": {}, "differs": {}}
    recorded = flatten({k: v for k, v in record.items() if k not in RECORD_EXTRAS})
    given = flatten(json.loads(config.to_json_best_effort()))
    merged = copy.deepcopy(config)  # (keeps data.eval_size's reference: it may be "auto")
    for key, value in recorded.items():
        if key in given and key not in overrides:
            _set(merged, key, value)
    applied = {k: given[k] for k in overrides if k in given}
    differs = {k: [recorded[k], given[k]] for k in applied
               if k in recorded and recorded[k] != given[k]}
    return merged, {"path": os.path.join(os.path.abspath(workdir), CONFIG_FILE),
                    "overrides": applied, "differs": differs}


def _set(config: ml_collections.ConfigDict, key: str, value: Any) -> None:
    *parents, name = key.split(".")
    node = config
    for part in parents:
        node = node[part]
    current = node[name]
    if isinstance(current, tuple) and isinstance(value, list):
        value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
    node[name] = value


def result_differences(report: dict[str, Any]) -> dict[str, Any]:
    """The differing settings that can change a result and are not in the inference tag."""
    return {k: v for k, v in report.get("differs", {}).items()
            if not k.startswith(NEUTRAL) and k not in INFERENCE_TAGGED}


def result_suffix(report: dict[str, Any]) -> str:
    """'' when a result is made with the run's settings (up to ``NEUTRAL`` ones and the
    inference tag); else ``_cfg<8 hex>`` of the differing settings, so that it gets its own
    file."""
    differs = result_differences(report)
    if not differs:
        return ""
    digest = hashlib.sha256(json.dumps(differs, sort_keys=True).encode()).hexdigest()[:8]
    return f"_cfg{digest}"


def describe(report: dict[str, Any]) -> str | None:
    """One line for the user: where the settings came from and what the command line
    changed."""
    if report["path"] is None:
        return None
    line = f"settings from the run's {report['path']}"
    if report["overrides"]:
        line += "; from the command line: " + ", ".join(
            f"{k}={v!r}" for k, v in report["overrides"].items())
    if report["differs"]:
        line += " (differs from the run's: " + ", ".join(
            f"{k} {v[0]!r} -> {v[1]!r}" for k, v in report["differs"].items()) + ")"
    return line
