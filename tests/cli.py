"""``python -m ssgan_jax.main`` in the test's own process (``run_main``), or in a fresh one
(``run_cli``, for what only a new process shows: start-up output, the interpreter's exit)."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def run_main(*args: str) -> Result:
    """``main``'s command line with ``args`` (from the repository root), in this process:
    its exit status and what it printed. The ``--config.x`` override flags that an earlier
    call defined are dropped first (config_flags defines them while parsing)."""
    from ssgan_jax import main

    for name in [n for n in main.FLAGS if n.startswith("config.")]:
        delattr(main.FLAGS, name)
    main.FLAGS.unparse_flags()
    out, err, code = io.StringIO(), io.StringIO(), 0
    argv, cwd = sys.argv, os.getcwd()
    sys.argv = ["ssgan_jax.main", *args]
    os.chdir(REPO)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main._run()
            except SystemExit as e:  # sys.exit("error: ...") prints its text, status 1
                if isinstance(e.code, str):
                    print(e.code, file=sys.stderr)
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = argv
        os.chdir(cwd)
    return Result(code, out.getvalue(), err.getvalue())


def run_cli(*args: str, env=None, timeout: int = 600, cwd=REPO) -> Result:
    """The same command line in a fresh interpreter (from the repository root, or ``cwd``)."""
    r = subprocess.run([sys.executable, "-m", "ssgan_jax.main", *args], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=timeout)
    return Result(r.returncode, r.stdout, r.stderr)


def one_line_error(r: Result, *expected: str) -> str:
    """The one stderr line of a user error (exit status 1, no traceback), containing each of
    ``expected``."""
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]
