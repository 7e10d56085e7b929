"""Rosenblatt's perceptron: one linear unit behind the unit step (seed 004 sections 2.0-3.0).

The unit computes ``y_hat = step(x . w + b)`` with ``step(0) = 1``. It is trained by the
perceptron learning rule

    w <- w + lr * (y - y_hat) * x,        b <- b + lr * (y - y_hat),

which is *exactly* gradient descent on the perceptron criterion

    E(w, b) = mean_i  (y_hat_i - y_i) * z_i,      z_i = x_i . w + b,

with ``y_hat`` held constant (``stop_gradient``): a correctly classified example contributes
nothing, a misclassified one contributes ``|z_i|``, and the gradient of ``(y_hat - y) * z`` with
respect to ``w`` is ``(y_hat - y) * x``. So :func:`loss` plus plain SGD *is* the perceptron rule
(:func:`rule_update` writes the rule out; the tests check the two agree). The perceptron
convergence theorem (Rosenblatt 1958; Novikoff 1962) guarantees a separating line is found in
finitely many updates when one exists (AND, OR), and no line can separate XOR (Minsky and
Papert 1969), so there the criterion never reaches zero and accuracy never reaches 100%.

References:
    F. Rosenblatt, "The perceptron: a probabilistic model for information storage and
    organization in the brain", Psychological Review 65(6), 1958.
    Seed note 004, sections 2.0 (perceptron, step function) and 3.0.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from functional import activations
from zoo.data_info import DataInfo, Inputs

__all__ = ["Config", "init", "apply", "decision_function", "loss", "rule_update", "config_for",
           "INPUTS"]


@dataclasses.dataclass(frozen=True)
class Config:
    """Perceptron size.

    Attributes:
        n_in: number of input features.
        init_scale: standard deviation of the initial weights (the notes use
            ``1 / sqrt(n_features)``; 0 gives Rosenblatt's all-zero start).
    """

    n_in: int = 2
    init_scale: float = 0.1


INPUTS = Inputs(shapes=((None,),), kind="float", words="feature vectors x [n, features]")


def config_for(info: DataInfo, **overrides) -> Config:
    """The config for a dataset: ``n_in`` from its features (then ``overrides``)."""
    return Config(**{"n_in": info.n_features, **overrides})


def init(key, cfg: Config):
    """Weights ``{'w': <f32>[n_in], 'b': <f32>[]}`` drawn from normal(0, init_scale)."""
    if cfg.n_in < 1:
        raise ValueError(f"perceptron.init: n_in must be >= 1, got {cfg.n_in}")
    w = cfg.init_scale * jax.random.normal(key, (cfg.n_in,), jnp.float32)
    return {"w": w, "b": jnp.zeros((), jnp.float32)}


def decision_function(params, x):
    """The weighted sum ``z = x . w + b``: <f32>[batch, n_in] -> <f32>[batch]."""
    x = jnp.asarray(x)
    if x.ndim != 2 or x.shape[-1] != params["w"].shape[0]:
        raise ValueError(
            f"perceptron: expected x of shape [batch, {params['w'].shape[0]}], got {x.shape}")
    return x @ params["w"] + params["b"]


def apply(params, x, cfg: Config | None = None, *, key=None, train=False, state=None):
    """Predicted class ``step(x . w + b)``.

    Args:
        params: from :func:`init`.
        x: <f32>[batch, n_in] inputs.
        cfg: unused (kept for the zoo signature).
        key, train, state: unused (no randomness, no state).

    Returns:
        <f32>[batch] of zeros and ones.
    """
    del cfg, key, train, state
    return activations.step(decision_function(params, x))


def loss(params, model_state, batch, key, cfg: Config | None = None, *, train=True):
    """Perceptron criterion, whose SGD step is the perceptron learning rule.

    Args:
        params: from :func:`init`.
        model_state: ``{}`` (returned unchanged).
        batch: ``{'x': <f32>[batch, n_in], 'y': <int|f32>[batch] in {0, 1}}`` and optionally
            ``'weight': <f32>[batch]``.
        key, cfg, train: unused.

    Returns:
        ``(loss, (model_state, {'loss', 'accuracy'}))`` with weighted means over the batch.
    """
    del key, cfg, train
    z = decision_function(params, batch["x"])
    y = jnp.asarray(batch["y"]).astype(z.dtype).reshape(z.shape)
    y_hat = activations.step(z)
    per_example = jax.lax.stop_gradient(y_hat - y) * z
    weight = batch.get("weight")
    value = _weighted_mean(per_example, weight)
    acc = _weighted_mean((y_hat == y).astype(z.dtype), weight)
    return value, (model_state, {"loss": value, "accuracy": acc})


def rule_update(params, x, y, lr):
    """One batch perceptron-rule step ``w += lr * mean_i (y_i - y_hat_i) x_i`` (seed 004).

    Args:
        params: from :func:`init`.
        x: <f32>[batch, n_in]; y: <f32>[batch] targets in {0, 1}; lr: learning rate.

    Returns:
        The updated params.
    """
    z = decision_function(params, x)
    err = jnp.asarray(y, z.dtype) - activations.step(z)
    return {"w": params["w"] + lr * jnp.mean(err[:, None] * x, axis=0),
            "b": params["b"] + lr * jnp.mean(err)}


def _weighted_mean(values, weight):
    if weight is None:
        return jnp.mean(values)
    weight = jnp.asarray(weight, values.dtype)
    return jnp.sum(values * weight) / jnp.maximum(jnp.sum(weight), 1e-12)
