"""Sequence classifier: a recurrent network reads a signal step by step, a dense layer reads
its final state (GRU on MNIST-1D by default).

``x <f32>[batch, time]`` (one feature per step, as MNIST-1D's 40-sample signals) or
``<f32>[batch, time, features]`` is run through ``functional.recurrent`` (GRU, LSTM or tanh
RNN; optionally bidirectional and stacked); the classifier reads the final carry of the last
layer (both directions' final states concatenated when bidirectional) and returns class logits,
trained with softmax cross-entropy.

The MNIST-1D paper reports 91% test accuracy for a GRU (its Table 1: logistic 32%, MLP 68%,
CNN 94%, GRU 91%); ``zoo.registry``'s ``gru-mnist1d`` entry is sized to reach it on CPU in
about a minute.

References:
    Cho et al., "Learning Phrase Representations using RNN Encoder-Decoder" (2014), the GRU;
    Greydanus and Kobak, "Scaling down deep learning with MNIST-1D", ICML 2024; seed note 003
    (basic, bidirectional and deep RNNs).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from functional import layers, losses, recurrent
from zoo.data_info import DataInfo, Inputs, classes

__all__ = ["Config", "init", "apply", "loss", "config_for", "INPUTS"]

CELLS = recurrent.CELLS   # cell name -> (cell function, init function)


@dataclasses.dataclass(frozen=True)
class Config:
    """Classifier shape.

    Attributes:
        n_in: features per time step (1 for MNIST-1D).
        hidden: hidden units per layer and direction.
        n_classes: number of classes.
        cell: 'gru', 'lstm' or 'rnn'.
        n_layers: stacked recurrent layers.
        bidirectional: every layer reads the sequence both ways (separate weights).
    """

    n_in: int = 1
    hidden: int = 64
    n_classes: int = 10
    cell: str = "gru"
    n_layers: int = 1
    bidirectional: bool = False

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ValueError(f"seq_classifier.Config: cell must be one of {sorted(CELLS)}, "
                             f"got {self.cell!r}")
        for name in ("n_in", "hidden", "n_classes", "n_layers"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"seq_classifier.Config: {name} must be an int >= 1, "
                                 f"got {v!r}")


INPUTS = Inputs(shapes=((None,), (None, 1)), kind="float",
                words="scalar sequences x [n, time] or [n, time, 1]")


def config_for(info: DataInfo, **overrides) -> Config:
    """The config for a dataset of scalar sequences: ``n_classes`` from it."""
    return Config(**{"n_in": 1, "n_classes": classes(info), **overrides})


def init(key, cfg: Config):
    """Params ``{'rnn': {'layer_0': ...}, 'out': {'w': <f32>[H or 2H, n_classes], 'b'}}``."""
    k_r, k_o = jax.random.split(key)
    rnn = recurrent.stacked_init(CELLS[cfg.cell][1], k_r, cfg.n_in, cfg.hidden, cfg.n_layers,
                                 bidirectional=cfg.bidirectional)
    width = cfg.hidden * (2 if cfg.bidirectional else 1)
    return {"rnn": rnn, "out": layers.dense_init(k_o, width, cfg.n_classes)}


def _final_h(carry, cfg):
    h = lambda c: c[0] if cfg.cell == "lstm" else c
    if cfg.bidirectional:
        return jnp.concatenate([h(carry[0]), h(carry[1])], axis=-1)
    return h(carry)


def apply(params, x, cfg: Config, *, key=None, train=False, state=None):
    """Class logits.

    Args:
        params: from :func:`init`.
        x: <f32>[batch, time] (one feature per step) or <f32>[batch, time, n_in].
        cfg: the model's :class:`Config`.
        key, train, state: unused (no dropout, no state); accepted for the zoo contract.

    Returns:
        <f32>[batch, n_classes] logits from the last layer's final state.
    """
    del key, train, state
    x = jnp.asarray(x, params["out"]["w"].dtype)   # inputs follow the parameters' precision
    if x.ndim == 2 and cfg.n_in == 1:
        x = x[..., None]
    if x.ndim != 3 or x.shape[-1] != cfg.n_in:
        raise ValueError(f"seq_classifier.apply: expected x <f32>[batch, time, {cfg.n_in}]"
                         f"{' or [batch, time]' if cfg.n_in == 1 else ''}, got {x.shape}")
    carries, _ = recurrent.stacked(CELLS[cfg.cell][0], params["rnn"], x)
    return layers.dense(params["out"], _final_h(carries[-1], cfg))


def loss(params, model_state, batch, key, cfg: Config, *, train=True):
    """Softmax cross-entropy, weighted batch mean.

    Args:
        params: from :func:`init`.
        model_state: ``{}`` (returned unchanged).
        batch: ``{'x': <f32>[batch, time(, n_in)], 'y': <int>[batch]}``, optional
            ``'weight': <f32>[batch]``.
        key: unused.
        cfg: the model's :class:`Config`.
        train: unused.

    Returns:
        ``(loss, (model_state, {'loss', 'accuracy'}))``.
    """
    logits = apply(params, batch["x"], cfg, key=key, train=train)
    y = jnp.asarray(batch["y"]).astype(jnp.int32)
    w = batch.get("weight")
    value = losses.softmax_cross_entropy(logits, y, weights=w)
    acc = losses.accuracy(logits, y, weights=w)
    return value, (model_state, {"loss": value, "accuracy": acc})
