"""Recurrent cells in ``lax.scan`` shape and the runners that scan them over sequences.

A cell is a pure function ``cell(params, carry, x_t) -> (carry, y_t)`` for one time step on a
batch, so a whole sequence is ``lax.scan(partial(cell, params), carry0, xs_time_major)`` and
nothing more. :func:`run` does exactly that, adding what real batches need: padding masks /
lengths, reversal of only the real part of each sequence, the batch-major API layout, and
hoisting the input projection ``x @ w_ih.T`` out of the loop as one matmul over all steps.
The LSTM layer's hand-written backward pass (BPTT) lives in ``functional._lstm_layer``.

Weights follow PyTorch's ``nn.RNN`` / ``nn.GRU`` / ``nn.LSTM`` layout exactly, so a comparison
with PyTorch is one ``state_dict`` lookup::

    w_ih <f32>[G*H, n_in]   w_hh <f32>[G*H, H]   b_ih <f32>[G*H]   b_hh <f32>[G*H]

with G = 1 (vanilla), 3 (GRU: gates r, z, n) or 4 (LSTM: gates i, f, g, o) stacked along the
first axis in that order.

Equations (sigma = logistic sigmoid, * elementwise):

- vanilla (Elman) RNN, seed 003 "basic RNN": ``h' = tanh(W_ih x + b_ih + W_hh h + b_hh)``.
- GRU (Cho et al. 2014, PyTorch's form)::

      r = sigma(W_ir x + b_ir + W_hr h + b_hr)
      z = sigma(W_iz x + b_iz + W_hz h + b_hz)
      n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
      h' = (1 - z) * n + z * h

  ``flax.linen.GRUCell`` computes the same formula (reset gate applied after the recurrent
  product, inside the bracket with ``b_hn``); it only lacks the redundant ``b_hr``/``b_hz``.
  Cho et al.'s original puts r before the product, ``W_hn (r * h)``; we follow PyTorch/cuDNN.
- LSTM (Hochreiter & Schmidhuber 1997 with the forget gate of Gers et al. 2000)::

      i, f, g, o = sigma(.), sigma(.), tanh(.), sigma(.)   of   W_ih x + b_ih + W_hh h + b_hh
      c' = f * c + i * g
      h' = o * tanh(c')

  The carry is ``(h, c)`` (PyTorch's order; flax's ``LSTMCell`` carry is ``(c, h)``).

Layout: at the API sequences are batch-major, ``<f32>[batch, time, features]`` (``time_axis=1``,
the project's convention); ``time_axis=0`` accepts/returns time-major ``[time, batch,
features]``. Internally every runner scans over a time-major transpose.

References: seed 003 (basic, bidirectional and deep RNNs); seed 001 (LSTM gates, char RNN);
PyTorch ``torch.nn.RNN/GRU/LSTM`` docs (layout, packed-sequence semantics).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax

from functional._lstm_layer import lstm_layer

Array = jax.Array

# --------------------------------------------------------------------------------------------
# Initializers
# --------------------------------------------------------------------------------------------

_GATES = {'rnn': 1, 'gru': 3, 'lstm': 4}


def _check_sizes(name: str, n_in, n_hidden) -> None:
    for label, v in (('n_in', n_in), ('n_hidden', n_hidden)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f'{name}: expected {label} to be a positive int, got {v!r}')


def _uniform_init(key, kind: str, n_in: int, n_hidden: int, bias: bool, dtype) -> dict:
    """PyTorch's default: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H))."""
    g = _GATES[kind] * n_hidden
    bound = 1.0 / math.sqrt(n_hidden)
    k1, k2, k3, k4 = jax.random.split(key, 4)
    u = functools.partial(jax.random.uniform, dtype=dtype, minval=-bound, maxval=bound)
    params = {'w_ih': u(k1, (g, n_in)), 'w_hh': u(k2, (g, n_hidden))}
    if bias:
        params['b_ih'] = u(k3, (g,))
        params['b_hh'] = u(k4, (g,))
    return params


def rnn_init(key: Array, n_in: int, n_hidden: int, *, bias: bool = True,
             dtype=jnp.float32) -> dict:
    """Parameters of a vanilla RNN cell, initialized as PyTorch's ``nn.RNN``.

    Scheme: every entry ~ U(-1/sqrt(H), 1/sqrt(H)) with H = ``n_hidden`` (PyTorch default).

    Args:
      key: PRNG key.
      n_in: input features.
      n_hidden: hidden units H.
      bias: include ``b_ih`` and ``b_hh``; ``False`` gives the bias-free RNN of seed 000
        (``U``, ``W`` there are ``w_ih``, ``w_hh`` here).
      dtype: parameter dtype.

    Returns:
      ``{'w_ih': <f32>[H, n_in], 'w_hh': <f32>[H, H], 'b_ih': <f32>[H], 'b_hh': <f32>[H]}``.
    """
    _check_sizes('rnn_init', n_in, n_hidden)
    return _uniform_init(key, 'rnn', n_in, n_hidden, bias, dtype)


def gru_init(key: Array, n_in: int, n_hidden: int, *, bias: bool = True,
             dtype=jnp.float32) -> dict:
    """Parameters of a GRU cell, initialized as PyTorch's ``nn.GRU``.

    Scheme: every entry ~ U(-1/sqrt(H), 1/sqrt(H)). Gates stacked r, z, n.

    Returns:
      ``{'w_ih': <f32>[3H, n_in], 'w_hh': <f32>[3H, H], 'b_ih': <f32>[3H], 'b_hh': <f32>[3H]}``.
    """
    _check_sizes('gru_init', n_in, n_hidden)
    return _uniform_init(key, 'gru', n_in, n_hidden, bias, dtype)


def lstm_init(key: Array, n_in: int, n_hidden: int, *, forget_bias: float | None = None,
              bias: bool = True, dtype=jnp.float32) -> dict:
    """Parameters of an LSTM cell, initialized as PyTorch's ``nn.LSTM``.

    Scheme: every entry ~ U(-1/sqrt(H), 1/sqrt(H)). Gates stacked i, f, g, o.
    With ``forget_bias`` set, the forget-gate slice of ``b_ih`` is that constant and the one of
    ``b_hh`` is zero, so the total forget bias equals ``forget_bias``. 1.0 is the value
    recommended by Gers et al. (2000) and Jozefowicz et al. (2015) so that f starts near
    sigma(1) ~ 0.73 and the cell remembers from the first update.

    Returns:
      ``{'w_ih': <f32>[4H, n_in], 'w_hh': <f32>[4H, H], 'b_ih': <f32>[4H], 'b_hh': <f32>[4H]}``.
    """
    _check_sizes('lstm_init', n_in, n_hidden)
    params = _uniform_init(key, 'lstm', n_in, n_hidden, bias, dtype)
    if forget_bias is not None:
        if not bias:
            raise ValueError('lstm_init: forget_bias needs bias=True')
        f = slice(n_hidden, 2 * n_hidden)
        params['b_ih'] = params['b_ih'].at[f].set(forget_bias)
        params['b_hh'] = params['b_hh'].at[f].set(0.0)
    return params


# --------------------------------------------------------------------------------------------
# Cells. Each public cell is `step(params, carry, project(params, x_t))`: the input projection
# does not depend on the carry, so runners can compute it for all steps as one matmul.
# --------------------------------------------------------------------------------------------

def _hh(params, h):
    return h @ params['w_hh'].T


def _project_all(params, x):
    """x @ W_ih^T + b_ih + b_hh: every term that does not need the carry (vanilla, LSTM)."""
    p = x @ params['w_ih'].T
    if 'b_ih' in params:
        p = p + (params['b_ih'] + params['b_hh'])
    return p


def _project_gru(params, x):
    """GRU: b_hh's n part stays inside r * (.), so only its r, z parts are folded in."""
    p = x @ params['w_ih'].T
    if 'b_ih' in params:
        n = params['b_hh'].shape[0] // 3
        p = p + params['b_ih'] + params['b_hh'].at[2 * n:].set(0.0)
    return p


def _rnn_step(params, h, px, activation=jnp.tanh):
    h = activation(px + _hh(params, h))
    return h, h


def _gru_step(params, h, px):
    n_h = h.shape[-1]
    hh = _hh(params, h)
    if 'b_hh' in params:
        hh_n = hh[..., 2 * n_h:] + params['b_hh'][2 * n_h:]
    else:
        hh_n = hh[..., 2 * n_h:]
    r = jax.nn.sigmoid(px[..., :n_h] + hh[..., :n_h])
    z = jax.nn.sigmoid(px[..., n_h:2 * n_h] + hh[..., n_h:2 * n_h])
    n = jnp.tanh(px[..., 2 * n_h:] + r * hh_n)
    h = (1.0 - z) * n + z * h
    return h, h


def _lstm_step(params, carry, px):
    h, c = carry
    n_h = h.shape[-1]
    gates = px + _hh(params, h)
    i = jax.nn.sigmoid(gates[..., :n_h])
    f = jax.nn.sigmoid(gates[..., n_h:2 * n_h])
    g = jnp.tanh(gates[..., 2 * n_h:3 * n_h])
    o = jax.nn.sigmoid(gates[..., 3 * n_h:])
    c = f * c + i * g
    h = o * jnp.tanh(c)
    return (h, c), h


def rnn_cell(params: dict, carry: Array, x_t: Array, *,
             activation: Callable[[Array], Array] = jnp.tanh) -> tuple[Array, Array]:
    """One step of a vanilla (Elman) RNN: ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``.

    Args:
      params: from :func:`rnn_init` (biases optional).
      carry: h, ``<f32>[batch, H]``.
      x_t: ``<f32>[batch, n_in]``.
      activation: elementwise nonlinearity (tanh as in seed 003 and PyTorch; e.g. jax.nn.relu).
        Bind it with ``functools.partial(rnn_cell, activation=...)``; runners still hoist.

    Returns:
      ``(h', h')``, each ``<f32>[batch, H]``.
    """
    return _rnn_step(params, carry, _project_all(params, x_t), activation)


def gru_cell(params: dict, carry: Array, x_t: Array) -> tuple[Array, Array]:
    """One GRU step in PyTorch's form (see module docstring).

    Args:
      params: from :func:`gru_init`.
      carry: h, ``<f32>[batch, H]``.
      x_t: ``<f32>[batch, n_in]``.

    Returns:
      ``(h', h')``, each ``<f32>[batch, H]``.
    """
    return _gru_step(params, carry, _project_gru(params, x_t))


def lstm_cell(params: dict, carry: tuple[Array, Array], x_t: Array
              ) -> tuple[tuple[Array, Array], Array]:
    """One LSTM step (gates i, f, g, o; see module docstring).

    Args:
      params: from :func:`lstm_init`.
      carry: ``(h, c)``, each ``<f32>[batch, H]``.
      x_t: ``<f32>[batch, n_in]``.

    Returns:
      ``((h', c'), h')``.
    """
    return _lstm_step(params, carry, _project_all(params, x_t))


def _lstm_bias(params, dtype):
    if 'b_ih' in params:
        return params['b_ih'] + params['b_hh']
    return jnp.zeros(params['w_hh'].shape[:1], dtype)


# The runners recognise our cells (also through functools.partial with keyword arguments) and
# then scan the `*_step` form over a precomputed projection; any other cell is scanned as is.
_KNOWN = {
    rnn_cell: (_project_all, _rnn_step, 'rnn'),
    gru_cell: (_project_gru, _gru_step, 'gru'),
    lstm_cell: (_project_all, _lstm_step, 'lstm'),
}


def _lookup(cell):
    kwargs = {}
    if isinstance(cell, functools.partial) and not cell.args:
        kwargs, cell = dict(cell.keywords), cell.func
    try:
        entry = _KNOWN.get(cell)
    except TypeError:  # unhashable callable
        entry = None
    if entry is None:
        return None
    project, step, kind = entry
    return project, functools.partial(step, **kwargs) if kwargs else step, kind


def input_projection(cell: Callable, params: dict, xs: Array) -> Array | None:
    """The carry-independent part of a known cell's pre-activations, for all steps at once.

    Args:
      cell: :func:`rnn_cell`, :func:`gru_cell` or :func:`lstm_cell` (or a partial of them).
      params: the cell's parameters.
      xs: ``<f32>[..., n_in]`` (any leading axes, e.g. ``[time, batch]``).

    Returns:
      ``<f32>[..., G*H]`` = ``xs @ w_ih.T + b_ih`` (+ the parts of ``b_hh`` that can be folded
      in), or ``None`` for a cell this module does not know.
    """
    entry = _lookup(cell)
    return None if entry is None else entry[0](params, xs)


def init_carry(cell: Callable, params: dict, batch_size: int, dtype=None):
    """Zero initial carry for a known cell: ``<f32>[batch, H]``, or ``(h, c)`` for the LSTM.

    Args:
      cell: :func:`rnn_cell`, :func:`gru_cell`, :func:`lstm_cell` (or a partial of them).
      params: the cell's parameters (H is read from ``w_hh``).
      batch_size: leading size of the carry.
      dtype: defaults to the dtype of ``w_hh``.

    Raises:
      TypeError: for a cell this module does not know (pass ``carry0`` yourself then).
    """
    entry = _lookup(cell)
    if entry is None:
        raise TypeError(f'init_carry: unknown cell {cell!r}; expected rnn_cell, gru_cell or '
                        'lstm_cell (pass carry0 explicitly for custom cells)')
    w_hh = params['w_hh']
    z = lambda: jnp.zeros((batch_size, w_hh.shape[1]), dtype or w_hh.dtype)
    return (z(), z()) if entry[2] == 'lstm' else z()


def _zero_carry(cell, params, batch: int, xs):
    """:func:`init_carry` in the dtype the cell computes in: xs's and the weights' promoted
    dtype (float32 for bfloat16 inputs and float32 weights). TypeError for unknown cells."""
    if _lookup(cell) is None:
        return init_carry(cell, params, batch)  # raises, naming the cell
    return init_carry(cell, params, batch, jnp.result_type(xs, params['w_hh']))


# --------------------------------------------------------------------------------------------
# Runners
# --------------------------------------------------------------------------------------------

def _check_layout(name, xs, time_axis):
    if time_axis not in (0, 1):
        raise ValueError(f'{name}: expected time_axis 0 or 1, got {time_axis!r}')
    if not hasattr(xs, 'ndim') or xs.ndim != 3:
        raise ValueError(f'{name}: expected xs of rank 3 ([batch, time, features] for '
                         f'time_axis=1), got shape {getattr(xs, "shape", type(xs))}')


def _to_time_major(name, xs, time_axis):
    _check_layout(name, xs, time_axis)
    return xs if time_axis == 0 else jnp.swapaxes(xs, 0, 1)


def _masked(step):
    """Freeze the carry and zero the output where the mask is False."""
    def masked_step(params, carry, inp):
        px, m = inp
        new_carry, y = step(params, carry, px)
        new_carry = jax.tree.map(lambda a, b: jnp.where(m[:, None], a, b), new_carry, carry)
        return new_carry, jnp.where(m[:, None], y, jnp.zeros_like(y))
    return masked_step


def _reverse_index(lengths, n_time):
    """rev[t, b] = L_b - 1 - t for t < L_b, else t: reverses each real prefix in place."""
    t = jnp.arange(n_time)[:, None]
    return jnp.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)


def _gather_time(x, idx):
    """x <[time, batch, ...]>, idx <i32>[time, batch] -> x[idx[t, b], b]."""
    return jnp.take_along_axis(x, idx.reshape(idx.shape + (1,) * (x.ndim - 2)), axis=0)


def _scan_time_major(cell, params, xs, carry0, mask, reverse, unroll, hoist,
                     manual_backward=True):
    """Core loop on time-major xs <[time, batch, features]>; mask <bool>[time, batch] or None."""
    n_time, batch = xs.shape[0], xs.shape[1]
    entry = _lookup(cell) if hoist else None
    if carry0 is None:
        carry0 = _zero_carry(cell, params, batch, xs)
    if entry is not None:
        project, step, _ = entry
        inputs = project(params, xs)  # one matmul for all time steps
    else:
        step, inputs = cell, xs

    if reverse:
        if mask is None:
            inputs = jnp.flip(inputs, 0)
        else:
            idx = _reverse_index(jnp.sum(mask, 0), n_time)
            inputs = _gather_time(inputs, idx)
    if mask is None:
        body = lambda c, p: step(params, c, p)
        carry, ys = lax.scan(body, carry0, inputs, unroll=unroll)
    else:
        masked_step = _masked(step)
        body = lambda c, p: masked_step(params, c, p)
        carry, ys = lax.scan(body, carry0, (inputs, mask), unroll=unroll)
    if reverse:
        ys = jnp.flip(ys, 0) if mask is None else _gather_time(ys, idx)
    return carry, ys


def _mask_from(name, lengths, mask, batch, n_time):
    """Returns a time-major <bool>[time, batch] mask, or None."""
    if lengths is not None and mask is not None:
        raise ValueError(f'{name}: pass lengths or mask, not both')
    if lengths is not None:
        lengths = jnp.asarray(lengths)
        if lengths.shape != (batch,):
            raise ValueError(f'{name}: expected lengths of shape ({batch},), got {lengths.shape}')
        return jnp.arange(n_time)[:, None] < lengths[None, :]
    if mask is not None:
        mask = jnp.asarray(mask)
        if mask.shape != (batch, n_time):
            raise ValueError(f'{name}: expected mask of shape [batch, time] = '
                             f'{(batch, n_time)}, got {mask.shape}')
        return mask.astype(bool).T
    return None


def run(cell: Callable, params: dict, xs: Array, carry0=None, *, lengths: Array | None = None,
        mask: Array | None = None, reverse: bool = False, unroll: int = 1, time_axis: int = 1,
        hoist: bool = True, manual_backward: bool = True):
    """Runs ``cell`` over a batch of sequences with one ``lax.scan`` over time.

    Args:
      cell: ``cell(params, carry, x_t) -> (carry, y_t)``; ours or any function of that shape.
      params: the cell's parameters.
      xs: ``<f32>[batch, time, features]`` (``time_axis=1``, default) or
        ``<f32>[time, batch, features]`` (``time_axis=0``).
      carry0: initial carry; ``None`` gives zeros (known cells only, see :func:`init_carry`).
      lengths: ``<i32>[batch]`` real lengths of right-padded sequences.
      mask: ``<bool>[batch, time]`` True at real steps (always batch-major). At a masked step
        the carry is carried through unchanged and the output is 0, so padding changes neither
        the real steps' outputs nor the final carry. With ``reverse`` the mask must be a prefix
        mask (right padding); its row sums are the lengths.
      reverse: process time backwards. With lengths/mask only the real part of each sequence
        is reversed (as PyTorch's packed sequences): step ``L-1`` is processed first, the final
        carry is the state after ``x_0``, and outputs are returned in the original order.
      unroll: passed to ``lax.scan``.
      time_axis: 1 (batch-major, default) or 0 (time-major) for ``xs`` and the outputs.
      hoist: for our cells, compute ``xs @ w_ih.T + b`` for all steps as one matmul before the
        loop (same numbers up to float rounding; faster).
      manual_backward: for :func:`lstm_cell` with ``hoist`` and no padding, differentiate
        with the hand-written BPTT backward pass (``jax.custom_vjp``; faster on CPU, see
        ``benchmarks/bench_lstm.py``). It supports reverse mode only: set ``False`` for
        ``jax.jvp``/``jax.hessian`` through the run (autodiff of the scan).

    Returns:
      ``(carry, ys)``: the final carry and outputs ``<f32>[batch, time, H]`` (same layout as
      ``xs``); with padding, ``carry`` is the state after each sequence's last real step.
    """
    _check_layout('run', xs, time_axis)
    batch, n_time = xs.shape[1 - time_axis], xs.shape[time_axis]
    m = _mask_from('run', lengths, mask, batch, n_time)
    entry = _lookup(cell) if hoist else None
    if (m is None and manual_backward and entry is not None and entry[2] == 'lstm'
            and n_time > 0):
        # The LSTM layer with the hand-written backward reads and writes xs's own layout.
        if carry0 is None:
            carry0 = _zero_carry(cell, params, batch, xs)
        xs = jnp.flip(xs, time_axis) if reverse else xs
        ys, h_t, c_t = lstm_layer(params['w_ih'], params['w_hh'],
                                  _lstm_bias(params, xs.dtype), xs, *carry0, unroll, time_axis)
        return (h_t, c_t), (jnp.flip(ys, time_axis) if reverse else ys)
    xs_tm = xs if time_axis == 0 else jnp.swapaxes(xs, 0, 1)
    carry, ys = _scan_time_major(cell, params, xs_tm, carry0, m, reverse, unroll, hoist,
                                 manual_backward)
    return carry, (ys if time_axis == 0 else jnp.swapaxes(ys, 0, 1))


def bidirectional_init(cell_init: Callable, key: Array, n_in: int, n_hidden: int,
                       **kwargs) -> dict:
    """Separate forward and backward parameters: ``{'fwd': cell_init(...), 'bwd': ...}``.

    Args:
      cell_init: :func:`rnn_init`, :func:`gru_init` or :func:`lstm_init`.
      key, n_in, n_hidden, **kwargs: passed on (the two directions get split keys).
    """
    kf, kb = jax.random.split(key)
    return {'fwd': cell_init(kf, n_in, n_hidden, **kwargs),
            'bwd': cell_init(kb, n_in, n_hidden, **kwargs)}


def bidirectional(cell: Callable, params: dict, xs: Array, carry0=None, *,
                  lengths: Array | None = None, mask: Array | None = None, unroll: int = 1,
                  time_axis: int = 1, hoist: bool = True, manual_backward: bool = True):
    """Bidirectional RNN (seed 003): y_t = [s_t ; s'_t] from a forward and a backward pass.

    The two directions have separate weights (``params['fwd']``, ``params['bwd']``, see
    :func:`bidirectional_init`); the backward pass reverses only the real part of each padded
    sequence. Output features are concatenated forward first, as in PyTorch.

    Args:
      cell, xs, lengths, mask, unroll, time_axis, hoist, manual_backward: as in
        :func:`run`.
      params: ``{'fwd': ..., 'bwd': ...}``.
      carry0: ``None`` or ``(carry0_fwd, carry0_bwd)``.

    Returns:
      ``((carry_fwd, carry_bwd), ys)`` with ys ``<f32>[batch, time, 2H]``.
    """
    if not isinstance(params, dict) or set(params) != {'fwd', 'bwd'}:
        raise ValueError('bidirectional: expected params {"fwd": ..., "bwd": ...}, got '
                         f'{type(params).__name__} with keys '
                         f'{sorted(params) if isinstance(params, dict) else None}')
    c_f, c_b = (None, None) if carry0 is None else carry0
    common = dict(lengths=lengths, mask=mask, unroll=unroll, time_axis=time_axis, hoist=hoist,
                  manual_backward=manual_backward)
    carry_f, ys_f = run(cell, params['fwd'], xs, c_f, **common)
    carry_b, ys_b = run(cell, params['bwd'], xs, c_b, reverse=True, **common)
    return (carry_f, carry_b), jnp.concatenate([ys_f, ys_b], axis=-1)


def _layer_name(i: int) -> str:
    return f'layer_{i}'


def stacked_init(cell_init: Callable, key: Array, n_in: int, n_hidden: int, n_layers: int, *,
                 bidirectional: bool = False, **kwargs) -> dict:
    """Parameters of a deep (stacked) RNN, optionally bidirectional in every layer.

    Layer i > 0 reads the outputs of layer i-1: H features, or 2H (both directions
    concatenated) when bidirectional, as in PyTorch's ``nn.LSTM(num_layers=...,
    bidirectional=True)``.

    Args:
      cell_init: :func:`rnn_init`, :func:`gru_init` or :func:`lstm_init`.
      key: PRNG key, split per layer.
      n_in: input features of the first layer.
      n_hidden: hidden units per layer and direction.
      n_layers: number of layers (>= 1).
      bidirectional: give each layer ``{'fwd', 'bwd'}`` parameters.
      **kwargs: passed to ``cell_init`` (e.g. ``forget_bias``).

    Returns:
      ``{'layer_0': p0, 'layer_1': p1, ...}``.
    """
    if not isinstance(n_layers, int) or n_layers < 1:
        raise ValueError(f'stacked_init: expected n_layers >= 1, got {n_layers!r}')
    params = {}
    for i, k in enumerate(jax.random.split(key, n_layers)):
        d_in = n_in if i == 0 else n_hidden * (2 if bidirectional else 1)
        params[_layer_name(i)] = (bidirectional_init(cell_init, k, d_in, n_hidden, **kwargs)
                                  if bidirectional else cell_init(k, d_in, n_hidden, **kwargs))
    return params


def stacked(cell: Callable, params: dict, xs: Array, carry0=None, *,
            lengths: Array | None = None, mask: Array | None = None, unroll: int = 1,
            time_axis: int = 1, hoist: bool = True, manual_backward: bool = True,
            between: Callable[[int, Array], Array] | None = None):
    """Deep RNN (seed 003): layer i runs over the output sequence of layer i-1.

    A layer whose params are ``{'fwd', 'bwd'}`` is bidirectional (seed 003's deep
    bidirectional network); its next layer reads both directions concatenated. Seed 003's
    formula writes only s^(i-1) as the next layer's input; feeding [s^(i-1) ; s'^(i-1)] is
    PyTorch's and Graves et al.'s (2013) choice and is what is meant in practice.

    Args:
      cell, xs, lengths, mask, unroll, time_axis, hoist, manual_backward: as in
        :func:`run`.
      params: from :func:`stacked_init`: ``{'layer_0': ..., 'layer_1': ...}``.
      carry0: ``None`` or a tuple with one entry per layer (a carry, or ``(fwd, bwd)``).
      between: optional ``between(i, ys) -> ys`` applied to layer i's outputs before layer
        i+1 (e.g. dropout with a bound key); not applied after the last layer.

    Returns:
      ``(carries, ys)``: a tuple of final carries per layer and the last layer's outputs
      ``<f32>[batch, time, H or 2H]``.
    """
    names = sorted(params, key=lambda s: int(s.split('_')[-1]) if s[-1].isdigit() else -1)
    if not names or names != [_layer_name(i) for i in range(len(names))]:
        raise ValueError(f'stacked: expected params keys layer_0..layer_N, got {sorted(params)}')
    if carry0 is not None and len(carry0) != len(names):
        raise ValueError(f'stacked: expected {len(names)} initial carries, got {len(carry0)}')
    common = dict(lengths=lengths, mask=mask, unroll=unroll, time_axis=time_axis, hoist=hoist,
                  manual_backward=manual_backward)
    carries, ys = [], xs
    for i, name in enumerate(names):
        p = params[name]
        c0 = None if carry0 is None else carry0[i]
        is_bi = isinstance(p, dict) and set(p) == {'fwd', 'bwd'}
        c, ys = (bidirectional if is_bi else run)(cell, p, ys, c0, **common)
        carries.append(c)
        if between is not None and i + 1 < len(names):
            ys = between(i, ys)
    return tuple(carries), ys


#: Cell name -> ``(cell, init)``, for models that choose their recurrent cell by name.
CELLS = {
    "rnn": (rnn_cell, rnn_init),
    "gru": (gru_cell, gru_init),
    "lstm": (lstm_cell, lstm_init),
}
