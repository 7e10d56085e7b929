"""Evaluation: exact weighted means of a loss's metrics over a whole dataset."""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np

from train import sharding as shd
from train.loop import metrics
from train.loop.plan import epoch_plan, gather, n_rows, require_data
from train.loop.settings import check_int
from train.loop.step import TrainState, make_eval_step


class Evaluator:
    """A jitted evaluation pass (padded batches, weighted sums) for one loss and mesh."""

    def __init__(self, loss_fn: Callable, mesh):
        self.eval_step = make_eval_step(loss_fn)

        def f(acc, state, data, idx, w, b):
            batch = gather(data, idx[b], None if w is None else w[b])
            m = self.eval_step(state, shd.constrain_batch(batch, mesh))
            layout = metrics.Layout.of(m)
            return metrics.add(metrics.init(layout) if acc is None else acc, m, layout)

        self.mesh, self.fn, self.layout = mesh, jax.jit(f), None

    def batch_size(self, n: int, batch_size: int | None) -> int:
        """``batch_size`` (default ``min(n, 1024)``) rounded up to the device count; padding
        rows weigh 0."""
        bs = min(n, 1024) if batch_size is None else int(batch_size)
        k = shd.data_size(self.mesh)
        return -(-bs // k) * k

    def plan(self, n: int, batch_size: int | None):
        """``(idx, w)`` of the evaluation: dataset order, the last batch padded with weight-0
        rows (``w`` is None when nothing is padded)."""
        return epoch_plan(n, self.batch_size(n, batch_size), epoch=0, data_key=None,
                          shuffle=False)

    def first_batch(self, data, batch_size: int | None) -> dict:
        """The evaluation's first batch, as it will be evaluated (its size, its padding)."""
        idx, w = self.plan(n_rows(data), batch_size)
        return gather(data, idx[0], None if w is None else w[0])

    def __call__(self, state, data, batch_size, prefix=""):
        idx, w = self.plan(n_rows(data), batch_size)
        if self.layout is None:   # the metrics' names (traced once)
            self.layout = metrics.Layout.of(jax.eval_shape(
                self.eval_step, state, gather(data, idx[0], None if w is None else w[0])))
        layout = self.layout
        acc = None
        for b in range(idx.shape[0]):
            acc = self.fn(acc, state, data, idx, w, np.int32(b))
        return metrics.normalize(acc, layout, prefix)


def evaluate(loss_fn: Callable, state: TrainState, data, *, batch_size: int | None = None,
             mesh=None, prefix: str = "") -> dict:
    """Weighted-mean metrics of ``loss_fn`` over a whole dataset (e.g. the test set).

    Args:
        loss_fn: ``loss_fn(params, model_state, batch, key) -> (loss, (model_state, metrics))``
            (bind ``train=False`` for dropout and batch norm).
        state: a ``TrainState`` (``fit(...).state``).
        data: a dict of arrays with a common leading axis, or an ``(x, y)`` pair.
        batch_size: rows per evaluation batch (default ``min(n, 1024)``); the last batch is
            padded with weight-0 rows, so the means are exact.
        mesh: as in ``fit``.
        prefix: prepended to every metric name.

    Returns:
        ``{'loss': float, <model metrics>: float, 'count': float}`` with the prefix.
    """
    check_int("evaluate", "batch_size", batch_size, low=1, none_ok=True)
    mesh = shd.make_mesh(mesh)
    data = require_data(data, "evaluate", "data")
    return Evaluator(loss_fn, mesh)(state, shd.put_data(data, mesh), batch_size, prefix)
