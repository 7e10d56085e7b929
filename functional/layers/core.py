"""The layers without a sliding window: dense, flatten, dropout, batch and layer norm,
embedding; and what every layer shares (parameter lookup, shape errors, flax's default
initializers). Conventions: see ``functional.layers``.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

Array = jax.Array
InitFn = Callable[..., Array]

# flax.linen's defaults, so that an unconfigured layer here starts where flax's would.
_default_w_init: InitFn = jax.nn.initializers.lecun_normal()
_default_b_init: InitFn = jax.nn.initializers.zeros
_default_embed_init: InitFn = jax.nn.initializers.normal(stddev=1.0)


# --------------------------------------------------------------------------------------------
# Argument helpers (all static Python; nothing here touches array values)
# --------------------------------------------------------------------------------------------


def _shape_error(fn: str, what: str, expected: str, actual: tuple[int, ...]) -> ValueError:
    return ValueError(f"{fn}: expected {what} of shape {expected}, got shape {tuple(actual)}")


def _leaf(params: Any, name: str, fn: str) -> Array:
    if not isinstance(params, dict) or name not in params:
        keys = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise ValueError(f"{fn}: expected params with key {name!r}, got {keys}")
    return params[name]


# --------------------------------------------------------------------------------------------
# Dense
# --------------------------------------------------------------------------------------------


def dense_init(
    key: Array,
    n_in: int,
    n_out: int,
    *,
    w_init: InitFn = _default_w_init,
    b_init: InitFn = _default_b_init,
    dtype: Any = jnp.float32,
) -> dict[str, Array]:
    """Parameters of a fully connected (affine) layer.

    Args:
      key: PRNG key for the kernel.
      n_in: input features.
      n_out: output features.
      w_init: kernel initializer ``fn(key, shape, dtype)``; default LeCun normal (flax's).
      b_init: bias initializer; default zeros.
      dtype: parameter dtype.

    Returns:
      ``{'w': <f32>[n_in, n_out], 'b': <f32>[n_out]}``.
    """
    kw, kb = jax.random.split(key)
    return {"w": w_init(kw, (n_in, n_out), dtype), "b": b_init(kb, (n_out,), dtype)}


def dense(params: dict[str, Array], x: Array) -> Array:
    """Affine map ``y = x @ w + b`` over the last axis (flax ``nn.Dense``).

    Args:
      params: ``{'w': <f32>[n_in, n_out], 'b': <f32>[n_out]}``.
      x: ``<f32>[..., n_in]``.

    Returns:
      ``<f32>[..., n_out]``.
    """
    w = _leaf(params, "w", "dense")
    b = _leaf(params, "b", "dense")
    if w.ndim != 2:
        raise _shape_error("dense", "params['w']", "[n_in, n_out]", w.shape)
    n_in, n_out = w.shape
    if b.shape != (n_out,):
        raise _shape_error("dense", "params['b']", f"({n_out},)", b.shape)
    if jnp.ndim(x) < 1 or x.shape[-1] != n_in:
        raise _shape_error("dense", "x", f"[..., {n_in}]", jnp.shape(x))
    return jnp.dot(x, w) + b


# --------------------------------------------------------------------------------------------
# Flatten
# --------------------------------------------------------------------------------------------


def flatten(x: Array) -> Array:
    """Flattens everything but the batch axis: ``<f32>[batch, ...] -> <f32>[batch, features]``."""
    if jnp.ndim(x) < 1:
        raise _shape_error("flatten", "x", "[batch, ...]", jnp.shape(x))
    return jnp.reshape(x, (x.shape[0], -1))


# --------------------------------------------------------------------------------------------
# Dropout
# --------------------------------------------------------------------------------------------


def dropout(x: Array, rate: float, *, key: Array | None = None, train: bool = False) -> Array:
    """Inverted dropout (Srivastava et al. 2014), flax ``nn.Dropout``.

    In training each element is zeroed with probability ``rate`` and the survivors are scaled
    by ``1 / (1 - rate)`` so that the expectation of every element is unchanged; at test time
    the layer is the identity, with no rescaling needed.

    Args:
      x: ``<f32>[...]`` any shape.
      rate: the DROP probability, a Python float in [0, 1).
      key: PRNG key, required when ``train`` and ``rate > 0``; the same key gives the same
        mask.
      train: a Python bool; False returns ``x`` unchanged.

    Returns:
      ``<f32>[...]`` the shape of ``x``.
    """
    if not isinstance(rate, numbers.Real) or isinstance(rate, bool):
        raise TypeError(f"dropout: expected rate as a Python float in [0, 1), got {rate!r}")
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout: expected rate (drop probability) in [0, 1), got {rate}")
    if not isinstance(train, bool):
        raise TypeError(f"dropout: expected train as a Python bool, got {type(train).__name__}")
    if not train or rate == 0.0:
        return x
    if key is None:
        raise ValueError("dropout: train=True with rate > 0 needs key=, got key=None")
    keep = jax.random.bernoulli(key, 1.0 - rate, jnp.shape(x))
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))


# --------------------------------------------------------------------------------------------
# Normalization
# --------------------------------------------------------------------------------------------


def batch_norm_init(
    n_features: int, dtype: Any = jnp.float32
) -> tuple[dict[str, Array], dict[str, Array]]:
    """Parameters and running statistics of batch normalization.

    Args:
      n_features: size of the last (feature / channel) axis.
      dtype: dtype of params and state.

    Returns:
      ``(params, state)`` with params ``{'scale': ones, 'bias': zeros}`` and state
      ``{'mean': zeros, 'var': ones}``, each ``<f32>[n_features]``.
    """
    params = {"scale": jnp.ones((n_features,), dtype), "bias": jnp.zeros((n_features,), dtype)}
    state = {"mean": jnp.zeros((n_features,), dtype), "var": jnp.ones((n_features,), dtype)}
    return params, state


def batch_norm(
    params: dict[str, Array],
    state: dict[str, Array],
    x: Array,
    *,
    train: bool,
    momentum: float = 0.9,
    eps: float = 1e-5,
    axis_name: str | None = None,
) -> tuple[Array, dict[str, Array]]:
    """Batch normalization (Ioffe & Szegedy 2015) with the running statistics as explicit state.

    Statistics are taken over every axis but the last (batch for dense activations; batch and
    space for channels-last feature maps):

        y = scale * (x - mean) / sqrt(var + eps) + bias

    ``train=True`` uses the batch mean and the biased batch variance (as flax) and updates

        running = momentum * running + (1 - momentum) * batch

    (flax's convention, where ``momentum`` weighs the old value; PyTorch's ``momentum`` is
    ``1 - `` this). ``train=False`` uses the running statistics and returns ``state`` unchanged.

    Args:
      params: ``{'scale': <f32>[features], 'bias': <f32>[features]}``.
      state: ``{'mean': <f32>[features], 'var': <f32>[features]}``.
      x: ``<f32>[batch, ..., features]``.
      train: a Python bool selecting batch or running statistics.
      momentum: weight of the old running value.
      eps: added to the variance.
      axis_name: a mapped axis name (``pmap``/``shard_map``) over which to average the batch
        statistics across devices; None for one device.

    Returns:
      ``(y, new_state)``, ``y: <f32>[batch, ..., features]``.
    """
    fn = "batch_norm"
    scale, bias = _leaf(params, "scale", fn), _leaf(params, "bias", fn)
    mean_r, var_r = _leaf(state, "mean", fn), _leaf(state, "var", fn)
    if scale.ndim != 1:
        raise _shape_error(fn, "params['scale']", "[features]", scale.shape)
    n = scale.shape[0]
    for name, leaf in (("params['bias']", bias), ("state['mean']", mean_r),
                       ("state['var']", var_r)):
        if leaf.shape != (n,):
            raise _shape_error(fn, name, f"({n},) like params['scale'] {scale.shape}",
                               leaf.shape)
    if jnp.ndim(x) < 2 or x.shape[-1] != n:
        raise _shape_error(fn, "x", f"[batch, ..., {n}]", jnp.shape(x))
    if not isinstance(train, bool):
        raise TypeError(f"batch_norm: expected train as a Python bool, got {train!r}")
    if train:
        axes = tuple(range(x.ndim - 1))
        mean = jnp.mean(x, axis=axes)
        if axis_name is not None:
            mean = lax.pmean(mean, axis_name)
        # Two passes (mean first, then squared deviations) rather than E[x^2] - E[x]^2,
        # which cancels badly when |mean| >> std.
        var = jnp.mean(jnp.square(x - mean), axis=axes)
        if axis_name is not None:
            var = lax.pmean(var, axis_name)
        new_state = {
            "mean": momentum * mean_r + (1.0 - momentum) * lax.stop_gradient(mean),
            "var": momentum * var_r + (1.0 - momentum) * lax.stop_gradient(var),
        }
    else:
        mean, var, new_state = mean_r, var_r, state
    y = (x - mean) * (scale * lax.rsqrt(var + eps)) + bias
    return y, new_state


def layer_norm_init(n_features: int, dtype: Any = jnp.float32) -> dict[str, Array]:
    """Parameters of layer normalization: ``{'scale': ones, 'bias': zeros}``, each
    ``<f32>[n_features]``."""
    return {"scale": jnp.ones((n_features,), dtype), "bias": jnp.zeros((n_features,), dtype)}


def layer_norm(params: dict[str, Array], x: Array, *, eps: float = 1e-6) -> Array:
    """Layer normalization over the last axis (Ba, Kiros & Hinton 2016; flax ``nn.LayerNorm``,
    whose default ``eps`` this shares).

    Each example (each position of a sequence) is normalized by its own mean and biased
    variance over features, so it behaves the same in training and evaluation.

    Args:
      params: ``{'scale': <f32>[features], 'bias': <f32>[features]}``.
      x: ``<f32>[..., features]``.
      eps: added to the variance.

    Returns:
      ``<f32>[..., features]``.
    """
    scale, bias = _leaf(params, "scale", "layer_norm"), _leaf(params, "bias", "layer_norm")
    if scale.ndim != 1:
        raise _shape_error("layer_norm", "params['scale']", "[features]", scale.shape)
    n = scale.shape[0]
    if bias.shape != (n,):
        raise _shape_error("layer_norm", "params['bias']",
                           f"({n},) like params['scale'] {scale.shape}", bias.shape)
    if jnp.ndim(x) < 1 or x.shape[-1] != n:
        raise _shape_error("layer_norm", "x", f"[..., {n}]", jnp.shape(x))
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    return (x - mean) * lax.rsqrt(var + eps) * scale + bias


# --------------------------------------------------------------------------------------------
# Embedding
# --------------------------------------------------------------------------------------------


def embedding_init(
    key: Array,
    vocab_size: int,
    dim: int,
    *,
    w_init: InitFn = _default_embed_init,
    dtype: Any = jnp.float32,
) -> dict[str, Array]:
    """Parameters of an embedding (lookup) table.

    Args:
      key: PRNG key.
      vocab_size: number of token ids.
      dim: embedding size.
      w_init: table initializer ``fn(key, shape, dtype)``; default normal with stddev 1.
      dtype: parameter dtype.

    Returns:
      ``{'table': <f32>[vocab_size, dim]}``.
    """
    return {"table": w_init(key, (vocab_size, dim), dtype)}


def embedding(params: dict[str, Array], ids: Array) -> Array:
    """Looks up rows of the table (flax ``nn.Embed``); equal to ``one_hot(ids) @ table``.

    Ids outside ``[0, vocab_size)`` raise ``ValueError`` when ``ids`` is a concrete array;
    under ``jit`` they cannot be checked and give NaN rows (``jnp.take``'s fill mode).

    Args:
      params: ``{'table': <f32>[vocab_size, dim]}``.
      ids: ``<i32>[...]`` integer token ids.

    Returns:
      ``<f32>[..., dim]``.
    """
    table = _leaf(params, "table", "embedding")
    if table.ndim != 2:
        raise _shape_error("embedding", "params['table']", "[vocab_size, dim]", table.shape)
    ids_dtype = jnp.result_type(ids)
    if not jnp.issubdtype(ids_dtype, jnp.integer):
        raise TypeError(f"embedding: expected integer ids, got dtype {ids_dtype}")
    if not isinstance(ids, jax.core.Tracer) and np.size(ids) > 0:
        host_ids = np.asarray(ids)  # on the host: jnp reductions here would be staged by jit
        lo, hi = int(host_ids.min()), int(host_ids.max())
        if lo < 0 or hi >= table.shape[0]:
            raise ValueError(
                f"embedding: expected ids in [0, {table.shape[0]}), got values in [{lo}, {hi}]"
            )
    return jnp.take(table, ids, axis=0, mode="fill", fill_value=jnp.nan)
