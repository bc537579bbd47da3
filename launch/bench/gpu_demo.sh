#!/usr/bin/env bash
# The README demo end to end on a machine that has JAX but not this package's other needs
# (the lent GPU image: no TensorFlow, TFDS, Grain or ml_collections): installs the wheels of
# launch/tools/gpu_wheels.py into a private folder, then prepares the packaged mini CamVid
# (TFDS writes ArrayRecord files without TensorFlow), trains both phases, evaluates the best
# checkpoint on the test split and predicts it, each mode's log and wall time in OUTDIR.
#
#   python -m launch.tools.gpu_wheels --download .whl        # here, once (about 10 MiB)
#   launch/bench/gpu_demo.sh .whl OUTDIR [--config.x=y ...]  # there, from the repository root
#
# Environment: PYTHON (default python3), CONFIG (default configs/demo.py; e.g.
# configs/demo.py:training=semi). Extra arguments go to every mode.
set -euo pipefail
WHEELS="${1:?usage: launch/bench/gpu_demo.sh WHEELS_DIR OUTDIR [--config.x=y ...]}"
OUT="${2:?usage: launch/bench/gpu_demo.sh WHEELS_DIR OUTDIR [--config.x=y ...]}"
shift 2
CONFIG="${CONFIG:-configs/demo.py}"
mkdir -p "$OUT"
source "$(dirname "$0")/gpu_env.sh" "$WHEELS"
RUN="$OUT/demo"
echo "{" > "$OUT/demo_times.json"
first=1
for mode in train eval predict; do
  start=$EPOCHREALTIME
  "$PYTHON" -m ssgan_jax.main --config="$CONFIG" --workdir="$RUN" --mode="$mode" "$@" \
    > "$OUT/demo_$mode.log" 2>&1 || { echo "--mode=$mode failed:" >&2; tail -20 "$OUT/demo_$mode.log" >&2; exit 1; }
  end=$EPOCHREALTIME
  [ $first = 1 ] || echo "," >> "$OUT/demo_times.json"
  first=0
  printf ' "%s_s": %s' "$mode" "$("$PYTHON" -c "print(round($end - $start, 1))")" \
    >> "$OUT/demo_times.json"
  tail -3 "$OUT/demo_$mode.log"
done
echo "}" >> "$OUT/demo_times.json"
cat "$OUT/demo_times.json"
