"""Logistic regression: the single sigmoid unit and its multi-class (softmax) form.

With ``n_out == 1`` this is the notes' sigmoid unit (seed 004 section 3.0,
``sigmoid(sum_i w_i x_i + b)``), the admissions-style classifier that outputs the
probability of class 1, trained on the binary cross-entropy

    E = -mean_i [ y_i log p_i + (1 - y_i) log(1 - p_i) ],   p_i = sigmoid(x_i . w + b).

With ``n_out = K > 1`` it is multinomial logistic (softmax) regression, the linear baseline
of the MNIST-1D paper's table (32% test accuracy). Both are convex in ``(w, b)``; an optional
L2 penalty ``l2 / 2 * ||w||^2`` (bias not penalized) makes the optimum unique and finite even
on separable data, which is what Newton's method in the tests converges to.

References:
    Seed note 004 sections 3.0 (sigmoid unit) and 4 (gradient descent);
    D. R. Cox, "The regression analysis of binary sequences", JRSS B 20(2), 1958;
    S. Greydanus and D. Kobak, "Scaling down deep learning with MNIST-1D", ICML 2024.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from functional import activations, layers, losses
from zoo.data_info import DataInfo, Inputs, classes

__all__ = ["Config", "init", "apply", "predict_proba", "loss", "config_for", "INPUTS"]


@dataclasses.dataclass(frozen=True)
class Config:
    """Logistic-regression size and penalty.

    Attributes:
        n_in: number of input features (inputs with more axes are flattened).
        n_out: 1 for the binary sigmoid unit, K > 1 for softmax regression over K classes.
        l2: L2 penalty on the weights (not the bias), added to the loss as
            ``l2 / 2 * sum(w ** 2)``.
    """

    n_in: int = 2
    n_out: int = 1
    l2: float = 0.0


INPUTS = Inputs(shapes="any", kind="float", words="real-valued inputs x [n, ...] (flattened)")


def config_for(info: DataInfo, **overrides) -> Config:
    """The config for a dataset: ``n_in`` from its features, ``n_out`` its number of classes
    (``n_out=1`` in ``overrides`` gives one sigmoid unit)."""
    n_out = overrides.pop("n_out") if "n_out" in overrides else classes(info)
    return Config(**{"n_in": info.n_features, "n_out": n_out, **overrides})


def init(key, cfg: Config):
    """Zero weights ``{'w': <f32>[n_in, n_out], 'b': <f32>[n_out]}`` (the loss is convex)."""
    del key
    if cfg.n_in < 1 or cfg.n_out < 1:
        raise ValueError(
            f"logistic.init: n_in and n_out must be >= 1, got {cfg.n_in}, {cfg.n_out}")
    return {"w": jnp.zeros((cfg.n_in, cfg.n_out), jnp.float32),
            "b": jnp.zeros((cfg.n_out,), jnp.float32)}


def apply(params, x, cfg: Config | None = None, *, key=None, train=False, state=None):
    """Logits ``x W + b``.

    Args:
        params: from :func:`init`.
        x: <f32>[batch, n_in] (trailing axes are flattened).

    Returns:
        <f32>[batch] binary logits when ``n_out == 1``, else <f32>[batch, n_out].
    """
    del cfg, key, train, state
    x = jnp.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"logistic.apply: expected x of shape [batch, n_in], got {x.shape}")
    logits = layers.dense(params, layers.flatten(x))
    return logits[:, 0] if params["w"].shape[1] == 1 else logits


def predict_proba(params, x):
    """Class probabilities: <f32>[batch] P(y=1) for the sigmoid unit, else <f32>[batch, K]."""
    logits = apply(params, x)
    if logits.ndim == 1:
        return activations.sigmoid(logits)
    return activations.softmax(logits, axis=-1)


def loss(params, model_state, batch, key, cfg: Config, *, train=True):
    """Cross-entropy (binary or softmax) plus the L2 penalty; weighted mean over the batch.

    Args:
        params: from :func:`init`.
        model_state: ``{}`` (returned unchanged).
        batch: ``{'x': <f32>[batch, n_in], 'y': <int>[batch]}`` (0/1 for the sigmoid unit),
            optionally ``'weight': <f32>[batch]``.
        key, train: unused.
        cfg: the model's :class:`Config` (for ``l2``).

    Returns:
        ``(loss, (model_state, {'loss', 'accuracy'}))``.
    """
    del key, train
    logits = apply(params, batch["x"])
    y = jnp.asarray(batch["y"])
    weight = batch.get("weight")
    if logits.ndim == 1:
        data_loss = losses.binary_cross_entropy_with_logits(
            logits, y.reshape(logits.shape).astype(logits.dtype), weights=weight)
        acc = losses.accuracy(logits, y.reshape(logits.shape).astype(jnp.int32), weights=weight)
    else:
        data_loss = losses.softmax_cross_entropy(logits, y.astype(jnp.int32), weights=weight)
        acc = losses.accuracy(logits, y.astype(jnp.int32), weights=weight)
    value = data_loss + 0.5 * cfg.l2 * jnp.sum(params["w"] ** 2) if cfg.l2 else data_loss
    return value, (model_state, {"loss": value, "accuracy": acc})
