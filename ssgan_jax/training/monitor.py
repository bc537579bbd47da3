"""What a run tells its user: metric files, a progress line, health warnings, NaN stops.

* ``create_writer``: TensorBoard events in ``<workdir>/tensorboard`` (written without
  TensorFlow) and one JSON object per line in ``<workdir>/metrics.jsonl`` (process 0 only).
* ``ReportProgress``: steps/s, uptime and the time spent in input waits, validation and
  checkpoints to the writers, remembering its last rate for ``progress_line``, our concise
  stdout line with the ETA; ``profiler``: one JAX profile, when asked for.
* ``AdversaryHealth``: warns when A has won (accuracy near 1) or learns nothing (near 0.5)
  over a window of iterations (METHOD.md section 8: adversarial training can collapse).
* ``check_finite``: stops the run with a clear message on a NaN/Inf loss.
"""

from __future__ import annotations

import collections
import contextlib
import io
import json
import math
import os
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from ssgan_jax.core.errors import UserError


class TrainingDiverged(UserError, RuntimeError):
    """A loss became NaN or Inf; the last good checkpoint is kept."""


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
    config as hparams."""

    def __init__(self, logdir: str):
        import sys
        import types

        # TensorBoard's file layer imports TensorFlow where it is installed, unless a module
        # tensorboard.compat.notf exists (its own switch to the stub it ships): set it
        sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType(
            "tensorboard.compat.notf"))
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self._writer = EventFileWriter(logdir)

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


def create_writer(workdir: str, process_index: int) -> MultiWriter:
    """TensorBoard + JSON lines on process 0; nothing on the others."""
    if process_index > 0:
        return MultiWriter([])
    os.makedirs(workdir, exist_ok=True)
    return MultiWriter([TensorBoardWriter(os.path.join(workdir, "tensorboard")),
                        JsonLinesWriter(os.path.join(workdir, "metrics.jsonl"))])


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
                  rate: float, steady_rate: float | None = None) -> str:
    """``[phase P] step S/T | metric value ... | R steps/s ETA 1h02m``: the ETA from
    ``steady_rate`` (steps/s without compilation and validation) where given."""
    eta_rate = rate if steady_rate is None else steady_rate
    eta = _duration((total - step) / eta_rate) if eta_rate > 0 else "?"
    shown = " ".join(f"{k} {v:.4g}" for k, v in metrics.items())
    return f"[phase {phase}] step {step}/{total} | {shown} | {rate:.2f} steps/s ETA {eta}"


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


class AdversaryHealth:
    """Watches A's mean accuracy (real and fake maps) over the last ``window`` iterations."""

    def __init__(self, window: int, won_accuracy: float, idle_margin: float):
        self.window = window
        self.won_accuracy = won_accuracy
        self.idle_margin = idle_margin
        self._acc: collections.deque[float] = collections.deque(maxlen=window)
        self._warned_at: dict[str, int] = {}

    def _rising(self) -> bool:
        """Whether the window's second half is above its first by more than the margin: an
        adversary leaving chance (as at the start of phase 2) is learning, not idle."""
        acc = list(self._acc)
        half = len(acc) // 2
        return float(np.mean(acc[half:]) - np.mean(acc[:half])) > self.idle_margin

    def update(self, step: int, acc_real: float, acc_fake: float) -> str | None:
        """Record one iteration; return a warning (at most once per window per kind) or None."""
        self._acc.append(0.5 * (acc_real + acc_fake))
        if len(self._acc) < self.window:
            return None
        mean = float(np.mean(self._acc))
        kind = None
        if mean >= self.won_accuracy:
            kind = "won"
            text = (f"the adversary has won: its accuracy averaged {mean:.3f} over the last "
                    f"{self.window} iterations, so G's adversarial gradient carries little "
                    "(lower phase2.d_lr, or lower rescaling.eps so that real maps stay closer "
                    "to G's, or try loss.adv_form=non_saturating)")
        elif abs(mean - 0.5) < self.idle_margin and not self._rising():
            kind = "idle"
            text = (f"the adversary learns nothing: its accuracy averaged {mean:.3f} (chance) "
                    f"over the last {self.window} iterations (raise phase2.d_lr or "
                    "phase2.d_steps, or check that real and fake maps differ)")
        if kind is None or step - self._warned_at.get(kind, -10**9) < self.window:
            return None
        self._warned_at[kind] = step
        return f"WARNING at step {step}: {text}"


class InputHealth:
    """What a training batch holds, said once per kind when it is mostly nothing: labelled
    pixels below ``train.min_labelled_share`` (all-void labels train at ce = 0), or crops
    filled by their images below ``train.min_image_share`` (the rest is padding)."""

    def __init__(self, config):
        self.ignore = config.loss.ignore_label
        self.crop = tuple(int(v) for v in config.data.crop_size)
        self.min_labelled = config.train.min_labelled_share
        self.min_image = config.train.min_image_share
        self.said: set[str] = set()

    def check(self, step: int, batch: Mapping[str, Any]) -> list[str]:
        """The warnings of the batch of iteration ``step`` (each kind once per run)."""
        out = []
        labels = np.asarray(batch["label"])
        labelled = float(np.mean(labels != self.ignore))
        if labelled < self.min_labelled and "labels" not in self.said:
            self.said.add("labels")
            out.append(f"warning: step {step}: {100 * labelled:.2f}% of the batch's pixels are "
                       f"labelled ({int(np.sum(labels != self.ignore))} of {labels.size}; the "
                       f"rest is void {self.ignore} or padding): the loss has almost nothing to "
                       "learn from. Check the labels' class mapping (--mode=prepare refuses "
                       "unknown values) and data.crop_size")
        if "sizes" in batch and "image" not in self.said:
            sizes = np.asarray(batch["sizes"]).reshape(-1, 2)
            share = float(np.mean(sizes[:, 0] * sizes[:, 1]) / (self.crop[0] * self.crop[1]))
            if share < self.min_image:
                self.said.add("image")
                out.append(f"warning: step {step}: the images fill {100 * share:.1f}% of the "
                           f"crops on average (data.crop_size={self.crop}, image regions of "
                           f"{int(np.mean(sizes[:, 0]))}x{int(np.mean(sizes[:, 1]))} on "
                           "average); the rest is padding. Lower data.crop_size or raise "
                           "data.scale_range")
        return out


def check_finite(step: int, metrics: Mapping[str, float], last_good: int | None) -> None:
    """Raise TrainingDiverged naming the first NaN/Inf metric."""
    bad = {k: v for k, v in metrics.items() if not math.isfinite(float(v))}
    if bad:
        kept = (f"the last good checkpoint (step {last_good}) is kept; rerunning the same "
                "command resumes from it" if last_good is not None else
                "no checkpoint had been written yet")
        raise TrainingDiverged(
            f"training diverged at step {step}: {bad} is not finite; {kept}. Lower the "
            "learning rate, set optim.grad_clip_norm, or use model.dtype=float32."
        )
