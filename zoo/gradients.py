"""Vanishing and exploding gradients at initialization (seed 004 sections 5.3-5.4).

Backpropagation multiplies, layer by layer, by the transposed weights and by the activation's
derivative. In a deep network the gradient reaching the first layers is therefore a product of
L such factors and shrinks or grows exponentially with depth (seed 004 section 5.3):

* sigmoid: its derivative is at most 1/4, so with the notes' ``randn / sqrt((fan_in +
  fan_out) / 2)`` weights (std 0.1 for width 100) each layer scales the gradient by about
  1/4 and the first layer of a 10-layer net gets ~1e-6 of the last layer's gradient (vanishing;
  "sigmoid does not explode, it only vanishes", seed 004 section 5.3);
* tanh with naive normal(0, 1) weights: pre-activations of size ~sqrt(fan_in) = 10 saturate
  most units, yet the unsaturated ones meet weight matrices of norm ~sqrt(fan_in) and the
  gradient grows ~1000-fold towards the input (exploding); with the notes' ``randn /
  sqrt(fan_in)`` (LeCun) every layer's gradient stays at one scale;
* ReLU with naive normal(0, 1) weights: each layer multiplies the activations' scale by about
  sqrt(fan_in / 2) ~ 7, so activations reach ~1e7 and gradients ~1e8 (exploding);
  ``randn / sqrt(fan_in / 2)`` (He) keeps them at one scale (seed 004 section 5.4).

:func:`layer_gradient_norms` measures this for one network: the Frobenius norm of the loss
gradient with respect to each layer's weight matrix, at initialization, on a fixed batch of
standard-normal inputs and random labels. :func:`gradient_norm_study` runs the grid
{sigmoid, tanh, relu} x {the notes' initializer, naive normal(0, 1)}; the figure is
``train.plots.plot_gradient_norms``.

References:
    Seed note 004 sections 5.3 (梯度消失与梯度爆炸) and 5.4 (weight initialization);
    X. Glorot and Y. Bengio, "Understanding the difficulty of training deep feedforward neural
    networks", AISTATS 2010; K. He, X. Zhang, S. Ren and J. Sun, "Delving deep into
    rectifiers", ICCV 2015.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from zoo import mlp

__all__ = ["NOTES_INIT", "layer_gradient_norms", "gradient_norm_study"]

# Seed 004 section 5.4: the initializer the notes recommend for each activation.
NOTES_INIT = {"relu": "notes_relu", "tanh": "notes_tanh", "sigmoid": "notes_other"}


def layer_gradient_norms(key, *, activation: str = "relu", w_init: str = "notes_relu",
                         depth: int = 10, width: int = 100, n_classes: int = 10,
                         batch: int = 256):
    """Per-layer weight-gradient norms of a deep MLP at initialization.

    The network is ``zoo.mlp`` with ``depth`` dense layers (``depth - 1`` hidden layers of
    ``width`` units, then a ``n_classes``-way softmax output), inputs
    ``<f32>[batch, width]`` drawn from normal(0, 1) and uniformly random labels, loss softmax
    cross-entropy. Everything is drawn from ``key``, so the result is reproducible.

    Args:
        key: PRNG key (network and data).
        activation: hidden activation ('sigmoid', 'tanh', 'relu', ... ).
        w_init: initializer name from ``functional.init`` ('notes_relu', 'notes_tanh',
            'notes_other', 'normal' for naive normal(0, 1), ...).
        depth: number of dense layers (>= 2).
        width: input and hidden width.
        n_classes: output classes.
        batch: examples in the probe batch.

    Returns:
        ``{'grad_norm': <f32>[depth], 'activation_std': <f32>[depth - 1]}``: the norm of
        ``dL/dW`` for layers 1..depth (input side first) and the standard deviation of each
        hidden layer's activations.
    """
    if depth < 2:
        raise ValueError(f"layer_gradient_norms: depth must be >= 2, got {depth}")
    cfg = mlp.Config(n_in=width, hidden=(width,) * (depth - 1), n_out=n_classes,
                     activation=activation, w_init=w_init)
    k_params, k_x, k_y = jax.random.split(key, 3)
    params = mlp.init(k_params, cfg)
    batch_ = {"x": jax.random.normal(k_x, (batch, width), jnp.float32),
              "y": jax.random.randint(k_y, (batch,), 0, n_classes)}
    grads = jax.grad(lambda p: mlp.loss(p, {}, batch_, None, cfg, train=False)[0])(params)
    norms = jnp.stack([jnp.linalg.norm(grads[name]["w"]) for name in mlp.layer_names(cfg)])
    _, hidden = mlp.apply(params, batch_["x"], cfg, return_hidden=True)
    return {"grad_norm": norms, "activation_std": jnp.stack([jnp.std(h) for h in hidden])}


def gradient_norm_study(key, *, activations=("sigmoid", "tanh", "relu"), depth: int = 10,
                        width: int = 100, batch: int = 256):
    """:func:`layer_gradient_norms` for each activation, with the notes' init and naive N(0, 1).

    Args:
        key: PRNG key; every configuration uses the same key, so they share inputs and labels.
        activations: activation names (each must have an entry in :data:`NOTES_INIT`).
        depth, width, batch: as in :func:`layer_gradient_norms`.

    Returns:
        ``{(activation, init_name): {'grad_norm': <f32>[depth], 'activation_std': ...}}`` with
        ``init_name`` the notes' initializer for that activation or ``'normal'``.
    """
    out = {}
    for act in activations:
        if act not in NOTES_INIT:
            raise ValueError(f"gradient_norm_study: no notes initializer for {act!r}; "
                             f"expected one of {sorted(NOTES_INIT)}")
        for w_init in (NOTES_INIT[act], "normal"):
            out[(act, w_init)] = layer_gradient_norms(key, activation=act, w_init=w_init,
                                                      depth=depth, width=width, batch=batch)
    return out
