"""Devices, processes and sharding: the one module both wings place arrays and join jobs with.

**Placement.** Steps are ``jax.pmap``-ed over this process's devices on one axis, ``AXIS``:
the state (or G's variables) one copy on every device (``on_devices``, ``in_axes=None``), the
batch split along its leading axis (``shard_batch``, ``prefetch``); ``pmap_step`` and
``pmap_eval`` are the two ways the wings map a function. ``sum_over_processes`` adds a host
array over the processes of a job.

**Joining a multi-process job** (several hosts, or several processes on one CPU machine):

Read from the environment, in this order:
  * ``SSGAN_COORDINATOR=host:port``, ``SSGAN_NUM_PROCESSES``, ``SSGAN_PROCESS_ID``: explicit
    (``launch/cluster/cpu_2proc.sh`` uses these);
  * a SLURM job step with more than one task: ``jax.distributed.initialize()`` detects it
    (``launch/cluster/slurm.sh``);
  * otherwise a single process: nothing to do.
Each process then feeds its local devices; pmap collectives span all devices.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ssgan_jax.core.errors import ConfigError

AXIS = "batch"  # the pmap axis of every step


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


def sum_over_processes(local: np.ndarray) -> np.ndarray:
    """This process's ``local`` array summed with every other process's (itself alone in a
    single-process run)."""
    if jax.process_count() == 1:
        return local
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(local)).sum(axis=0)


def one_device(tree):
    """``tree`` on this process's first device (a jitted one-device program's input); arrays
    already on the devices are copied there on the device, not through the host."""
    return jax.device_put(tree, jax.local_devices()[0])


def local_mesh() -> Mesh:
    """This process's devices on one axis named ``AXIS``: the mesh ``jax.pmap`` runs on."""
    return Mesh(np.asarray(jax.local_devices()), (AXIS,))


def on_devices(tree):
    """``tree`` (host arrays) copied to every local device, as a pmapped step with
    ``in_axes=None`` takes it and, with ``out_axes=None``, returns it. Placing the state so
    before the first step keeps that step's input layout equal to its later inputs (its own
    outputs): one compilation per phase, not two."""
    return jax.device_put(tree, NamedSharding(local_mesh(), PartitionSpec()))


def shard_batch(tree):
    """``[local_devices, ...]`` host arrays split over the local devices along axis 0, as a
    pmapped step with ``in_axes=0`` takes them."""
    return jax.device_put(tree, NamedSharding(local_mesh(), PartitionSpec(AXIS)))


def prefetch(batches: Iterator[Any], size: int = 2) -> Iterator[Any]:
    """Yield ``shard_batch(b)`` for each ``b`` of ``batches``, keeping ``size`` batches in
    flight: the host-to-device copies overlap the running step."""
    queue: collections.deque = collections.deque()
    for batch in batches:
        queue.append(shard_batch(batch))
        if len(queue) > size - 1:
            yield queue.popleft()
    while queue:
        yield queue.popleft()


def pmap_step(fn, *, donate: bool = False, devices=None):
    """``fn(state, batch) -> (state, metrics)`` pmapped over ``AXIS`` the way training runs it:
    the state is one copy on every device (``in_axes=None``, ``out_axes=None``; the step keeps
    it identical on all devices by averaging gradients and BatchNorm statistics), the batch
    is split along its leading axis and the metrics (averaged over the devices) come back
    once; ``donate`` lets the step reuse the state's buffers."""
    return jax.pmap(fn, axis_name=AXIS, in_axes=(None, 0), out_axes=(None, None),
                    donate_argnums=(0,) if donate else (), devices=devices)


def pmap_metrics(fn):
    """``fn(state, batch) -> metrics`` pmapped as ``pmap_step`` maps a step, for a function
    that only looks (the adversary probe): the metrics, identical on every device, come back
    once."""
    return jax.pmap(fn, axis_name=AXIS, in_axes=(None, 0), out_axes=None)


def pmap_eval(fn, batch_args: int = 1):
    """``fn(variables, *batch)`` pmapped over ``AXIS`` with the variables one copy on every
    device (``in_axes=None``) and the ``batch_args`` batch arguments and the outputs split
    along their leading axis."""
    return jax.pmap(fn, axis_name=AXIS, in_axes=(None,) + (0,) * batch_args)
