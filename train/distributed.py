"""Multi-process training helpers: start JAX's runtime, feed each process's share of a batch.

JAX runs one program per process ("multi-controller"): every process executes the same
jitted functions over a global ``Mesh`` of all processes' devices, and each process owns only
the array shards that live on its own devices. That is how TPU pods and GPU clusters are used,
and on CPU it works over loopback once the CPU collectives are switched to gloo.

The recipe (issue 4, part 7):

1. :func:`initialize` in every process, before anything touches a device;
2. a mesh over *all* devices (:func:`data_mesh`); parameters replicated (:func:`replicate`);
3. each process reads only its rows of every global batch (:func:`process_rows`) and the
   global batch is assembled without any copy between processes
   (:func:`global_batch`, i.e. ``jax.make_array_from_process_local_data``);
4. results come back to the host with :func:`to_host` (a collective: every process calls it).

Reference: JAX documentation, "Multi-process environments" and "Distributed arrays and
automatic parallelization".
"""

from __future__ import annotations

import re

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"

_ADDRESS = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.\-]+):(\d{1,5})$")


def initialize(
    coordinator_address: str,
    num_processes: int,
    process_id: int,
    *,
    local_device_count: int | None = None,
    cpu_collectives: str | None = "gloo",
    timeout_s: int = 120,
) -> None:
    """Join a multi-process JAX job (call first thing, in every process).

    Args:
        coordinator_address: ``'host:port'`` of process 0's coordinator, e.g.
            ``'127.0.0.1:12345'`` for processes on one machine.
        num_processes: total number of processes, >= 1.
        process_id: this process's index in ``[0, num_processes)``.
        local_device_count: on CPU, how many devices this process exposes (sets
            ``jax_num_cpu_devices``); ``None`` keeps the default (1, or ``XLA_FLAGS``).
        cpu_collectives: CPU cross-process collectives implementation (``'gloo'``, ``'mpi'``)
            or ``None`` to leave JAX's setting alone. Without one, a CPU computation that needs
            another process's data fails.
        timeout_s: how long to wait for all processes to connect before failing.

    Raises:
        ValueError: on a malformed address or out-of-range counts.
        RuntimeError: if JAX's backend was already initialized in this process (devices were
            used before this call), which makes the settings above ineffective.
    """
    if not isinstance(coordinator_address, str) or not _ADDRESS.match(coordinator_address):
        raise ValueError(f"initialize: expected coordinator_address 'host:port', "
                         f"got {coordinator_address!r}")
    if not isinstance(num_processes, int) or num_processes < 1:
        raise ValueError(f"initialize: expected num_processes >= 1, got {num_processes!r}")
    if not isinstance(process_id, int) or not 0 <= process_id < num_processes:
        raise ValueError(f"initialize: expected 0 <= process_id < {num_processes}, "
                         f"got {process_id!r}")
    if local_device_count is not None and (
            not isinstance(local_device_count, int) or local_device_count < 1):
        raise ValueError(f"initialize: expected local_device_count >= 1 or None, "
                         f"got {local_device_count!r}")
    if _backend_initialized():
        raise RuntimeError("initialize: JAX's backend is already initialized in this process; "
                           "call train.distributed.initialize before any array is created")
    if local_device_count is not None:
        jax.config.update("jax_num_cpu_devices", local_device_count)
    if cpu_collectives is not None:
        jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
    jax.distributed.initialize(
        coordinator_address=coordinator_address,
        num_processes=num_processes,
        process_id=process_id,
        initialization_timeout=timeout_s,
    )


def _backend_initialized() -> bool:
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):  # private API moved: do not block the user
        return False


def shutdown() -> None:
    """Leave the multi-process job (a no-op when :func:`initialize` was not called)."""
    jax.distributed.shutdown()


def data_mesh(devices=None, *, axis: str = DATA_AXIS) -> Mesh:
    """A one-axis mesh over all devices of all processes, ordered by process then device.

    Args:
        devices: the devices to use (default ``jax.devices()``: every process's devices).
        axis: the axis name (``'data'``, which ``train.loop.fit`` expects).

    Returns:
        ``Mesh(devices, (axis,))``.
    """
    devices = list(jax.devices() if devices is None else devices)
    devices.sort(key=lambda d: (d.process_index, d.id))
    return Mesh(np.asarray(devices), (axis,))


def _check_mesh(mesh: Mesh, axis: str, where: str) -> None:
    if not isinstance(mesh, Mesh):
        raise TypeError(f"{where}: expected a jax.sharding.Mesh, got {type(mesh).__name__}")
    if axis not in mesh.axis_names:
        raise ValueError(f"{where}: the mesh has axes {mesh.axis_names}, expected one "
                         f"named {axis!r}")


def process_rows(global_batch_size: int, mesh: Mesh, *, axis: str = DATA_AXIS) -> slice:
    """The rows of a global batch that this process must feed.

    Derived from the mesh itself (which shards of ``[global_batch_size, ...]`` sharded along
    ``axis`` live on this process's devices), so it is right for any device order.

    Args:
        global_batch_size: rows of the global batch; must be divisible by the size of
            ``axis``.
        mesh: the global mesh.
        axis: the data axis name.

    Returns:
        A ``slice(start, stop)`` of length ``global_batch_size / process_count`` (when every
        process has the same number of devices on ``axis``).

    Raises:
        ValueError: if the batch does not split evenly, or this process's shards are not one
            contiguous block (a mesh whose device order interleaves processes).
    """
    _check_mesh(mesh, axis, "process_rows")
    n = int(mesh.shape[axis])
    if not isinstance(global_batch_size, (int, np.integer)) or global_batch_size < 1:
        raise ValueError(f"process_rows: expected a positive global batch size, "
                         f"got {global_batch_size!r}")
    if global_batch_size % n:
        raise ValueError(f"process_rows: the global batch of {global_batch_size} rows is not "
                         f"divisible by the {n} devices of the mesh's {axis!r} axis")
    sharding = NamedSharding(mesh, PartitionSpec(axis))
    index_map = sharding.addressable_devices_indices_map((int(global_batch_size),))
    spans = sorted({(idx[0].start or 0, idx[0].stop or global_batch_size)
                    for idx in index_map.values()})
    for (_, stop), (start, _) in zip(spans[:-1], spans[1:], strict=True):
        if stop != start:
            raise ValueError(f"process_rows: this process's shards {spans} are not contiguous; "
                             f"order the mesh's devices by process (see data_mesh)")
    return slice(spans[0][0], spans[-1][1])


def process_share(batch, mesh: Mesh, *, axis: str = DATA_AXIS):
    """This process's rows of a host batch that every process holds in full.

    Args:
        batch: a pytree of arrays ``[global_batch, ...]`` (NumPy), identical on all processes.
        mesh: the global mesh.

    Returns:
        The same pytree with each leaf sliced to :func:`process_rows`.
    """
    leaves = jax.tree.leaves(batch)
    if not leaves:
        return batch
    sizes = {int(np.shape(leaf)[0]) for leaf in leaves}
    if len(sizes) != 1:
        raise ValueError(f"process_share: expected leaves with one leading batch size, "
                         f"got sizes {sorted(sizes)}")
    rows = process_rows(sizes.pop(), mesh, axis=axis)
    return jax.tree.map(lambda a: np.asarray(a)[rows], batch)


def global_batch(local_batch, mesh: Mesh, *, axis: str = DATA_AXIS):
    """Assemble a global batch from every process's share (no data crosses processes).

    Each process passes its own rows (as returned by :func:`process_share`); the result is a
    pytree of global ``jax.Array``s ``[global_batch, ...]`` sharded along ``axis`` that jitted
    code treats exactly like the single-process batch.

    Args:
        local_batch: pytree of host arrays ``[global_batch / process_count, ...]``.
        mesh: the global mesh.
        axis: the data axis name.

    Returns:
        Pytree of ``jax.Array`` with ``NamedSharding(mesh, P(axis))``.
    """
    _check_mesh(mesh, axis, "global_batch")
    sharding = NamedSharding(mesh, PartitionSpec(axis))
    n_proc = len({d.process_index for d in mesh.devices.flat})

    def one(leaf):
        leaf = np.asarray(leaf)
        if leaf.ndim == 0:
            raise ValueError("global_batch: expected arrays with a leading batch axis, "
                             "got a scalar")
        global_shape = (leaf.shape[0] * n_proc, *leaf.shape[1:])
        return jax.make_array_from_process_local_data(sharding, leaf, global_shape)

    return jax.tree.map(one, local_batch)


def process_batches(data, batch_size: int | None, mesh: Mesh | None, *, key,
                    shuffle: bool = True, drop_last: bool = False, axis: str = DATA_AXIS):
    """Streaming ``train_data`` for ``train.loop.fit`` in which each process reads only its
    share of every global batch.

    The batches are those ``fit`` would cut from ``data`` itself (same order from the same
    ``key``, same padding with weight-0 rows), so ``fit(..., process_batches(data, bs, mesh,
    key=k), key=k)`` trains exactly like ``fit(..., data, key=k, batch_size=bs)``; but instead
    of placing the whole dataset on every device, process ``p`` gathers only rows
    ``idx[b][process_rows(bs, mesh)]`` of global batch ``b`` from its local ``data`` (which may
    be a ``numpy.memmap`` or anything indexable by an integer array) and the global batch is
    assembled by :func:`global_batch` (``jax.make_array_from_process_local_data``). This is how
    a dataset too large for one host is fed.

    Args:
        data: dict of host arrays with a common leading axis (``{'x': [n, ...], 'y': [n]}``,
            optional ``'weight': <f32>[n]``), or an ``(x, y)`` pair.
        batch_size: ``None`` (full batch), ``1`` or ``k``; the global batch, which must divide
            by the size of the mesh's ``axis``.
        mesh: the global mesh (``None``: one process, batches go to the default device).
        key: the run key given to ``fit`` (int seed or PRNG key): ``fit`` derives the data
            order from ``split(key)[1]``, and so does this.
        shuffle, drop_last: as for ``fit``.
        axis: the data axis name.

    Returns:
        A callable ``epoch -> iterator of batch dicts`` (``fit``'s streaming form).
    """
    from train import loop as loop_lib

    if isinstance(data, tuple) and len(data) == 2:
        data = {"x": data[0], "y": data[1]}
    if not isinstance(data, dict) or not data:
        raise TypeError(f"process_batches: expected a non-empty dict of arrays or an (x, y) "
                        f"pair, got {type(data).__name__}")
    sizes = {k: int(np.shape(v)[0]) for k, v in data.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"process_batches: every array needs the same leading axis, "
                         f"got {sizes}")
    n = next(iter(sizes.values()))
    global_bs = n if batch_size is None else int(batch_size)
    rows = slice(0, global_bs) if mesh is None else process_rows(global_bs, mesh, axis=axis)
    data_key = jax.random.split(_raw_key(key))[1]

    def epoch_batches(epoch: int):
        idx, w = loop_lib.epoch_plan(n, batch_size, epoch=epoch, data_key=data_key,
                                     shuffle=shuffle, drop_last=drop_last)
        for b in range(idx.shape[0]):
            mine = idx[b, rows]
            local = {k: np.asarray(v[mine]) for k, v in data.items()}
            if w is not None:
                local["weight"] = (local["weight"] * w[b, rows] if "weight" in local
                                   else w[b, rows])
            yield local if mesh is None else global_batch(local, mesh, axis=axis)

    return epoch_batches


def _raw_key(key):
    """An int seed, typed key or raw key as the raw ``<u32>[2]`` key ``fit`` splits."""
    if isinstance(key, (int, np.integer)):
        return jax.random.PRNGKey(int(key))
    if jax.numpy.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    return key


def replicate(tree, mesh: Mesh):
    """Place a pytree, identical on every process, on all devices of the mesh."""
    _check_mesh(mesh, mesh.axis_names[0], "replicate")
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def to_host(tree):
    """Bring a pytree of (possibly sharded, multi-process) arrays to host NumPy arrays.

    A collective when some leaf is sharded across processes: every process must call it.
    """
    from jax.experimental import multihost_utils

    def one(leaf):
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            if leaf.is_fully_replicated:
                return np.asarray(leaf.addressable_data(0))
            return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))
        return np.asarray(leaf)

    return jax.tree.map(one, tree)


def barrier(name: str) -> None:
    """Wait until every process reaches the barrier called ``name`` (no-op for one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
