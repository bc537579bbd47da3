"""The experiments behind docs/RESULTS.md and their shared helpers (``common``)."""
