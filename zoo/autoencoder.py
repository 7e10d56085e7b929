"""Convolutional autoencoder and its denoising variant (seed 001: CNN -> conv autoencoder).

Encoder: ``[conv 3x3 'SAME' -> ReLU -> 2x2 max-pool] * len(channels)`` squeezes an image
``<f32>[batch, H, W, C]`` to a code ``<f32>[batch, H / 2^L, W / 2^L, channels[-1]]``.
Decoder: the mirror image with **transposed convolutions** (kernel 2, stride 2), each doubling
the spatial size, then a 3x3 convolution back to C channels giving per-pixel logits. The
reconstruction is ``sigmoid(logits)`` and the loss is the per-pixel binary cross-entropy
against the clean image (pixels in [0, 1]), or the mean squared error (``loss='mse'``).

The denoising variant (``noise_std > 0``; Vincent et al. 2008) corrupts the *input* with
Gaussian noise, clipped back to [0, 1], and still asks for the clean image: the code must then
capture the structure of digits rather than copy pixels. Corruption needs a PRNG key; when
``loss`` is called for evaluation without one, a fixed key (0) is used so that evaluation is
deterministic.

References:
    Seed note 001 (course outline: convolutional autoencoder, denoising);
    P. Vincent, H. Larochelle, Y. Bengio and P.-A. Manzagol, "Extracting and composing robust
    features with denoising autoencoders", ICML 2008;
    V. Dumoulin and F. Visin, "A guide to convolution arithmetic for deep learning", 2016
    (transposed convolution).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from functional import activations, layers, losses
from functional import init as initializers
from zoo.data_info import DataInfo, Inputs, image_shape

__all__ = ["Config", "init", "encode", "decode", "apply", "corrupt", "loss", "config_for", "INPUTS"]


@dataclasses.dataclass(frozen=True)
class Config:
    """Autoencoder shape and training target.

    Attributes:
        input_shape: ``(height, width, channels)``; height and width must be divisible by
            ``2 ** len(channels)``.
        channels: encoder filters per level (the decoder mirrors them); the last is the code's
            channel count.
        noise_std: standard deviation of the Gaussian input corruption (0: plain autoencoder).
        loss: 'bce' (pixels in [0, 1], reconstruction = sigmoid(logits)) or 'mse'
            (reconstruction = logits).
        w_init: kernel initializer name from ``functional.init``.
    """

    input_shape: tuple[int, int, int] = (8, 8, 1)
    channels: tuple[int, ...] = (16, 8)
    noise_std: float = 0.0
    loss: str = "bce"
    w_init: str = "he_normal"

    def __post_init__(self):
        if len(self.input_shape) != 3:
            raise ValueError(f"autoencoder.Config: input_shape must be (height, width, "
                             f"channels), got {self.input_shape}")
        factor = 2 ** len(self.channels)
        if self.input_shape[0] % factor or self.input_shape[1] % factor:
            raise ValueError(f"autoencoder.Config: height and width must be divisible by "
                             f"{factor} for {len(self.channels)} pooling levels, got "
                             f"{self.input_shape}")
        if self.loss not in ("bce", "mse"):
            raise ValueError(f"autoencoder.Config: loss must be 'bce' or 'mse', got {self.loss!r}")
        if self.noise_std < 0:
            raise ValueError(f"autoencoder.Config: noise_std must be >= 0, got {self.noise_std}")
        initializers.get(self.w_init)


INPUTS = Inputs(shapes=((None, None, None),), kind="float",
                words="images x [n, height, width, channels]")


def config_for(info: DataInfo, **overrides) -> Config:
    """The config for a dataset of images: ``input_shape`` from it, then ``overrides``."""
    return Config(**{"input_shape": image_shape(info, "autoencoder"), **overrides})


def init(key, cfg: Config):
    """Params ``{'enc1', ..., 'encL', 'dec1', ..., 'decL', 'out'}``, each ``{'w', 'b'}``.

    ``enc{i}`` are 3x3 convolutions, ``dec{i}`` 2x2 transposed convolutions, ``out`` a 3x3
    convolution to the image's channels.
    """
    n = len(cfg.channels)
    keys = jax.random.split(key, 2 * n + 1)
    w_init = initializers.get(cfg.w_init)
    params, c_in = {}, cfg.input_shape[-1]
    for i, c in enumerate(cfg.channels):
        params[f"enc{i + 1}"] = layers.conv_init(keys[i], c_in, c, (3, 3), w_init=w_init)
        c_in = c
    for i, c in enumerate(reversed(cfg.channels)):
        params[f"dec{i + 1}"] = layers.conv_transpose_init(keys[n + i], c_in, c, (2, 2),
                                                           w_init=w_init)
        c_in = c
    params["out"] = layers.conv_init(keys[-1], c_in, cfg.input_shape[-1], (3, 3), w_init=w_init)
    return params


def _check_x(x, cfg: Config, fn: str):
    x = jnp.asarray(x)
    if tuple(x.shape[1:]) != tuple(cfg.input_shape):
        raise ValueError(f"autoencoder.{fn}: expected x of shape [batch, "
                         f"{', '.join(map(str, cfg.input_shape))}], got {x.shape}")
    return x


def encode(params, x, cfg: Config):
    """Code ``<f32>[batch, H / 2^L, W / 2^L, channels[-1]]`` of images <f32>[batch, H, W, C]."""
    h = _check_x(x, cfg, "encode")
    for i in range(len(cfg.channels)):
        h = layers.max_pool(activations.relu(layers.conv(params[f"enc{i + 1}"], h)), 2)
    return h


def decode(params, code, cfg: Config):
    """Per-pixel logits <f32>[batch, H, W, C] from a code (see :func:`encode`)."""
    h = code
    for i in range(len(cfg.channels)):
        h = activations.relu(layers.conv_transpose(params[f"dec{i + 1}"], h, stride=2))
    return layers.conv(params["out"], h)


def apply(params, x, cfg: Config, *, key=None, train=False, state=None):
    """Reconstruction of ``x`` <f32>[batch, H, W, C]: pixels in [0, 1] for 'bce', raw for 'mse'.

    The input is used as given (corrupt it with :func:`corrupt` to denoise).
    """
    del key, train, state
    logits = decode(params, encode(params, x, cfg), cfg)
    return activations.sigmoid(logits) if cfg.loss == "bce" else logits


def corrupt(key, x, noise_std: float):
    """Denoising input: ``clip(x + noise_std * normal, 0, 1)``, same shape as ``x``."""
    noisy = x + noise_std * jax.random.normal(key, jnp.shape(x), jnp.asarray(x).dtype)
    return jnp.clip(noisy, 0.0, 1.0)


def loss(params, model_state, batch, key, cfg: Config, *, train=True):
    """Reconstruction loss of the clean image from the (possibly corrupted) input.

    Args:
        params: from :func:`init`.
        model_state: ``{}`` (returned unchanged).
        batch: ``{'x': <f32>[batch, H, W, C]}`` with pixels in [0, 1]; ``'y'`` (labels) is
            ignored; optionally ``'weight': <f32>[batch]``.
        key: PRNG key for the corruption (``noise_std > 0``); None uses a fixed key.
        cfg: the model's :class:`Config`.
        train: unused (the corruption is part of the task, in training and evaluation).

    Returns:
        ``(loss, (model_state, {'loss', 'mse'}))`` where ``mse`` is the pixel mean squared
        error of the reconstruction; the denoising variant adds ``'noisy_mse'``, the error of
        the corrupted input itself (the baseline a denoiser must beat).
    """
    del train
    clean = _check_x(batch["x"], cfg, "loss")
    weight = batch.get("weight")
    metrics = {}
    x_in = clean
    if cfg.noise_std > 0:
        x_in = corrupt(jax.random.key(0) if key is None else key, clean, cfg.noise_std)
        metrics["noisy_mse"] = losses.mse(x_in, clean, weights=weight)
    logits = decode(params, encode(params, x_in, cfg), cfg)
    if cfg.loss == "bce":
        value = losses.binary_cross_entropy_with_logits(logits, clean, weights=weight)
        recon = activations.sigmoid(logits)
    else:
        value = losses.mse(logits, clean, weights=weight)
        recon = logits
    metrics.update(loss=value, mse=losses.mse(recon, clean, weights=weight))
    return value, (model_state, metrics)
