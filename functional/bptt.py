"""Backpropagation through time: full, chunked-truncated, the notes' k-step truncation, clipping.

Full BPTT is nothing more than ``jax.grad`` of a loss computed through
:func:`functional.recurrent.run` (one ``lax.scan``): reverse-mode autodiff of the scan *is*
BPTT (Werbos 1990). This module adds the two truncated forms the curriculum uses:

(a) **Chunked truncation** (char-rnn, PyTorch's word language model, Williams & Peng 1990's
    BPTT(h; h)): the sequence or long stream is cut into chunks; the carry passes from chunk to
    chunk under ``stop_gradient``, so values are those of the unchunked run but no gradient
    crosses a chunk boundary. :func:`run_chunked` does it inside one sequence;
    :func:`contiguous_streams` + :func:`detach` do it across batches ("stateful" batching).

(b) **The notes' k-step truncation** (seed 000's ``bptt`` with ``bptt_truncate``): the error of
    *every* output y_t flows back through at most k+1 steps (t, t-1, ..., t-k) and stops at
    h_{t-k-1}. :func:`truncated_outputs` returns outputs whose values equal :func:`run`'s and
    whose gradients are exactly that truncation, for any cell: each y_t is recomputed from
    ``stop_gradient(h_{t-k-1})`` through a window of k+1 steps (all T windows advance together
    in one scan of length k+1, O(T k) work like seed 000's double loop).

With k >= T - 1, or one chunk covering the sequence, both equal full BPTT exactly.

Also: :func:`clip_grad_norm` (Pascanu et al. 2013) and :func:`gradient_norms_by_lag`, the
norm of dL_t / d carry_{t-lag} that shows vanishing gradients in a tanh RNN and the LSTM's
constant error carousel (Hochreiter & Schmidhuber 1997; seed 004's vanishing/exploding
gradients).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from functional import recurrent

Array = jax.Array


def detach(carry):
    """``stop_gradient`` on every leaf of a carry (h, or (h, c)): values pass, gradients stop.

    Use it between batches of contiguous streams: ``carry0 = detach(carry_from_last_batch)``.
    """
    return jax.tree.map(lax.stop_gradient, carry)


def run_chunked(cell: Callable, params: dict, xs: Array, carry0=None, *, chunk: int,
                unroll: int = 1, time_axis: int = 1, hoist: bool = True):
    """Runs ``cell`` over xs in chunks of ``chunk`` steps, cutting gradients between chunks.

    Forward values equal ``recurrent.run(cell, params, xs, carry0)``; in the backward pass the
    carry entering each chunk is a constant, so the loss on a chunk's outputs backpropagates
    only within that chunk (truncation (a)). A last, shorter chunk is allowed. Gradients still
    reach ``carry0`` from the first chunk.

    Args:
      cell, params, xs, carry0, unroll, time_axis, hoist: as in :func:`recurrent.run`.
      chunk: steps per chunk (>= 1); ``chunk >= time`` is full BPTT.

    Returns:
      ``(carry, ys)`` as :func:`recurrent.run`; ``carry`` is not detached (the caller decides).
    """
    if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1:
        raise ValueError(f'run_chunked: expected chunk to be a positive int, got {chunk!r}')
    xs_tm = recurrent._to_time_major('run_chunked', xs, time_axis)
    n_time, batch = xs_tm.shape[:2]
    if carry0 is None:
        carry0 = recurrent._zero_carry(cell, params, batch, xs_tm)
    n_full = n_time // chunk
    core = lambda c, x: recurrent._scan_time_major(cell, params, x, c, None, False, unroll,
                                                   hoist)
    pieces = []
    carry = carry0
    if n_full:
        split = xs_tm[:n_full * chunk].reshape((n_full, chunk) + xs_tm.shape[1:])
        first_carry, first_ys = core(carry, split[0])
        pieces.append(first_ys[None])
        carry = first_carry
        if n_full > 1:
            carry, rest = lax.scan(lambda c, x: core(detach(c), x), carry, split[1:])
            pieces.append(rest)
        ys = jnp.concatenate(pieces, 0).reshape((n_full * chunk,) + first_ys.shape[1:])
    if n_time % chunk:
        c_in = carry if not n_full else detach(carry)
        carry, tail = core(c_in, xs_tm[n_full * chunk:])
        ys = tail if not n_full else jnp.concatenate([ys, tail], 0)
    return carry, (ys if time_axis == 0 else jnp.swapaxes(ys, 0, 1))


def contiguous_streams(ids, batch_size: int, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """Cuts one long token stream into ``batch_size`` contiguous streams, chunked for TBPTT.

    As char-rnn and PyTorch's word language model (``batchify`` / ``get_batch``): the stream is
    split into ``batch_size`` equal contiguous segments (the remainder is dropped), one per
    batch row, so batch row b of chunk c+1 continues exactly where row b of chunk c ended and
    the final carry of one chunk is the right initial carry of the next (pass it through
    :func:`detach`). Targets are the inputs shifted by one token.

    Args:
      ids: ``<int>[n]`` token ids (host array or list).
      batch_size: number of parallel streams.
      chunk: time steps per chunk.

    Returns:
      ``(inputs, targets)``, each ``<i32>[batch_size, n_chunks, chunk]`` NumPy arrays with
      ``n_chunks = (n // batch_size - 1) // chunk``; ``inputs[b, c, j] = ids[b*seg + c*chunk
      + j]`` and ``targets[b, c, j] = ids[b*seg + c*chunk + j + 1]`` with ``seg = n //
      batch_size``. Iterate ``for c in range(n_chunks): x, y = inputs[:, c], targets[:, c]``.

    Raises:
      ValueError: if the stream is too short for one chunk per row.
    """
    ids = np.asarray(ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError('contiguous_streams: expected a 1-D integer array of ids, got '
                         f'shape {ids.shape} dtype {ids.dtype}')
    for name, v in (('batch_size', batch_size), ('chunk', chunk)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f'contiguous_streams: expected {name} >= 1, got {v!r}')
    seg = ids.shape[0] // batch_size
    n_chunks = (seg - 1) // chunk if seg else 0
    if n_chunks < 1:
        raise ValueError(f'contiguous_streams: {ids.shape[0]} ids are too few for '
                         f'batch_size={batch_size} rows of at least one chunk of {chunk} '
                         f'(need >= {batch_size * (chunk + 1)})')
    rows = ids[:seg * batch_size].reshape(batch_size, seg)
    n = n_chunks * chunk
    inputs = rows[:, :n].reshape(batch_size, n_chunks, chunk)
    targets = rows[:, 1:n + 1].reshape(batch_size, n_chunks, chunk)
    return inputs.astype(np.int32), targets.astype(np.int32)


def _scan_carries(step, params, inputs, carry0):
    """All carries after each step: a pytree with leading [time] axes."""
    def body(c, p):
        c, _ = step(params, c, p)
        return c, c
    return lax.scan(body, carry0, inputs)[1]


def truncated_outputs(cell: Callable, params: dict, xs: Array, k: int, carry0=None, *,
                      time_axis: int = 1, hoist: bool = True) -> Array:
    """Outputs whose gradients follow the notes' k-step truncated BPTT (seed 000).

    The values equal ``recurrent.run(cell, params, xs, carry0)[1]``. For any loss that is a
    sum of per-step terms, ``L = sum_t l_t(y_t)`` (e.g. summed cross-entropy of a readout),
    ``jax.grad`` through these outputs gives exactly seed 000's ``bptt`` with
    ``bptt_truncate = k``: the error of output t reaches the cell's parameters and inputs at
    steps t, t-1, ..., t-k only, and stops at the carry h_{t-k-1}. A readout applied to y_t
    (seed 000's V) gets its full gradient, as there. The carry0 receives gradient from
    outputs t <= k only.

    Works for any cell. Cost: a forward run plus one scan of length ``min(k, T-1) + 1`` over
    ``T * batch`` windows (O(T k) cell steps, like the double loop of seed 000).

    Args:
      cell, params, xs, carry0, time_axis, hoist: as in :func:`recurrent.run` (no padding).
      k: truncation (>= 0); ``k >= T - 1`` is full BPTT.

    Returns:
      ``<f32>[batch, time, H]`` (layout of xs).
    """
    if not isinstance(k, int) or isinstance(k, bool) or k < 0:
        raise ValueError(f'truncated_outputs: expected k to be an int >= 0, got {k!r}')
    xs_tm = recurrent._to_time_major('truncated_outputs', xs, time_axis)
    n_time, batch = xs_tm.shape[:2]
    entry = recurrent._lookup(cell) if hoist else None
    if entry is not None:
        project, step, _ = entry
        inputs = project(params, xs_tm)
    else:
        step, inputs = cell, xs_tm
    if carry0 is None:
        carry0 = recurrent._zero_carry(cell, params, batch, xs_tm)
    kk = min(k, n_time - 1)

    # Window t covers steps t-kk .. t and starts from h_{t-kk-1} (a constant) or from carry0
    # when t-kk-1 < 0 (then its steps before 0 pass the carry through untouched).
    carries = detach(_scan_carries(step, params, inputs, carry0))
    t = jnp.arange(n_time)
    start = t - kk - 1

    def start_carry(all_c, c0):
        prev = all_c[jnp.clip(start, 0, None)]
        use_c0 = (start < 0).reshape((n_time,) + (1,) * c0.ndim)
        return jnp.where(use_c0, jnp.broadcast_to(c0, prev.shape), prev)

    c_start = jax.tree.map(start_carry, carries, carry0)
    flat = lambda a: a.reshape((n_time * batch,) + a.shape[2:])
    c_start = jax.tree.map(flat, c_start)
    pad = jnp.zeros((kk,) + inputs.shape[1:], inputs.dtype)
    padded = jnp.concatenate([pad, inputs], 0)  # padded[j + t] = inputs[t - kk + j]

    def body(c, j):
        inp = lax.dynamic_slice_in_dim(padded, j, n_time, 0)
        new_c, y = step(params, c, flat(inp))
        valid = jnp.repeat(t - kk + j >= 0, batch)[:, None]
        new_c = jax.tree.map(lambda a, b: jnp.where(valid, a, b), new_c, c)
        return new_c, None

    # The last window step (j = kk) is always valid and produces y_t; run it outside the scan.
    c_last, _ = lax.scan(body, c_start, jnp.arange(kk))
    _, y = step(params, c_last, flat(padded[kk:]))
    ys = y.reshape((n_time, batch) + y.shape[1:])
    return ys if time_axis == 0 else jnp.swapaxes(ys, 0, 1)


def global_norm(tree) -> Array:
    """sqrt of the sum of squares of all leaves of a pytree (a scalar)."""
    leaves = jax.tree.leaves(tree)
    return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in leaves))


def clip_grad_norm(grads, max_norm: float):
    """Rescales ``grads`` so their global norm is at most ``max_norm`` (Pascanu et al. 2013).

    ``g <- g * max_norm / ||g||`` when ``||g|| > max_norm``, unchanged otherwise; the same rule
    as ``optax.clip_by_global_norm`` (PyTorch's ``clip_grad_norm_`` adds 1e-6 to the norm).

    Args:
      grads: a pytree of arrays.
      max_norm: threshold (> 0).

    Returns:
      ``(clipped_grads, norm)`` where ``norm`` is the global norm before clipping.
    """
    if not isinstance(max_norm, (int, float)) or max_norm <= 0:
        raise ValueError(f'clip_grad_norm: expected max_norm > 0, got {max_norm!r}')
    norm = global_norm(grads)
    # where() twice so that a zero norm never divides (its gradient stays finite too).
    safe = jnp.where(norm > max_norm, norm, 1.0)
    scale = jnp.where(norm > max_norm, max_norm / safe, 1.0)
    return jax.tree.map(lambda g: (g * scale).astype(g.dtype), grads), norm


def gradient_norms_by_lag(cell: Callable, params: dict, xs: Array, t: int | None = None,
                          carry0=None, *, loss_fn: Callable[[Array], Array] | None = None,
                          time_axis: int = 1) -> tuple[Array, Array]:
    """Norm of the gradient that reaches the carry at step t - lag from the loss at step t.

    ``norms[i] = mean over the batch of || dL_t / d carry_{t - lags[i]} ||`` with
    ``lags = 1, ..., t + 1``, where carry_s is the full carry after step s (h for vanilla/GRU,
    (h, c) for the LSTM, whose cell state c is the "constant error carousel"),
    carry_{-1} = carry0, and ``L_t = loss_fn(y_t)``. Lag 1 is the carry that step t reads, so
    lag j means the error has crossed j cell steps. In a tanh RNN with small recurrent weights
    the norms decay geometrically with the lag (vanishing gradients); with large ones they
    grow (exploding).

    Computed with one backward pass: a zero perturbation is added to the carry entering every
    step and ``jax.grad`` w.r.t. the perturbations gives every dL_t/d carry_s at once.

    Args:
      cell, params, xs, carry0, time_axis: as in :func:`recurrent.run`.
      t: the step whose loss is differentiated (default: the last step).
      loss_fn: ``<f32>[batch, H] -> <f32>[batch]`` per-example loss of the output at step t;
        default ``sum(y_t)`` per example (a fixed all-ones readout).

    Returns:
      ``(lags <i32>[t + 1], norms <f32>[t + 1])``.
    """
    xs_tm = recurrent._to_time_major('gradient_norms_by_lag', xs, time_axis)
    n_time, batch = xs_tm.shape[:2]
    t = n_time - 1 if t is None else t
    if not isinstance(t, int) or not 0 <= t < n_time:
        raise ValueError(f'gradient_norms_by_lag: expected an int 0 <= t < {n_time}, got {t!r}')
    if carry0 is None:
        carry0 = recurrent._zero_carry(cell, params, batch, xs_tm)
    loss_fn = loss_fn or (lambda y: jnp.sum(y, axis=-1))
    xs_t = xs_tm[:t + 1]

    def loss(eps):
        def body(c, inp):
            x, e = inp
            return cell(params, jax.tree.map(jnp.add, c, e), x)
        _, ys = lax.scan(body, carry0, (xs_t, eps))
        return jnp.sum(loss_fn(ys[t]))

    eps = jax.tree.map(lambda c: jnp.zeros((t + 1,) + c.shape, c.dtype), carry0)
    g = jax.grad(loss)(eps)  # g[s] = dL_t / d carry_{s-1}
    sq = sum(jnp.sum(jnp.square(a).reshape(t + 1, batch, -1), -1) for a in jax.tree.leaves(g))
    per_step = jnp.mean(jnp.sqrt(sq), axis=1)
    return jnp.arange(1, t + 2), per_step[::-1]
