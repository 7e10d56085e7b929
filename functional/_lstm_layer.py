"""LSTM layer with a hand-written backward pass (BPTT as derived in the notes, seed 000 /
Graves 2012 ch. 4). Autodiff of the scan is correct but slower on CPU: it keeps per-step
transposes and the dW_hh accumulation inside the reverse loop. Here:
  forward   px = xs @ W_ih^T for all steps (one matmul); the loop adds the biases and
            h @ W_hh^T, and writes every gradient-free backward factor of step t over px[t]
            in place (no fresh [time, batch, 4H] buffer, no post-pass over the activations);
  backward  the reverse loop only propagates (dh, dc), writing dgates_t over the factors of
            step t in place; then dW_hh and dW_ih come from ONE matmul
            [h_{t-1}, x_t]^T @ dgates over all steps, dx = dgates @ W_ih, db = sum(dgates).
Sequences stay in the caller's layout ([batch, time] or [time, batch]): the loops index the
time axis wherever it is, so nothing of size [time, batch, .] is transposed. On this
project's 2-core CPU every fresh large buffer costs page faults on every call, so not
allocating and not transposing is worth as much as the arithmetic: forward + backward in
benchmarks/bench_lstm.py went from 59.6 to 44.6-45.4 ms (medians; torch 50.4-54.0 ms in the
same runs; see docs/recurrent-zoo.md for the allocator's part).

``functional.recurrent.run`` (and so ``bidirectional`` and ``stacked``) calls :func:`lstm_layer`
for :func:`~functional.recurrent.lstm_cell` with ``hoist`` and no padding, unless
``manual_backward=False``; ``tests/functional/test_recurrent.py`` compares it with autodiff of
the scan and with finite differences.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax


@functools.partial(jax.custom_vjp, nondiff_argnums=(6, 7))
def lstm_layer(w_ih, w_hh, b, xs, h0, c0, unroll=1, time_axis=1):
    """xs <[batch, time, in]> (time_axis 1) or <[time, batch, in]> (0), b <[4H]> = b_ih + b_hh
    -> (hs <[batch, time, H]> or <[time, batch, H]>, hT, cT)."""
    return _lstm_layer_run(w_ih, w_hh, b, xs, h0, c0, unroll, time_axis, residuals=False)[0]


def n_chains(batch: int) -> int:
    """Independent groups of batch rows that the loops advance side by side.

    The rows of a batch never interact, so on XLA's CPU backend the loop body carries two
    independent chains (each with its own matmul and activations) and XLA runs them on two
    cores at once: per-step kernels of this size are otherwise single-threaded (forward +
    backward of ``benchmarks/bench_lstm.py`` went from about 70 to 64 ms on 2 cores). Elsewhere
    (GPU, TPU) one chain.
    """
    return 2 if jax.default_backend() == 'cpu' and batch % 2 == 0 and batch >= 8 else 1


class _Layout:
    """Where time and batch sit in the layer's sequences, and the k-chain view of them.

    A sequence <[batch, time, F]> (time_axis 1) is viewed as <[k, batch / k, time, F]>, and
    <[time, batch, F]> (time_axis 0) as <[time, k, batch / k, F]> (free reshapes); either way
    step t of the view is <[k, batch / k, F]>, one block of rows per chain.
    """

    def __init__(self, time_axis: int, k: int):
        self.batch_axis, self.k = 1 - time_axis, k
        self.step_axis = 2 if time_axis == 1 else 0

    def split(self, x):
        a = self.batch_axis
        return x.reshape(x.shape[:a] + (self.k, x.shape[a] // self.k) + x.shape[a + 1:])

    def merge(self, x):
        a = self.batch_axis
        return x.reshape(x.shape[:a] + (x.shape[a] * x.shape[a + 1],) + x.shape[a + 2:])

    def at(self, x, t):
        return lax.dynamic_index_in_dim(x, t, self.step_axis, keepdims=False)

    def put(self, x, value, t):
        return lax.dynamic_update_index_in_dim(x, value, t, self.step_axis)

    def chains(self, h, c):
        """Carry rows <[batch, H]> -> k chains of (h, c) rows <[batch / k, H]>."""
        rows = lambda a: a.reshape((self.k, a.shape[0] // self.k, a.shape[1]))
        return tuple(zip(rows(h), rows(c), strict=True))


def _unchain(chains):
    return tuple(jnp.concatenate(rows, 0) for rows in zip(*chains, strict=True))


def _lstm_layer_run(w_ih, w_hh, b, xs, h0, c0, unroll, time_axis, residuals):
    n_time, n_h = xs.shape[time_axis], h0.shape[-1]
    lay = _Layout(time_axis, n_chains(h0.shape[0]))
    w_t = w_hh.T  # transposed once, outside the loop
    # One activation pass over all 4H gate columns (a single kernel per step):
    # tanh(x) = 2 sigmoid(2x) - 1 on the g block.
    col = lax.broadcasted_iota(jnp.int32, (1, 4 * n_h), 1)
    on_g = ((col >= 2 * n_h) & (col < 3 * n_h)).astype(xs.dtype)

    def cell(h, c, p):
        gates = p + b + h @ w_t
        acts = jax.nn.sigmoid(gates * (1.0 + on_g)) * (1.0 + on_g) - on_g
        i, f, g, o = (acts[:, :n_h], acts[:, n_h:2 * n_h], acts[:, 2 * n_h:3 * n_h],
                      acts[:, 3 * n_h:])
        c_new = f * c + i * g
        tanh_c = jnp.tanh(c_new)
        h_new = o * tanh_c
        if not residuals:
            return h_new, c_new, ()
        # The factors of the backward pass that do not depend on the flowing gradients:
        #   dc_t = dc_{t+1} f_{t+1} + dh_t o_t (1 - tanh^2 c_t)
        #   dgates_t = [dc_t, dc_t, dc_t, dh_t] * [g i (1-i), c_{t-1} f (1-f), i (1-g^2),
        #                                          tanh(c_t) o (1-o)]
        slope = jnp.where(on_g > 0, 1.0 - acts * acts, acts * (1.0 - acts))
        gate_factor = slope * jnp.concatenate([g, c, i, tanh_c], -1)
        return h_new, c_new, (gate_factor, o * (1.0 - tanh_c * tanh_c), f)

    def body(carry, t):  # carry: k chains of (h, c), the px / factor buffer, the outputs
        chains, buf, hs = carry
        p = lay.at(buf, t)
        steps = [cell(h, c, p[j]) for j, (h, c) in enumerate(chains)]
        hs = lay.put(hs, jnp.stack([s[0] for s in steps]), t)
        factors = tuple(jnp.stack([s[2][m] for s in steps]) for m in range(len(steps[0][2])))
        if residuals:
            buf = lay.put(buf, factors[0], t)
        return (tuple((s[0], s[1]) for s in steps), buf, hs), factors[1:]

    px = lay.split(xs @ w_ih.T)  # one matmul for all time steps
    hs = jnp.zeros(px.shape[:-1] + (n_h,), px.dtype)
    (chains, buf, hs), small = lax.scan(body, (lay.chains(h0, c0), px, hs),
                                        jnp.arange(n_time), unroll=unroll)
    hs = lay.merge(hs)
    h_t, c_t = _unchain(chains)
    if not residuals:
        return (hs, h_t, c_t), None
    return (hs, h_t, c_t), (w_ih, w_hh, xs, h0, hs, small, buf)


def _lstm_layer_fwd(w_ih, w_hh, b, xs, h0, c0, unroll, time_axis):
    return _lstm_layer_run(w_ih, w_hh, b, xs, h0, c0, unroll, time_axis, residuals=True)


def _lstm_layer_bwd(unroll, time_axis, residuals, cotangents):
    w_ih, w_hh, xs, h0, hs, (dc_from_dh, f), buf = residuals
    d_hs, d_ht, d_ct = cotangents
    n_time, n_h = xs.shape[time_axis], h0.shape[-1]
    lay = _Layout(time_axis, n_chains(h0.shape[0]))
    d_hs = lay.split(d_hs)

    def chain_step(dh_next, dc_next, dy, k_c, f_t, k_gates):
        dh = dy + dh_next
        dc = dc_next + dh * k_c
        d_gates = jnp.concatenate([dc, dc, dc, dh], -1) * k_gates
        return (d_gates @ w_hh, dc * f_t), d_gates

    def body(carry, t):  # carry: k chains of (dh, dc) from step t+1, and the factor buffer
        chains, buf = carry
        here = (lay.at(d_hs, t), dc_from_dh[t], f[t], lay.at(buf, t))  # small: [time, k, ...]
        steps = [chain_step(*chains[j], *(x[j] for x in here)) for j in range(lay.k)]
        buf = lay.put(buf, jnp.stack([d for _, d in steps]), t)
        return (tuple(s for s, _ in steps), buf), None

    (chains, buf), _ = lax.scan(body, (lay.chains(d_ht, d_ct), buf), jnp.arange(n_time),
                                reverse=True, unroll=unroll)
    dh0, dc0 = _unchain(chains)
    d_gates = lay.merge(buf).reshape(-1, 4 * n_h)  # rows in the order of xs's rows
    h_prev = lax.slice_in_dim(
        jnp.concatenate([jnp.expand_dims(h0, time_axis), hs], time_axis), 0, n_time,
        axis=time_axis)
    inputs = jnp.concatenate([h_prev, xs], -1).reshape(d_gates.shape[0], -1)
    # [H + in, rows] @ [rows, 4H] with the small operand transposed in memory first: XLA would
    # otherwise fold the transpose into the dot's dimension numbers, which ran about 1.4x
    # slower on this CPU than the plain row-major product (measured by hand, 2-core CPU).
    d_w_t = lax.optimization_barrier(inputs.T) @ d_gates
    d_xs = (d_gates @ w_ih).reshape(xs.shape)
    return d_w_t[n_h:].T, d_w_t[:n_h].T, jnp.sum(d_gates, 0), d_xs, dh0, dc0


lstm_layer.defvjp(_lstm_layer_fwd, _lstm_layer_bwd)
