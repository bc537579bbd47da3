"""Shared test fixtures. ``../shared`` (beside the clone) holds the torchvision parity fixtures
and the CamVid data; SSGAN_SHARED overrides its location."""

from __future__ import annotations

import os
import pathlib

# Two CPU devices for every test, so pmap and cross-device averaging are exercised (must be set
# before JAX initialises its backend).
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
# Many tests compile the same tiny programs (each pmap of a fresh closure re-traces and would
# recompile): a compilation cache shared by this session and its subprocesses compiles each
# once. A fresh folder per session, so nothing carries over between runs.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    import atexit
    import shutil
    import tempfile

    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="ssgan_test_jax_cache_")
    atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get("SSGAN_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def parity_dir() -> pathlib.Path:
    d = SHARED / "fixtures" / "torch_parity"
    if not d.is_dir():
        pytest.skip(f"torch parity fixtures not found at {d} (set SSGAN_SHARED)")
    return d


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """(config, workdir, summary) of one uninterrupted tiny run on 2 devices, shared by the
    loop, evaluation and prediction tests (``train_fixtures.loop_config``)."""
    from ssgan_jax import train

    from .train_fixtures import loop_config

    tmp = tmp_path_factory.mktemp("trained_run")
    config = loop_config(tmp)
    summary = train.train_and_evaluate(config, str(tmp / "run"))
    return config, tmp / "run", summary
