"""Embedded-Reber next-symbol predictor: after each symbol, predict every symbol that may
legally come next.

Hochreiter & Schmidhuber (1997), experiment 1 (after Smith & Zipser 1989, Fahlman 1991): strings
of the embedded Reber grammar ``B {T|P} <Reber string> {T|P} E`` where the second symbol must be
repeated just before the final E, across a Reber string of typically 5-30 symbols. The input at
each step is the one-hot symbol; the output has one sigmoid unit per symbol, trained with binary
cross-entropy against the multi-hot set of legal next symbols
(``train.datasets.load('reber')``: ``x <i32>[n, L]`` ids, 0 = padding; ``y <f32>[n, L, 8]``).

Criterion (the paper's): a string is solved when at every real step the units above 0.5 are
exactly the legal next symbols. Predicting the repeated T/P needs the second symbol remembered
over the whole inner string: easy for an LSTM, hard for a vanilla RNN.

References:
    Hochreiter and Schmidhuber, "Long Short-Term Memory", Neural Computation 9(8), 1997,
    section 5.1; Reber (1967); Fahlman (1991) recurrent cascade-correlation.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from functional import layers, losses, recurrent
from zoo.data_info import DataInfo, Inputs, classes

__all__ = ["Config", "init", "apply", "loss", "predicted_sets", "config_for", "INPUTS"]

CELLS = recurrent.CELLS   # cell name -> (cell function, init function)


@dataclasses.dataclass(frozen=True)
class Config:
    """Predictor shape.

    Attributes:
        n_symbols: size of the symbol vocabulary including padding id 0 (8: pad B T P S X V E).
        hidden: hidden units.
        cell: 'lstm', 'rnn' or 'gru'.
        forget_bias: LSTM forget-gate bias at init.
        pad_id: the padding id (masked out).
    """

    n_symbols: int = 8
    hidden: int = 16
    cell: str = "lstm"
    forget_bias: float = 1.0
    pad_id: int = 0

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ValueError(f"reber.Config: cell must be one of {sorted(CELLS)}, "
                             f"got {self.cell!r}")
        for name in ("n_symbols", "hidden"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"reber.Config: {name} must be an int >= 1, got {v!r}")


INPUTS = Inputs(shapes=((None,),), kind="ids", words="symbol ids x <int>[n, time]")


def config_for(info: DataInfo, **overrides) -> Config:
    """The config for a symbol dataset: ``n_symbols`` from its classes."""
    return Config(**{"n_symbols": classes(info), **overrides})


def init(key, cfg: Config):
    """Params ``{'rnn': cell params (PyTorch layout, input n_symbols), 'out': {'w': <f32>[H,
    n_symbols], 'b'}}``."""
    k_r, k_o = jax.random.split(key)
    kwargs = {"forget_bias": cfg.forget_bias} if cfg.cell == "lstm" else {}
    return {"rnn": CELLS[cfg.cell][1](k_r, cfg.n_symbols, cfg.hidden, **kwargs),
            "out": layers.dense_init(k_o, cfg.hidden, cfg.n_symbols)}


def _mask(x, cfg):
    return jnp.asarray(x) != cfg.pad_id


def apply(params, x, cfg: Config, *, key=None, train=False, state=None):
    """Logits of "symbol s may come next" at every step.

    Args:
        params: from :func:`init`.
        x: <i32>[batch, time] symbol ids, right-padded with ``cfg.pad_id``.
        cfg: the model's :class:`Config`.
        key, train, state: unused; accepted for the zoo contract.

    Returns:
        <f32>[batch, time, n_symbols] logits (0 at padding).
    """
    del key, train, state
    x = jnp.asarray(x)
    if x.ndim != 2 or not jnp.issubdtype(x.dtype, jnp.integer):
        raise ValueError(f"reber.apply: expected x <int>[batch, time] symbol ids, got shape "
                         f"{x.shape} dtype {x.dtype}")
    onehot = jax.nn.one_hot(x, cfg.n_symbols, dtype=params["out"]["w"].dtype)
    _, hs = recurrent.run(CELLS[cfg.cell][0], params["rnn"], onehot, mask=_mask(x, cfg))
    return layers.dense(params["out"], hs)


def predicted_sets(logits):
    """Multi-hot predictions: 1 where the unit's probability exceeds 0.5 (logit > 0)."""
    return (logits > 0).astype(jnp.float32)


def loss(params, model_state, batch, key, cfg: Config, *, train=True):
    """Binary cross-entropy per unit and real step, weighted batch mean.

    Args:
        params: from :func:`init`.
        model_state: ``{}`` (returned unchanged).
        batch: ``{'x': <i32>[batch, time], 'y': <f32>[batch, time, n_symbols]}`` multi-hot
            legal next symbols, optional ``'weight': <f32>[batch]``.
        key: unused.
        cfg: the model's :class:`Config`.
        train: unused.

    Returns:
        ``(loss, (model_state, metrics))``: ``step_accuracy`` (real steps whose predicted set
        equals the legal set) and ``string_accuracy`` (strings with every step right; the
        paper's criterion).
    """
    x = jnp.asarray(batch["x"])
    logits = apply(params, x, cfg, key=key, train=train)
    y = jnp.asarray(batch["y"], logits.dtype)
    if y.shape != logits.shape:
        raise ValueError(f"reber.loss: expected y of shape {logits.shape}, got {y.shape}")
    m = _mask(x, cfg).astype(logits.dtype)
    n_real = jnp.maximum(jnp.sum(m, 1), 1.0)
    # weights = the [batch, time] mask: per-step BCE averaged over units, zero at padding
    per_step = losses.binary_cross_entropy_with_logits(logits, y, weights=m, reduction="none")
    per_ex = jnp.sum(per_step, 1) / n_real
    step_ok = jnp.all(predicted_sets(logits) == y, -1).astype(logits.dtype) * m
    step_acc = jnp.sum(step_ok, 1) / n_real
    string_ok = (jnp.sum(step_ok, 1) == jnp.sum(m, 1)).astype(logits.dtype)
    w = batch.get("weight")
    w = jnp.ones(x.shape[:1], logits.dtype) if w is None else jnp.asarray(w, logits.dtype)
    total = jnp.maximum(jnp.sum(w), 1e-12)
    mean = lambda v: jnp.sum(v * w) / total
    value = mean(per_ex)
    return value, (model_state, {"loss": value, "step_accuracy": mean(step_acc),
                                 "string_accuracy": mean(string_ok)})
