"""One training run per workdir (ssgan_jax/workdir_lock.py): live owners block, stale locks
are taken over with a message."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from ssgan_jax.training import workdir_lock
from ssgan_jax.training.workdir_lock import LOCK_NAME, Lock, WorkdirLocked


def _write_owner(workdir, **owner):
    (workdir / LOCK_NAME).write_text(json.dumps({
        "host": socket.gethostname(), "pid": os.getpid(), "started": "2026-01-01T00:00:00",
        "command": "python -m ssgan_jax.main --mode=train", "heartbeat": time.time(),
        **owner}))


def test_second_lock_is_refused_naming_the_owner_and_released_after(tmp_path):
    first = Lock(str(tmp_path))
    first.acquire()
    owner = json.loads((tmp_path / LOCK_NAME).read_text())
    assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
    with pytest.raises(WorkdirLocked, match=rf"process {os.getpid()} on host "
                                            rf"{socket.gethostname()}.*another --workdir"):
        Lock(str(tmp_path)).acquire()
    first.release()
    assert not (tmp_path / LOCK_NAME).exists()
    with workdir_lock.hold(str(tmp_path)):  # free again
        assert (tmp_path / LOCK_NAME).exists()
    assert not (tmp_path / LOCK_NAME).exists()


def test_lock_of_a_dead_process_is_taken_over_and_said(tmp_path, capsys):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    _write_owner(tmp_path, pid=int(dead.stdout))
    with workdir_lock.hold(str(tmp_path)):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    out = capsys.readouterr().out
    assert "taking over a stale lock" in out and f"process {int(dead.stdout)} no longer runs" \
        in out


def test_other_host_blocks_while_its_heartbeat_is_fresh_not_after(tmp_path, capsys):
    _write_owner(tmp_path, host="gpu-node-7", pid=4242, heartbeat=time.time() - 10)
    with pytest.raises(WorkdirLocked, match="process 4242 on host gpu-node-7"):
        Lock(str(tmp_path)).acquire()
    _write_owner(tmp_path, host="gpu-node-7", pid=4242,
                 heartbeat=time.time() - workdir_lock.STALE_S - 5)
    with workdir_lock.hold(str(tmp_path)):
        pass
    assert "heartbeat stopped" in capsys.readouterr().out


def test_unreadable_lock_is_stale_and_disabled_hold_takes_nothing(tmp_path, capsys):
    (tmp_path / LOCK_NAME).write_text("{not json")
    with workdir_lock.hold(str(tmp_path)):
        pass
    assert "unreadable" in capsys.readouterr().out
    with workdir_lock.hold(str(tmp_path), enabled=False):  # processes other than 0
        assert not (tmp_path / LOCK_NAME).exists()


def test_heartbeat_refreshes_the_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(workdir_lock, "HEARTBEAT_S", 0.05)
    lock = Lock(str(tmp_path))
    lock.acquire()
    first = json.loads((tmp_path / LOCK_NAME).read_text())["heartbeat"]
    deadline = time.time() + 5
    while json.loads((tmp_path / LOCK_NAME).read_text())["heartbeat"] == first:
        assert time.time() < deadline, "no heartbeat within 5 s"
        time.sleep(0.05)
    lock.release()
    assert not (tmp_path / LOCK_NAME).exists()


def test_the_lock_appears_whole_never_empty(tmp_path, monkeypatch):
    """The owner record is complete before the lock file exists (a reader between a create and
    its write would see an empty file, call it stale and take over); a second process racing
    to take the lock reads a live owner and is refused."""
    seen = []
    real_link = os.link

    def link(src, dst):
        assert not os.path.exists(dst)
        seen.append(json.loads(open(src, encoding="utf-8").read()))  # whole before it appears
        real_link(src, dst)
        # the instant it exists: another process reading it finds a live owner
        with pytest.raises(WorkdirLocked, match="is being trained into"):
            monkeypatch.setattr(os, "link", real_link)
            Lock(str(tmp_path)).acquire()

    monkeypatch.setattr(os, "link", link)
    lock = Lock(str(tmp_path))
    lock.acquire()
    assert seen and seen[0]["pid"] == os.getpid()
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_NAME]  # no temp file left
    lock.release()
