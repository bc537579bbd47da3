"""Everything a short GPU slot is for, in one command that keeps to a time budget.

    python -m launch.bench.gpu_check OUTDIR [--budget-s=480] [--parts=env,parity,tests,bench]
                                      [--rows=NAME,...] [--tiny]
    python -m launch.bench.gpu_check --make-reference=launch/bench/gpu_reference.npz  # CPU, here

Parts, in this order, each in its own process (a crash or a timeout costs that part only):

* ``env``: device, driver, JAX / torch versions.
* ``parity``: the CPU-vs-GPU check. ``launch/bench/gpu_reference.npz`` holds a reduced-width
  DeepLabv3 state, a batch, and what one phase-1 step and one fused phase-2 iteration made of
  them on the CPU (made by ``--make-reference``). The same two steps run here on the default
  device and on this machine's CPU, float32 convs and matmuls at full precision (TF32 off:
  ``model.matmul_precision="highest"``); losses, updated parameters and BatchNorm statistics
  are compared with ``TOLERANCE`` (why those numbers: ``compare``).
* ``tests``: the unit tests that need no TensorFlow (``TESTS``), with pytest, JUnit XML to
  OUTDIR/tests.xml. ``SSGAN_SHARED`` (or ``--shared``) says where the torch parity fixtures
  are; a ``shared/`` folder in the checkout travels to a lent GPU machine, ``../shared`` not.
* ``bench``: ``ROWS``, ours (``python -m ssgan_jax.main --mode=benchmark``) and torchvision's
  (``launch/bench/torch_steps.py``) on the same card: the paper setting (500x500, batch 2, frozen
  BatchNorm) in TF32 and in float32, the throughput setting (512x512, batch 16, bfloat16,
  batch-statistics BatchNorm), the kernel choices (``model.bn_vjp``, ``model.conv_rewrites``),
  and device memory at mmsegmentation's Cityscapes setting (512x1024, batch 2).

Results go to OUTDIR/gpu_check.json, rewritten after every part (a run cut short keeps what it
measured), with a ``summary``: ours / torch per setting and the issue's goals, met or not. The
children's stderr goes to OUTDIR/gpu_check.log. A part or row that would start with less time
left than it needs is skipped and says so.

On a lent machine (JAX with CUDA, torch, torchvision, flax, optax, orbax, absl, pytest; no
ml_collections): carry ml_collections as a wheel (/work/.library/device/README.md), then
``python -m launch.bench.gpu_check $OUT`` from the repository root; the children find the package
through PYTHONPATH. ``--tiny`` (tests: ``JAX_PLATFORMS=cpu``) runs every part at toy sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository
REFERENCE = ROOT / "launch" / "bench" / "gpu_reference.npz"
PARTS = ("env", "parity", "tests", "bench")

# The TF-free tests that matter on a GPU (networks, norm, conv, losses, rescaling, steps,
# metrics, inference); the rest read data through TensorFlow, absent from the GPU image.
TESTS = ("tests/models", "tests/training/test_losses.py", "tests/training/test_rescaling.py",
         "tests/training/test_steps.py", "tests/inference/test_metrics.py",
         "tests/inference/test_inference.py")
TINY_TESTS = ("tests/training/test_rescaling.py",)

# Parity tolerances, ten times or more what two correct float32 summation orders give on the
# CPU (convs as GEMMs or as XLA's convolution, measured on launch/bench/gpu_reference.npz: losses
# 5e-6, gradient norm 3e-3, BatchNorm statistics 6e-5, updates off 0.6%). Losses: relative.
# Gradient norms: relative, looser, because at this width some BatchNorm channels see few,
# nearly equal values and their gradients are mostly rounding.
# Parameters after one update: Adam's first step is lr * g / (|g| + eps), about lr * sign(g),
# so an entry whose gradient is near zero flips between two correct orders; hence a share of
# all entries whose update is off by more than 1% of their tensor's largest update.
TOLERANCE = {"update_rel": 1e-2, "loss_rel": 3e-4, "grad_norm_rel": 3e-2, "update_share_off": 6e-2,
             "batch_stats_rel": 1e-3}

OURS = "configs/voc2012.py:deeplabv3_resnet50_gan"
PAPER = ["--config.batch_size=2", "--config.data.crop_size=(500,500)",
         "--config.eval_batch_size=2"]
THROUGHPUT = ["--config.batch_size=16", "--config.data.crop_size=(512,512)",
              "--config.model.dtype=bfloat16", "--config.model.bn_mode=train",
              "--config.eval_batch_size=16"]
TWO_STEPS = "--config.benchmark.steps=('generator_phase1','phase2_iteration')"
PHASE1 = "--config.benchmark.steps=('generator_phase1',)"
NO_EVAL = "--config.benchmark.eval=False"
T_PAPER = ["--batch=2", "--crop", "500", "500", "--bn=frozen", "--classes=21",
           "--eval-size", "512", "512", "--eval-batch=2"]
T_THROUGHPUT = ["--batch=16", "--crop", "512", "512", "--bn=train", "--classes=21",
                "--precision=bf16", "--channels-last", "--eval-size", "512", "512",
                "--eval-batch=16"]
# (name, who, arguments, seconds it needs at least), in priority order: the comparison with
# torch first, then memory, then the kernel choices and float32.
ROWS = (
    ("ours_paper_tf32", "ours", [OURS, *PAPER, TWO_STEPS], 150),
    ("torch_paper_tf32", "torch", [*T_PAPER, "--precision=tf32"], 40),
    ("ours_throughput", "ours", [OURS, *THROUGHPUT, TWO_STEPS], 150),
    ("torch_throughput", "torch", T_THROUGHPUT, 40),
    ("ours_memory_cityscapes", "ours",
     ["configs/cityscapes.py:deeplabv3_resnet50_gan", "--config.batch_size=2",
      "--config.data.crop_size=(512,1024)", "--config.model.bn_mode=train", PHASE1, NO_EVAL],
     80),
    ("torch_memory_cityscapes", "torch",
     ["--batch=2", "--crop", "512", "1024", "--bn=train", "--classes=19", "--precision=tf32"],
     40),
    ("ours_memory_cityscapes_autotune0", "ours",
     ["configs/cityscapes.py:deeplabv3_resnet50_gan", "--config.batch_size=2",
      "--config.data.crop_size=(512,1024)", "--config.model.bn_mode=train", PHASE1, NO_EVAL],
     80),
    ("ours_throughput_bnvjp", "ours",
     [OURS, *THROUGHPUT, "--config.model.bn_vjp=on", PHASE1, NO_EVAL], 80),
    ("ours_throughput_gemm", "ours",
     [OURS, *THROUGHPUT, "--config.model.conv_rewrites=on", PHASE1, NO_EVAL], 80),
    ("ours_paper_fp32", "ours",
     [OURS, *PAPER, "--config.model.matmul_precision=highest", PHASE1, NO_EVAL], 80),
    ("torch_paper_fp32", "torch", [*T_PAPER, "--precision=fp32"], 40),
    ("torch_throughput_compile", "torch", [*T_THROUGHPUT, "--compile"], 120),
)
# Environment of a row's process, beside the run's: XLA's autotuning off (cuDNN's heuristic
# convolution algorithms), to see how much of a program's memory is the chosen algorithms'
# workspaces.
ROW_ENV = {"ours_memory_cityscapes_autotune0": {"XLA_FLAGS": "--xla_gpu_autotune_level=0"}}
TINY_OURS = ["configs/camvid.py:fcn8s_vgg16_gan", "--config.model.width=32",
             "--config.adversary.width=32", "--config.adversary.map_features=(8,8)",
             "--config.adversary.trunk_features=(8,8,8,8)", "--config.batch_size=2",
             "--config.eval_batch_size=2", "--config.data.crop_size=(32,48)",
             "--config.data.eval_size=(32,48)", "--config.model.conv_rewrites=off"]
TINY_TORCH = ["--batch=2", "--crop", "32", "48", "--eval-size", "32", "48", "--threads=2"]
ITERATIONS = {"full": ["--config.benchmark.iterations=10", "--config.benchmark.warmup=2"],
              "tiny": ["--config.benchmark.iterations=1", "--config.benchmark.warmup=0"]}
T_ITERATIONS = {"full": ["--iterations=10", "--warmup=3"],
                "tiny": ["--iterations=1", "--warmup=1"]}
MMSEG_CITYSCAPES_GIB = 6.1  # mmsegmentation model zoo, DeepLabV3 R50-D8 512x1024, per GPU


# ---------------------------------------------------------------------------------------------
# The parity check (runs in a child process; imports JAX).


def parity_config():
    """A reduced-width DeepLabv3 SS-GAN (BatchNorm with batch statistics, no dropout: every
    number is a deterministic function of state and batch), float32 at full precision."""
    from ssgan_jax.core import config as default_config

    config = default_config.get_config()
    config.data.name = "camvid"
    config.data.crop_size = (32, 48)
    config.model.name = "deeplabv3_resnet50"
    default_config.tiny_networks(config)
    config.model.matmul_precision = "highest"
    # batch 4: with 2 images, BatchNorm after the ASPP pooling branch (one pixel per image)
    # outputs +-1 whatever that conv's kernel is, so its gradient is rounding noise, which
    # Adam's first step turns into +-lr updates that differ between any two summation orders
    config.batch_size = 4
    config.phase1.lr = config.phase2.lr = 1e-3
    config.phase2.d_lr = 1e-2
    return config


STATE_FIELDS = ("step", "rng", "g_params", "g_batch_stats", "d_params", "d_batch_stats")


def _flat(tree, prefix: str) -> dict:
    import flax
    import jax
    import numpy as np

    flat = flax.traverse_util.flatten_dict(flax.serialization.to_state_dict(
        jax.device_get(tree)), sep="/")
    return {f"{prefix}/{k}": np.asarray(v) for k, v in flat.items()}


def _unflat(arrays: dict, prefix: str) -> dict:
    import flax

    n = len(prefix) + 1
    return flax.traverse_util.unflatten_dict(
        {k[n:]: v for k, v in arrays.items() if k.startswith(prefix + "/")}, sep="/")


def run_parity_steps(config, state_dict: dict, batch: dict, device) -> dict:
    """{"phase1" | "phase2": flat arrays of the updated state and the metrics} after one
    phase-1 step and one phase-2 iteration, each from ``state_dict``, on ``device``."""
    import flax
    import jax
    import numpy as np

    from ssgan_jax.data.classes import class_names
    from ssgan_jax.models import matmul_precision
    from ssgan_jax.training.experiment import Experiment

    experiment = Experiment(config, len(class_names(config.data.name)))
    out = {}
    with matmul_precision(config.model):
        template = experiment.state_template(2)
        for phase in (1, 2):
            # the stored state has no optimizer states: each phase starts from fresh ones,
            # as training does at the phase boundary
            state = experiment.fresh_optimizers(template.replace(**{
                field: flax.serialization.from_state_dict(getattr(template, field),
                                                          state_dict.get(field, {}))
                for field in STATE_FIELDS}), phase)
            fn = experiment.train_step(phase, devices=[device], donate=False)
            new, metrics = fn(state, jax.tree.map(lambda x: x[None], batch))
            kept = {"g_params": new.g_params, "g_batch_stats": new.g_batch_stats}
            if phase == 2:
                kept["d_params"] = new.d_params
            flat = _flat(kept, f"phase{phase}")
            flat.update({f"phase{phase}/metric/{k}": np.asarray(v)
                         for k, v in jax.device_get(metrics).items()})
            out[f"phase{phase}"] = flat
    return out


def make_reference(path: Path, seed: int = 0) -> None:
    """The state, batch and CPU results ``parity`` compares against (run on the CPU)."""
    import jax
    import numpy as np

    from ssgan_jax.data.classes import class_names
    from ssgan_jax.training.experiment import Experiment

    config = parity_config()
    config.seed = seed
    num_classes = len(class_names(config.data.name))
    ch, cw = config.data.crop_size
    state = Experiment(config, num_classes).initial_state(2)
    rng = np.random.default_rng(seed)
    batch = {"image": rng.normal(size=(config.batch_size, ch, cw, 3)).astype(np.float32),
             "label": rng.integers(0, num_classes, (config.batch_size, ch, cw)).astype(np.int32)}
    batch["label"][:, :4] = 255  # ignore pixels reach the losses too
    arrays = _flat({f: getattr(state, f) for f in STATE_FIELDS}, "state")
    arrays.update({f"batch/{k}": v for k, v in batch.items()})
    results = run_parity_steps(config, _unflat(arrays, "state"), batch, jax.devices("cpu")[0])
    for flat in results.values():
        arrays.update({f"ref/{k}": v for k, v in flat.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)
    print(f"wrote {path}: {len(arrays)} arrays, {path.stat().st_size / 1024:.0f} KiB, "
          f"jax {jax.__version__} on {jax.devices('cpu')[0].device_kind}")


def compare(got: dict, want: dict, before: dict) -> dict:
    """How far ``got`` is from ``want`` (flat arrays of one step's results, ``before`` the
    state both started from), in the measures of ``TOLERANCE``, and whether it is within."""
    import numpy as np

    worst = {"loss_rel": 0.0, "grad_norm_rel": 0.0, "batch_stats_rel": 0.0}
    where = {}
    off = entries = 0
    max_abs = 0.0
    for key, w in want.items():
        g = got[key].astype(np.float64)
        w = w.astype(np.float64)
        if "/metric/" in key or "batch_stats" in key:
            value = float(abs(g - w).max() / max(abs(w).max(), 1e-12))
            name = ("batch_stats_rel" if "batch_stats" in key
                    else "grad_norm_rel" if "grad_norm" in key else "loss_rel")
            if value > worst[name]:
                worst[name], where[name] = value, key
            continue
        start = before[key.split("/", 1)[1]].astype(np.float64)
        du_want, du_got = w - start, g - start
        scale = max(abs(du_want).max(), 1e-30)
        off += int(np.sum(abs(du_got - du_want) > TOLERANCE["update_rel"] * scale))
        entries += w.size
        max_abs = max(max_abs, float(abs(g - w).max()))
    worst["update_share_off"] = off / max(entries, 1)
    ok = all(worst[k] <= TOLERANCE[k] for k in worst)
    return {"within_tolerance": ok, **worst, "max_abs_param_diff": max_abs,
            "parameters": entries, "worst_at": where}


def parity_part(reference: Path) -> dict:
    import jax
    import numpy as np

    arrays = dict(np.load(reference))
    config = parity_config()
    batch = {k[6:]: v for k, v in arrays.items() if k.startswith("batch/")}
    state = _unflat(arrays, "state")
    before = {k[6:]: v for k, v in arrays.items() if k.startswith("state/")}
    targets = {"default_device": jax.devices()[0]}
    if jax.default_backend() != "cpu":
        targets["this_machine_cpu"] = jax.devices("cpu")[0]
    report = {"reference": str(reference.relative_to(ROOT) if reference.is_relative_to(ROOT)
                               else reference),
              "tolerance": TOLERANCE, "matmul_precision": config.model.matmul_precision,
              "device_kind": jax.devices()[0].device_kind, "checks": {}}
    results = {name: run_parity_steps(config, state, batch, device)
               for name, device in targets.items()}
    for phase in ("phase1", "phase2"):
        want = {k[4:]: v for k, v in arrays.items() if k.startswith(f"ref/{phase}/")}
        for name, res in results.items():
            report["checks"][f"{phase}:{name}_vs_reference"] = compare(
                res[phase], want, before)
        if "this_machine_cpu" in results:
            report["checks"][f"{phase}:default_device_vs_this_machine_cpu"] = compare(
                results["default_device"][phase], results["this_machine_cpu"][phase], before)
    report["within_tolerance"] = all(c["within_tolerance"] for c in report["checks"].values())
    return report


def env_part() -> dict:
    import jax

    info = {"python": platform.python_version(), "jax": jax.__version__,
            "backend": jax.default_backend(),
            "devices": [d.device_kind for d in jax.devices()]}
    for name in ("jaxlib", "flax", "optax", "orbax.checkpoint", "torch", "torchvision"):
        try:
            module = __import__(name, fromlist=["__version__"])
            info[name] = getattr(module, "__version__", "?")
        except ImportError:
            info[name] = None
    try:
        info["nvidia_smi"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
             "--format=csv,noheader"], capture_output=True, text=True, timeout=30,
            check=False).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        info["nvidia_smi"] = None
    return info


# ---------------------------------------------------------------------------------------------
# The orchestrator (no JAX in this process).


class Run:
    """OUTDIR's gpu_check.json and gpu_check.log, and the clock of the budget."""

    def __init__(self, outdir: Path, budget_s: float, tiny: bool, shared: str | None):
        self.outdir, self.tiny = outdir, tiny
        self.deadline = time.monotonic() + budget_s
        self.started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        outdir.mkdir(parents=True, exist_ok=True)
        self.log = open(outdir / "gpu_check.log", "a", buffering=1)  # noqa: SIM115
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
        if shared:
            self.env["SSGAN_SHARED"] = shared
        self.result: dict = {"started": self.started, "budget_s": budget_s,
                             "mode": "tiny" if tiny else "full", "parts": {}, "rows": {}}

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def save(self) -> None:
        self.result["summary"] = summarize(self.result)
        tmp = self.outdir / "gpu_check.json.tmp"
        tmp.write_text(json.dumps(self.result, indent=1))
        tmp.replace(self.outdir / "gpu_check.json")

    def child(self, cmd: list[str], timeout: float, env: dict | None = None) -> dict:
        """Run ``cmd``; {"rc", "seconds", "stdout"} or {"error"} on a timeout."""
        self.log.write(f"\n== {time.strftime('%H:%M:%S')} $ {' '.join(cmd)}\n")
        start = time.monotonic()
        try:
            done = subprocess.run(cmd, cwd=ROOT, env=env or self.env, stdout=subprocess.PIPE,
                                  stderr=self.log, text=True, timeout=max(1.0, timeout),
                                  check=False)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f} s",
                    "seconds": time.monotonic() - start}
        out = {"rc": done.returncode, "seconds": time.monotonic() - start,
               "stdout": done.stdout}
        if done.returncode:
            out["error"] = f"exit status {done.returncode} (see gpu_check.log)"
        return out


def _json_of(stdout: str) -> dict:
    return json.loads(stdout[stdout.index("{"):])


def run_inline_part(run: Run, name: str, need_s: float, extra: list[str]) -> None:
    """``env`` or ``parity`` in a child process of this script."""
    if run.left() < need_s:
        run.result["parts"][name] = {"skipped": f"{run.left():.0f} s left, needs {need_s}"}
        return
    res = run.child([sys.executable, "-m", "launch.bench.gpu_check", f"--part={name}", *extra],
                    run.left())
    entry = {"seconds": res["seconds"]}
    if "error" in res:
        entry["error"] = res["error"]
    else:
        entry.update(_json_of(res["stdout"]))
    run.result["parts"][name] = entry


def tests_part(run: Run) -> None:
    need = 60 if run.tiny else 150
    if run.left() < need:
        run.result["parts"]["tests"] = {"skipped": f"{run.left():.0f} s left, needs {need}"}
        return
    xml = run.outdir / "tests.xml"
    env = {**run.env, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    workers = max(2, min(8, (os.cpu_count() or 2) // 2))
    res = run.child([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                     f"-n{workers}", f"--junitxml={xml}", *(TINY_TESTS if run.tiny else TESTS)],
                    min(run.left(), 60 if run.tiny else 240), env)
    entry: dict = {"seconds": res["seconds"], "files": list(TINY_TESTS if run.tiny else TESTS)}
    if xml.exists():
        suite = ET.parse(xml).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        entry.update({k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors",
                                                         "skipped")})
        entry["failed"] = [
            f"{case.get('classname')}.{case.get('name')}: "
            f"{(bad.get('message') or '')[:300]}"
            for case in suite.iter("testcase")
            for bad in [case.find("failure"), case.find("error")] if bad is not None]
    if "error" in res and res.get("rc") not in (0, 1):
        entry["error"] = res["error"]
    entry["passed"] = res.get("rc") == 0
    run.result["parts"]["tests"] = entry


def _has_torch(python: str) -> bool:
    try:
        return subprocess.run([python, "-c", "import torch"], capture_output=True,
                              check=False, timeout=120).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _with_row_env(env: dict, row: dict) -> dict:
    """``env`` with a row's variables; a row's XLA_FLAGS are added to the caller's (a test's
    device count and compile settings, a user's flags), not put in their place."""
    out = {**env, **row}
    if "XLA_FLAGS" in row and env.get("XLA_FLAGS"):
        out["XLA_FLAGS"] = f"{env['XLA_FLAGS']} {row['XLA_FLAGS']}"
    return out


def bench_part(run: Run, rows: list[str] | None, torch_python: str) -> None:
    size = "tiny" if run.tiny else "full"
    for name, who, args, need in ROWS:
        if rows and name not in rows:
            continue
        if run.tiny:
            need = 20
            if who == "ours":
                args = [*TINY_OURS, *(a for a in args[1:] if a not in PAPER + THROUGHPUT
                                      and "crop_size" not in a and "batch_size" not in a)]
            else:
                args = [*TINY_TORCH, *(a for a in args if a.startswith(("--precision",
                                                                        "--bn", "--channels")))]
        if run.left() < need:
            run.result["rows"][name] = {"skipped": f"{run.left():.0f} s left, needs {need}"}
            continue
        if who == "ours":
            cmd = [sys.executable, "-m", "ssgan_jax.main", "--mode=benchmark",
                   f"--config={args[0]}",
                   *args[1:], *ITERATIONS[size]]
        else:
            if not _has_torch(torch_python):
                run.result["rows"][name] = {"skipped": f"{torch_python} has no torch"}
                continue
            device = [] if run.tiny else ["--device=cuda"]
            cmd = [torch_python, str(ROOT / "launch" / "bench" / "torch_steps.py"), *device, *args,
                   *T_ITERATIONS[size]]
        env = _with_row_env(run.env, ROW_ENV.get(name, {}))
        res = run.child(cmd, run.left(), env)
        entry = {"command": " ".join(cmd[1:]), "seconds": res["seconds"],
                 **({"env": ROW_ENV[name]} if name in ROW_ENV else {})}
        if "error" in res:
            entry["error"] = res["error"]
        else:
            entry["result"] = _json_of(res["stdout"])
        run.result["rows"][name] = entry
        run.save()


def _row(result: dict, name: str) -> dict | None:
    return result["rows"].get(name, {}).get("result")


def summarize(result: dict) -> dict:
    """ours / torch per setting, and the issue's goals, from what was measured."""
    summary: dict = {}
    for setting in ("paper_tf32", "throughput", "paper_fp32"):
        ours, torch = _row(result, f"ours_{setting}"), _row(result, f"torch_{setting}")
        if not ours or not torch:
            continue
        o_ms = ours["steps"]["generator_phase1"]["median_ms"]
        entry = {"ours_phase1_ms": o_ms, "torch_step_ms": torch["median_ms"],
                 "ours_over_torch_step": o_ms / torch["median_ms"]}
        if "phase2_iteration" in ours["steps"]:
            entry["ours_phase2_iteration_ms"] = ours["steps"]["phase2_iteration"]["median_ms"]
        if ours.get("eval") and torch.get("eval"):
            entry["ours_over_torch_eval"] = ours["eval"]["median_ms"] / torch["eval"]["median_ms"]
        summary[setting] = entry
    compiled = _row(result, "torch_throughput_compile")
    if compiled and "throughput" in summary:
        summary["throughput"]["ours_over_torch_compile_step"] = (
            summary["throughput"]["ours_phase1_ms"] / compiled["median_ms"])
    # Memory while training: ours from XLA's buffer assignment of the phase-1 step (the
    # device's peak counter also holds what autotuning tried while compiling), torch's peak
    # over the timed iterations (after cuDNN's autotuning in the warm-up).
    memory = _row(result, "ours_memory_cityscapes")
    program = (memory or {}).get("steps", {}).get("generator_phase1", {}).get("memory")
    if program:
        gib = program["total"] / 2**30
        summary["memory_cityscapes"] = {"ours_gib": gib, "mmseg_gib": MMSEG_CITYSCAPES_GIB,
                                        "goal_met": gib <= MMSEG_CITYSCAPES_GIB}
        if memory.get("peak_device_bytes"):
            summary["memory_cityscapes"]["ours_peak_incl_compile_gib"] = (
                memory["peak_device_bytes"] / 2**30)
        a0 = _row(result, "ours_memory_cityscapes_autotune0")
        a0 = (a0 or {}).get("steps", {}).get("generator_phase1", {}).get("memory")
        if a0:
            summary["memory_cityscapes"]["ours_autotune0_gib"] = a0["total"] / 2**30
        tm = _row(result, "torch_memory_cityscapes")
        if tm and tm.get("peak_device_bytes_train"):
            summary["memory_cityscapes"]["torch_gib"] = tm["peak_device_bytes_train"] / 2**30
    kernels = {}
    base = _row(result, "ours_throughput")
    for variant in ("bnvjp", "gemm"):
        other = _row(result, f"ours_throughput_{variant}")
        if base and other:
            kernels[variant] = (other["steps"]["generator_phase1"]["median_ms"]
                                / base["steps"]["generator_phase1"]["median_ms"])
    if kernels:
        summary["kernel_ms_over_default"] = kernels
    ratios = [summary[s]["ours_over_torch_step"] for s in ("paper_tf32", "throughput")
              if s in summary]
    parity = result["parts"].get("parity", {})
    tests = result["parts"].get("tests", {})
    summary["goals"] = {
        "ours_over_torch_at_most_1": (all(r <= 1.0 for r in ratios)
                                      if len(ratios) == 2 else None),
        "memory_within_mmseg": summary.get("memory_cityscapes", {}).get("goal_met"),
        "parity_within_tolerance": parity.get("within_tolerance"),
        "tests_passed": tests.get("passed"),
    }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("outdir", nargs="?", type=Path)
    parser.add_argument("--budget-s", type=float, default=480.0,
                        help="wall-clock seconds for everything (parts that would overrun "
                             "are skipped)")
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--rows", default="", help="bench rows to run (default: all)")
    parser.add_argument("--tiny", action="store_true", help="toy sizes (a CPU test)")
    parser.add_argument("--shared", default=None, help="SSGAN_SHARED for the tests part")
    parser.add_argument("--torch-python", default=sys.executable)
    parser.add_argument("--reference", type=Path, default=REFERENCE)
    parser.add_argument("--make-reference", type=Path, default=None)
    parser.add_argument("--part", choices=("env", "parity"), default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make_reference:
        make_reference(args.make_reference)
        return
    if args.part:
        out = env_part() if args.part == "env" else parity_part(args.reference)
        print(json.dumps(out, indent=1))
        return
    if args.outdir is None:
        parser.error("OUTDIR is required")
    parts = [p for p in args.parts.split(",") if p]
    unknown = sorted(set(parts) - set(PARTS))
    known_rows = {r[0] for r in ROWS}
    rows = [r for r in args.rows.split(",") if r]
    if unknown or set(rows) - known_rows:
        parser.error(f"unknown parts {unknown} or rows {sorted(set(rows) - known_rows)}; parts: "
                     f"{list(PARTS)}, rows: {[r[0] for r in ROWS]}")
    if not args.reference.exists():
        parser.error(f"{args.reference} not found: make it on the CPU with --make-reference")
    run = Run(args.outdir, args.budget_s, args.tiny, args.shared)
    for part in parts:
        print(f"gpu_check: {part} ({run.left():.0f} s left)", file=sys.stderr, flush=True)
        if part == "env":
            run_inline_part(run, "env", 5, [])
        elif part == "parity":
            run_inline_part(run, "parity", 30, [f"--reference={args.reference}"])
        elif part == "tests":
            tests_part(run)
        else:
            bench_part(run, rows, args.torch_python)
        run.save()
    run.result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    run.save()
    print(json.dumps(run.result["summary"], indent=1))


if __name__ == "__main__":
    main()
