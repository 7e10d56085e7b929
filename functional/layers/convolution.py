"""The sliding-window layers: 1-D and 2-D convolution, transposed convolution and pooling, which
share the stride, padding and dilation arithmetic (``conv_output_shape``). Conventions: see
``functional.layers``.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from functional.layers.core import (
    Array,
    InitFn,
    _default_b_init,
    _default_w_init,
    _leaf,
    _shape_error,
)

Padding = str | int | Sequence[int] | Sequence[tuple[int, int]]

# --------------------------------------------------------------------------------------------
# Argument helpers (all static Python; nothing here touches array values)
# --------------------------------------------------------------------------------------------


def _tuple(value: int | Sequence[int], n: int, name: str, fn: str) -> tuple[int, ...]:
    """Broadcasts an int to an n-tuple, or checks that a sequence has n positive ints."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        out = (int(value),) * n
    elif isinstance(value, Sequence) and not isinstance(value, str):
        out = tuple(value)
        if len(out) != n or not all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in out
        ):
            raise ValueError(f"{fn}: expected {name} as an int or {n} ints, got {value!r}")
        out = tuple(int(v) for v in out)
    else:
        raise TypeError(f"{fn}: expected {name} as an int or a tuple of ints, got {value!r}")
    if any(v < 1 for v in out):
        raise ValueError(f"{fn}: {name} must be positive, got {value!r}")
    return out


def _kernel_tuple(kernel_size: int | Sequence[int], ndim: int | None, fn: str) -> tuple[int, ...]:
    """An int kernel size means 2-D (square) unless ndim says otherwise."""
    if isinstance(kernel_size, numbers.Integral) and not isinstance(kernel_size, bool):
        n = 2 if ndim is None else ndim
    elif isinstance(kernel_size, Sequence) and not isinstance(kernel_size, str):
        n = len(kernel_size)
        if ndim is not None and ndim != n:
            raise ValueError(
                f"{fn}: kernel_size {tuple(kernel_size)} has {n} dims but ndim={ndim}"
            )
    else:
        raise TypeError(f"{fn}: expected kernel_size as an int or a tuple, got {kernel_size!r}")
    if n not in (1, 2):
        raise ValueError(f"{fn}: only 1-D and 2-D kernels are supported, got {n} dims")
    return _tuple(kernel_size, n, "kernel_size", fn)


def _explicit_padding(
    padding: Padding,
    spatial: tuple[int, ...],
    window: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    fn: str,
) -> tuple[tuple[int, int], ...]:
    """Turns any accepted padding spelling into (lo, hi) zero padding per spatial dim.

    'SAME' pads so that out = ceil(in / stride), splitting the total as lax and TensorFlow do
    (the extra element, if odd, goes at the end); 'VALID' pads nothing; 'CAUSAL' (1-D only)
    pads (F_eff - 1) at the start so output t sees inputs <= t.
    """
    n = len(spatial)
    eff = tuple((k - 1) * d + 1 for k, d in zip(window, dilation, strict=True))
    if isinstance(padding, str):
        mode = padding.upper()
        if mode == "VALID":
            return ((0, 0),) * n
        if mode == "SAME":
            pads = []
            for size, f, s in zip(spatial, eff, stride, strict=True):
                out = -(-size // s)
                total = max((out - 1) * s + f - size, 0)
                pads.append((total // 2, total - total // 2))
            return tuple(pads)
        if mode == "CAUSAL":
            if n != 1:
                raise ValueError(f"{fn}: padding='CAUSAL' is only for 1-D inputs, got {n}-D")
            return ((eff[0] - 1, 0),)
        raise ValueError(
            f"{fn}: expected padding 'SAME', 'VALID', 'CAUSAL', an int, {n} ints or "
            f"{n} (lo, hi) pairs, got {padding!r}"
        )
    if isinstance(padding, numbers.Integral) and not isinstance(padding, bool):
        pads = ((int(padding), int(padding)),) * n
    elif isinstance(padding, Sequence) and len(padding) == n:
        if all(isinstance(p, numbers.Integral) for p in padding):
            pads = tuple((int(p), int(p)) for p in padding)
        elif all(isinstance(p, Sequence) and len(p) == 2 for p in padding):
            pads = tuple((int(lo), int(hi)) for lo, hi in padding)
        else:
            pads = None
    else:
        pads = None
    if pads is None or any(lo < 0 or hi < 0 for lo, hi in pads):
        raise ValueError(
            f"{fn}: expected padding 'SAME', 'VALID', a non-negative int, {n} ints or "
            f"{n} (lo, hi) pairs, got {padding!r}"
        )
    return pads


def conv_output_shape(
    spatial: int | Sequence[int],
    kernel_size: int | Sequence[int],
    *,
    stride: int | Sequence[int] = 1,
    padding: Padding = "SAME",
    dilation: int | Sequence[int] = 1,
) -> tuple[int, ...]:
    """Spatial output shape of ``conv`` (and of the pools, with ``kernel_size=window``).

    Per dimension, with input size W, kernel F (effective size F_eff = (F - 1) * dilation + 1),
    padding P_lo + P_hi and stride S:

        out = floor((W - F_eff + P_lo + P_hi) / S) + 1

    which for symmetric padding P is the notes' (W - F + 2P) / S + 1. 'VALID' is P = 0 and
    'SAME' gives out = ceil(W / S).

    Args:
      spatial: input spatial size(s), e.g. ``(height, width)`` or ``length``.
      kernel_size: kernel (or pooling window) size(s); an int is broadcast.
      stride, padding, dilation: as in ``conv``.

    Returns:
      The output spatial shape as a tuple of ints.
    """
    spatial_t = (spatial,) if isinstance(spatial, numbers.Integral) else tuple(spatial)
    n = len(spatial_t)
    fn = "conv_output_shape"
    window = _tuple(kernel_size, n, "kernel_size", fn)
    strides = _tuple(stride, n, "stride", fn)
    dil = _tuple(dilation, n, "dilation", fn)
    pads = _explicit_padding(padding, spatial_t, window, strides, dil, fn)
    out = []
    for size, k, s, d, (lo, hi) in zip(spatial_t, window, strides, dil, pads, strict=True):
        f_eff = (k - 1) * d + 1
        out.append((size - f_eff + lo + hi) // s + 1)
    return tuple(out)


# --------------------------------------------------------------------------------------------
# Convolution (1-D and 2-D), transposed convolution
# --------------------------------------------------------------------------------------------

_DIMENSION_NUMBERS = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC")}


def _conv_lax(x, w, strides, pads, lhs_dil, rhs_dil):
    """The convolution itself, channels-last; JAX's own autodiff rules."""
    return lax.conv_general_dilated(
        x, w, window_strides=strides, padding=pads, lhs_dilation=lhs_dil,
        rhs_dilation=rhs_dil, dimension_numbers=_DIMENSION_NUMBERS[w.ndim - 2],
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _conv_canonical(x, w, strides, pads, lhs_dil, rhs_dil):
    """``_conv_lax`` with a VJP whose two backward convolutions are in canonical layout.

    Why: XLA's CPU backend runs a convolution with its fast Eigen kernel only in the canonical
    layout (input ``N...C``, kernel ``...IO``, no window reversal). Its ConvCanonicalization pass
    inserts transposes for other layouts but visits only the entry computation, so the backward
    convolutions ``jax.grad`` emits (kernel with in/out swapped and reversed, batch as features)
    stay non-canonical inside a ``while`` body (``lax.scan``, the train loop's fast path) and run
    as a generic loop nest, 5-13x slower for the MNIST-1D CNN
    (``benchmarks/bench_conv_in_scan.py``). Here the flips and transposes are explicit, so both
    backward convolutions are canonical wherever they run. The values are the same sums as
    JAX's rules compute (equal to float32 rounding; tests compare with ``jax.grad``).

    The backward pass is built from differentiable lax ops, so reverse-over-reverse (grad of
    grad) works; forward mode (``jax.jvp``, ``jax.jacfwd``, ``jax.hessian``) does not, which is
    why ``conv(..., fast_grad=False)`` keeps JAX's own rules.
    """
    return _conv_lax(x, w, strides, pads, lhs_dil, rhs_dil)


def _conv_canonical_fwd(x, w, strides, pads, lhs_dil, rhs_dil):
    return _conv_lax(x, w, strides, pads, lhs_dil, rhs_dil), (x, w)


def _conv_canonical_bwd(strides, pads, lhs_dil, rhs_dil, res, dy):
    # Per spatial dim, with lhs dilation L, stride S, kernel dilation D, K_eff = (K - 1) D + 1,
    # the forward is y[o] = sum_k w[k] xd[o S + k D - lo], xd = x with L - 1 zeros between
    # elements (length N_d = (N - 1) L + 1). Both gradients are cross-correlations again.
    x, w = res
    d = w.ndim - 2
    geometry = list(zip(w.shape[:d], x.shape[1:-1], dy.shape[1:-1], strides, pads, lhs_dil,
                        rhs_dil, strict=True))
    # dx[n] = sum_{o,k: o S + k D - lo = n L} dy[o] w[k]: dy dilated by S, correlated with the
    # flipped kernel (in/out swapped) at dilation D and stride L.
    w_t = jnp.flip(w, axis=tuple(range(d))).swapaxes(-1, -2)
    pad_x = []
    for k, n, o, s, (lo, _), ld, rd in geometry:
        k_eff = (k - 1) * rd + 1
        lo_x = k_eff - 1 - lo
        pad_x.append((lo_x, (n - 1) * ld + k_eff - (o - 1) * s - 1 - lo_x))
    dx = _conv_lax(dy, w_t, tuple(lhs_dil), tuple(pad_x), tuple(strides), tuple(rhs_dil))
    # dw[k] = sum_{n,o} xd[o S + k D - lo] dy[o]: the channels as the batch, the batch as the
    # features, dy as the kernel (dilation S), stride D.
    x_t = jnp.transpose(x, (d + 1, *range(1, d + 1), 0))        # [C_in, *spatial, N]
    dy_t = jnp.transpose(dy, (*range(1, d + 1), 0, d + 1))      # [*out, N, C_out]
    pad_w = tuple((lo, (k - 1) * rd + (o - 1) * s + 1 - ((n - 1) * ld + 1) - lo)
                  for k, n, o, s, (lo, _), ld, rd in geometry)
    dw_t = _conv_lax(x_t, dy_t, tuple(rhs_dil), pad_w, tuple(lhs_dil), tuple(strides))
    dw = jnp.transpose(dw_t, (*range(1, d + 1), 0, d + 1))      # [*kernel, C_in, C_out]
    return dx, dw


_conv_canonical.defvjp(_conv_canonical_fwd, _conv_canonical_bwd)


def _convolve(x, w, strides, pads, lhs_dil, rhs_dil, fast_grad: bool):
    if fast_grad:
        return _conv_canonical(x, w, strides, pads, lhs_dil, rhs_dil)
    return _conv_lax(x, w, strides, pads, lhs_dil, rhs_dil)


def conv_init(
    key: Array,
    in_channels: int,
    out_channels: int,
    kernel_size: int | Sequence[int],
    *,
    ndim: int | None = None,
    w_init: InitFn = _default_w_init,
    b_init: InitFn = _default_b_init,
    dtype: Any = jnp.float32,
) -> dict[str, Array]:
    """Parameters of a 1-D or 2-D convolution with ``out_channels`` filters.

    Args:
      key: PRNG key for the kernel.
      in_channels: input channels (the depth D of the notes' filters).
      out_channels: number of filters, one output feature map each.
      kernel_size: ``(k,)`` for 1-D, ``(kh, kw)`` for 2-D; an int means a square 2-D kernel
        unless ``ndim=1``.
      ndim: 1 or 2, only needed to make an int ``kernel_size`` 1-D.
      w_init: kernel initializer ``fn(key, shape, dtype)``; default LeCun normal, whose fan-in
        is ``prod(kernel) * in_channels`` for this layout.
      b_init: bias initializer (one bias per filter); default zeros.
      dtype: parameter dtype.

    Returns:
      ``{'w': <f32>[*kernel, in_channels, out_channels], 'b': <f32>[out_channels]}``.
    """
    kernel = _kernel_tuple(kernel_size, ndim, "conv_init")
    kw, kb = jax.random.split(key)
    return {
        "w": w_init(kw, (*kernel, in_channels, out_channels), dtype),
        "b": b_init(kb, (out_channels,), dtype),
    }


def conv1d_init(key, in_channels, out_channels, kernel_size, **kwargs) -> dict[str, Array]:
    """``conv_init`` for a 1-D kernel: ``{'w': <f32>[k, in, out], 'b': <f32>[out]}``."""
    return conv_init(key, in_channels, out_channels, kernel_size, ndim=1, **kwargs)


def conv2d_init(key, in_channels, out_channels, kernel_size, **kwargs) -> dict[str, Array]:
    """``conv_init`` for a 2-D kernel: ``{'w': <f32>[kh, kw, in, out], 'b': <f32>[out]}``."""
    return conv_init(key, in_channels, out_channels, kernel_size, ndim=2, **kwargs)


def _conv_params(params, fn: str, x) -> tuple[Array, Array, int]:
    """Checks the kernel/bias pair and x against it; returns (w, b, spatial rank)."""
    w = _leaf(params, "w", fn)
    b = _leaf(params, "b", fn)
    n = w.ndim - 2
    if n not in (1, 2):
        raise _shape_error(fn, "params['w']", "[*kernel, in_channels, out_channels]"
                           " with a 1-D or 2-D kernel", w.shape)
    in_ch, out_ch = w.shape[-2:]
    if b.shape != (out_ch,):
        raise _shape_error(fn, "params['b']", f"({out_ch},)", b.shape)
    spatial = "length" if n == 1 else "height, width"
    if jnp.ndim(x) != n + 2 or x.shape[-1] != in_ch:
        raise _shape_error(fn, "x", f"[batch, {spatial}, {in_ch}] ({n}-D kernel "
                           f"{tuple(w.shape)})", jnp.shape(x))
    return w, b, n


def conv(
    params: dict[str, Array],
    x: Array,
    *,
    stride: int | Sequence[int] = 1,
    padding: Padding = "SAME",
    dilation: int | Sequence[int] = 1,
    fast_grad: bool = True,
) -> Array:
    """1-D or 2-D convolution layer, channels-last (flax ``nn.Conv``); the rank comes from the
    kernel.

    What deep-learning libraries call convolution is **cross-correlation**: the filter slides
    over the input without being flipped (seed 003, section 5: flipping A by 180 degrees turns
    the mathematical convolution into the CNN operation). For 2-D, filter d = 1..out_channels:

        y[n, i, j, d] = b[d] + sum_{m, l, c} w[m, l, c, d] * x_pad[n, i*S + m*D, j*S + l*D, c]

    with stride S and dilation D. Each output spatial size is

        out = floor((W - F_eff + P_lo + P_hi) / S) + 1,    F_eff = (F - 1) * D + 1,

    i.e. the notes' (W - F + 2P) / S + 1 (see ``conv_output_shape``).

    Args:
      params: ``{'w': <f32>[*kernel, in_channels, out_channels], 'b': <f32>[out_channels]}``.
      x: ``<f32>[batch, length, in_channels]`` (1-D kernel) or
        ``<f32>[batch, height, width, in_channels]`` (2-D kernel).
      stride: int or one int per spatial dim.
      padding: 'SAME' (out = ceil(W / S); extra odd padding at the end, as lax/TensorFlow),
        'VALID' (none), 'CAUSAL' (1-D: F_eff - 1 zeros at the start), an int P (P zeros on
        both sides of every spatial dim, the notes' zero padding), one int per dim, or one
        ``(lo, hi)`` pair per dim.
      dilation: kernel dilation (atrous convolution), int or one per spatial dim.
      fast_grad: True (default): gradients by a hand-written VJP whose backward convolutions
        XLA's CPU backend runs with its fast kernel also inside ``lax.scan`` (several times
        faster there; same values as ``jax.grad`` of ``lax.conv_general_dilated`` to float32
        rounding). It supports reverse mode to any order but not forward mode: pass False for
        ``jax.jvp``, ``jax.jacfwd`` or ``jax.hessian``, which uses JAX's own rules.

    Returns:
      ``<f32>[batch, *out_spatial, out_channels]``.
    """
    w, b, n = _conv_params(params, "conv", x)
    strides = _tuple(stride, n, "stride", "conv")
    dil = _tuple(dilation, n, "dilation", "conv")
    pads = _explicit_padding(padding, x.shape[1:-1], w.shape[:n], strides, dil, "conv")
    for size, k, d, (lo, hi) in zip(x.shape[1:-1], w.shape[:n], dil, pads, strict=True):
        if size + lo + hi < (k - 1) * d + 1:
            raise ValueError(
                f"conv: expected x with spatial dims >= the effective kernel (kernel "
                f"{w.shape[:n]}, dilation {dil}) after padding {pads}, got shape {x.shape}"
            )
    y = _convolve(x, w, strides, tuple(pads), (1,) * n, dil, fast_grad)
    return y + b


def _conv_rank_checked(params, x, n: int, fn: str, **kwargs) -> Array:
    w = _leaf(params, "w", fn)
    if w.ndim != n + 2:
        raise _shape_error(fn, "params['w']", f"[{n}-D kernel, in_channels, out_channels]",
                           w.shape)
    _conv_params(params, fn, x)
    return conv(params, x, **kwargs)


def conv1d(params: dict[str, Array], x: Array, **kwargs) -> Array:
    """``conv`` that insists on a 1-D kernel and ``x: <f32>[batch, length, in_channels]``."""
    return _conv_rank_checked(params, x, 1, "conv1d", **kwargs)


def conv2d(params: dict[str, Array], x: Array, **kwargs) -> Array:
    """``conv`` that insists on a 2-D kernel and ``x: <f32>[batch, height, width, in]``."""
    return _conv_rank_checked(params, x, 2, "conv2d", **kwargs)


def conv_transpose_init(
    key: Array,
    in_channels: int,
    out_channels: int,
    kernel_size: int | Sequence[int],
    *,
    ndim: int | None = None,
    w_init: InitFn = _default_w_init,
    b_init: InitFn = _default_b_init,
    dtype: Any = jnp.float32,
) -> dict[str, Array]:
    """Parameters of a transposed convolution (flax ``nn.ConvTranspose`` layout).

    Args:
      key, in_channels, out_channels, kernel_size, ndim, w_init, b_init, dtype: as
        ``conv_init`` (an int ``kernel_size`` means 2-D unless ``ndim=1``).

    Returns:
      ``{'w': <f32>[*kernel, in_channels, out_channels], 'b': <f32>[out_channels]}``.
    """
    kernel = _kernel_tuple(kernel_size, ndim, "conv_transpose_init")
    kw, kb = jax.random.split(key)
    return {
        "w": w_init(kw, (*kernel, in_channels, out_channels), dtype),
        "b": b_init(kb, (out_channels,), dtype),
    }


def conv_transpose(
    params: dict[str, Array],
    x: Array,
    *,
    stride: int | Sequence[int] = 1,
    padding: str | Sequence[tuple[int, int]] = "SAME",
    dilation: int | Sequence[int] = 1,
    fast_grad: bool = True,
) -> Array:
    """Transposed ("fractionally strided") convolution, the upsampling layer of decoders
    (flax ``nn.ConvTranspose`` with its default ``transpose_kernel=False``).

    The input is dilated by inserting ``stride - 1`` zeros between neighbouring elements, padded,
    and cross-correlated with the kernel at stride 1 (Dumoulin & Visin 2016, section 4). As in
    flax, the kernel is used as stored (not flipped, in/out channels not swapped); flipping it
    spatially and swapping its channel axes gives exactly the transpose (the gradient) of
    ``conv`` with the same stride.

    Output spatial size per dim, input size W, F_eff = (F - 1) * dilation + 1, stride S:
    'SAME': W * S; 'VALID': W * S + max(F_eff - S, 0); explicit ``(lo, hi)`` (padding of the
    dilated input, flax/lax's meaning): (W - 1) * S + 1 + lo + hi - F_eff + 1.

    Args:
      params: ``{'w': <f32>[*kernel, in_channels, out_channels], 'b': <f32>[out_channels]}``.
      x: ``<f32>[batch, height, width, in_channels]`` (2-D kernel) or
        ``<f32>[batch, length, in_channels]`` (1-D kernel).
      stride: upsampling factor, int or one per spatial dim.
      padding: 'SAME', 'VALID', or one ``(lo, hi)`` pair per spatial dim.
      dilation: kernel dilation, int or one per spatial dim.
      fast_grad: True (default): gradients by a hand-written VJP whose backward convolutions
        XLA's CPU backend runs with its fast kernel also inside ``lax.scan`` (several times
        faster there; same values as ``jax.grad`` of ``lax.conv_general_dilated`` to float32
        rounding). It supports reverse mode to any order but not forward mode: pass False for
        ``jax.jvp``, ``jax.jacfwd`` or ``jax.hessian``, which uses JAX's own rules.

    Returns:
      ``<f32>[batch, *out_spatial, out_channels]``.
    """
    fn = "conv_transpose"
    w, b, n = _conv_params(params, fn, x)
    strides = _tuple(stride, n, "stride", fn)
    dil = _tuple(dilation, n, "dilation", fn)
    eff = tuple((k - 1) * d + 1 for k, d in zip(w.shape[:n], dil, strict=True))
    mode = padding.upper() if isinstance(padding, str) else None
    if mode == "SAME":
        # Total padding F_eff + S - 2 of the dilated input makes the output exactly W * S; the
        # split mirrors lax.conv_transpose so results match flax element for element.
        pads = []
        for f, s in zip(eff, strides, strict=True):
            total = f + s - 2
            lo = f - 1 if s > f - 1 else -(-total // 2)
            pads.append((lo, total - lo))
        pads = tuple(pads)
    elif mode == "VALID":
        # A full correlation (F_eff - 1 each side), plus S - 1 at the end when S > F_eff.
        pads = tuple((f - 1, f - 1 + max(s - f, 0)) for f, s in zip(eff, strides, strict=True))
    elif (
        mode is None
        and isinstance(padding, Sequence)
        and len(padding) == n
        and all(isinstance(p, Sequence) and len(p) == 2 for p in padding)
    ):
        pads = tuple((int(lo), int(hi)) for lo, hi in padding)
    else:
        raise ValueError(
            f"{fn}: expected padding 'SAME', 'VALID' or {n} (lo, hi) pairs, got {padding!r}"
        )
    y = _convolve(x, w, (1,) * n, tuple(pads), strides, dil, fast_grad)
    return y + b


# --------------------------------------------------------------------------------------------
# Pooling, flatten
# --------------------------------------------------------------------------------------------


def _pool_args(x, window, stride, padding, fn: str):
    if jnp.ndim(x) < 3:
        raise _shape_error(fn, "x", "[batch, *spatial, channels] (rank >= 3)", jnp.shape(x))
    n = x.ndim - 2
    win = _tuple(window, n, "window", fn)
    strides = win if stride is None else _tuple(stride, n, "stride", fn)
    pads = _explicit_padding(padding, x.shape[1:-1], win, strides, (1,) * n, fn)
    for size, k, (lo, hi) in zip(x.shape[1:-1], win, pads, strict=True):
        if size + lo + hi < k:
            raise ValueError(
                f"{fn}: expected x with spatial dims >= the window {win} after padding "
                f"{pads}, got shape {x.shape}"
            )
    return (1, *win, 1), (1, *strides, 1), ((0, 0), *pads, (0, 0))


def max_pool(
    x: Array,
    window: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: Padding = "VALID",
) -> Array:
    """Max pooling over the spatial dims of a channels-last array (flax ``nn.max_pool``).

    Each channel is pooled on its own (seed 003: a depth-D feature map stays depth D). Padded
    positions never win (they count as -inf). Output sizes follow ``conv_output_shape``.

    Args:
      x: ``<f32>[batch, *spatial, channels]``; the spatial rank is ``x.ndim - 2``.
      window: pooling window, int or one per spatial dim.
      stride: int or one per spatial dim; default ``window`` (non-overlapping windows).
      padding: 'VALID' (default), 'SAME', an int, ints, or ``(lo, hi)`` pairs.

    Returns:
      ``<f32>[batch, *out_spatial, channels]``.
    """
    dims, strides, pads = _pool_args(x, window, stride, padding, "max_pool")
    return lax.reduce_window(x, -jnp.inf, lax.max, dims, strides, pads)


def avg_pool(
    x: Array,
    window: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: Padding = "VALID",
    count_include_pad: bool = True,
) -> Array:
    """Average (mean) pooling over the spatial dims of a channels-last array (flax
    ``nn.avg_pool``).

    Args:
      x: ``<f32>[batch, *spatial, channels]``; the spatial rank is ``x.ndim - 2``.
      window: pooling window, int or one per spatial dim.
      stride: int or one per spatial dim; default ``window``.
      padding: 'VALID' (default), 'SAME', an int, ints, or ``(lo, hi)`` pairs.
      count_include_pad: divide by the full window size (padded zeros count), as flax and
        PyTorch default; if False divide by the number of real elements in each window.

    Returns:
      ``<f32>[batch, *out_spatial, channels]``.
    """
    dims, strides, pads = _pool_args(x, window, stride, padding, "avg_pool")
    total = lax.reduce_window(x, 0.0, lax.add, dims, strides, pads)
    if count_include_pad:
        return total / math.prod(dims)
    ones = jnp.ones((1, *x.shape[1:-1], 1), x.dtype)
    count = lax.reduce_window(ones, 0.0, lax.add, dims, strides, pads)
    return total / count
