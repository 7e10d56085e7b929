"""Backpropagation by hand for a fully connected sigmoid MLP, in plain NumPy.

This is the reference the notebooks start from: the forward and backward passes exactly as
the notes derive them, with no autodiff, so that ``jax.grad`` can be checked against it.

Network. Layer l maps activations ``a[l-1]`` to ``a[l] = sigmoid(a[l-1] @ W[l] + b[l])`` with
``W[l]: <f64>[n_in, n_out]`` (row i holds the weights leaving input i, column j those
entering unit j, seed 004 section 6.0) and ``b[l]`` either ``<f64>[n_out]`` or a scalar
shared by every unit of the layer (seed 003's b1, b2). The error is
``E = 1/2 sum (target - a[L])^2`` summed over outputs and examples (seed 003 section 3).

Output unit. ``output='sigmoid'`` (default) squashes the last layer too, as in the worked
examples; ``output='linear'`` leaves it as ``a[L] = a[L-1] @ W[L] + b[L]`` (the identity
``f(x) = x``), the regression network of the course's first project (seed 001, "Your First
Neural Network": sigmoid hidden units predicting bike-sharing counts, a real number, with the
same half squared error).

Backward (the chain rule of seed 003 section 3 and seed 004 section 7):

* output error term ``delta[L] = (a[L] - target) * a[L] * (1 - a[L])``
  (dE/dout * dout/dnet) for a sigmoid output, ``delta[L] = a[L] - target`` for a linear one
  (its slope is 1);
* hidden error term ``delta[l] = (delta[l+1] @ W[l+1].T) * a[l] * (1 - a[l])``
  (the output errors sent back through the weights, times the sigmoid slope);
* ``dE/dW[l] = a[l-1].T @ delta[l]``, ``dE/db[l] = sum of delta[l]`` over examples (and over
  the units too for a shared scalar bias).

Seed 004 section 7.1 writes the same with ``error = target - output`` and adds
``learnrate * error_term * x``, i.e. its ``delta_w`` is ``-learnrate * dE/dW``. The
bike-sharing project's training step averages over the ``n`` records of a batch:
``W -= learnrate * dE/dW / n`` with the summed gradients returned here.

The worked examples are available as data: ``worked_example_222()`` (seed 003: Matt Mazur's
2-2-2 network) and ``worked_example_321()`` (seed 004 section 7.1).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "OUTPUTS",
    "sigmoid",
    "forward",
    "backward",
    "sgd_step",
    "half_sse",
    "worked_example_222",
    "worked_example_321",
    "named_weights_222",
]


OUTPUTS = ("sigmoid", "linear")


def sigmoid(x):
    """Numerically stable NumPy sigmoid 1 / (1 + exp(-x)) (seed 003 section 2).

    Args:
      x: float array.

    Returns:
      float array in [0, 1].
    """
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(-np.abs(x))  # never overflows
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _check_output(fn, output):
    if not isinstance(output, str) or output not in OUTPUTS:
        raise ValueError(f"backprop.{fn}: output must be one of {OUTPUTS}, got {output!r}")


def _check(weights, biases, x):
    if len(weights) == 0:
        raise ValueError("backprop.forward: need at least one layer, got no weights")
    if biases is not None and len(biases) != len(weights):
        raise ValueError(
            f"backprop.forward: expected {len(weights)} biases (one per layer), got {len(biases)}"
        )
    x = np.asarray(x, dtype=np.float64)
    if x.ndim not in (1, 2):
        raise ValueError(f"backprop.forward: x must be [n_in] or [batch, n_in], got {x.shape}")
    n = x.shape[-1]
    for l, w in enumerate(weights):
        w = np.asarray(w)
        if w.ndim != 2 or w.shape[0] != n:
            raise ValueError(
                f"backprop.forward: weights[{l}] must be [{n}, n_out], got {w.shape}"
            )
        n = w.shape[1]
    return x


def forward(weights, biases, x, *, output="sigmoid"):
    """Forward pass; returns every layer's activations.

    Args:
      weights: list of L arrays ``<f64>[n_in, n_out]``.
      biases: list of L biases, each ``<f64>[n_out]`` or a scalar shared by the layer; or
        ``None`` for a network without biases (seed 004 section 7.1).
      x: ``<f64>[n_in]`` one example or ``<f64>[batch, n_in]``.
      output: ``'sigmoid'`` (every layer squashed, the worked examples) or ``'linear'`` (the
        last layer's weighted sum is the output: regression, the bike-sharing project).

    Returns:
      ``[x, a1, ..., aL]``: the input, each hidden layer's sigmoid outputs and the output.
    """
    _check_output("forward", output)
    x = _check(weights, biases, x)
    acts = [x]
    for l, w in enumerate(weights):
        net = acts[-1] @ np.asarray(w, dtype=np.float64)
        if biases is not None:
            net = net + np.asarray(biases[l], dtype=np.float64)
        last = l == len(weights) - 1
        acts.append(net if last and output == "linear" else sigmoid(net))
    return acts


def half_sse(output, target):
    """E = 1/2 sum (target - output)^2 over all outputs and examples (seed 003).

    Args:
      output: <f64>[...] network outputs.
      target: <f64>[...] targets, same shape.

    Returns:
      Python float.
    """
    output = np.asarray(output, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if output.shape != target.shape:
        raise ValueError(f"backprop.half_sse: shapes differ: {output.shape} vs {target.shape}")
    return float(0.5 * np.sum((target - output) ** 2))


def backward(weights, biases, activations, target, *, output="sigmoid"):
    """Backward pass for E = 1/2 sum (target - output)^2 through sigmoid layers.

    Args:
      weights: the list given to ``forward``.
      biases: the list given to ``forward`` (only its shapes matter), or ``None``.
      activations: what ``forward`` returned.
      target: array shaped like the output ``activations[-1]``.
      output: the ``output`` given to ``forward``: ``'sigmoid'`` (output error term
        ``(out - target) * out * (1 - out)``) or ``'linear'`` (``out - target``).

    Returns:
      ``(grad_weights, grad_biases, deltas)``: lists of dE/dW[l] (shaped like W[l]),
      dE/db[l] (shaped like b[l], ``None`` entries when ``biases`` is None) and the error
      terms delta[l] = dE/dnet[l] (shaped like a[l]).
    """
    _check_output("backward", output)
    out = activations[-1]
    target = np.asarray(target, dtype=np.float64)
    if target.shape != out.shape:
        raise ValueError(
            f"backprop.backward: target must have the output's shape {out.shape}, "
            f"got {target.shape}"
        )
    n_layers = len(weights)
    deltas = [None] * n_layers
    deltas[-1] = (out - target) * (out * (1.0 - out) if output == "sigmoid" else 1.0)
    for l in range(n_layers - 2, -1, -1):
        a = activations[l + 1]
        deltas[l] = (deltas[l + 1] @ np.asarray(weights[l + 1], dtype=np.float64).T) * a * (1 - a)
    grad_w, grad_b = [], []
    for l in range(n_layers):
        a_prev, d = activations[l], deltas[l]
        grad_w.append(np.outer(a_prev, d) if a_prev.ndim == 1 else a_prev.T @ d)
        if biases is None:
            grad_b.append(None)
            continue
        b = np.asarray(biases[l])
        per_unit = d if d.ndim == 1 else d.sum(axis=0)
        grad_b.append(per_unit.sum() if b.ndim == 0 else per_unit)
    return grad_w, grad_b, deltas


def sgd_step(params, grads, learning_rate):
    """One gradient-descent step ``p - learning_rate * g`` on each entry of a list.

    Seed 003 updates only the weights (biases stay fixed): pass the weight lists only.

    Args:
      params: list of arrays.
      grads: list of gradients, same shapes.
      learning_rate: step size (0.5 in both worked examples).

    Returns:
      New list of arrays.
    """
    if len(params) != len(grads):
        raise ValueError(f"backprop.sgd_step: {len(params)} params but {len(grads)} grads")
    return [np.asarray(p, dtype=np.float64) - learning_rate * np.asarray(g) for p, g in
            zip(params, grads, strict=True)]


def worked_example_222():
    """The 2-2-2 network of seed 003 section 3 (Matt Mazur, "A Step by Step Backpropagation
    Example", 2015).

    Weights are named as in the notes: h1 = s(w1 i1 + w2 i2 + b1), h2 = s(w3 i1 + w4 i2 + b1),
    o1 = s(w5 h1 + w6 h2 + b2), o2 = s(w7 h1 + w8 h2 + b2). In matrix form ``W1[i, j]`` is the
    weight from input i to hidden unit j, so ``W1 = [[w1, w3], [w2, w4]]`` and
    ``W2 = [[w5, w7], [w6, w8]]``. The biases are one scalar per layer, and the notes do not
    update them.

    Returns:
      dict with ``x`` <f64>[2] = [0.05, 0.10], ``target`` <f64>[2] = [0.01, 0.99],
      ``weights`` [W1, W2], ``biases`` [0.35, 0.60] (scalars), ``learning_rate`` 0.5.
    """
    w1, w2, w3, w4 = 0.15, 0.20, 0.25, 0.30
    w5, w6, w7, w8 = 0.40, 0.45, 0.50, 0.55
    return {
        "x": np.array([0.05, 0.10]),
        "target": np.array([0.01, 0.99]),
        "weights": [np.array([[w1, w3], [w2, w4]]), np.array([[w5, w7], [w6, w8]])],
        "biases": [np.float64(0.35), np.float64(0.60)],
        "learning_rate": 0.5,
    }


def named_weights_222(weights):
    """Maps ``[W1, W2]`` of the 2-2-2 network back to the notes' names ``w1 ... w8``.

    Args:
      weights: ``[W1, W2]`` (or their gradients) laid out as in ``worked_example_222``.

    Returns:
      dict ``{'w1': ..., ..., 'w8': ...}`` of Python floats.
    """
    w1_, w2_ = (np.asarray(w, dtype=np.float64) for w in weights)
    return {
        "w1": float(w1_[0, 0]), "w2": float(w1_[1, 0]),
        "w3": float(w1_[0, 1]), "w4": float(w1_[1, 1]),
        "w5": float(w2_[0, 0]), "w6": float(w2_[1, 0]),
        "w7": float(w2_[0, 1]), "w8": float(w2_[1, 1]),
    }


def worked_example_321():
    """The 3-2-1 network of seed 004 section 7.1 (no biases, one example).

    Returns:
      dict with ``x`` <f64>[3] = [0.5, 0.1, -0.2], ``target`` <f64>[1] = [0.6],
      ``weights`` [W_input_hidden <f64>[3, 2], W_hidden_output <f64>[2, 1]],
      ``biases`` None, ``learning_rate`` 0.5.
    """
    return {
        "x": np.array([0.5, 0.1, -0.2]),
        "target": np.array([0.6]),
        "weights": [
            np.array([[0.5, -0.6], [0.1, -0.2], [0.1, 0.7]]),
            np.array([[0.1], [-0.3]]),
        ],
        "biases": None,
        "learning_rate": 0.5,
    }
