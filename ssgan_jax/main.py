"""Command line: ``python -m ssgan_jax.main --config=configs/X.py --workdir=DIR --mode=...``.

Parses flags and dispatches on ``--mode``; nothing else lives here. Any config value can be
overridden as ``--config.a.b=value``.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

MODES = ("train", "eval", "predict", "prepare")

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Config file (configs/X.py[:variant]).")
flags.DEFINE_string("workdir", None, "Run folder: checkpoints, metrics, eval results.")
flags.DEFINE_enum("mode", "train", MODES, "What to do.")


def _resolve_paths(config, workdir: str | None) -> None:
    """An empty data.data_dir means <workdir>/tensorflow_datasets, else TFDS's default."""
    if not config.data.data_dir and workdir:
        config.data.data_dir = os.path.join(workdir, "tensorflow_datasets")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS["verbosity"].present:  # Orbax/TF INFO lines drown the progress lines
        logging.set_verbosity(logging.WARNING)  # --verbosity=0 brings them back
    config = FLAGS.config
    if config is None:
        raise app.UsageError("--config is required, e.g. --config=configs/demo.py")
    _resolve_paths(config, FLAGS.workdir)
    if FLAGS.mode == "train":
        if not FLAGS.workdir:
            raise app.UsageError("--workdir is required for --mode=train (checkpoints, metrics)")
        from ssgan_jax import distributed
        from ssgan_jax.train import train_and_evaluate

        distributed.initialize()
        train_and_evaluate(config, FLAGS.workdir)
    elif FLAGS.mode in ("eval", "predict"):
        if not FLAGS.workdir:
            raise app.UsageError(f"--workdir is required for --mode={FLAGS.mode}: the run "
                                 "whose checkpoint to use")
        from ssgan_jax import distributed

        distributed.initialize()
        if FLAGS.mode == "eval":
            from ssgan_jax.run_eval import run_eval

            run_eval(config, FLAGS.workdir)
        else:
            from ssgan_jax.predict import run_predict

            run_predict(config, FLAGS.workdir)
    elif FLAGS.mode == "prepare":
        from ssgan_jax.data.pipeline import prepare

        print(json.dumps(prepare(config.data)), flush=True)


def _parse_or_exit(argv: list[str]) -> list[str]:
    """Parse flags early so that config mistakes read as one clear line, not a traceback.

    Returns the arguments left after the flags (for ``app.run``, which must not parse again:
    config_flags would define each ``--config.x`` override twice).
    """
    app.define_help_flags()
    try:
        return FLAGS(argv)
    except (flags.Error, AttributeError, KeyError, ValueError, TypeError) as e:
        texts, cause = [], e
        while cause is not None:  # the most informative message in the exception chain
            texts.append(str(cause).strip().strip("'").replace("\\n", " ").replace("\n", " "))
            cause = cause.__cause__ or cause.__context__
        text = max(texts, key=len)
        sys.exit(f"config error: {text or type(e).__name__} (from {' '.join(argv[1:])})")


def _run() -> None:
    """app.run, with the errors that name their own fix shown as one line, not a traceback."""
    from ssgan_jax.checkpoints import CheckpointError
    from ssgan_jax.data.common import DataError
    from ssgan_jax.monitor import TrainingDiverged
    from ssgan_jax.weights import WeightImportError

    remaining = _parse_or_exit(sys.argv)
    try:
        app.run(main, flags_parser=lambda argv: remaining)
    except (CheckpointError, DataError, TrainingDiverged, WeightImportError,
            FileNotFoundError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    _run()
