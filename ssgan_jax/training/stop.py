"""Stopping a run cleanly on SIGTERM (a cluster's preemption, ``kill``) and SIGINT (Ctrl-C):
the loop saves a checkpoint at the next step boundary and ends with one line.

``signals()`` installs the handlers for the duration of a run (main thread only; elsewhere it
does nothing) and restores the previous ones after. A second Ctrl-C while the checkpoint is
being written interrupts at once (Python's default), for a user who does not want to wait. In a
multi-process job every process must stop at the same step (the steps are collective), so the
processes agree on a stop at the logging steps (``train.log_every``) through one small host
all-reduce; a single process stops at the next step.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

import jax
import numpy as np


class Stopped(Exception):
    """The run was asked to stop by ``signal_name``; its checkpoint at ``step`` is saved."""

    def __init__(self, signal_name: str, step: int, saved_to: str):
        super().__init__(f"{signal_name} at step {step}")
        self.signal_name, self.step, self.saved_to = signal_name, step, saved_to

    @property
    def exit_code(self) -> int:
        """0 for SIGTERM (a requested, completed stop); 130 for Ctrl-C, as shells expect."""
        return 130 if self.signal_name == "SIGINT" else 0

    def message(self) -> str:
        return (f"stopped by {self.signal_name} at step {self.step}: checkpoint saved in "
                f"{self.saved_to}; run the same command to resume")


class Requests:
    """The signal received so far (None before any)."""

    def __init__(self):
        self.name: str | None = None

    def should_stop(self, step: int, every: int) -> bool:
        """Whether to stop after ``step``: at once in one process; at the logging steps,
        when any process got a signal, in a multi-process job."""
        if jax.process_count() == 1:
            return self.name is not None
        if step % every:
            return False
        from ssgan_jax.core import parallel

        total = int(parallel.sum_over_processes(np.asarray(self.name is not None, np.int64)))
        if total and self.name is None:
            self.name = "SIGTERM"  # another process's request; this one stops with it
        return total > 0


@contextlib.contextmanager
def signals() -> Iterator[Requests]:
    """``Requests`` filled by SIGTERM/SIGINT while the block runs."""
    requests = Requests()
    if threading.current_thread() is not threading.main_thread():
        yield requests
        return

    def handler(signum, frame):
        del frame
        name = signal.Signals(signum).name
        if requests.name == "SIGINT" and name == "SIGINT":
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        requests.name = name
        print(f"{name} received: saving a checkpoint at the next step, then stopping "
              "(Ctrl-C again to stop at once)" if name == "SIGINT" else
              f"{name} received: saving a checkpoint at the next step, then stopping",
              flush=True)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield requests
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
