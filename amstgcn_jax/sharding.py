"""Data parallelism over a 1-D ('data',) device mesh: replicated state, batch split on axis 0.

This is the `jax.jit` + `NamedSharding` style that replaces `jax.pmap` (in maintenance mode since
JAX 0.8). Under jit the batch axis is global, so BatchNorm statistics are computed over the whole
global batch (SyncBN semantics). PyTorch `nn.DataParallel` (ST-GCN, CTR-GCN) normalises per GPU
replica instead: a known, intended difference for training (weights convert either way).
"""

import os

import jax
import numpy as np
from absl import logging
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"


def maybe_initialize_distributed() -> None:
    """Calls `jax.distributed.initialize` when a multi-process launch is described in the env.

    Recognised: JAX_COORDINATOR_ADDRESS + JAX_NUM_PROCESSES + JAX_PROCESS_ID (explicit), or a
    SLURM job with more than one task (JAX detects the rest itself).
    """
    if jax.distributed.is_initialized():
        return
    addr = os.environ.get("JAX_COORDINATOR_ADDRESS")
    if addr:
        jax.distributed.initialize(
            coordinator_address=addr,
            num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
            process_id=int(os.environ["JAX_PROCESS_ID"]),
        )
    elif int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        jax.distributed.initialize()
    else:
        return
    logging.info("jax.distributed: process %d of %d", jax.process_index(), jax.process_count())


def make_mesh(devices=None) -> Mesh:
    """A 1-D mesh over `devices` (default: all devices of all processes), Auto axis type."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(DATA_AXIS))


def local_batch_size(global_batch_size: int, mesh: Mesh) -> int:
    """The per-process share of a global batch; checks it splits evenly over the devices."""
    if global_batch_size % mesh.size:
        raise ValueError(
            f"batch_size={global_batch_size} is not divisible by the {mesh.size} devices of the "
            "mesh; choose a multiple of the device count")
    return global_batch_size // jax.process_count()


def shard_batch(batch: dict, mesh: Mesh) -> dict:
    """Host-local numpy batch (this process's rows) -> global arrays sharded along 'data'."""
    sharding = batch_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
            for k, v in batch.items()}


def gather_to_host(x) -> np.ndarray:
    """A global (possibly multi-host) array as one numpy array on every process."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(jax.device_get(x))
