"""Command line: ``python -m ssgan_jax.main --config=configs/X.py --workdir=DIR --mode=...``.

Parses flags and dispatches on ``--mode``; nothing else lives here. Any config value can be
overridden as ``--config.a.b=value``.
"""

from __future__ import annotations

import json
import os

from absl import app, flags
from ml_collections import config_flags

MODES = ("prepare",)

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Config file (configs/X.py[:variant]).")
flags.DEFINE_string("workdir", None, "Run folder: checkpoints, metrics, eval results.")
flags.DEFINE_enum("mode", "prepare", MODES, "What to do.")


def _resolve_paths(config, workdir: str | None) -> None:
    """An empty data.data_dir means <workdir>/tensorflow_datasets, else TFDS's default."""
    if not config.data.data_dir and workdir:
        config.data.data_dir = os.path.join(workdir, "tensorflow_datasets")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config = FLAGS.config
    if config is None:
        raise app.UsageError("--config is required, e.g. --config=configs/demo.py")
    _resolve_paths(config, FLAGS.workdir)
    if FLAGS.mode == "prepare":
        from ssgan_jax.data.pipeline import prepare

        print(json.dumps(prepare(config.data)), flush=True)


if __name__ == "__main__":
    app.run(main)
