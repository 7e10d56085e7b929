"""BPTT: the notes' k-step truncation vs a NumPy transcription of seed 000, chunked truncation,
contiguous streams, clipping and gradient norms by lag."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from functional import bptt as B
from functional import recurrent as R

# the float32 tests compare with independent references: .ci/run also runs them under
# --emulate-precision (which leaves the float64 ones unchanged)

# ------------------------------------------------------------------ seed 000, transcribed

class RNNNumpy:
    """Seed 000's RNN (WildML tutorial): s_t = tanh(U[:, x_t] + W s_{t-1}), o_t = softmax(V s_t).

    ``bptt`` is the routine of seed 000 line for line (Python 3 / NumPy spelling only).
    """

    def __init__(self, U, V, W, bptt_truncate):
        self.U, self.V, self.W, self.bptt_truncate = U, V, W, bptt_truncate
        self.hidden_dim = W.shape[0]

    def forward_propagation(self, x):
        T = len(x)
        s = np.zeros((T + 1, self.hidden_dim))  # s[-1] is the initial state (zeros)
        o = np.zeros((T, self.V.shape[0]))
        for t in np.arange(T):
            s[t] = np.tanh(self.U[:, x[t]] + self.W.dot(s[t - 1]))
            z = self.V.dot(s[t])
            o[t] = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        return [o, s]

    def bptt(self, x, y):
        T = len(y)
        o, s = self.forward_propagation(x)
        dLdU = np.zeros(self.U.shape)
        dLdV = np.zeros(self.V.shape)
        dLdW = np.zeros(self.W.shape)
        delta_o = o
        delta_o[np.arange(len(y)), y] -= 1.
        for t in np.arange(T)[::-1]:
            dLdV += np.outer(delta_o[t], s[t].T)
            delta_t = self.V.T.dot(delta_o[t]) * (1 - (s[t] ** 2))
            for bptt_step in np.arange(max(0, t - self.bptt_truncate), t + 1)[::-1]:
                dLdW += np.outer(delta_t, s[bptt_step - 1])
                dLdU[:, x[bptt_step]] += delta_t
                delta_t = self.W.T.dot(delta_t) * (1 - s[bptt_step - 1] ** 2)
        return [dLdU, dLdV, dLdW]


VOCAB, HID, T = 5, 4, 9


def _seed000_problem():
    rng = np.random.default_rng(0)
    U = rng.uniform(-1 / np.sqrt(VOCAB), 1 / np.sqrt(VOCAB), (HID, VOCAB))
    V = rng.uniform(-1 / np.sqrt(HID), 1 / np.sqrt(HID), (VOCAB, HID))
    W = rng.uniform(-1, 1, (HID, HID))  # large enough that truncation visibly matters
    x = rng.integers(0, VOCAB, T)
    y = rng.integers(0, VOCAB, T)
    return U, V, W, x, y


def _ours_seed000_grads(U, V, W, x, y, k):
    def loss(p):
        xs = jax.nn.one_hot(x, VOCAB, dtype=jnp.float64)[None]  # <f64>[1, T, vocab]
        rnn = {'w_ih': p['U'], 'w_hh': p['W']}                  # bias-free, as in seed 000
        ys = B.truncated_outputs(R.rnn_cell, rnn, xs, k)[0]
        logp = jax.nn.log_softmax(ys @ p['V'].T)
        return -jnp.sum(logp[jnp.arange(T), y])                 # summed cross-entropy
    return jax.grad(loss)({'U': U, 'V': V, 'W': W})


def test_k_step_truncation_matches_seed000_bptt_exactly():
    with jax.enable_x64(True):
        U, V, W, x, y = _seed000_problem()
        results = {}
        for k in (0, 2, T - 1, T + 4):
            dU, dV, dW = RNNNumpy(U, V, W, k).bptt(x, y)
            g = _ours_seed000_grads(jnp.asarray(U), jnp.asarray(V), jnp.asarray(W), x, y, k)
            np.testing.assert_allclose(g['U'], dU, rtol=1e-8, atol=1e-12)
            np.testing.assert_allclose(g['V'], dV, rtol=1e-8, atol=1e-12)
            np.testing.assert_allclose(g['W'], dW, rtol=1e-8, atol=1e-12)
            results[k] = dW
        # The comparison can fail: truncation changes the answer, and k >= T - 1 is full BPTT.
        assert np.max(np.abs(results[2] - results[T - 1])) > 1e-3
        np.testing.assert_array_equal(results[T - 1], results[T + 4])
        full = jax.grad(lambda w: -jnp.sum(jax.nn.log_softmax(
            R.run(R.rnn_cell, {'w_ih': jnp.asarray(U), 'w_hh': w},
                  jax.nn.one_hot(x, VOCAB, dtype=jnp.float64)[None])[1][0]
            @ jnp.asarray(V).T)[jnp.arange(T), y]))(jnp.asarray(W))
        np.testing.assert_allclose(full, results[T - 1], rtol=1e-10)


def test_k_step_truncation_general_cell_vs_brute_force():
    """LSTM: every y_t recomputed by hand from stop_gradient(carry_{t-k-1})."""
    n_time = 5
    with jax.enable_x64(True):
        p = R.lstm_init(jax.random.key(0), 3, 4, dtype=jnp.float64)
        xs = jax.random.normal(jax.random.key(1), (2, n_time, 3), jnp.float64)
        w = jax.random.normal(jax.random.key(2), (n_time, 4), jnp.float64)
        readout = lambda ys: jnp.sum(jnp.tanh(ys) * w)

        def brute(p, k):
            carries = [R.init_carry(R.lstm_cell, p, 2)]
            for t in range(n_time):
                carries.append(R.lstm_cell(p, carries[-1], xs[:, t])[0])
            ys = []
            for t in range(n_time):
                start = max(0, t - k)
                c = carries[start]
                c = c if start == 0 else jax.tree.map(jax.lax.stop_gradient, c)
                for s in range(start, t + 1):
                    c, y = R.lstm_cell(p, c, xs[:, s])
                ys.append(y)
            return readout(jnp.stack(ys, 1))

        full = jax.grad(lambda q: readout(R.run(R.lstm_cell, q, xs)[1]))(p)
        grads = {}
        for k in (1, n_time - 1):
            grads[k] = jax.grad(lambda q, k=k: readout(
                B.truncated_outputs(R.lstm_cell, q, xs, k)))(p)
        ref = jax.jit(jax.grad(brute), static_argnums=1)(p, 1)  # k = T - 1 is checked vs full
        for a, b in zip(jax.tree.leaves(grads[1]), jax.tree.leaves(ref), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
        for a, b in zip(jax.tree.leaves(grads[n_time - 1]), jax.tree.leaves(full), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-10)
        assert np.max(np.abs(grads[1]['w_hh'] - full['w_hh'])) > 1e-4
        np.testing.assert_allclose(B.truncated_outputs(R.lstm_cell, p, xs, 2),
                                   R.run(R.lstm_cell, p, xs)[1], rtol=1e-12)


# ------------------------------------------------------------------ chunked truncation

def test_chunked_values_and_gradients():
    with jax.enable_x64(True):
        p = R.gru_init(jax.random.key(0), 3, 4, dtype=jnp.float64)
        xs = jax.random.normal(jax.random.key(1), (2, 7, 3), jnp.float64)
        c_full, ys_full = R.run(R.gru_cell, p, xs)
        for chunk in (3, 10):  # 3 leaves a partial last chunk; 10 > T is one chunk
            c, ys = B.run_chunked(R.gru_cell, p, xs, chunk=chunk)
            np.testing.assert_allclose(ys, ys_full, rtol=1e-12)
            np.testing.assert_allclose(c, c_full, rtol=1e-12)

        loss = lambda ys: jnp.sum(jnp.sin(ys))
        g_full = jax.grad(lambda q: loss(R.run(R.gru_cell, q, xs)[1]))(p)
        g_one = jax.grad(lambda q: loss(B.run_chunked(R.gru_cell, q, xs, chunk=7)[1]))(p)
        for a, b in zip(jax.tree.leaves(g_one), jax.tree.leaves(g_full), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12)

        def by_hand(q):  # chunks of 3, carry detached at each boundary
            c, total = R.init_carry(R.gru_cell, q, 2), 0.0
            for s in range(0, 7, 3):
                c, ys = R.run(R.gru_cell, q, xs[:, s:s + 3], B.detach(c) if s else c)
                total = total + loss(ys)
            return total
        g3 = jax.grad(lambda q: loss(B.run_chunked(R.gru_cell, q, xs, chunk=3)[1]))(p)
        g_hand = jax.jit(jax.grad(by_hand))(p)
        for a, b in zip(jax.tree.leaves(g3), jax.tree.leaves(g_hand), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)
        assert max(float(jnp.max(jnp.abs(a - b))) for a, b in
                   zip(jax.tree.leaves(g3), jax.tree.leaves(g_full), strict=True)) > 1e-4
    with pytest.raises(ValueError, match='run_chunked: expected chunk'):
        B.run_chunked(R.gru_cell, p, xs, chunk=0)


@pytest.mark.reference
@pytest.mark.highest  # chunks against one long run: two spellings, equal in float32 products
def test_contiguous_streams_and_stateful_carry():
    ids = np.arange(103)
    x, y = B.contiguous_streams(ids, batch_size=4, chunk=6)
    # seg = 25 per row, (25 - 1) // 6 = 4 chunks; PyTorch batchify: row b = ids[25b : 25b+25]
    assert x.shape == y.shape == (4, 4, 6) and x.dtype == np.int32
    for b in range(4):
        np.testing.assert_array_equal(x[b].ravel(), ids[25 * b: 25 * b + 24])
        np.testing.assert_array_equal(y[b].ravel(), ids[25 * b + 1: 25 * b + 25])
    with pytest.raises(ValueError, match='contiguous_streams'):
        B.contiguous_streams(np.arange(10), batch_size=4, chunk=6)

    # Carrying the final carry of chunk c into chunk c+1 reproduces one long run per row.
    p = R.lstm_init(jax.random.key(0), 3, 4)
    emb = jax.random.normal(jax.random.key(1), (103, 3))
    carry, outs = None, []
    for c in range(x.shape[1]):
        carry, ys = R.run(R.lstm_cell, p, emb[x[:, c]], None if carry is None else
                          B.detach(carry))
        outs.append(ys)
    _, ys_long = R.run(R.lstm_cell, p, emb[x.reshape(4, -1)])
    np.testing.assert_allclose(jnp.concatenate(outs, 1), ys_long, atol=1e-6)


# ------------------------------------------------------------------ clipping, norms by lag

@pytest.mark.reference
def test_clip_grad_norm_matches_optax():
    g = {'a': jnp.arange(6.0).reshape(2, 3), 'b': jnp.array([-3.0, 4.0])}
    norm_ref = np.sqrt(np.sum(np.arange(6.0) ** 2) + 25.0)
    for max_norm in (1.0, 100.0):
        clipped, norm = B.clip_grad_norm(g, max_norm)
        ref, _ = optax.clip_by_global_norm(max_norm).update(g, None)
        np.testing.assert_allclose(norm, norm_ref, rtol=1e-6)
        for a, b in zip(jax.tree.leaves(clipped), jax.tree.leaves(ref), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(B.global_norm(B.clip_grad_norm(g, 1.0)[0]), 1.0, rtol=1e-6)
    zero, n0 = B.clip_grad_norm({'a': jnp.zeros(3)}, 1.0)
    assert float(n0) == 0.0 and not np.any(np.isnan(zero['a']))
    with pytest.raises(ValueError, match='clip_grad_norm'):
        B.clip_grad_norm(g, 0.0)


def test_gradient_norms_by_lag_vs_rerun_from_each_carry():
    with jax.enable_x64(True):
        p = R.lstm_init(jax.random.key(0), 3, 4, dtype=jnp.float64)
        xs = jax.random.normal(jax.random.key(1), (2, 6, 3), jnp.float64)
        t = 4
        lags, norms = B.gradient_norms_by_lag(R.lstm_cell, p, xs, t)
        np.testing.assert_array_equal(lags, np.arange(1, t + 2))
        carries = [R.init_carry(R.lstm_cell, p, 2)]  # carries[s + 1] = carry after step s
        for s in range(t + 1):
            carries.append(R.lstm_cell(p, carries[-1], xs[:, s])[0])
        for lag in range(1, t + 2):
            s = t - lag  # the carry after step s (s = -1 is carry0)

            def from_carry(c, s=s):
                for u in range(s + 1, t + 1):
                    c, y = R.lstm_cell(p, c, xs[:, u])
                return jnp.sum(y)
            g = jax.grad(from_carry)(carries[s + 1])
            per_example = np.sqrt(sum(np.sum(np.asarray(a) ** 2, -1)
                                      for a in jax.tree.leaves(g)))
            np.testing.assert_allclose(norms[lag - 1], per_example.mean(), rtol=1e-10)


@pytest.mark.reference
def test_vanilla_gradient_vanishes_lstm_keeps_it():
    xs = jax.random.normal(jax.random.key(1), (4, 40, 4))
    rnn = R.rnn_init(jax.random.key(0), 4, 16)
    lstm = R.lstm_init(jax.random.key(0), 4, 16, forget_bias=3.0)
    _, n_rnn = B.gradient_norms_by_lag(R.rnn_cell, rnn, xs)
    _, n_lstm = B.gradient_norms_by_lag(R.lstm_cell, lstm, xs)
    decay_rnn, decay_lstm = n_rnn[30] / n_rnn[0], n_lstm[30] / n_lstm[0]
    assert decay_rnn < 1e-4 < 1e-2 < decay_lstm, (decay_rnn, decay_lstm)

    from train.plots_recurrent import plot_gradient_norms_by_lag
    lags = np.arange(1, 41)
    fig = plot_gradient_norms_by_lag({'RNN': (lags, n_rnn), 'LSTM': (lags, n_lstm)})
    lines = fig.axes[0].get_lines()
    assert [ln.get_label() for ln in lines] == ['RNN', 'LSTM']
    np.testing.assert_allclose(lines[1].get_ydata(), n_lstm)
    assert fig.axes[0].get_yscale() == 'log'
