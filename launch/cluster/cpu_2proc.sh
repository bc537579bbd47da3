#!/usr/bin/env bash
# A 2-process job on one CPU machine: the multi-host code path (jax.distributed, per-process
# data, cross-process pmap collectives over gloo), for testing without a cluster.
#
#   launch/cluster/cpu_2proc.sh --config=configs/demo.py --workdir=/tmp/ssgan_2proc [--config.x=y ...]
#
# Each process gets DEVICES_PER_PROC CPU devices (default 1); the global batch is split over
# all of them exactly as one process with 2 x DEVICES_PER_PROC devices would split it.
set -euo pipefail
PORT="${PORT:-$((20000 + RANDOM % 20000))}"
DEVICES_PER_PROC="${DEVICES_PER_PROC:-1}"
PYTHON="${PYTHON:-python}"
export SSGAN_COORDINATOR="localhost:${PORT}" SSGAN_NUM_PROCESSES=2
# The caller's XLA flags are kept; the device count is appended (the last value wins).
export XLA_FLAGS="${XLA_FLAGS:-} --xla_force_host_platform_device_count=${DEVICES_PER_PROC}"
export JAX_PLATFORMS=cpu
SSGAN_PROCESS_ID=1 "$PYTHON" -m ssgan_jax.main "$@" > "${LOG1:-/dev/null}" 2>&1 &
OTHER=$!
trap 'kill "$OTHER" 2>/dev/null || true' EXIT
SSGAN_PROCESS_ID=0 "$PYTHON" -m ssgan_jax.main "$@"
wait "$OTHER"
