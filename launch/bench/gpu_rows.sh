#!/usr/bin/env bash
# The GPU rows of docs/PERFORMANCE.md: one `python -m ssgan_jax.main --mode=benchmark` process per row, its
# JSON written to OUTDIR/<row>.json; then `python -m launch.bench.table OUTDIR` prints the table.
#
#   launch/bench/gpu_rows.sh OUTDIR [ROW ...]          (no ROW: all of them, in the order below)
#
# Rows (METHOD.md section 6 for the paper's setting; the throughput setting):
#   <model>_paper       500x500 crops, batch 2, float32 (TF32 on the GPU), frozen BatchNorm
#   <model>_throughput  512x512 crops, batch 16, bfloat16, BatchNorm with batch statistics
#   <model>_paper_gemm  the paper row with the XLA:CPU GEMM forms of the convs forced on
#                       (model.conv_rewrites=on; "auto" leaves GPU convs to cuDNN)
#   <model>_throughput_bnvjp  the throughput row with models/norm.py's BatchNorm backward
#                       forced on (model.bn_vjp=on; "auto" uses flax's BatchNorm on GPUs)
# for <model> in deeplabv3_resnet50, fcn8s_vgg16. The batch is split over all local GPUs.
# Environment: PYTHON (default python), EXTRA (more --config overrides, e.g.
# EXTRA="--config.benchmark.iterations=50"). The benchmark needs JAX, flax, optax and
# ml_collections only (no TF): on a machine without the package installed, run it from the
# repository root with PYTHONPATH=. .
set -euo pipefail
OUT="${1:?usage: launch/bench/gpu_rows.sh OUTDIR [ROW ...]}"
shift
PYTHON="${PYTHON:-python}"
MODELS=(deeplabv3_resnet50 fcn8s_vgg16)
ROWS=("$@")
if [ ${#ROWS[@]} -eq 0 ]; then
  for m in "${MODELS[@]}"; do ROWS+=("${m}_paper" "${m}_throughput"); done
  ROWS+=(deeplabv3_resnet50_paper_gemm deeplabv3_resnet50_throughput_bnvjp)
fi
mkdir -p "$OUT"
for row in "${ROWS[@]}"; do
  model=""
  for m in "${MODELS[@]}"; do [[ "$row" == "$m"_* ]] && model=$m; done
  setting=${row#"${model}_"}
  case "$model:$setting" in
    :*) echo "unknown row $row: <model>_<setting> with model one of ${MODELS[*]}" >&2; exit 2 ;;
    *:paper) args=(--config.batch_size=2 "--config.data.crop_size=(500,500)") ;;
    *:paper_gemm) args=(--config.batch_size=2 "--config.data.crop_size=(500,500)"
                        --config.model.conv_rewrites=on) ;;
    *:throughput) args=(--config.batch_size=16 "--config.data.crop_size=(512,512)"
                        --config.model.dtype=bfloat16 --config.model.bn_mode=train
                        --config.eval_batch_size=16) ;;
    *:throughput_bnvjp) args=(--config.batch_size=16 "--config.data.crop_size=(512,512)"
                              --config.model.dtype=bfloat16 --config.model.bn_mode=train
                              --config.eval_batch_size=16 --config.model.bn_vjp=on) ;;
    *) echo "unknown setting '$setting' in $row: paper, paper_gemm, throughput or" \
            "throughput_bnvjp" >&2; exit 2 ;;
  esac
  echo "== $row" >&2
  # shellcheck disable=SC2086  # EXTRA is a list of overrides
  "$PYTHON" -m ssgan_jax.main --mode=benchmark "--config=configs/voc2012.py:${model}_gan" "${args[@]}" \
      --config.benchmark.iterations=20 --config.benchmark.warmup=3 ${EXTRA:-} \
      > "$OUT/$row.json.tmp"
  mv "$OUT/$row.json.tmp" "$OUT/$row.json"
done
