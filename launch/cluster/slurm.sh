#!/usr/bin/env bash
# Multi-node GPU training under SLURM: one task per node, each task drives its node's GPUs
# (pmap over local devices, collectives across nodes). jax.distributed.initialize() reads the
# coordinator, process count and id from SLURM's environment.
#
#   sbatch --nodes=2 launch/cluster/slurm.sh --config=configs/voc2012.py:deeplabv3_resnet50_gan \
#       --workdir=/shared/runs/voc_r50_gan --config.data.data_dir=/shared/tensorflow_datasets
#
# The workdir and data_dir must be on a filesystem every node sees. Resubmitting the same
# command resumes from the latest checkpoint.
#SBATCH --job-name=ssgan
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=32
#SBATCH --time=24:00:00
#SBATCH --output=ssgan-%j.out
set -euo pipefail
srun --kill-on-bad-exit=1 python -m ssgan_jax.main --mode=train "$@"
