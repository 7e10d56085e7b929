"""Transfer learning: reuse a trained CNN's features for a new task (seed 001, CNN chapter).

Recipe (the driver that trains, saves and reloads is ``train.transfer``, since ``zoo/`` does
no I/O):

1. train a CNN (``zoo.cnn``) on task A, e.g. the digits 0-4, and save its params;
2. load them and replace the classifier head (``'out'``, and any ``fc*`` layers with
   ``reset='head'``) by a freshly initialized one sized for task B, e.g. the digits 5-9
   (:func:`replace_head`);
3. train on B with the feature layers (``conv*``) **frozen**, so that only the new head
   learns. The hope is that filters learned on A (strokes, corners) serve B too, so that few
   examples of B suffice. Measured on the 8x8 digits with 10 images per target class, frozen
   0-4 features reach ~94% on 5-9 against ~95% for the same network trained from scratch on
   those 50 images: these images are so small and easy that 50 examples already teach usable
   filters, and features specialized to 0-4 help no more (an honest negative result; transfer
   pays off on larger images and less related data budgets).

Two ways to freeze, both here, and they give the same parameters:

* **Optimizer masking** (:func:`freeze_optimizer`): ``optax.multi_transform`` routes the
  feature parameters to ``optax.set_to_zero()`` and the rest to the real optimizer. Gradients
  are still computed for every layer (the backward pass is unchanged) but frozen parameters
  never move, and the optimizer keeps no state for them (no Adam moments, no weight decay).
* **Stop-gradient** (``Config(freeze='stop_gradient')`` in :func:`loss`): the features are
  computed under ``jax.lax.stop_gradient``, so autodiff treats them as constants, their
  gradients are exactly zero and XLA drops the backward pass through the convolutions (cheaper).
  The catch: a plain optimizer still *updates* frozen parameters if the update does not vanish
  with the gradient -- weight decay, or momentum left over from earlier training, would move
  them. With a fresh Adam or SGD state a zero gradient gives a zero update, which is why the
  two methods agree here.

References:
    Seed note 001 (course outline: transfer learning after CNNs);
    J. Yosinski, J. Clune, Y. Bengio and H. Lipson, "How transferable are features in deep
    neural networks?", NeurIPS 2014; optax documentation, ``optax.multi_transform``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from functional import losses
from zoo import cnn
from zoo.data_info import Inputs

__all__ = ["Config", "FREEZE_MODES", "init", "apply", "loss", "split_classes", "replace_head",
           "param_labels", "freeze_optimizer", "INPUTS"]

FREEZE_MODES = ("none", "stop_gradient", "mask")


def _default_cnn():
    return cnn.lenet_config((8, 8, 1), n_out=5)


@dataclasses.dataclass(frozen=True)
class Config:
    """A CNN plus how its features are frozen.

    Attributes:
        cnn: the network (a ``zoo.cnn.Config``); default the digits LeNet with 5 classes.
        freeze: 'none' (train everything), 'stop_gradient' (features under
            ``stop_gradient`` in :func:`loss`) or 'mask' (the loss is unchanged; use
            :func:`freeze_optimizer`).
    """

    cnn: cnn.Config = dataclasses.field(default_factory=_default_cnn)
    freeze: str = "none"

    def __post_init__(self):
        if self.freeze not in FREEZE_MODES:
            raise ValueError(f"transfer.Config: freeze must be one of {FREEZE_MODES}, "
                             f"got {self.freeze!r}")


INPUTS = Inputs(shapes=((None, None, None),), kind="float",
                words="images x [n, height, width, channels]")


def init(key, cfg: Config):
    """Fresh CNN params (``zoo.cnn.init``); transfer starts from loaded ones instead."""
    return cnn.init(key, cfg.cnn)


def apply(params, x, cfg: Config, *, key=None, train=False, state=None):
    """Logits <f32>[batch, n_out] of the CNN (``zoo.cnn.apply``)."""
    return cnn.apply(params, x, cfg.cnn, key=key, train=train)


def loss(params, model_state, batch, key, cfg: Config, *, train=True):
    """Softmax cross-entropy of the CNN, features under ``stop_gradient`` if so configured.

    Args:
        params: CNN params.
        model_state: ``{}`` (returned unchanged).
        batch: ``{'x': <f32>[batch, *input_shape], 'y': <int>[batch]}``, optionally
            ``'weight'``.
        key: PRNG key for dropout.
        cfg: the :class:`Config`.
        train: apply dropout.

    Returns:
        ``(loss, (model_state, {'loss', 'accuracy'}))``.
    """
    h = cnn.features(params, batch["x"], cfg.cnn)
    if cfg.freeze == "stop_gradient":
        h = jax.lax.stop_gradient(h)
    logits = cnn.head(params, h, cfg.cnn, key=key, train=train)
    y = jnp.asarray(batch["y"]).astype(jnp.int32)
    weight = batch.get("weight")
    value = losses.softmax_cross_entropy(logits, y, weights=weight)
    return value, (model_state, {"loss": value,
                                 "accuracy": losses.accuracy(logits, y, weights=weight)})


def split_classes(x, y, classes):
    """Rows whose label is in ``classes``, relabelled 0..len(classes)-1 in that order.

    Args:
        x: <f32>[n, ...] inputs; y: <int>[n] labels; classes: sequence of label values.

    Returns:
        ``(x_subset, y_subset)`` as NumPy arrays (y as int32).
    """
    x, y = np.asarray(x), np.asarray(y)
    classes = [int(c) for c in classes]
    if len(set(classes)) != len(classes):
        raise ValueError(f"split_classes: classes must be distinct, got {classes}")
    keep = np.isin(y, classes)
    relabel = np.full(int(max(y.max(initial=0), max(classes))) + 1, -1, np.int32)
    relabel[classes] = np.arange(len(classes), dtype=np.int32)
    return x[keep], relabel[y[keep]]


def replace_head(key, params, cfg: cnn.Config, n_out: int, *, reset: str = "out"):
    """Params with a new, freshly initialized classifier for ``n_out`` classes.

    Args:
        key: PRNG key for the new layers.
        params: trained CNN params (e.g. loaded from a checkpoint).
        cfg: their ``zoo.cnn.Config``.
        n_out: number of classes of the new task.
        reset: 'out' replaces only the last layer; 'head' re-initializes every dense layer.

    Returns:
        ``(new_params, new_cfg)``; the convolution layers are the same arrays as in ``params``.
    """
    if reset not in ("out", "head"):
        raise ValueError(f"replace_head: reset must be 'out' or 'head', got {reset!r}")
    new_cfg = dataclasses.replace(cfg, n_out=n_out)
    fresh = cnn.init(key, new_cfg)
    new = dict(params)
    for name in fresh:
        if name == "out" or (reset == "head" and name.startswith("fc")):
            new[name] = fresh[name]
    return new, new_cfg


def param_labels(params, trainable=("fc", "out")):
    """Pytree of 'trainable' / 'frozen' labels: layers whose name starts with a ``trainable``
    prefix are trainable, the rest (the ``conv*`` features) frozen."""
    return {name: jax.tree.map(lambda _, n=name: "trainable" if n.startswith(tuple(trainable))
                               else "frozen", sub)
            for name, sub in params.items()}


def freeze_optimizer(optimizer: optax.GradientTransformation, params,
                     trainable=("fc", "out")) -> optax.GradientTransformation:
    """``optimizer`` for the trainable layers, zero updates (and no state) for the rest.

    Args:
        optimizer: any optax-compatible optimizer.
        params: the params it will update (only their structure and names are used).
        trainable: name prefixes of the layers that keep training.

    Returns:
        ``optax.multi_transform({'trainable': optimizer, 'frozen': set_to_zero()}, labels)``.
    """
    return optax.multi_transform({"trainable": optimizer, "frozen": optax.set_to_zero()},
                                 param_labels(params, trainable))
