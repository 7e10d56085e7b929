"""Training data and its order: which examples form which batch of which epoch.

Regimes (seed note 004, "batch / stochastic / mini-batch gradient descent"): ``batch_size=None``
is full-batch gradient descent, ``1`` is stochastic gradient descent and ``k`` is mini-batch
gradient descent. Each epoch visits the training set in an order drawn from
``epoch_rng(data_key, epoch)``, so a run is a pure function of its key (and a resumed run
continues exactly). Data held on the device is a dict of arrays with a common leading axis;
streaming data (an iterable of batches, or a callable ``epoch -> iterable``) is read as it
comes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np


def epoch_rng(data_key, epoch: int) -> np.random.Generator:
    """The NumPy generator that orders epoch ``epoch``: PCG64 seeded with the words of the raw
    key ``data_key`` and the epoch index.

    Drawn on the host because ``jax.random.permutation`` of 4,000 indices costs about 2 ms on
    this CPU (a comparator sort), as much as a whole scanned epoch of a small model; NumPy's
    takes about 50 microseconds. Same key and epoch give the same generator on every platform.
    """
    words = np.asarray(data_key).astype(np.uint32).ravel()
    return np.random.default_rng(np.random.SeedSequence([*map(int, words), int(epoch)]))


def _no_batch(batch_size, n):
    return ValueError(f"fit: drop_last=True with batch_size={batch_size} > {n} examples "
                      "leaves no batch")


def epoch_plan(n: int, batch_size: int | None, *, epoch: int, data_key, shuffle: bool = True,
               drop_last: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Batch indices and row weights of one epoch.

    Args:
        n: number of training examples.
        batch_size: ``None`` for the full batch (in dataset order), else examples per batch.
        epoch: the epoch index; the order is ``epoch_rng(data_key, epoch).permutation(n)``.
        data_key: raw PRNG key of the data order.
        shuffle: whether mini-batch epochs are shuffled; ``'replacement'`` draws every batch
            uniformly with replacement (``ceil(n / batch)`` full batches, or ``n // batch``
            with ``drop_last``), as the Flax examples and the MNIST-1D paper's code sample.
        drop_last: drop the last partial batch instead of padding it.

    Returns:
        ``(idx, weight)``: ``idx`` ``<i32>[n_batches, batch]`` and ``weight``
        ``<f32>[n_batches, batch]`` (1 for real rows, 0 for padding rows pointing at example 0),
        or ``None`` when no batch is padded.
    """
    if batch_size is None:
        return np.arange(n, dtype=np.int32)[None], None
    if shuffle == "replacement":
        nb = n // batch_size if drop_last else -(-n // batch_size)
        if nb == 0:
            raise _no_batch(batch_size, n)
        return epoch_rng(data_key, epoch).integers(0, n, (nb, batch_size)).astype(np.int32), None
    order = epoch_rng(data_key, epoch).permutation(n) if shuffle else np.arange(n)
    order = order.astype(np.int32)
    if drop_last:
        nb = n // batch_size
        if nb == 0:
            raise _no_batch(batch_size, n)
        return order[: nb * batch_size].reshape(nb, batch_size), None
    nb = -(-n // batch_size)
    pad = nb * batch_size - n
    if pad == 0:
        return order.reshape(nb, batch_size), None
    idx = np.concatenate([order, np.zeros(pad, np.int32)]).reshape(nb, batch_size)
    w = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
    return idx, w.reshape(nb, batch_size)


def steps_per_epoch(n: int, batch_size: int | None, *, drop_last: bool = False) -> int:
    """Batches in one :func:`epoch_plan` epoch over ``n`` examples (also the number drawn with
    replacement)."""
    if batch_size is None:
        return 1
    return int(n) // int(batch_size) if drop_last else -(-int(n) // int(batch_size))


def gather(data: Mapping, idx, w=None) -> dict:
    """The batch of rows ``idx`` (``<i32>[batch]``) of every array of ``data``, its ``weight``
    multiplied by the plan's row weights ``w`` (``<f32>[batch]``, 0 for padding) when given."""
    batch = {k: v[idx] for k, v in data.items()}
    if w is not None:
        batch["weight"] = batch["weight"] * w if "weight" in batch else w
    return batch


def as_data(data, where: str, name: str) -> dict | None:
    """Device-resident data as a dict of arrays with one common, non-empty leading axis
    (an ``(x, y)`` pair becomes ``{'x', 'y'}``); ``None`` for anything else (streams).

    Raises:
        ValueError: an empty dict, leading axes that differ, or no rows.
    """
    if isinstance(data, tuple) and len(data) == 2 and all(hasattr(a, "shape") for a in data):
        data = {"x": data[0], "y": data[1]}
    if isinstance(data, Mapping):
        if not data:
            raise ValueError(f"{where}: {name} is an empty dict")
        sizes = {k: np.shape(v)[0] if np.ndim(v) else None for k, v in data.items()}
        if len(set(sizes.values())) != 1 or None in sizes.values():
            raise ValueError(f"{where}: every array of {name} needs the same leading (batch) "
                             f"axis, got leading sizes {sizes}")
        if next(iter(sizes.values())) == 0:
            raise ValueError(f"{where}: {name} has no rows (leading axis of length 0)")
        return dict(data)
    return None


def require_data(data, where: str, name: str) -> dict:
    """:func:`as_data`, with anything that is not device data a ``TypeError``."""
    out = as_data(data, where, name)
    if out is None:
        raise TypeError(f"{where}: {name} must be a dict of arrays or an (x, y) pair, "
                        f"got {type(data).__name__}")
    return out


def n_rows(data: Mapping) -> int:
    """The common leading size of a dict of arrays."""
    return int(np.shape(next(iter(data.values())))[0])


def is_streaming(data) -> bool:
    """Whether ``data`` is a stream: a callable ``epoch -> batches`` or an iterable of them."""
    return callable(data) or (isinstance(data, Iterable) and not isinstance(data, Mapping))


def stream_batches(data, epoch: int):
    """The batches of epoch ``epoch`` of a stream."""
    return data(epoch) if callable(data) else data


def data_settings(n: int | None, batch_size, shuffle, drop_last, data_key) -> dict:
    """What fixes the data order of a ``fit`` run, as its checkpoints record it (``meta['run']``)
    and as ``fit(resume=True)`` requires it unchanged: ``n``, ``batch_size``, ``shuffle``,
    ``drop_last`` and the raw ``data_key`` as plain JSON values; for streamed data (``n`` is
    None), whose order the stream itself fixes, only ``{'streamed': True}``."""
    if n is None:
        return {"streamed": True}
    return {"n": int(n), "batch_size": None if batch_size is None else int(batch_size),
            "shuffle": shuffle if isinstance(shuffle, str) else bool(shuffle),
            "drop_last": bool(drop_last),
            "data_key": [int(w) for w in np.asarray(data_key).astype(np.uint32).ravel()]}
