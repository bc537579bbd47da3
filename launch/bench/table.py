"""Markdown table of benchmark JSON files (``--mode=benchmark`` outputs), for
docs/PERFORMANCE.md.

    python -m launch.bench.table OUTDIR            (every OUTDIR/*.json, by name)
    python -m launch.bench.table a.json b.json

One row per file: the device, model, dtype, global batch and crop; median ms of the phase-1
generator step and of the phase-2 iteration as training runs it, their ratio; images/s of
phase 1; GFLOP per phase-1 step (all devices), achieved TFLOP/s and the fraction of the peak
(where the JSON has one); eval images/s; compile seconds of the phase-1 step; peak device
memory. A step the file did not time is "-".
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

COLUMNS = ("run", "device", "model", "dtype", "batch", "crop", "G phase 1 ms",
           "phase-2 iteration ms", "iteration / phase 1", "images/s", "GFLOP / step",
           "TFLOP/s", "of peak", "eval images/s", "compile s", "peak device GB")


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def row(name: str, out: dict) -> list[str]:
    """The table cells of one benchmark JSON object."""
    steps = out["steps"]
    g1 = steps.get("generator_phase1", {})
    it = steps.get("phase2_iteration", {})
    devices = out["device_count"]
    flops = g1.get("flops_per_device")
    peak_bytes = out.get("peak_device_bytes")
    return [
        name,
        f"{out['device_count']} x {out['device_kind']}",
        out["model"],
        out["dtype"],
        str(out["global_batch"]),
        "x".join(str(s) for s in out["crop"]),
        _fmt(g1.get("median_ms"), ".1f"),
        _fmt(it.get("median_ms"), ".1f"),
        _fmt(out.get("phase2_iteration_over_phase1_step"), ".2f"),
        _fmt(g1.get("images_per_s"), ".1f"),
        _fmt(flops * devices / 1e9 if flops else None, ".1f"),
        _fmt(g1["achieved_flops_per_s"] / 1e12 if g1.get("achieved_flops_per_s") else None,
             ".1f"),
        _fmt(g1.get("fraction_of_peak"), ".1%"),
        _fmt(out.get("eval", {}).get("images_per_s"), ".1f"),
        _fmt(g1.get("compile_s"), ".1f"),
        _fmt(peak_bytes / 2**30 if peak_bytes else None, ".1f"),
    ]


def table(files: list[Path]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for path in files:
        text = path.read_text()
        try:
            out = json.loads(text[text.index("{"):])
        except ValueError as e:
            raise SystemExit(f"{path}: not a benchmark JSON object ({e})") from None
        lines.append("| " + " | ".join(row(path.stem, out)) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit(__doc__)
    files: list[Path] = []
    for arg in map(Path, argv):
        files += sorted(arg.glob("*.json")) if arg.is_dir() else [arg]
    if not files:
        raise SystemExit(f"no .json files in {' '.join(argv)}")
    print(table(files))


if __name__ == "__main__":
    main(sys.argv[1:])
