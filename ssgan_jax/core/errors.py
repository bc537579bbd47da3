"""The errors a user can fix: each names the problem and the fix in its message.

``python -m ssgan_jax.main`` prints any ``UserError`` as one line (``error: ...``) and exits
with status 1, without a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Base of the errors caused by the input (config, data, weights, checkpoints, workdir)."""


class ConfigError(UserError, ValueError):
    """A config value is missing, of the wrong kind, or out of range."""


def one_line(error: BaseException) -> str:
    """The message of ``error`` on one line (its lines joined by '; ')."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return "; ".join(lines) or type(error).__name__
