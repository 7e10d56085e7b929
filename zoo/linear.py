"""Linear regression trained by gradient descent (seed 003 section 1).

The linear unit ``y_hat = x W + b`` minimizes the notes' error

    E(w) = 1/2 * sum_i (y_i - y_hat_i)^2,

whose gradient is ``-sum_i (y_i - y_hat_i) x_i`` (seed 003, "梯度下降公式"), so gradient descent
is ``w <- w + eta * sum_i (y_i - y_hat_i) x_i``. :func:`loss` uses the *mean* over the batch
instead of the sum (the same minimizer; the learning rate no longer scales with the batch),
and the minimizer is the least-squares solution ``[w; b] = argmin ||[X 1][w; b] - y||^2``,
which gradient descent reaches on well-conditioned data (the tests compare with
``numpy.linalg.lstsq`` to 1e-4).

References:
    Seed note 003 section 1 (gradient-descent derivation for a linear unit);
    seed note 004 section 4 (feature scaling, learning rate, batch / mini-batch descent).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from functional import losses
from zoo.data_info import DataInfo, Inputs, targets

__all__ = ["Config", "init", "apply", "loss", "config_for", "INPUTS"]


@dataclasses.dataclass(frozen=True)
class Config:
    """Linear-unit size.

    Attributes:
        n_in: number of input features.
        n_out: number of outputs (1 gives the notes' single linear unit).
    """

    n_in: int = 1
    n_out: int = 1


INPUTS = Inputs(shapes="any", kind="float", words="real-valued inputs x [n, ...] (flattened)")


def config_for(info: DataInfo, **overrides) -> Config:
    """The config for a dataset: ``n_in`` from its features, ``n_out`` from its targets."""
    return Config(**{"n_in": info.n_features, "n_out": targets(info), **overrides})


def init(key, cfg: Config):
    """Zero weights ``{'w': <f32>[n_in, n_out], 'b': <f32>[n_out]}``.

    The squared error of a linear model is convex, so zeros are a fine start (there is no
    symmetry to break, unlike seed 004 section 9.0's hidden units); ``key`` is unused.
    """
    del key
    if cfg.n_in < 1 or cfg.n_out < 1:
        raise ValueError(f"linear.init: n_in and n_out must be >= 1, got {cfg.n_in}, {cfg.n_out}")
    return {"w": jnp.zeros((cfg.n_in, cfg.n_out), jnp.float32),
            "b": jnp.zeros((cfg.n_out,), jnp.float32)}


def apply(params, x, cfg: Config | None = None, *, key=None, train=False, state=None):
    """Predictions ``x W + b``.

    Args:
        params: from :func:`init`.
        x: <f32>[batch, n_in] (any trailing shape is flattened to n_in).

    Returns:
        <f32>[batch, n_out].
    """
    del cfg, key, train, state
    x = jnp.asarray(x)
    x = x.reshape(x.shape[0], -1) if x.ndim != 2 else x
    n_in = params["w"].shape[0]
    if x.shape[-1] != n_in:
        raise ValueError(f"linear.apply: expected x with {n_in} features, got shape {x.shape}")
    return x @ params["w"] + params["b"]


def loss(params, model_state, batch, key, cfg: Config | None = None, *, train=True):
    """Half squared error ``1/2 * sum_j (y_j - y_hat_j)^2``, weighted mean over the batch.

    Args:
        params: from :func:`init`.
        model_state: ``{}`` (returned unchanged).
        batch: ``{'x': <f32>[batch, n_in], 'y': <f32>[batch, n_out] or <f32>[batch]}`` and
            optionally ``'weight': <f32>[batch]``.

    Returns:
        ``(loss, (model_state, {'loss', 'mse'}))``; ``mse`` averages over outputs too.
    """
    del key, train
    y_hat = apply(params, batch["x"], cfg)
    y = jnp.asarray(batch["y"], y_hat.dtype).reshape(y_hat.shape)
    weight = batch.get("weight")
    value = losses.half_sse(y_hat, y, weights=weight)
    mse = losses.mse(y_hat, y, weights=weight)
    return value, (model_state, {"loss": value, "mse": mse})

