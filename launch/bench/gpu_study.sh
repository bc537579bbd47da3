#!/usr/bin/env bash
# One unit of the registered full-width CamVid study (launch/experiments/camvid_gpu_study.py,
# docs/results/prereg_camvid_gpu.md) on a lent GPU, from the repository root, with the 480x360
# CamVid copied into the checkout (shared/camvid480, about 40 MiB; DATA overrides it):
#
#   python -m launch.tools.gpu_wheels --download .whl             # here, once
#   launch/bench/gpu_study.sh .whl OUTDIR select                  # there: the lam choice
#   launch/bench/gpu_study.sh .whl OUTDIR seed1                   # there: seed1 ... seed5
#
# OUTDIR gets the unit's record (records/UNIT.json: commit it to
# docs/results/gpu/camvid_gpu_study/) and every run's log; the runs' checkpoints stay in
# SSGAN_RUNS (default /tmp/ssgan_gpu_study): too large to bring back. A seed unit reads the
# committed select.json. Extra arguments go to the study script (--tiny: toy sizes).
set -euo pipefail
WHEELS="${1:?usage: launch/bench/gpu_study.sh WHEELS_DIR OUTDIR UNIT [--tiny]}"
OUT="${2:?usage: launch/bench/gpu_study.sh WHEELS_DIR OUTDIR UNIT [--tiny]}"
UNIT="${3:?usage: launch/bench/gpu_study.sh WHEELS_DIR OUTDIR UNIT [--tiny]}"
shift 3
DATA="${DATA:-shared/camvid480}"
RUNS="${SSGAN_RUNS:-/tmp/ssgan_gpu_study}"
COMMITTED=docs/results/gpu/camvid_gpu_study/select.json
mkdir -p "$OUT/records"
source "$(dirname "$0")/gpu_env.sh" "$WHEELS"
if [ "$UNIT" != select ] && [ -f "$COMMITTED" ]; then
  cp "$COMMITTED" "$OUT/records/"
fi
status=0
"$PYTHON" -m launch.experiments.camvid_gpu_study --unit="$UNIT" --data="$DATA" --out="$RUNS" \
  --results-dir="$OUT/records" "$@" > "$OUT/$UNIT.log" 2>&1 || status=$?
for log in "$RUNS/$UNIT"/*/log.txt; do
  [ -f "$log" ] && cp "$log" "$OUT/${UNIT}_$(basename "$(dirname "$log")").log"
done
tail -5 "$OUT/$UNIT.log"
exit $status
