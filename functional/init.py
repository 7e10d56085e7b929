"""Weight initializers with the signature ``init_fn(key, shape, dtype=jnp.float32)``.

Fans. For a dense kernel ``<f32>[n_in, n_out]`` ``fan_in = n_in`` and ``fan_out = n_out``.
For a convolution kernel ``<f32>[*spatial, in_channels, out_channels]`` (channels-last, as
``functional.layers`` stores them) every output sees ``prod(spatial) * in_channels`` inputs,
so ``fan_in = receptive * in_channels`` and ``fan_out = receptive * out_channels`` with
``receptive = prod(spatial)``: the receptive-field size multiplies both, as in
``jax.nn.initializers``, Keras and PyTorch. A 1-D shape ``[n]`` (a bias, a gain) gets
``fan_in = fan_out = n`` and a scalar shape ``()`` gets 1 and 1.

Distributions. Names shared with ``jax.nn.initializers`` / ``flax`` use their formulas and
draw the same bits from the same key for kernels of rank >= 2:

==================================  ============================  ===================
name                                variance                      distribution
==================================  ============================  ===================
lecun_normal                        1 / fan_in                    truncated normal
xavier_normal = glorot_normal       2 / (fan_in + fan_out)        truncated normal
xavier_uniform = glorot_uniform     2 / (fan_in + fan_out)        uniform
he_normal = kaiming_normal          2 / fan_in                    truncated normal
he_uniform = kaiming_uniform        2 / fan_in                    uniform
notes_relu                          2 / fan_in                    plain normal
notes_tanh                          1 / fan_in                    plain normal
notes_other                         2 / (fan_in + fan_out)        plain normal
==================================  ============================  ===================

"Truncated normal" is a standard normal cut at +-2 standard deviations and rescaled (by
1 / 0.8796...) so that the variance after truncation is exactly the one in the table; no
sample lies beyond 2 / 0.8796 = 2.27 times the target standard deviation. Note that
PyTorch's ``kaiming_normal_`` / ``xavier_normal_`` use a plain normal instead; the
``notes_*`` rules are those plain-normal versions.

The ``notes_*`` rules are seed 004 section 5.4 verbatim:
ReLU ``randn(fan_in, fan_out) / sqrt(fan_in / 2)``, tanh ``randn / sqrt(fan_in)``, other
``randn / sqrt((fan_in + fan_out) / 2)``.

``normal(stddev)``, ``uniform(scale)`` and ``constant(value)`` are factories that return an
initializer; everything else is an initializer itself.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "zeros",
    "ones",
    "constant",
    "normal",
    "uniform",
    "variance_scaling",
    "lecun_normal",
    "xavier_normal",
    "xavier_uniform",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "kaiming_normal",
    "kaiming_uniform",
    "orthogonal",
    "notes_relu",
    "notes_tanh",
    "notes_other",
    "fans",
    "get",
]

# Standard deviation of a standard normal truncated to (-2, 2), as in jax.nn.initializers.
_TRUNC_STD = 0.87962566103423978


def _canon_shape(fn, shape):
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    try:
        shape = tuple(int(d) for d in shape)
    except TypeError:
        raise TypeError(f"{fn}: shape must be a tuple of ints, got {shape!r}") from None
    if any(d < 0 for d in shape):
        raise ValueError(f"{fn}: shape must have non-negative sizes, got {shape}")
    return shape


def _check_dtype(fn, dtype):
    # None means the default, as in jax.nn.initializers (jnp.dtype(None) would be float64).
    dtype = jnp.dtype(jnp.float32 if dtype is None else dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"{fn}: dtype must be a floating dtype, got {dtype}")
    return dtype


def fans(shape):
    """Fan-in and fan-out of a weight shape (see the module docstring).

    Args:
      shape: ``()`` scalar, ``[n]`` vector, ``[n_in, n_out]`` dense kernel, or
        ``[*spatial, in_channels, out_channels]`` convolution kernel.

    Returns:
      ``(fan_in, fan_out)`` as Python ints.
    """
    shape = _canon_shape("fans", shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def zeros(key, shape, dtype=jnp.float32):
    """All zeros (biases; the zero init whose symmetry problem seed 004 section 9.0 shows).

    Args:
      key: unused, kept for the common signature.
      shape: output shape.
      dtype: floating dtype.

    Returns:
      <dtype>[*shape] zeros.
    """
    del key
    return jnp.zeros(_canon_shape("zeros", shape), _check_dtype("zeros", dtype))


def ones(key, shape, dtype=jnp.float32):
    """All ones (e.g. normalization gains).

    Args:
      key: unused, kept for the common signature.
      shape: output shape.
      dtype: floating dtype.

    Returns:
      <dtype>[*shape] ones.
    """
    del key
    return jnp.ones(_canon_shape("ones", shape), _check_dtype("ones", dtype))


def constant(value):
    """Factory: an initializer filling the array with ``value``.

    Args:
      value: the fill value (e.g. 1.0 for an LSTM forget-gate bias).

    Returns:
      ``init_fn(key, shape, dtype=jnp.float32)``.
    """
    value = float(value)

    def init(key, shape, dtype=jnp.float32):
        del key
        shape = _canon_shape("constant", shape)
        return jnp.full(shape, value, _check_dtype("constant", dtype))

    return init


def normal(stddev=1.0):
    """Factory: plain (untruncated) normal with mean 0 and standard deviation ``stddev``.

    The default 1.0 gives ``randn``; note ``jax.nn.initializers.normal`` defaults to 0.01.

    Args:
      stddev: standard deviation.

    Returns:
      ``init_fn(key, shape, dtype=jnp.float32)``.
    """
    if stddev < 0:
        raise ValueError(f"normal: stddev must be >= 0, got {stddev}")

    def init(key, shape, dtype=jnp.float32):
        shape = _canon_shape("normal", shape)
        dtype = _check_dtype("normal", dtype)
        return jax.random.normal(key, shape, dtype) * jnp.asarray(stddev, dtype)

    return init


def uniform(scale=1.0):
    """Factory: uniform on the symmetric interval [-scale, scale) (variance scale^2 / 3).

    Symmetric, as PyTorch's default layer inits U(-1/sqrt(fan_in), 1/sqrt(fan_in)) need;
    note ``jax.nn.initializers.uniform(scale)`` samples [0, scale) instead.

    Args:
      scale: half-width of the interval.

    Returns:
      ``init_fn(key, shape, dtype=jnp.float32)``.
    """
    if scale < 0:
        raise ValueError(f"uniform: scale must be >= 0, got {scale}")

    def init(key, shape, dtype=jnp.float32):
        shape = _canon_shape("uniform", shape)
        dtype = _check_dtype("uniform", dtype)
        return jax.random.uniform(key, shape, dtype, -1.0, 1.0) * jnp.asarray(scale, dtype)

    return init


def variance_scaling(scale, mode, distribution, name="variance_scaling"):
    """Factory for the fan-based initializers (the formula of ``jax.nn.initializers``).

    Args:
      scale: the variance is ``scale / n``.
      mode: ``'fan_in'``, ``'fan_out'`` or ``'fan_avg'`` chooses n.
      distribution: ``'truncated_normal'`` (cut at +-2 sd, rescaled to the target
        variance), ``'normal'`` or ``'uniform'`` (on [-sqrt(3 var), sqrt(3 var))).
      name: the name used in error messages.

    Returns:
      ``init_fn(key, shape, dtype=jnp.float32)``.
    """
    if mode not in ("fan_in", "fan_out", "fan_avg"):
        raise ValueError(f"{name}: mode must be fan_in, fan_out or fan_avg, got {mode!r}")
    if distribution not in ("truncated_normal", "normal", "uniform"):
        raise ValueError(
            f"{name}: distribution must be truncated_normal, normal or uniform, "
            f"got {distribution!r}"
        )

    def init(key, shape, dtype=jnp.float32):
        shape = _canon_shape(name, shape)
        dtype = _check_dtype(name, dtype)
        fan_in, fan_out = fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
        variance = jnp.array(scale / max(n, 1), dtype=dtype)
        if distribution == "truncated_normal":
            std = jnp.sqrt(variance) / jnp.array(_TRUNC_STD, dtype)
            return jax.random.truncated_normal(key, -2, 2, shape, dtype) * std
        if distribution == "normal":
            return jax.random.normal(key, shape, dtype) * jnp.sqrt(variance)
        return jax.random.uniform(key, shape, dtype, -1) * jnp.sqrt(3 * variance)

    init.__name__ = name
    init.__doc__ = (
        f"{name}(key, shape, dtype=jnp.float32): variance {scale} / {mode}, {distribution}."
    )
    return init


lecun_normal = variance_scaling(1.0, "fan_in", "truncated_normal", "lecun_normal")
xavier_normal = variance_scaling(1.0, "fan_avg", "truncated_normal", "xavier_normal")
xavier_uniform = variance_scaling(1.0, "fan_avg", "uniform", "xavier_uniform")
glorot_normal = xavier_normal
glorot_uniform = xavier_uniform
he_normal = variance_scaling(2.0, "fan_in", "truncated_normal", "he_normal")
he_uniform = variance_scaling(2.0, "fan_in", "uniform", "he_uniform")
kaiming_normal = he_normal
kaiming_uniform = he_uniform


def _notes_rule(fn, denominator):
    def init(key, shape, dtype=jnp.float32):
        shape = _canon_shape(fn, shape)
        dtype = _check_dtype(fn, dtype)
        fan_in, fan_out = fans(shape)
        d = jnp.asarray(math.sqrt(max(denominator(fan_in, fan_out), 1e-12)), dtype)
        return jax.random.normal(key, shape, dtype) / d

    init.__name__ = fn
    return init


notes_relu = _notes_rule("notes_relu", lambda fi, fo: fi / 2)
notes_relu.__doc__ = """Seed 004 section 5.4, ReLU: ``randn(*shape) / sqrt(fan_in / 2)``.

Plain normal with variance 2 / fan_in (He et al., 2015). Signature
``(key, shape, dtype=jnp.float32)``."""
notes_tanh = _notes_rule("notes_tanh", lambda fi, fo: fi)
notes_tanh.__doc__ = """Seed 004 section 5.4, tanh: ``randn(*shape) / sqrt(fan_in)``.

Plain normal with variance 1 / fan_in (LeCun). Signature ``(key, shape, dtype=jnp.float32)``."""
notes_other = _notes_rule("notes_other", lambda fi, fo: (fi + fo) / 2)
notes_other.__doc__ = """Seed 004 section 5.4, other rule:
``randn(*shape) / sqrt((fan_in + fan_out) / 2)``.

Plain normal with variance 2 / (fan_in + fan_out) (Glorot & Bengio, 2010). Signature
``(key, shape, dtype=jnp.float32)``."""


def orthogonal(key, shape, dtype=jnp.float32):
    """Random orthogonal matrix (Saxe et al., 2014), e.g. for recurrent kernels.

    The kernel is viewed as a matrix ``[prod(shape[:-1]), shape[-1]]``; a Gaussian matrix is
    QR-factorized and the signs of R's diagonal are folded into Q so the result is uniformly
    (Haar) distributed. Columns are orthonormal when rows >= columns, rows otherwise.

    Args:
      key: PRNG key.
      shape: at least 2-D.
      dtype: floating dtype.

    Returns:
      <dtype>[*shape] with ``W.reshape(-1, shape[-1])`` having orthonormal columns (or rows).
    """
    shape = _canon_shape("orthogonal", shape)
    dtype = _check_dtype("orthogonal", dtype)
    if len(shape) < 2:
        raise ValueError(f"orthogonal: shape must be at least 2-D, got {shape}")
    n_cols = shape[-1]
    n_rows = math.prod(shape) // n_cols if n_cols else 0
    if n_rows == 0 or n_cols == 0:
        return jnp.zeros(shape, dtype)
    big, small = max(n_rows, n_cols), min(n_rows, n_cols)
    a = jax.random.normal(key, (big, small), dtype)
    q, r = jnp.linalg.qr(a)
    q = q * jnp.sign(jnp.diagonal(r))[None, :]
    if n_rows < n_cols:
        q = q.T
    return q.reshape(shape)


_REGISTRY = {
    "zeros": zeros,
    "ones": ones,
    "normal": normal(1.0),
    "uniform": uniform(1.0),
    "lecun_normal": lecun_normal,
    "xavier_normal": xavier_normal,
    "xavier_uniform": xavier_uniform,
    "glorot_normal": glorot_normal,
    "glorot_uniform": glorot_uniform,
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "kaiming_normal": kaiming_normal,
    "kaiming_uniform": kaiming_uniform,
    "orthogonal": orthogonal,
    "notes_relu": notes_relu,
    "notes_tanh": notes_tanh,
    "notes_other": notes_other,
}


def get(name):
    """Look an initializer up by name.

    Args:
      name: one of the initializer names of this module; ``'normal'`` and ``'uniform'``
        give the defaults ``normal(1.0)`` and ``uniform(1.0)``.

    Returns:
      ``init_fn(key, shape, dtype=jnp.float32)``.

    Raises:
      ValueError: for an unknown name, listing the valid ones.
    """
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(
            f"init.get: unknown initializer {name!r}; "
            f"expected one of {', '.join(sorted(_REGISTRY))}"
        )
    return _REGISTRY[name]
