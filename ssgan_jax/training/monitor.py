"""What a run tells its user: metric files and a progress line (its health warnings and NaN
stops are ``health``'s).

* ``create_writer``: TensorBoard events in ``<workdir>/tensorboard`` (written without
  TensorFlow) and one JSON object per line in ``<workdir>/metrics.jsonl`` (process 0 only).
* ``ReportProgress``: steps/s, uptime and the time spent in input waits, validation and
  checkpoints to the writers, remembering its last rate for ``progress_line``, our concise
  stdout line with the ETA; ``profiler``: one JAX profile, when asked for.
"""

from __future__ import annotations

import collections
import contextlib
import io
import json
import os
import time
from collections.abc import Mapping
from typing import Any

import numpy as np


class JsonLinesWriter:
    """Appends ``{"step": s, "key": value, ...}`` lines to a file (scalars and hparams)."""

    def __init__(self, path: str):
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def _write(self, record: Mapping[str, Any]) -> None:
        self._file.write(json.dumps(record, sort_keys=True) + "\n")
        self._file.flush()

    def write_scalars(self, step, scalars):
        self._write({"step": int(step), **{k: float(v) for k, v in scalars.items()}})

    def write_hparams(self, hparams):
        self._write({"hparams": {k: str(v) for k, v in hparams.items()}})

    def write_images(self, step, images):
        pass

    def flush(self):
        self._file.flush()

    def close(self):
        self._file.close()


class TensorBoardWriter:
    """TensorBoard event files in ``logdir`` without TensorFlow (TensorBoard's own event
    writer and protos): scalars, images (PNG, one tag per image: ``<key>/<i>``) and the
    config as hparams. ``resumed_from``: the checkpoint step a resumed run goes on from;
    a SessionLog START event at the next step tells TensorBoard to drop what the stopped
    run logged after it (logged again now), so each step shows once."""

    def __init__(self, logdir: str, resumed_from: int | None = None):
        import sys
        import types

        # TensorBoard's file layer imports TensorFlow where it is installed, unless a module
        # tensorboard.compat.notf exists (its own switch to the stub it ships): set it
        sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType(
            "tensorboard.compat.notf"))
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self._writer = EventFileWriter(logdir)
        if resumed_from is not None:
            from tensorboard.compat.proto import event_pb2

            self._writer.add_event(event_pb2.Event(
                wall_time=time.time(), step=int(resumed_from) + 1,
                session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START)))

    def _add(self, step: int, summary) -> None:
        from tensorboard.compat.proto import event_pb2

        self._writer.add_event(event_pb2.Event(wall_time=time.time(), step=int(step),
                                               summary=summary))

    def write_scalars(self, step, scalars):
        from tensorboard.compat.proto import summary_pb2

        self._add(step, summary_pb2.Summary(value=[
            summary_pb2.Summary.Value(tag=k, simple_value=float(v)) for k, v in scalars.items()]))

    def write_images(self, step, images):
        """``images``: {key: uint8 [N, H, W, 3]}."""
        from PIL import Image
        from tensorboard.compat.proto import summary_pb2

        values = []
        for key, batch in images.items():
            for i, image in enumerate(np.asarray(batch, np.uint8)):
                buf = io.BytesIO()
                Image.fromarray(image).save(buf, format="PNG")
                values.append(summary_pb2.Summary.Value(tag=f"{key}/{i}", image=(
                    summary_pb2.Summary.Image(height=image.shape[0], width=image.shape[1],
                                              colorspace=3,
                                              encoded_image_string=buf.getvalue()))))
        self._add(step, summary_pb2.Summary(value=values))

    def write_hparams(self, hparams):
        from tensorboard.plugins.hparams import summary_v2

        shown = {k: v if isinstance(v, (bool, int, float, str)) else str(v)
                 for k, v in hparams.items()}
        self._add(0, summary_v2.hparams_pb(shown))

    def flush(self):
        self._writer.flush()

    def close(self):
        self._writer.close()


class MultiWriter:
    """Writes to each of ``writers`` (none: writes nothing)."""

    def __init__(self, writers):
        self.writers = list(writers)

    def write_scalars(self, step, scalars):
        for w in self.writers:
            w.write_scalars(step, scalars)

    def write_images(self, step, images):
        for w in self.writers:
            w.write_images(step, images)

    def write_hparams(self, hparams):
        for w in self.writers:
            w.write_hparams(hparams)

    def flush(self):
        for w in self.writers:
            w.flush()

    def close(self):
        for w in self.writers:
            w.close()


def create_writer(workdir: str, process_index: int,
                  resumed_from: int | None = None) -> MultiWriter:
    """TensorBoard + JSON lines on process 0; nothing on the others. ``resumed_from``: the
    checkpoint step a resumed run goes on from (None: a fresh start); ``metrics.jsonl``
    keeps what it held up to that step (``trim_lines``), TensorBoard shows it up to there
    (``TensorBoardWriter``)."""
    if process_index > 0:
        return MultiWriter([])
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "metrics.jsonl")
    trim_lines(path, resumed_from)
    return MultiWriter([TensorBoardWriter(os.path.join(workdir, "tensorboard"), resumed_from),
                        JsonLinesWriter(path)])


def trim_lines(path: str, resumed_from: int | None) -> None:
    """Before a run writes to its JSON lines file: the rows of the steps after
    ``resumed_from`` go (the run that stopped wrote them and this one writes them again,
    so each step is in the file once), and a line a kill cut short goes; on a fresh start
    (None) everything goes, hparams included (written again). Rewritten atomically, and
    only when something goes."""
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    kept = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:  # cut short
            continue
        if not isinstance(row, dict):  # (cut short to a number)
            continue
        if resumed_from is not None and row.get("step", resumed_from) <= resumed_from:
            kept.append(line if line.endswith("\n") else line + "\n")
    if kept != lines:
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(kept)
        os.replace(tmp, path)


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class ReportProgress:
    """Called after every step from ``start_step`` on; reports every ``every_steps`` steps, at
    ``on_steps`` and at ``total``: ``steps_per_sec`` since the last report, ``uptime`` and the
    seconds spent so far in each ``timed`` part (``time/<part>_s``) to ``writer``. ``rate``
    is the steps/s of the last report; ``steady_rate`` the same without the time spent in the
    ``NOT_STEPS`` parts (compilation, validation, checkpoints, the probe), for the ETA of
    ``progress_line``: a first report that includes a compilation does not make it wrong."""

    NOT_STEPS = ("compile", "validation", "checkpoint", "probe")

    def __init__(self, total: int, start_step: int, every_steps: int, writer,
                 on_steps: tuple[int, ...] = ()):
        self.total, self.every_steps = total, every_steps
        self.on_steps = {*on_steps, total}
        self.writer = writer
        self.rate = self.steady_rate = 0.0
        self.parts: dict[str, float] = collections.defaultdict(float)
        self._t0 = time.monotonic()
        self._previous_step, self._previous_time = start_step, self._t0
        self._previous_other = 0.0

    def __call__(self, step: int, t: float | None = None) -> bool:
        t = time.monotonic() if t is None else t
        if step == self._previous_step or not (step % self.every_steps == 0
                                               or step in self.on_steps):
            return False
        self.rate = (step - self._previous_step) / max(t - self._previous_time, 1e-9)
        other = sum(self.parts[k] for k in self.NOT_STEPS if k in self.parts)
        stepping = t - self._previous_time - (other - self._previous_other)
        if stepping > 0:
            self.steady_rate = (step - self._previous_step) / stepping
        self._previous_other = other
        if self.writer is not None:
            self.writer.write_scalars(step, {
                "steps_per_sec": self.rate, "uptime": t - self._t0,
                **{f"time/{k}_s": v for k, v in sorted(self.parts.items())}})
        self._previous_step, self._previous_time = step, t
        return True

    @contextlib.contextmanager
    def timed(self, name: str):
        """Adds the wall time of the block to part ``name``."""
        start = time.monotonic()
        try:
            yield
        finally:
            self.parts[name] += time.monotonic() - start


def progress_line(step: int, total: int, phase: int, metrics: Mapping[str, float],
                  rate: float, steady_rate: float | None = None,
                  phase_end: int | None = None) -> str:
    """``[phase P] step S/T | metric value ... | R steps/s ETA 1h02m``: the ETA from
    ``steady_rate`` (steps/s without compilation and validation) where given. ``phase_end``:
    the last step of this phase; before the run's end (phase 2, with its adversary, runs at
    another rate), the ETA is to that step: ``ETA 12m30s to phase 2``."""
    eta_rate = rate if steady_rate is None else steady_rate
    end = total if phase_end is None else min(phase_end, total)
    eta = _duration((end - step) / eta_rate) if eta_rate > 0 else "?"
    to = f" to phase {phase + 1}" if end < total else ""
    shown = " ".join(f"{k} {v:.4g}" for k, v in metrics.items())
    return (f"[phase {phase}] step {step}/{total} | {shown} | {rate:.2f} steps/s "
            f"ETA {eta}{to}")


def probe_line(step: int, m: Mapping[str, float], share: float | None) -> str:
    """The adversary probe (``steps.make_probe``) of ``step`` in one line."""
    shown = "n/a: A barely separates real from fake" if share is None else f"{share:.2f}"
    return (f"[probe] step {step} | A's score: real {m['d_real']:.3f}, G's map "
            f"{m['d_fake']:.3f}, G's labels made confident {m['d_confident']:.3f} (confidence "
            f"share {shown}) | G's entropy {m['entropy']:.3f} | adversarial gradient "
            f"{m['adv_ce_norm_ratio']:.3g} x the cross-entropy's, cosine with it "
            f"{m['adv_ce_cosine']:+.2f}, with the entropy's {m['adv_entropy_cosine']:+.2f}")


class Profiler:
    """One JAX profile of ``num_steps`` steps from ``first_step`` on, into
    ``<workdir>/profile`` (open it with TensorBoard's profile plugin or Perfetto); called
    after every step with the number of steps done."""

    def __init__(self, workdir: str, first_step: int, num_steps: int):
        self.logdir = os.path.join(workdir, "profile")
        self.first, self.last = first_step, first_step + num_steps
        self.active = False

    def __call__(self, done: int) -> None:
        import jax

        if not self.active and self.first <= done < self.last:
            jax.profiler.start_trace(self.logdir)
            self.active = True
        elif self.active and done >= self.last:
            jax.profiler.stop_trace()
            self.active = False
            print(f"profile of steps {self.first}..{self.last} written to {self.logdir}",
                  flush=True)


def profiler(workdir: str, first_step: int, num_steps: int) -> Profiler:
    return Profiler(workdir, first_step, num_steps)
