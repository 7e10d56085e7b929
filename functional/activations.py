"""Activation functions, each numerically stable for large |x|.

Implements the activations of the notes: the perceptron's unit step (seed 004 section 2.0),
the sigmoid and its derivative s(1 - s) (seed 003 section 2, seed 004 section 3.0), ReLU
(seed 003 section 4), plus tanh, leaky ReLU, ELU, softplus, softmax and log-softmax.

All functions are elementwise on any shape except ``softmax`` / ``log_softmax``, which
normalize along ``axis``. Derivatives (what ``jax.grad`` returns):

==============  ==================================================================
step            0 everywhere (the perceptron is not trained by gradients)
sigmoid         s * (1 - s)
tanh            1 - t**2
relu            1 for x > 0, else 0 (0 at x == 0, like ``jax.nn.relu``)
leaky_relu      1 for x >= 0, else ``negative_slope``
elu             1 for x > 0, else ``alpha * exp(x)`` (= elu(x) + alpha)
softplus        sigmoid(x)
softmax         diag(p) - p p^T along ``axis``
log_softmax     I - 1 p^T along ``axis``
==============  ==================================================================
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = [
    "step",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "elu",
    "softplus",
    "softmax",
    "log_softmax",
    "get",
]


def step(x):
    """Heaviside unit step of the perceptron: 1 where ``x >= 0``, else 0.

    Seed 004 section 2.0 ("单位阶跃函数"): the perceptron outputs 1 when the weighted sum
    reaches the threshold, so ``step(0) == 1``. The gradient is 0 everywhere.

    Args:
      x: <f32>[...] pre-activations.

    Returns:
      <f32>[...] of zeros and ones, same shape and dtype as ``x``.
    """
    x = jnp.asarray(x)
    return jnp.where(x >= 0, jnp.ones_like(x), jnp.zeros_like(x))


def sigmoid(x):
    """Logistic sigmoid 1 / (1 + exp(-x)) (seed 003 section 2, seed 004 section 3.0).

    Uses ``jax.lax.logistic``, which never evaluates exp of a large positive number, so
    ``sigmoid(-1000) == 0`` and ``sigmoid(1000) == 1`` with finite gradients. (Seed 003's
    worked example misprints the formula as 1 / (1 - e^-x); its numbers use this one.)

    Args:
      x: <f32>[...] pre-activations.

    Returns:
      <f32>[...] values in [0, 1].
    """
    return jax.lax.logistic(jnp.asarray(x))


def tanh(x):
    """Hyperbolic tangent; derivative 1 - tanh(x)**2.

    Args:
      x: <f32>[...] pre-activations.

    Returns:
      <f32>[...] values in [-1, 1].
    """
    return jnp.tanh(jnp.asarray(x))


def relu(x):
    """Rectified linear unit max(0, x) (seed 003 section 4).

    The derivative at exactly 0 is taken as 0 (as ``jax.nn.relu`` and PyTorch do);
    ``jnp.maximum`` would split it as 0.5.

    Args:
      x: <f32>[...] pre-activations.

    Returns:
      <f32>[...] non-negative values.
    """
    x = jnp.asarray(x)
    return jnp.where(x > 0, x, jnp.zeros_like(x))


def leaky_relu(x, negative_slope=0.01):
    """Leaky ReLU: x for x >= 0, ``negative_slope * x`` otherwise.

    Args:
      x: <f32>[...] pre-activations.
      negative_slope: slope for negative inputs (PyTorch's and ``jax.nn``'s 0.01 default).

    Returns:
      <f32>[...] activations.
    """
    x = jnp.asarray(x)
    return jnp.where(x >= 0, x, negative_slope * x)


def elu(x, alpha=1.0):
    """Exponential linear unit (Clevert et al., 2015): x for x > 0, alpha*(exp(x)-1) else.

    The exponential branch sees ``x`` clipped to <= 0 so that large positive inputs never produce
    ``inf`` there (an ``inf`` in the unused branch of ``where`` would turn its gradient into
    ``nan``).

    Args:
      x: <f32>[...] pre-activations.
      alpha: saturation value for large negative inputs is ``-alpha``.

    Returns:
      <f32>[...] activations.
    """
    x = jnp.asarray(x)
    safe = jnp.where(x > 0, jnp.zeros_like(x), x)
    return jnp.where(x > 0, x, alpha * jnp.expm1(safe))


def softplus(x):
    """Softplus log(1 + exp(x)), a smooth ReLU; derivative sigmoid(x).

    Computed as ``logaddexp(x, 0)``, so softplus(1000) == 1000 and softplus(-1000) == 0.

    Args:
      x: <f32>[...] pre-activations.

    Returns:
      <f32>[...] positive values.
    """
    x = jnp.asarray(x)
    return jnp.logaddexp(x, jnp.zeros_like(x))


def _shifted(x, axis):
    # Subtracting the max makes exp() at most 1; stop_gradient is exact here because
    # softmax is invariant to the shift. A row of all -inf keeps a shift of 0 (no inf - inf).
    m = jnp.max(x, axis=axis, keepdims=True)
    m = jnp.where(jnp.isfinite(m), m, jnp.zeros_like(m))
    return x - jax.lax.stop_gradient(m)


def _check_axis(fn, x, axis):
    if not isinstance(axis, int):
        raise TypeError(f"{fn}: axis must be an int, got {type(axis).__name__}")
    if x.ndim == 0 or not -x.ndim <= axis < x.ndim:
        raise ValueError(f"{fn}: axis {axis} is out of range for input of shape {x.shape}")


def softmax(x, axis=-1):
    """Softmax exp(x_i) / sum_j exp(x_j) along ``axis``, shifted by the max for stability.

    Args:
      x: <f32>[..., classes] logits.
      axis: the axis to normalize over.

    Returns:
      <f32>[..., classes] probabilities summing to 1 along ``axis``.
    """
    x = jnp.asarray(x)
    _check_axis("softmax", x, axis)
    e = jnp.exp(_shifted(x, axis))
    return e / jnp.sum(e, axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    """Log of the softmax, x_i - logsumexp(x), computed without forming the softmax.

    Args:
      x: <f32>[..., classes] logits.
      axis: the axis to normalize over.

    Returns:
      <f32>[..., classes] log-probabilities (all <= 0).
    """
    x = jnp.asarray(x)
    _check_axis("log_softmax", x, axis)
    s = _shifted(x, axis)
    return s - jnp.log(jnp.sum(jnp.exp(s), axis=axis, keepdims=True))


_REGISTRY = {
    "step": step,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "relu": relu,
    "leaky_relu": leaky_relu,
    "elu": elu,
    "softplus": softplus,
    "softmax": softmax,
    "log_softmax": log_softmax,
}


def get(name):
    """Look an activation up by name (e.g. from a config).

    Args:
      name: one of ``step, sigmoid, tanh, relu, leaky_relu, elu, softplus, softmax,
        log_softmax``; ``'linear'`` / ``'identity'`` give the identity function.

    Returns:
      The activation function.

    Raises:
      ValueError: for an unknown name, listing the valid ones.
    """
    if name in ("linear", "identity"):
        return _identity
    if not isinstance(name, str) or name not in _REGISTRY:
        valid = ", ".join(sorted(_REGISTRY) + ["identity", "linear"])
        raise ValueError(f"activations.get: unknown activation {name!r}; expected one of {valid}")
    return _REGISTRY[name]


def _identity(x):
    return jnp.asarray(x)
