"""One training run at a time per workdir: ``<workdir>/train.lock``.

The lock file is created atomically (``O_CREAT | O_EXCL``) and holds JSON naming its owner:
host, pid, start time and command line. While training, a daemon thread rewrites its
``heartbeat`` time every ``HEARTBEAT_S`` seconds. A second run finds the file and:

* stops at once with ``WorkdirLocked`` (one line naming the owner) if the owner is alive:
  on this host, its pid runs; on another host, its heartbeat is younger than ``STALE_S``;
* takes the lock over, saying so, if the lock is stale: its pid is gone (this host), or its
  heartbeat stopped more than ``STALE_S`` ago (another host, e.g. after a crash), or the file
  is unreadable. A resume after a crash is therefore never blocked for long.

The owner removes the file when it ends, however it ends (short of SIGKILL or a crash, which
leave a stale lock). In a multi-process job only process 0 takes the lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from ssgan_jax.core.errors import UserError

LOCK_NAME = "train.lock"
HEARTBEAT_S = 30.0
STALE_S = 300.0


class WorkdirLocked(UserError):
    """Another live training process is writing into this workdir."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        return True
    return True


def _read(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as f:
            owner = json.load(f)
        return owner if isinstance(owner, dict) else None
    except (OSError, ValueError):
        return None


def _stale_reason(owner: dict[str, Any] | None, now: float) -> str | None:
    """Why ``owner``'s lock no longer holds, or None while it does."""
    if owner is None:
        return "the lock file is unreadable"
    if owner.get("host") == socket.gethostname():
        pid = owner.get("pid")
        if not isinstance(pid, int) or not _pid_alive(pid):
            return f"process {pid} no longer runs on this host"
        return None
    age = now - float(owner.get("heartbeat", 0.0))
    if age > STALE_S:
        return (f"its heartbeat stopped {age:.0f} s ago (more than {STALE_S:.0f} s: the "
                "process on that host is gone)")
    return None


def _describe(owner: dict[str, Any]) -> str:
    return (f"process {owner.get('pid')} on host {owner.get('host')}, started "
            f"{owner.get('started', '?')}")


class Lock:
    """The lock of one workdir, held by this process (``acquire``/``release``)."""

    def __init__(self, workdir: str):
        self.path = os.path.join(os.path.abspath(workdir), LOCK_NAME)
        self._owner = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "command": " ".join(sys.argv),
        }
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _write_record(self, suffix: str) -> str:
        """Our owner record with a fresh heartbeat, in a file of this process's own beside the
        lock (``<lock>.<host>.<pid>.<suffix>``); returns its path."""
        tmp = f"{self.path}.{self._owner['host']}.{os.getpid()}.{suffix}"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({**self._owner, "heartbeat": time.time()}, f)
        return tmp

    def _write_new(self) -> bool:
        """Create the lock file holding our owner record, whole from its first instant; False
        if it exists. The record is written to a file of our own, then hard-linked into
        place: the link is atomic and fails if the lock exists, so no reader ever sees an
        empty or half-written lock (which it would call stale and take over)."""
        tmp = self._write_record("new")
        try:
            os.link(tmp, self.path)
        except FileExistsError:
            return False
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
        return True

    def acquire(self) -> None:
        """Take the lock, or raise WorkdirLocked naming its live owner."""
        for _ in range(3):  # a stale lock is removed, then the create is retried
            if self._write_new():
                break
            owner = _read(self.path)
            reason = _stale_reason(owner, time.time())
            if reason is None:
                raise WorkdirLocked(
                    f"{os.path.dirname(self.path)} is being trained into by "
                    f"{_describe(owner)} ({owner.get('command', '')!r}); wait for it to end or "
                    f"stop it, or use another --workdir. If it is gone, delete {self.path}.")
            print(f"WARNING: taking over a stale lock of {os.path.dirname(self.path)}: "
                  f"{reason} ({_describe(owner or {})})", flush=True)
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path)
        else:
            raise WorkdirLocked(f"could not create {self.path}: another process keeps "
                                "creating it; check who trains into this workdir")
        self._thread = threading.Thread(target=self._beat, name="ssgan-workdir-lock",
                                        daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            owner = _read(self.path)
            if owner is None or owner.get("pid") != os.getpid() or \
                    owner.get("host") != self._owner["host"]:
                return  # taken over or removed: not ours any more
            os.replace(self._write_record("tmp"), self.path)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        owner = _read(self.path)
        if owner is not None and owner.get("pid") == os.getpid() and \
                owner.get("host") == self._owner["host"]:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path)


@contextlib.contextmanager
def hold(workdir: str, enabled: bool = True) -> Iterator[None]:
    """Hold ``workdir``'s lock for the duration of the block (nothing when not ``enabled``)."""
    if not enabled:
        yield
        return
    lock = Lock(workdir)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()
