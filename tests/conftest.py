"""Shared test fixtures. The torchvision parity fixtures are in the repository
(``tests/fixtures/torch_parity``, remade by ``launch/tools/make_parity_fixtures.py``); the full
CamVid copy that a few data tests read lies outside it, in ``../shared`` beside the clone
(SSGAN_SHARED overrides its location): those tests carry the ``shared_data`` mark and skip
without it."""

from __future__ import annotations

import os
import pathlib


def _jaxlib_defines(flag: str) -> bool:
    """Whether the installed jaxlib's XLA defines ``flag``, read from its shared libraries
    without importing JAX (an unknown flag in XLA_FLAGS aborts the process)."""
    import glob
    import importlib.util
    import mmap

    spec = importlib.util.find_spec("jaxlib")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        for path in glob.glob(os.path.join(folder, "*.so")):
            with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                if m.find(flag.encode()) >= 0:
                    return True
    return False


# Two CPU devices for every test, so pmap and cross-device averaging are exercised (must be set
# before JAX initialises its backend). The tests' programs are tiny: compiling them costs far
# more than running them, so XLA:CPU compiles cheaply: without LLVM's optimisations (level 0;
# measured on a 2-core EPYC VM: a tiny DeepLabv3 phase-2 step compiles in about 2/3 of the
# time, runs as fast) and with its older elemental fusion emitters instead of the MLIR fusion
# emitters (JAX 0.10.2, 2-core Intel Xeon VM: the same step compiles in 5.7-6.3 s instead of
# 7.0-8.3 s, a tiny FCN-8s benchmark command takes 6.3 s instead of 10.0 s). SSGAN_TEST_XLA_OPT=2
# restores XLA's defaults.
# (A caller's XLA_FLAGS, or the pytest-xdist workers' inherited from the first process, are
# left as they are, without scanning jaxlib again.)
if "XLA_FLAGS" not in os.environ:
    _FLAGS = ["--xla_force_host_platform_device_count=2",
              "--xla_backend_optimization_level=" + os.environ.get("SSGAN_TEST_XLA_OPT", "0")]
    if "SSGAN_TEST_XLA_OPT" not in os.environ and _jaxlib_defines(
            "xla_cpu_use_fusion_emitters"):
        _FLAGS.append("--xla_cpu_use_fusion_emitters=false")
    os.environ["XLA_FLAGS"] = " ".join(_FLAGS)

# No persistent compilation cache by default: with one, a long test process crashed (abort or
# SIGSEGV, no Python error) late in the run inside XLA:CPU executable serialisation and in
# executing a program, in a single process (3 of 3 runs, JAX 0.8) and in a pytest-xdist
# worker (1 of 1); without it the suite passes and takes about 1.5 minutes longer
# (9m26s vs 7m53s on 2 cores). SSGAN_TEST_JAX_CACHE=1 turns it on for local runs: a fresh
# folder per test process (each xdist worker its own, inherited by the CLI subprocesses a test
# starts, never two processes at once), removed at exit. A JAX_COMPILATION_CACHE_DIR of the
# caller's own is left as it is.
_CACHE_ROOT = "_SSGAN_TEST_JAX_CACHE_ROOT"  # made by the first pytest process, under it workers
if os.environ.get("SSGAN_TEST_JAX_CACHE") == "1" and (
        "JAX_COMPILATION_CACHE_DIR" not in os.environ or _CACHE_ROOT in os.environ):
    if _CACHE_ROOT not in os.environ:
        import atexit
        import shutil
        import tempfile

        os.environ[_CACHE_ROOT] = tempfile.mkdtemp(prefix="ssgan_test_jax_cache_")
        atexit.register(shutil.rmtree, os.environ[_CACHE_ROOT], ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = os.path.join(
        os.environ[_CACHE_ROOT], os.environ.get("PYTEST_XDIST_WORKER", "main"))
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get("SSGAN_SHARED", REPO.parent / "shared"))


@pytest.fixture(autouse=True, scope="session")
def _full_float32_on_accelerators():
    """The tests compare float32 results with torchvision's, with XLA's own convolution and
    with hand values at 1e-4 or tighter. On an NVIDIA GPU JAX's default float32 conv/matmul
    precision is TF32 (10-bit mantissa, ~1e-3 relative), which fails them (a GPU run of the
    suite: 23 of 88 failures, all TF32-sized); the CPU computes full float32 anyway. So
    the tests run at full float32 off the CPU (what ``model.matmul_precision="highest"`` does
    in a run)."""
    import jax

    if jax.default_backend() != "cpu":
        jax.config.update("jax_default_matmul_precision", "highest")
    yield


@pytest.fixture
def two_devices():
    """Two devices of the default backend, for tests that compare 1 device with 2 (this file
    gives the CPU two); skipped where there is one, e.g. a one-GPU machine."""
    import jax

    devices = jax.devices()
    if len(devices) < 2:
        pytest.skip(f"needs 2 {jax.default_backend()} devices, this machine has 1")
    return devices[:2]


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_programs():
    """Drop JAX's compiled programs after each test module. A pytest-xdist worker runs many
    modules in one process; XLA:CPU keeps every executable it compiled (code pages included),
    and a worker aborted inside XLA:CPU's compiler late in a CI run (in a module that passes
    alone). Programs are rarely shared between modules, so little is recompiled."""
    yield
    import jax

    jax.clear_caches()


# SSGAN_PARITY: another set, e.g. one just remade by launch/tools/make_parity_fixtures.py
PARITY = pathlib.Path(os.environ.get("SSGAN_PARITY", REPO / "tests" / "fixtures" / "torch_parity"))


@pytest.fixture(scope="session")
def parity_dir() -> pathlib.Path:
    """The torchvision parity fixtures (README there), part of the repository."""
    assert PARITY.is_dir(), f"{PARITY} is missing from the checkout"
    return PARITY


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """(config, workdir, summary) of one uninterrupted tiny run on 2 devices, shared by the
    loop, evaluation, prediction and export tests (``train_fixtures.loop_config``). Trained
    once for the whole test session: the first pytest-xdist worker that needs it trains it
    under a file lock, the others wait and read the same run (tests only read it, or write
    their own files beside its checkpoints)."""
    import fcntl
    import pickle

    from ssgan_jax.training import loop

    from .train_fixtures import loop_config

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    root = shared / "trained_run"
    root.mkdir(exist_ok=True)
    done = root / "run.pickle"
    with open(root / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not done.exists():
            config = loop_config(root)
            summary = loop.train_and_evaluate(config, str(root / "run"))
            done.write_bytes(pickle.dumps((config, summary)))
    config, summary = pickle.loads(done.read_bytes())
    return config, root / "run", summary
