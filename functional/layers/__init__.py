"""Neural-network layers as pairs of pure functions: ``*_init`` builds a params dict, the apply
function maps ``(params, x)`` to the output.

Every layer here is checked against ``flax.linen`` with the weights mapped across
(``tests/functional/test_layers.py``). Conventions (``docs/architecture.md``):

- Arrays are channels-last: signals ``<f32>[batch, length, channels]``, images
  ``<f32>[batch, height, width, channels]``.
- Dense kernels are ``w: <f32>[n_in, n_out]``; convolution kernels are
  ``w: <f32>[*kernel, in_channels, out_channels]`` (flax's layout, so weights map one to one).
- Any initializer with the signature ``init_fn(key, shape, dtype) -> array`` can be passed as
  ``w_init`` / ``b_init`` (those of ``functional.init`` or ``jax.nn.initializers`` alike). The
  defaults are flax's: LeCun normal kernels and zero biases.
- Shapes are checked in Python on static shapes, so a wrong input rank, channel count or
  feature size raises ``ValueError`` naming the layer, the expected and the actual shape before
  anything is traced (and at trace time inside ``jax.jit``).
- Layers with state that changes outside gradients (batch norm) take and return it explicitly.

Layout: ``core`` holds dense, flatten, dropout, the norms and the embedding, with what every
layer shares; ``convolution`` the sliding-window layers (convolutions, transposed
convolution, pooling) and their stride/padding arithmetic. Every public name is re-exported
here: ``from functional import layers; layers.conv(...)``.

References: the notes' CNN chapter (seed 003 section 5: stride, zero padding, several filters,
cross-correlation vs convolution, pooling); Srivastava et al. 2014 (dropout); Ioffe & Szegedy
2015 (batch norm); Ba, Kiros & Hinton 2016 (layer norm); Dumoulin & Visin 2016, "A guide to
convolution arithmetic for deep learning" (output sizes, transposed convolution).
"""

from functional.layers.convolution import (
    avg_pool,
    conv,
    conv1d,
    conv1d_init,
    conv2d,
    conv2d_init,
    conv_init,
    conv_output_shape,
    conv_transpose,
    conv_transpose_init,
    max_pool,
)
from functional.layers.core import (
    batch_norm,
    batch_norm_init,
    dense,
    dense_init,
    dropout,
    embedding,
    embedding_init,
    flatten,
    layer_norm,
    layer_norm_init,
)

__all__ = [
    "avg_pool",
    "batch_norm",
    "batch_norm_init",
    "conv",
    "conv1d",
    "conv1d_init",
    "conv2d",
    "conv2d_init",
    "conv_init",
    "conv_output_shape",
    "conv_transpose",
    "conv_transpose_init",
    "dense",
    "dense_init",
    "dropout",
    "embedding",
    "embedding_init",
    "flatten",
    "layer_norm",
    "layer_norm_init",
    "max_pool",
]
