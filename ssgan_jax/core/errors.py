"""The errors a user can fix: each names the problem and the fix in its message.

``python -m ssgan_jax.main`` prints any ``UserError`` as one line (``error: ...``) and exits
with status 1, without a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable


class UserError(Exception):
    """Base of the errors caused by the input (config, data, weights, checkpoints, workdir)."""


class ConfigError(UserError, ValueError):
    """A config value is missing, of the wrong kind, or out of range."""


def one_line(error: BaseException) -> str:
    """The message of ``error`` on one line (its lines joined by '; ')."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return "; ".join(lines) or type(error).__name__


class DiskFull(UserError, OSError):
    """The disk filled up while a run wrote to it."""


def _is_disk_full(error: BaseException | None) -> bool:
    """Whether ``error`` or any error in its chain is ENOSPC (Orbax and TFDS wrap it)."""
    import errno

    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return True
        if "No space left on device" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


class _NoDiskFullTracebacks:
    """A logging filter: drops records whose exception is a full disk (the writer threads of
    a checkpoint log each failing piece with its traceback, hundreds of lines, before the
    error reaches the run, which says it in one line)."""

    def filter(self, record) -> bool:
        info = getattr(record, "exc_info", None)
        return not (info and info[1] is not None and _is_disk_full(info[1]))


@contextlib.contextmanager
def quiet_disk_full():
    """While a run writes checkpoints: a full disk is said once, as ``DiskFull``, not also by
    the libraries' threads (their logged tracebacks, and asyncio's "Event loop is closed" from
    writer callbacks that outlive the failed save, which reach ``sys.unraisablehook``). Other
    errors and logs pass as they are."""
    import logging
    import sys

    quiet = _NoDiskFullTracebacks()
    loggers = [logging.getLogger(), logging.getLogger("absl")]
    for logger in loggers:
        logger.addFilter(quiet)
    before = sys.unraisablehook

    def hook(unraisable):
        error = unraisable.exc_value
        if isinstance(error, RuntimeError) and str(error) == "Event loop is closed":
            return  # a callback of a checkpoint write that was abandoned
        before(unraisable)

    sys.unraisablehook = hook
    full = False
    try:
        yield
    except DiskFull:
        full = True  # the abandoned writes' callbacks fire until the process exits
        raise
    finally:
        for logger in loggers:
            logger.removeFilter(quiet)
        if not full:
            sys.unraisablehook = before


class disk_space:  # noqa: N801 - used as a context manager, like contextlib's
    """``with disk_space(path, kept):`` turns a full disk (ENOSPC, however wrapped) inside the
    block into one ``DiskFull`` line naming ``path`` and what was ``kept`` (a text, or a
    function giving it, called only then); any other error passes unchanged."""

    def __init__(self, path: str, kept: str | Callable[[], str]):
        self.path, self.kept = path, kept

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb):
        if error is not None and not isinstance(error, UserError) and _is_disk_full(error):
            kept = self.kept() if callable(self.kept) else self.kept
            raise DiskFull(f"no space left on the device of {self.path}; {kept}. Free "
                           "space (or point the path elsewhere) and run the same command "
                           "again") from None
        return False
