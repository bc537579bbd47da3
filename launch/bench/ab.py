"""Before/after speed of two source trees, interleaved: the benchmark (``--mode=benchmark``) from
tree A, then from tree B, ``--rounds`` times, each in a fresh process (so both see the same
machine state, round by round). Prints one JSON object: per tree and step, the median of each
round and the median over rounds, and the ratio B / A.

    git worktree add /tmp/before <commit>      # or: git archive <commit> | tar -x -C /tmp/before
    python -m launch.bench.ab --a=/tmp/before --b=. --rounds=3 -- \
        --config=configs/camvid.py:deeplabv3_resnet50_gan --config.batch_size=2 \
        --config.data.crop_size='(180,240)' --config.model.bn_mode=train \
        --config.benchmark.steps="('generator_phase1','phase2_iteration')" \
        --config.benchmark.eval=False --config.benchmark.iterations=5 \
        --config.benchmark.warmup=1

Each tree's ``ssgan_jax`` is imported from that tree (``PYTHONPATH``), whatever is installed;
the JSON of each run says which folder it came from.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

_WHERE = "import ssgan_jax, sys; print(ssgan_jax.__file__, file=sys.stderr)"


def _run(tree: str, args: list[str]) -> tuple[dict, str]:
    tree = os.path.abspath(tree)
    env = {**os.environ, "PYTHONPATH": tree + os.pathsep + os.environ.get("PYTHONPATH", "")}
    if os.path.exists(os.path.join(tree, "ssgan_jax", "training", "benchmark.py")):
        code = (f"{_WHERE}\nimport sys\nsys.argv = ['main', '--mode=benchmark', *{args!r}]\n"
                "from ssgan_jax.main import _run\n_run()")
    else:  # a tree from before --mode=benchmark (its own CLI)
        code = (f"{_WHERE}\nimport sys\nsys.argv = ['benchmark', *{args!r}]\n"
                "from ssgan_jax.benchmark import main\nmain()")
    done = subprocess.run([sys.executable, "-c", code], cwd=tree, env=env, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"benchmark in {tree} failed:\n{done.stderr[-3000:]}")
    where = done.stderr.splitlines()[0]
    if not where.startswith(tree):
        raise SystemExit(f"{tree}: imported ssgan_jax from {where}, not from the tree")
    text = done.stdout
    return json.loads(text[text.index("{"):]), where


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", required=True, help="source tree A (before)")
    parser.add_argument("--b", required=True, help="source tree B (after)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("benchmark_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    bench_args = [a for a in args.benchmark_args if a != "--"]
    medians: dict[str, dict[str, list[float]]] = {"a": {}, "b": {}}
    device = None
    for r in range(args.rounds):
        for key, tree in (("a", args.a), ("b", args.b)):
            out, where = _run(tree, bench_args)
            device = f"{out['local_device_count']} x {out['device_kind']}"
            for step, timing in out["steps"].items():
                medians[key].setdefault(step, []).append(timing["median_ms"])
            print(f"round {r + 1} {key} ({where}): " + ", ".join(
                f"{s} {t['median_ms']:.0f} ms" for s, t in out["steps"].items()),
                file=sys.stderr, flush=True)
    summary = {"device": device, "rounds": args.rounds, "args": bench_args,
               "a": os.path.abspath(args.a), "b": os.path.abspath(args.b), "steps": {}}
    for step in medians["a"]:
        a, b = medians["a"][step], medians["b"].get(step, [])
        summary["steps"][step] = {
            "a_ms_per_round": a, "b_ms_per_round": b,
            "a_median_ms": statistics.median(a), "b_median_ms": statistics.median(b) if b else None,
            "b_over_a": statistics.median(b) / statistics.median(a) if b else None,
            "b_faster_rounds": sum(y < x for x, y in zip(a, b, strict=False)),
        }
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
