"""Shared test fixtures. ``../shared`` (beside the clone) holds the torchvision parity fixtures
and the CamVid data; SSGAN_SHARED overrides its location."""

from __future__ import annotations

import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get("SSGAN_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def parity_dir() -> pathlib.Path:
    d = SHARED / "fixtures" / "torch_parity"
    if not d.is_dir():
        pytest.skip(f"torch parity fixtures not found at {d} (set SSGAN_SHARED)")
    return d
