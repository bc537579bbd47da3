"""Command line: ``python -m ssgan_jax.main --config=configs/X.py --workdir=DIR --mode=...``.

Parses flags and dispatches on ``--mode``; nothing else lives here. Any config value can be
overridden as ``--config.a.b=value``. A mistake of the user's (config, data, weights,
checkpoint, a workdir another run trains into) ends the command with one line ``error: ...``
(``config error: ...`` while parsing flags) and exit status 1, without a traceback.
"""

from __future__ import annotations

import json
import os
import re
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from ssgan_jax.core.errors import UserError, one_line

MODES = ("train", "eval", "predict", "export", "prepare", "benchmark", "diagnose", "config")
# modes that use a trained run: they start from its recorded config (core/run_config.py)
RUN_MODES = ("eval", "predict", "export", "diagnose")

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Config file (configs/X.py[:variant]).")
flags.DEFINE_string("workdir", None, "Run folder: checkpoints, metrics, eval results.")
flags.DEFINE_enum("mode", "train", MODES, "What to do.")


def _resolve_paths(config, workdir: str | None) -> None:
    """An empty data.data_dir means <workdir>/tensorflow_datasets, else TFDS's default."""
    if not config.data.data_dir and workdir:
        config.data.data_dir = os.path.join(workdir, "tensorflow_datasets")


def _check_workdir(workdir: str | None) -> None:
    if workdir and os.path.exists(workdir) and not os.path.isdir(workdir):
        from ssgan_jax.core.errors import ConfigError

        raise ConfigError(f"--workdir={workdir} is a file, not a folder: give a folder (a new "
                          "one for a new run, a run's folder to resume or evaluate it)")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS["verbosity"].present:  # Orbax/TFDS INFO lines drown the progress lines
        logging.set_verbosity(logging.WARNING)  # --verbosity=0 brings them back
    config = FLAGS.config
    if config is None:
        raise app.UsageError("--config is required, e.g. --config=demo (--help lists them)")
    from ssgan_jax import checks
    from ssgan_jax.core import config as config_lib
    from ssgan_jax.core import parallel

    if FLAGS.mode in ("train", "eval", "predict", "export", "diagnose"):
        parallel.initialize()  # a multi-process job joins before anything touches a backend
    report = None
    if FLAGS.mode in RUN_MODES and FLAGS.workdir:
        from ssgan_jax.core import run_config

        config, report = run_config.with_recorded(config, FLAGS.workdir,
                                                  run_config.cli_overrides(sys.argv))
        said = run_config.describe(report)
        if said:
            print(said, flush=True)
    # once, here: every mode trusts the config from now on (G's loss terms: the modes that
    # build a training step, and --mode=config; inference needs not import your terms)
    checks.check(config, training=FLAGS.mode in ("train", "diagnose", "benchmark", "config"))
    if FLAGS.mode in ("train", "eval", "predict", "diagnose"):  # (the benchmark checks itself)
        config_lib.check_devices(config, training=FLAGS.mode in ("train", "diagnose"))
    if FLAGS.mode == "train":
        for warning in config_lib.warnings_of(config):
            print(f"warning: {warning}", file=sys.stderr, flush=True)
    _check_workdir(FLAGS.workdir)
    _resolve_paths(config, FLAGS.workdir)
    if FLAGS.mode == "config":  # every key with its value: the defaults and what changed them
        from ssgan_jax.core.run_config import flatten

        for key, value in sorted(flatten(json.loads(config.to_json_best_effort())).items()):
            print(f"{key} = {value!r}", flush=True)
        return
    from ssgan_jax.models import matmul_precision

    with matmul_precision(config.model):
        _dispatch(config, report)


def _dispatch(config, report=None) -> None:
    """Runs ``--mode`` on the parsed config."""
    if FLAGS.mode == "train":
        if not FLAGS.workdir:
            raise app.UsageError("--workdir is required for --mode=train (checkpoints, metrics)")
        from ssgan_jax.training.loop import train_and_evaluate

        train_and_evaluate(config, FLAGS.workdir)
    elif FLAGS.mode in ("eval", "predict", "export"):
        if not FLAGS.workdir:
            raise app.UsageError(f"--workdir is required for --mode={FLAGS.mode}: the run "
                                 "whose checkpoint to use")
        if FLAGS.mode == "eval":
            from ssgan_jax.inference.eval_checkpoint import run_eval

            run_eval(config, FLAGS.workdir, report)
        elif FLAGS.mode == "export":
            from ssgan_jax.inference.export import run_export

            run_export(config, FLAGS.workdir)
        else:
            from ssgan_jax.inference.predict import run_predict

            run_predict(config, FLAGS.workdir)
    elif FLAGS.mode == "diagnose":
        if not FLAGS.workdir:
            raise app.UsageError("--workdir is required for --mode=diagnose: the run to probe")
        from ssgan_jax.training.diagnose import run_diagnose

        run_diagnose(config, FLAGS.workdir)
    elif FLAGS.mode == "prepare":
        from ssgan_jax.data import prepare

        print(json.dumps(prepare(config.data)), flush=True)
    elif FLAGS.mode == "benchmark":
        from ssgan_jax.training.benchmark import run_benchmark

        print(json.dumps(run_benchmark(config), indent=1), flush=True)


def _resolve_config_file(argv: list[str]) -> list[str]:
    """``argv`` with a packaged config's name given to ``--config`` replaced by its file
    (``ssgan_jax.configs.resolve``: ``--config=demo``, ``--config=camvid:fcn8s_vgg16_gan,cpu``
    from any directory); a ``--config`` file that does not exist is one line naming the
    packaged configs (config_flags reports it as two chained tracebacks)."""
    from ssgan_jax import configs

    out = list(argv)
    for i, arg in enumerate(argv[1:], start=1):
        if arg == "--config" and i + 1 < len(argv):
            value, at = argv[i + 1], i + 1
        elif arg.startswith("--config="):
            value, at = arg.split("=", 1)[1], i
        else:
            continue
        resolved = configs.resolve(value)
        out[at] = resolved if at != i else f"--config={resolved}"
        path = resolved.split(":", 1)[0]
        if path and not os.path.isfile(path):
            sys.exit(f"config error: --config {value}: no such file, and not one of the "
                     f"packaged configs ({', '.join(configs.NAMES)}; e.g. --config=demo or "
                     "--config=camvid:deeplabv3_resnet50_gan,cpu)")
    return out


HELP = """\
python -m ssgan_jax.main --config=<config> --workdir=<run folder> [--mode=<mode>] \
[--config.<key>=<value> ...]

Modes (--mode):
  train      both phases (G alone, then G + the adversary), resumable (the default)
  eval       mIoU and region metrics of a checkpoint on a split (--config.eval.split)
  predict    label maps, colour maps and overlays for a split or --config.predict.input
  export     G as StableHLO and ONNX
  prepare    prepare the dataset and report its splits, image sizes and class shares
  benchmark  time the compiled steps
  diagnose   the adversary probe of a checkpoint (METHOD.md section 5)
  config     print the resolved config, every key with its value, and exit

Configs that ship with the package (--config=<name>[:<argument>], from any directory; a
path to a config file works too):
{configs}
  <argument>: generator=<deeplabv3_resnet50|fcn8s_vgg16>, training=<baseline|gan|semi>,
  size=<...> (any subset, comma-separated), or the short form <generator>_<training>[,<size>].

eval, predict, export and diagnose start from the run's recorded <workdir>/config.json;
--config.<key>=<value> applies on top. --mode=config shows every key and its default, e.g.
  python -m ssgan_jax.main --config=demo --mode=config
README.md says more; docs/METHOD.md is the method.
"""


def _help() -> str:
    import importlib

    from ssgan_jax import configs

    lines = []
    for name in configs.NAMES:
        doc = (importlib.import_module(f"ssgan_jax.configs.{name}").__doc__ or "").strip()
        sizes = configs.SIZES.get(name)
        lines.append(f"  {name:<11}{doc.splitlines()[0] if doc else ''}"
                     + (f" (sizes: {', '.join(sizes)})" if sizes else ""))
    return HELP.format(configs="\n".join(lines))


def _parse_or_exit(argv: list[str]) -> list[str]:
    """Parse flags early so that config mistakes read as one clear line, not a traceback.

    Returns the arguments left after the flags (for ``app.run``, which must not parse again:
    config_flags would define each ``--config.x`` override twice).
    """
    if any(a in ("--help", "-h", "--helpshort", "-?") for a in argv[1:]):
        print(_help(), end="", flush=True)
        sys.exit(0)
    app.define_help_flags()
    given = argv
    argv = _resolve_config_file(argv)
    try:
        return FLAGS(argv)
    except (flags.Error, AttributeError, KeyError, ValueError, TypeError, OSError) as e:
        sys.exit(f"config error: {_config_error_text(e)} (from {' '.join(given[1:])})")


_RAISED = re.compile(r"(?:^|\n)\s*(?:[\w.]+\.)?(\w*(?:Error|Exception)): (.*?)\s*$", re.S)


def _config_error_text(error: BaseException) -> str:
    """The message the user needs from a flag-parsing failure. config_flags re-raises an
    error of the config file's ``get_config`` with the whole traceback as its text: keep the
    last line (``SomeError: message``) of such a text; else the longest message in the
    exception chain."""
    texts, cause = [], error
    while cause is not None:
        text = str(cause).strip().strip("'").replace("\\n", "\n").replace("\\'", "'")
        if "Traceback (most recent call last)" in text:
            match = _RAISED.search(text.rsplit("Traceback (most recent call last)", 1)[1])
            if match:
                return " ".join(match.group(2).split())
        texts.append(" ".join(text.split()))
        cause = cause.__cause__ or cause.__context__
    return max(texts, key=len) or type(error).__name__


def _run() -> None:
    """app.run, with the errors that name their own fix shown as one line, not a traceback."""
    remaining = _parse_or_exit(sys.argv)
    from ssgan_jax.training.stop import Stopped

    try:
        app.run(main, flags_parser=lambda argv: remaining)
    except UserError as e:
        sys.exit(f"error: {one_line(e)}")
    except Stopped as e:
        print(e.message(), flush=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:  # a second Ctrl-C, or one outside training's steps
        print("interrupted (a training run keeps its last saved checkpoint; run the same "
              "command to resume)", file=sys.stderr, flush=True)
        sys.exit(130)


if __name__ == "__main__":
    _run()
