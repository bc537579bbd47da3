"""SIGTERM and Ctrl-C stop a training run cleanly: a checkpoint at the next step boundary,
one line, exit status 0 (SIGTERM) or 130 (Ctrl-C)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from ssgan_jax.training import stop

from ..cli import REPO
from ..train_fixtures import tiny_config


def test_signals_are_recorded_and_a_second_ctrl_c_interrupts():
    with stop.signals() as requests:
        assert not requests.should_stop(1, 1)
        os.kill(os.getpid(), signal.SIGTERM)
        assert requests.name == "SIGTERM" and requests.should_stop(1, 5)
    with stop.signals() as requests:
        os.kill(os.getpid(), signal.SIGINT)
        assert requests.name == "SIGINT"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers are restored
    assert stop.Stopped("SIGTERM", 7, "x").exit_code == 0
    assert stop.Stopped("SIGINT", 7, "x").exit_code == 130


def test_sigterm_saves_a_checkpoint_and_exits_0(tmp_path):
    config = tiny_config(tmp_path, "fcn8s_vgg16")
    config.phase1.steps, config.phase2.steps = 10_000, 0  # far more than it will run
    config.train.log_every = 1
    config.train.eval_every = config.train.checkpoint_every = 10_000
    (tmp_path / "cfg.json").write_text(config.to_json())
    (tmp_path / "cfg.py").write_text(
        "import json, ml_collections\n"
        "def get_config(arg=None):\n"
        f"    return ml_collections.ConfigDict(json.load(open({str(tmp_path / 'cfg.json')!r})))\n")
    workdir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "ssgan_jax.main",
                             f"--config={tmp_path / 'cfg.py'}", f"--workdir={workdir}"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    deadline = time.time() + 400
    for line in proc.stdout:
        lines.append(line)
        if "[phase 1] step 2/" in line:
            proc.send_signal(signal.SIGTERM)
            break
        assert time.time() < deadline, "".join(lines)
    out, err = proc.communicate(timeout=300)
    lines += out.splitlines(keepends=True)
    assert proc.returncode == 0, err[-3000:]
    last = lines[-1].strip()
    assert last.startswith("stopped by SIGTERM at step ") and "run the same command" in last
    step = int(last.split("at step ")[1].split(":")[0])
    assert step >= 2 and (workdir / "checkpoints" / str(step)).is_dir()
    assert "Traceback" not in err
    assert not (workdir / "train.lock").exists()  # the lock is released on the way out
