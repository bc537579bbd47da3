"""Joining a multi-process job (several hosts, or several processes on one CPU machine).

Read from the environment, in this order:
  * ``SSGAN_COORDINATOR=host:port``, ``SSGAN_NUM_PROCESSES``, ``SSGAN_PROCESS_ID``: explicit
    (``launch/cpu_2proc.sh`` uses these);
  * a SLURM job step with more than one task: ``jax.distributed.initialize()`` detects it
    (``launch/slurm.sh``);
  * otherwise a single process: nothing to do.
Each process then feeds its local devices; pmap collectives span all devices.
"""

from __future__ import annotations

import os

import jax

from ssgan_jax.errors import ConfigError


def initialize() -> None:
    """Call once, before any JAX computation."""
    coordinator = os.environ.get("SSGAN_COORDINATOR")
    slurm_tasks = int(os.environ.get("SLURM_NTASKS", "1"))
    if not coordinator and slurm_tasks <= 1:
        return
    # CPU processes exchange collectives through gloo (no effect on GPU backends).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if coordinator:
        try:
            num = int(os.environ["SSGAN_NUM_PROCESSES"])
            pid = int(os.environ["SSGAN_PROCESS_ID"])
        except (KeyError, ValueError) as e:
            raise ConfigError(
                "SSGAN_COORDINATOR is set, so SSGAN_NUM_PROCESSES and SSGAN_PROCESS_ID must be "
                f"integers too ({e})"
            ) from e
        jax.distributed.initialize(coordinator, num_processes=num, process_id=pid)
    else:
        jax.distributed.initialize()
    print(f"process {jax.process_index()}/{jax.process_count()}: "
          f"{jax.local_device_count()} local of {jax.device_count()} devices", flush=True)


def barrier(name: str) -> None:
    """Wait until every process gets here (no-op for one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
