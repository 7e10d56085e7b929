"""Losses and accuracy with optional per-example weights or masks.

Implements the notes' squared error E = 1/2 sum (y - y_hat)^2 (seed 003 section 1, the
worked backprop example of seed 003 section 3, seed 004 section 7), mean squared error,
binary cross-entropy from logits, and softmax cross-entropy with integer labels or with
one-hot / soft targets.

Reduction rule (the same for every function here). Each loss first computes an elementwise
loss of shape ``L`` (``pred.shape`` for the regression losses, ``logits.shape`` for binary
cross-entropy, ``logits.shape[:-1]`` for softmax cross-entropy). The leading axes that the
weights cover are the weighted units: ``weights`` may have shape ``L[:k]`` for any ``k >= 1``
(``<f32>[batch]`` per-example weights, or ``<f32>[batch, time]`` a per-position mask, ...);
without weights ``k = 1`` and every example weighs 1. The remaining axes ``L[k:]`` are
reduced inside each unit (summed for ``half_sse``, averaged for the others), giving per-unit
losses ``l``, and then

* ``reduction='mean'`` (default): ``sum(w * l) / sum(w)``, the weighted mean that zoo losses
  return (0 when all weights are 0, e.g. a batch made only of padding);
* ``reduction='sum'``: ``sum(w * l)`` (seed 003's E sums over examples);
* ``reduction='none'``: ``w * l`` with shape ``L[:k]``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from functional.activations import log_softmax

__all__ = [
    "half_sse",
    "mse",
    "binary_cross_entropy_with_logits",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_targets",
    "accuracy",
]

_REDUCTIONS = ("mean", "sum", "none")


def _shape(fn, name, x):
    shape = getattr(x, "shape", None)
    if shape is None:
        raise TypeError(f"{fn}: {name} must be an array, got {type(x).__name__}")
    return tuple(shape)


def _check_same(fn, a_name, a, b_name, b):
    sa, sb = _shape(fn, a_name, a), _shape(fn, b_name, b)
    if sa != sb:
        raise ValueError(f"{fn}: {b_name} must have the shape of {a_name} {sa}, got {sb}")
    if len(sa) == 0:
        raise ValueError(f"{fn}: {a_name} needs a leading batch axis, got a scalar (shape ())")


def _reduce(fn, elementwise, weights, reduction, inner):
    """Applies the module's reduction rule to an elementwise loss of shape L."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{fn}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    shape = tuple(elementwise.shape)
    if weights is None:
        k, w = 1, None
    else:
        w_shape = _shape(fn, "weights", weights)
        k = len(w_shape)
        if k == 0 or w_shape != shape[:k]:
            prefixes = " or ".join(str(shape[:i]) for i in range(1, len(shape) + 1))
            raise ValueError(
                f"{fn}: weights must have shape {prefixes} (a leading prefix of the loss "
                f"shape {shape}), got {w_shape}"
            )
        w = jnp.asarray(weights, dtype=elementwise.dtype)
    axes = tuple(range(k, len(shape)))
    per_unit = inner(elementwise, axis=axes) if axes else elementwise
    if w is None:
        if reduction == "mean":
            return jnp.mean(per_unit)
        return jnp.sum(per_unit) if reduction == "sum" else per_unit
    weighted = w * per_unit
    if reduction == "none":
        return weighted
    total = jnp.sum(weighted)
    if reduction == "sum":
        return total
    norm = jnp.sum(w)
    # A fully masked batch gives 0 instead of 0/0 (and a finite gradient).
    return total / jnp.where(norm == 0, jnp.ones_like(norm), norm)


def _as_float(x):
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.inexact) else x.astype(jnp.float32)


def half_sse(pred, target, *, weights=None, reduction="mean"):
    """Half the sum of squared errors, E = 1/2 sum (y - y_hat)^2 (seed 003 sections 1, 3).

    Per example the squared errors are summed over all non-batch axes and halved, so the
    gradient with respect to ``pred`` is ``pred - target`` (the notes' "error" with the
    sign of gradient descent). Seed 003's E_total for one example with targets
    [0.01, 0.99] is ``half_sse(out[None], target[None])``.

    Args:
      pred: <f32>[batch, ...] predictions y_hat.
      target: <f32>[batch, ...] targets y, same shape.
      weights: optional <f32>[batch] (or a longer prefix of the shape) weights or 0/1 mask.
      reduction: 'mean' over examples (default), 'sum' over examples (the notes' E), 'none'.

    Returns:
      <f32>[] loss (or per-unit losses for reduction='none').
    """
    fn = "half_sse"
    _check_same(fn, "pred", pred, "target", target)
    d = _as_float(pred) - jnp.asarray(target)
    return _reduce(fn, 0.5 * d * d, weights, reduction, jnp.sum)


def mse(pred, target, *, weights=None, reduction="mean"):
    """Mean squared error: the mean of (y - y_hat)^2 over all non-batch axes, then over
    examples (equal to the mean over all elements when unweighted, like ``torch``'s
    ``MSELoss``).

    Args:
      pred: <f32>[batch, ...] predictions.
      target: <f32>[batch, ...] targets, same shape.
      weights: optional <f32>[batch] (or a longer prefix of the shape) weights or mask.
      reduction: 'mean' (default), 'sum' or 'none'.

    Returns:
      <f32>[] loss (or per-unit losses for reduction='none').
    """
    fn = "mse"
    _check_same(fn, "pred", pred, "target", target)
    d = _as_float(pred) - jnp.asarray(target)
    return _reduce(fn, d * d, weights, reduction, jnp.mean)


def binary_cross_entropy_with_logits(logits, labels, *, weights=None, reduction="mean"):
    """Binary cross-entropy of sigmoid(logits) against labels in [0, 1], from logits.

    Elementwise ``max(x, 0) - x * z + log1p(exp(-|x|))`` = ``-z log s(x) - (1-z) log(1-s(x))``,
    which never overflows (logits of +-1000 give finite losses and gradients). Soft labels
    are allowed. Averaged over non-batch axes per example.

    Args:
      logits: <f32>[batch, ...] logits x.
      labels: <f32>[batch, ...] targets z in [0, 1] (ints 0/1 are accepted), same shape.
      weights: optional <f32>[batch] (or a longer prefix of the shape) weights or mask.
      reduction: 'mean' (default), 'sum' or 'none'.

    Returns:
      <f32>[] loss (or per-unit losses for reduction='none').
    """
    fn = "binary_cross_entropy_with_logits"
    _check_same(fn, "logits", logits, "labels", labels)
    x = _as_float(logits)
    z = jnp.asarray(labels).astype(x.dtype)
    elementwise = jnp.maximum(x, 0) - x * z + jnp.log1p(jnp.exp(-jnp.abs(x)))
    return _reduce(fn, elementwise, weights, reduction, jnp.mean)


def _check_labels(fn, logits, labels):
    ls, ys = _shape(fn, "logits", logits), _shape(fn, "labels", labels)
    if len(ls) < 2 or ys != ls[:-1]:
        raise ValueError(
            f"{fn}: expected logits [batch, ..., classes] and integer labels [batch, ...] "
            f"with labels.shape == logits.shape[:-1]; got logits {ls} and labels {ys}"
        )
    dtype = np.dtype(labels.dtype)
    if not np.issubdtype(dtype, np.integer):
        raise TypeError(f"{fn}: labels must be integer class indices, got dtype {dtype}")
    if not isinstance(labels, jax.core.Tracer):
        # Concrete labels are checked here; under jit an out-of-range label gives nan.
        arr = np.asarray(labels)
        if arr.size and (arr.min() < 0 or arr.max() >= ls[-1]):
            raise ValueError(
                f"{fn}: labels must lie in [0, {ls[-1]}) for {ls[-1]} classes, "
                f"got values in [{arr.min()}, {arr.max()}]"
            )


def softmax_cross_entropy(logits, labels_int, *, weights=None, reduction="mean"):
    """Softmax cross-entropy with integer labels: -log softmax(logits)[label].

    Extra axes between batch and classes (e.g. time for sequence models) are averaged per
    example unless ``weights`` covers them (e.g. a ``<f32>[batch, time]`` padding mask).

    Args:
      logits: <f32>[batch, ..., classes] unnormalized scores.
      labels_int: <int>[batch, ...] class indices in [0, classes).
      weights: optional <f32>[batch] (or [batch, ...] up to labels' shape) weights or mask.
      reduction: 'mean' (default), 'sum' or 'none'.

    Returns:
      <f32>[] loss (or per-unit losses for reduction='none').

    Raises:
      ValueError: on shapes that do not fit or (for concrete labels) out-of-range labels.
      TypeError: on non-integer labels.
    """
    fn = "softmax_cross_entropy"
    _check_labels(fn, logits, labels_int)
    logp = log_softmax(_as_float(logits), axis=-1)
    picked = jnp.take_along_axis(logp, jnp.asarray(labels_int)[..., None], axis=-1)[..., 0]
    return _reduce(fn, -picked, weights, reduction, jnp.mean)


def softmax_cross_entropy_with_targets(logits, targets, *, weights=None, reduction="mean"):
    """Softmax cross-entropy against a one-hot or soft target distribution:
    -sum_c targets_c * log softmax(logits)_c.

    Args:
      logits: <f32>[batch, ..., classes] unnormalized scores.
      targets: <f32>[batch, ..., classes] target probabilities (rows summing to 1).
      weights: optional <f32>[batch] (or a prefix up to logits.shape[:-1]) weights or mask.
      reduction: 'mean' (default), 'sum' or 'none'.

    Returns:
      <f32>[] loss (or per-unit losses for reduction='none').
    """
    fn = "softmax_cross_entropy_with_targets"
    _check_same(fn, "logits", logits, "targets", targets)
    if len(_shape(fn, "logits", logits)) < 2:
        raise ValueError(f"{fn}: expected logits [batch, ..., classes], got {logits.shape}")
    logp = log_softmax(_as_float(logits), axis=-1)
    elementwise = -jnp.sum(jnp.asarray(targets).astype(logp.dtype) * logp, axis=-1)
    return _reduce(fn, elementwise, weights, reduction, jnp.mean)


def accuracy(logits, labels_int, *, weights=None, reduction="mean"):
    """Fraction of correct predictions.

    With ``logits`` of shape ``labels.shape + (classes,)`` the prediction is the argmax;
    with ``logits`` of the same shape as ``labels`` (one binary logit per example, as for
    ``binary_cross_entropy_with_logits``) it is ``logits > 0``, i.e. probability > 0.5.

    Args:
      logits: <f32>[batch, ..., classes] scores, or <f32>[batch, ...] binary logits.
      labels_int: <int>[batch, ...] class indices (0/1 in the binary case).
      weights: optional <f32>[batch] (or a longer prefix) weights or mask.
      reduction: 'mean' (default), 'sum' (weighted count of correct) or 'none'.

    Returns:
      <f32>[] accuracy in [0, 1] (or per-unit values for reduction='none').
    """
    fn = "accuracy"
    ls, ys = _shape(fn, "logits", logits), _shape(fn, "labels", labels_int)
    logits = jnp.asarray(logits)
    if ls == ys and len(ls) >= 1:
        pred = (logits > 0).astype(jnp.int32)
    elif len(ls) >= 2 and ys == ls[:-1]:
        pred = jnp.argmax(logits, axis=-1)
    else:
        raise ValueError(
            f"{fn}: expected logits [batch, ..., classes] with labels [batch, ...], or binary "
            f"logits with the labels' shape; got logits {ls} and labels {ys}"
        )
    dtype = logits.dtype if jnp.issubdtype(logits.dtype, jnp.floating) else jnp.float32
    correct = (pred == jnp.asarray(labels_int)).astype(dtype)
    return _reduce(fn, correct, weights, reduction, jnp.mean)
