"""Shared test fixtures. ``../shared`` (beside the clone) holds the torchvision parity fixtures
and the CamVid data; SSGAN_SHARED overrides its location."""

from __future__ import annotations

import os
import pathlib

# Two CPU devices for every test, so pmap and cross-device averaging are exercised (must be set
# before JAX initialises its backend).
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get("SSGAN_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def parity_dir() -> pathlib.Path:
    d = SHARED / "fixtures" / "torch_parity"
    if not d.is_dir():
        pytest.skip(f"torch parity fixtures not found at {d} (set SSGAN_SHARED)")
    return d
