"""Data parallelism with ``jax.sharding``: one ``data`` mesh axis, parameters replicated.

The train loop never calls ``pmap``. It places the train state replicated over a one-axis
``Mesh`` and each batch sharded along its leading (batch) axis; XLA's SPMD partitioner then
inserts the gradient all-reduce itself. On one device every function here is a no-op, so the
same ``fit`` call runs unchanged on a laptop CPU and on an 8-device TPU.

Reference: JAX documentation, "Distributed arrays and automatic parallelization".
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def make_mesh(mesh: Mesh | str | None) -> Mesh | None:
    """Resolve the ``mesh=`` argument of ``fit``.

    Args:
        mesh: ``None`` (no sharding: arrays stay on the default device), ``'auto'`` (a
            one-axis mesh named ``'data'`` over all of ``jax.devices()``), or a ``Mesh`` that
            has a ``'data'`` axis.

    Returns:
        The mesh, or ``None``.
    """
    if mesh is None:
        return None
    if isinstance(mesh, str):
        if mesh != "auto":
            raise ValueError("make_mesh: expected None, 'auto' or a jax.sharding.Mesh, "
                             f"got {mesh!r}")
        return Mesh(np.asarray(jax.devices()), (DATA_AXIS,))
    if not isinstance(mesh, Mesh):
        raise TypeError(f"make_mesh: expected None, 'auto' or a jax.sharding.Mesh, "
                        f"got {type(mesh).__name__}")
    if DATA_AXIS not in mesh.axis_names:
        raise ValueError(f"make_mesh: the mesh needs an axis named {DATA_AXIS!r}, "
                         f"got axes {mesh.axis_names}")
    return mesh


def data_size(mesh: Mesh | None) -> int:
    """Number of shards along the ``'data'`` axis (1 without a mesh)."""
    return 1 if mesh is None else int(mesh.shape[DATA_AXIS])


def check_batch_divisible(batch_size: int, mesh: Mesh | None, *, where: str = "fit") -> None:
    """Raise ``ValueError`` unless the global batch splits evenly over the ``'data'`` axis."""
    n = data_size(mesh)
    if batch_size % n:
        raise ValueError(
            f"{where}: the global batch of {batch_size} examples is not divisible by the "
            f"{n} devices of the mesh's {DATA_AXIS!r} axis; choose a batch size that is a "
            f"multiple of {n} (full-batch training uses the whole dataset as one batch)")


def replicated(mesh: Mesh | None):
    """The sharding that copies an array onto every device of ``mesh`` (None without mesh)."""
    return None if mesh is None else NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh | None, *, leading: int = 0):
    """The sharding that splits axis ``leading`` of an array over the ``'data'`` axis."""
    if mesh is None:
        return None
    return NamedSharding(mesh, PartitionSpec(*([None] * leading), DATA_AXIS))


def replicate(tree, mesh: Mesh | None):
    """Place every leaf of ``tree`` on all devices of ``mesh`` (a fresh copy of each leaf).

    A fresh copy matters: the train loop donates the state's buffers, and the caller's own
    arrays (the ``params`` passed to ``fit``) must stay valid.
    """
    import jax.numpy as jnp

    tree = jax.tree.map(lambda a: jnp.array(a, copy=True), tree)
    if mesh is None:
        return tree
    return jax.device_put(tree, replicated(mesh))


def put_data(data, mesh: Mesh | None):
    """Put a whole dataset (dict of arrays) on the devices, replicated over ``mesh``.

    Used for data that fits in device memory: the jitted epoch gathers each batch from it and
    ``constrain_batch`` splits the gathered batch over ``'data'``, so each device computes
    only its share. Every process of a multi-process run passes the same arrays.
    """
    import jax.numpy as jnp

    data = {k: jnp.asarray(v) for k, v in data.items()}
    return jax.device_put(data, replicated(mesh)) if mesh is not None else data


def shard_batch(batch, mesh: Mesh | None):
    """Put a host batch (dict of arrays with a leading batch axis) on the devices.

    This is the single place where streamed data enters the devices; a multi-process run can
    replace it by ``jax.make_array_from_process_local_data``.

    Args:
        batch: a pytree of arrays shaped ``[batch, ...]``.
        mesh: the mesh, or ``None`` for the default device.

    Returns:
        The same pytree as ``jax.Array``s sharded along the batch axis.
    """
    if mesh is None:
        return jax.device_put(batch)
    leaves = jax.tree.leaves(batch)
    if leaves:
        check_batch_divisible(int(np.shape(leaves[0])[0]), mesh, where="shard_batch")
    return jax.device_put(batch, batch_sharding(mesh))


def constrain_batch(batch, mesh: Mesh | None):
    """Inside a jitted function: ask XLA to keep a gathered batch split over ``'data'``."""
    if mesh is None:
        return batch
    return jax.lax.with_sharding_constraint(batch, batch_sharding(mesh))
