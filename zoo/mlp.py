"""Multi-layer perceptron for classification and regression (seed 004 sections 6-7).

``x -> [dense -> activation -> dropout] * len(hidden) -> dense``: the fully connected network
of the notes, trained by backpropagation (here ``jax.grad``). Activation, initializer, depth
and width are all configuration, so the same file is the MNIST-1D baseline (40-100-100-10
ReLU, 68% in the MNIST-1D paper), the digits classifier, the bike-sharing / diabetes regressor
of the notes' first project, and the deep MLP of the vanishing-gradient experiment
(``zoo.gradients``). Initializers are looked up by name in ``functional.init``, including the
notes' rules ``notes_relu`` (``randn / sqrt(fan_in / 2)``), ``notes_tanh`` and ``notes_other``
(seed 004 section 5.4); biases start at zero (seed 004 section 9.0: random weights break the
symmetry between hidden units, zero biases do not reintroduce it).

Classification uses softmax cross-entropy on integer labels; regression uses the mean squared
error over outputs (``mse``), with the notes' half squared error differing only by a factor.

References:
    Seed note 004 sections 5.3-5.4 (vanishing gradients, initialization), 6.0-7.1 (MLP and
    backprop); Rumelhart, Hinton and Williams, "Learning representations by back-propagating
    errors", Nature 323, 1986; Greydanus and Kobak, "Scaling down deep learning with
    MNIST-1D", ICML 2024 (the 40-100-100-10 baseline).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from functional import activations, layers, losses
from functional import init as initializers
from zoo.data_info import DataInfo, Inputs, classes, targets

__all__ = ["Config", "init", "apply", "loss", "layer_names", "config_for", "INPUTS"]

TASKS = ("classification", "regression")


@dataclasses.dataclass(frozen=True)
class Config:
    """MLP shape and training-time behaviour.

    Attributes:
        n_in: input features (inputs with more axes, e.g. 8x8 images, are flattened).
        hidden: widths of the hidden layers; ``()`` gives a linear model.
        n_out: number of classes (classification) or of regression targets.
        activation: hidden activation name from ``functional.activations`` (relu, tanh,
            sigmoid, elu, ...).
        w_init: kernel initializer name from ``functional.init`` (he_normal, notes_relu,
            notes_tanh, xavier_normal, normal, ...).
        task: 'classification' (softmax cross-entropy, integer labels) or 'regression' (MSE).
        dropout: drop probability after each hidden activation (0 disables; needs a key in
            training).
    """

    n_in: int = 40
    hidden: tuple[int, ...] = (100, 100)
    n_out: int = 10
    activation: str = "relu"
    w_init: str = "he_normal"
    task: str = "classification"
    dropout: float = 0.0

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"mlp.Config: task must be one of {TASKS}, got {self.task!r}")
        if not isinstance(self.hidden, (tuple, list)):
            raise TypeError(f"mlp.Config: hidden must be a tuple of layer widths (e.g. (100,) "
                            f"for one layer), got {type(self.hidden).__name__} {self.hidden!r}")
        object.__setattr__(self, "hidden", tuple(self.hidden))   # hashable, like the default
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"mlp.Config: dropout must be a drop probability in [0, 1), got "
                             f"{self.dropout}")
        if self.n_in < 1 or self.n_out < 1 or any(h < 1 for h in self.hidden):
            raise ValueError(
                f"mlp.Config: sizes must be >= 1, got n_in={self.n_in}, hidden={self.hidden}, "
                f"n_out={self.n_out}")
        activations.get(self.activation)   # unknown names fail here, not at trace time
        initializers.get(self.w_init)


def layer_names(cfg: Config) -> list[str]:
    """Names of the dense layers in order: ``['fc1', ..., 'fcL', 'out']``."""
    return [f"fc{i + 1}" for i in range(len(cfg.hidden))] + ["out"]


INPUTS = Inputs(shapes="any", kind="float", words="real-valued inputs x [n, ...] (flattened)")


def config_for(info: DataInfo, **overrides) -> Config:
    """The config for a dataset: ``n_in`` from its features, ``n_out`` its classes (or its
    targets with ``task='regression'``), then ``overrides`` (``hidden``, ``activation``...)."""
    task = overrides.get("task", "classification")
    n_out = classes(info) if task == "classification" else targets(info)
    return Config(**{"n_in": info.n_features, "n_out": n_out, **overrides})


def init(key, cfg: Config):
    """Params ``{'fc1': {'w': <f32>[n_in, h1], 'b'}, ..., 'out': {'w': <f32>[hL, n_out], 'b'}}``.

    Every kernel is drawn with ``cfg.w_init``; biases are zero.
    """
    sizes = [cfg.n_in, *cfg.hidden, cfg.n_out]
    names = layer_names(cfg)
    keys = jax.random.split(key, len(names))
    w_init = initializers.get(cfg.w_init)
    return {name: layers.dense_init(k, n_in, n_out, w_init=w_init)
            for name, k, n_in, n_out in zip(names, keys, sizes[:-1], sizes[1:], strict=True)}


def apply(params, x, cfg: Config, *, key=None, train=False, state=None,
          return_hidden=False):
    """Forward pass.

    Args:
        params: from :func:`init`.
        x: <f32>[batch, n_in] or <f32>[batch, ...] flattened to n_in features.
        cfg: the model's :class:`Config`.
        key: PRNG key for dropout (needed when ``train`` and ``cfg.dropout > 0``).
        train: apply dropout.
        state: ignored (the model has no state; kept for the zoo signature).
        return_hidden: also return the list of hidden activations (for the gradient study).

    Returns:
        <f32>[batch, n_out] logits (classification) or predictions (regression); with
        ``return_hidden`` a pair ``(outputs, [<f32>[batch, h_l] for each hidden layer])``.
    """
    x = jnp.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"mlp.apply: expected x of shape [batch, {cfg.n_in}], got {x.shape}")
    h = layers.flatten(x) if x.ndim > 2 else x
    if h.shape[-1] != cfg.n_in:
        raise ValueError(
            f"mlp.apply: expected {cfg.n_in} input features, got x of shape {x.shape}")
    act = activations.get(cfg.activation)
    use_dropout = train and cfg.dropout > 0
    if use_dropout and key is None:
        raise ValueError("mlp.apply: train=True with dropout > 0 needs key=, got None")
    keys = jax.random.split(key, len(cfg.hidden)) if use_dropout else [None] * len(cfg.hidden)
    hidden = []
    for name, k in zip(layer_names(cfg)[:-1], keys, strict=True):
        h = act(layers.dense(params[name], h))
        hidden.append(h)
        if use_dropout:
            h = layers.dropout(h, cfg.dropout, key=k, train=True)
    out = layers.dense(params["out"], h)
    return (out, hidden) if return_hidden else out


def loss(params, model_state, batch, key, cfg: Config, *, train=True):
    """Softmax cross-entropy (classification) or MSE (regression), weighted batch mean.

    Args:
        params: from :func:`init`.
        model_state: ``{}`` (returned unchanged).
        batch: ``{'x': <f32>[batch, ...], 'y': <int>[batch]}`` for classification or
            ``'y': <f32>[batch, n_out]`` (``<f32>[batch]`` when n_out is 1) for regression;
            optionally ``'weight': <f32>[batch]``.
        key: PRNG key for dropout.
        cfg: the model's :class:`Config`.
        train: apply dropout.

    Returns:
        ``(loss, (model_state, metrics))``; metrics ``{'loss', 'accuracy'}`` or
        ``{'loss', 'mse'}``.
    """
    out = apply(params, batch["x"], cfg, key=key, train=train)
    weight = batch.get("weight")
    if cfg.task == "classification":
        y = jnp.asarray(batch["y"]).astype(jnp.int32)
        value = losses.softmax_cross_entropy(out, y, weights=weight)
        return value, (model_state, {"loss": value,
                                     "accuracy": losses.accuracy(out, y, weights=weight)})
    y = jnp.asarray(batch["y"], out.dtype).reshape(out.shape)
    value = losses.mse(out, y, weights=weight)
    return value, (model_state, {"loss": value, "mse": value})
