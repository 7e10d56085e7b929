"""Recurrent cells and runners vs flax.linen, torch.nn (when importable) and finite differences.

The comparisons with flax and torch run at 'highest' (float32 products on every backend). The
runner's options (padding, reversal, unrolling, hoisting) are two spellings of one computation
whose products differ in shape, so at a GPU's default precision one may be rounded to TF32 and
the other not: they agree within the precision in force (tests/precision.py).
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from functional import _lstm_layer
from functional import recurrent as R
from tests.precision import tols

# compares with independent references: .ci/run also runs this module under --emulate-precision
pytestmark = pytest.mark.reference

CELLS = {'rnn': (R.rnn_init, R.rnn_cell), 'gru': (R.gru_init, R.gru_cell),
         'lstm': (R.lstm_init, R.lstm_cell)}
N_IN, H, BATCH, T = 3, 4, 3, 6
# Two spellings of a run: outputs of size ~1 through T steps of products with rounded inputs.
# k = 4 unit roundoffs (the H200 measured 0.5 at TF32); float32: the old atol 1e-6. A function:
# the precision in force is the test's, not the one at collection.


def spellings() -> dict:
    return tols(atol=1e-6, k=4)


# Jitted once per (cell, options, shapes): eager scans would dominate the test time.
run = jax.jit(R.run, static_argnums=0, static_argnames=('reverse', 'unroll', 'time_axis', 'hoist'))


def _params(kind, seed=0, n_in=N_IN, n_hidden=H, dtype=jnp.float32):
    return CELLS[kind][0](jax.random.key(seed), n_in, n_hidden, dtype=dtype)


def _xs(seed=1, batch=BATCH, n_time=T, n_in=N_IN, dtype=jnp.float32):
    return jax.random.normal(jax.random.key(seed), (batch, n_time, n_in), dtype)


def _carry(kind, seed=2, batch=BATCH):
    ks = jax.random.split(jax.random.key(seed))
    h = jax.random.normal(ks[0], (batch, H))
    return (h, jax.random.normal(ks[1], (batch, H))) if kind == 'lstm' else h


# ------------------------------------------------------------------ initializers

@pytest.mark.parametrize('kind', ['rnn', 'gru', 'lstm'])
def test_init_layout_bounds_and_determinism(kind):
    g = {'rnn': 1, 'gru': 3, 'lstm': 4}[kind]
    p = _params(kind, n_in=5, n_hidden=16)
    assert {k: v.shape for k, v in p.items()} == {
        'w_ih': (g * 16, 5), 'w_hh': (g * 16, 16), 'b_ih': (g * 16,), 'b_hh': (g * 16,)}
    for v in p.values():  # PyTorch's U(-1/sqrt(H), 1/sqrt(H))
        assert float(jnp.max(jnp.abs(v))) <= 0.25 and float(jnp.std(v)) > 0.1
    q = _params(kind, n_in=5, n_hidden=16)
    assert all(np.array_equal(p[k], q[k]) for k in p)


def test_lstm_forget_bias_and_bias_free_rnn():
    p = R.lstm_init(jax.random.key(0), 3, 4, forget_bias=1.0)
    np.testing.assert_array_equal(p['b_ih'][4:8] + p['b_hh'][4:8], np.ones(4))
    assert float(jnp.max(jnp.abs(p['b_ih'][:4]))) > 0  # other gates untouched
    assert set(R.rnn_init(jax.random.key(0), 3, 4, bias=False)) == {'w_ih', 'w_hh'}
    with pytest.raises(ValueError, match='lstm_init'):
        R.lstm_init(jax.random.key(0), 3, 0)


# ------------------------------------------------------------------ vs flax.linen

def _dense(w, b=None):
    d = {'kernel': w.T}
    if b is not None:
        d['bias'] = b
    return d


def _to_flax(kind, p):
    """Our PyTorch-layout params -> flax.linen cell params (flax has fewer biases: fold)."""
    wi, wh, bi, bh = p['w_ih'], p['w_hh'], p['b_ih'], p['b_hh']
    if kind == 'rnn':
        return {'i': _dense(wi, bi + bh), 'h': _dense(wh)}
    s = lambda a, j: a[j * H:(j + 1) * H]
    if kind == 'gru':
        return {'ir': _dense(s(wi, 0), s(bi, 0) + s(bh, 0)), 'hr': _dense(s(wh, 0)),
                'iz': _dense(s(wi, 1), s(bi, 1) + s(bh, 1)), 'hz': _dense(s(wh, 1)),
                'in': _dense(s(wi, 2), s(bi, 2)), 'hn': _dense(s(wh, 2), s(bh, 2))}
    return {f'i{g}': _dense(s(wi, j)) for j, g in enumerate('ifgo')} | {
        f'h{g}': _dense(s(wh, j), s(bi, j) + s(bh, j)) for j, g in enumerate('ifgo')}


FLAX = {'rnn': nn.SimpleCell, 'gru': nn.GRUCell, 'lstm': nn.LSTMCell}


@pytest.mark.reference
@pytest.mark.highest
@pytest.mark.parametrize('kind', ['rnn', 'gru', 'lstm'])
def test_cells_match_flax_one_step_and_sequence(kind):
    p, xs, carry = _params(kind), _xs(), _carry(kind)
    fp = {'params': _to_flax(kind, p)}
    cell = FLAX[kind](features=H)
    # The mapping must be complete: same tree structure as flax's own init.
    ref_tree = cell.init(jax.random.key(0), carry[::-1] if kind == 'lstm' else carry, xs[:, 0])
    assert jax.tree.structure(ref_tree) == jax.tree.structure(fp)
    f_carry = carry[::-1] if kind == 'lstm' else carry  # flax's LSTM carry is (c, h)
    f_new, f_y = cell.apply(fp, f_carry, xs[:, 0])
    new, y = CELLS[kind][1](p, carry, xs[:, 0])
    np.testing.assert_allclose(y, f_y, atol=1e-5)
    np.testing.assert_allclose(jnp.stack(jax.tree.leaves(new)),
                               jnp.stack(jax.tree.leaves(f_new[::-1] if kind == 'lstm'
                                                         else f_new)), atol=1e-5)
    # Whole sequence through flax.linen.RNN (batch-major, time_major=False) vs our run.
    f_carry_T, f_ys = nn.RNN(cell, return_carry=True).apply(
        {'params': {'cell': fp['params']}}, xs, initial_carry=f_carry)
    carry_T, ys = R.run(CELLS[kind][1], p, xs, carry)
    np.testing.assert_allclose(ys, f_ys, atol=1e-5)
    h_T = carry_T[0] if kind == 'lstm' else carry_T
    np.testing.assert_allclose(h_T, f_carry_T[1] if kind == 'lstm' else f_carry_T, atol=1e-5)


@pytest.mark.reference
@pytest.mark.highest
def test_flax_comparison_detects_wrong_gate_order():
    p = _params('lstm')
    swapped = dict(p, w_ih=jnp.concatenate([p['w_ih'][H:2 * H], p['w_ih'][:H],
                                            p['w_ih'][2 * H:]]))
    fp = {'params': _to_flax('lstm', swapped)}
    _, f_y = nn.LSTMCell(features=H).apply(fp, _carry('lstm')[::-1], _xs()[:, 0])
    _, y = R.lstm_cell(p, _carry('lstm'), _xs()[:, 0])
    assert float(jnp.max(jnp.abs(y - f_y))) > 1e-3


# ------------------------------------------------------------------ vs torch.nn

TORCH_NAMES = {'w_ih': 'weight_ih', 'w_hh': 'weight_hh', 'b_ih': 'bias_ih', 'b_hh': 'bias_hh'}


def _torch_state_dict(torch, kind, layers, bidirectional):
    """Random torch module -> (module, our stacked params) with the same numbers."""
    mod = {'rnn': torch.nn.RNN, 'gru': torch.nn.GRU, 'lstm': torch.nn.LSTM}[kind](
        N_IN, H, num_layers=layers, bidirectional=bidirectional, batch_first=True)
    sd = {k: jnp.asarray(v.detach().numpy()) for k, v in mod.state_dict().items()}
    params = {}
    for i in range(layers):
        one = lambda sfx, i=i: {n: sd[f'{TORCH_NAMES[n]}_l{i}{sfx}'] for n in TORCH_NAMES}
        params[f'layer_{i}'] = ({'fwd': one(''), 'bwd': one('_reverse')} if bidirectional
                                else one(''))
    return mod, params


@pytest.mark.reference
@pytest.mark.highest
@pytest.mark.parametrize('kind', ['rnn', 'gru', 'lstm'])
def test_deep_bidirectional_packed_matches_torch(kind):
    torch = pytest.importorskip('torch')
    torch.manual_seed(0)
    mod, params = _torch_state_dict(torch, kind, layers=2, bidirectional=True)
    xs = np.asarray(_xs(batch=4, n_time=T))
    lengths = np.array([T, 2, 5, 1])
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.tensor(xs), torch.tensor(lengths),
                                                     batch_first=True, enforce_sorted=False)
    with torch.no_grad():
        out, state = mod(packed)
    t_ys, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)
    carries, ys = R.stacked(CELLS[kind][1], params, jnp.asarray(xs), lengths=lengths)
    np.testing.assert_allclose(ys, t_ys.numpy(), atol=1e-5)
    t_h = (state[0] if kind == 'lstm' else state).numpy()  # [layers*2, batch, H]
    ours_h = [c[0] if kind == 'lstm' else c for layer in carries for c in layer]
    np.testing.assert_allclose(np.stack(ours_h), t_h, atol=1e-5)
    if kind == 'lstm':
        ours_c = [c[1] for layer in carries for c in layer]
        np.testing.assert_allclose(np.stack(ours_c), state[1].numpy(), atol=1e-5)


# ------------------------------------------------------------------ padding, reverse, options

@pytest.mark.parametrize('kind', ['gru', 'lstm'])
@pytest.mark.parametrize('reverse', [False, True])
def test_padding_changes_nothing_real(kind, reverse):
    p, cell = _params(kind), CELLS[kind][1]
    lengths = [T, 3, 1]
    xs = np.array(_xs())
    xs_noisy = xs.copy()
    for b, n in enumerate(lengths):  # garbage in the padding must not leak
        xs_noisy[b, n:] = 100.0
    for kw in ({'lengths': np.array(lengths)},
               {'mask': np.arange(T)[None, :] < np.array(lengths)[:, None]}):
        carry, ys = run(cell, p, jnp.asarray(xs_noisy), reverse=reverse, **kw)
        for b, n in enumerate(lengths):
            c_b, ys_b = run(cell, p, jnp.asarray(xs[b:b + 1, :n]), reverse=reverse)
            np.testing.assert_allclose(ys[b, :n], ys_b[0], **spellings())
            np.testing.assert_array_equal(ys[b, n:], 0.0)
            for a, r in zip(jax.tree.leaves(carry), jax.tree.leaves(c_b), strict=True):
                np.testing.assert_allclose(a[b], r[0], **spellings())


def test_reverse_equals_flip_and_options_agree():
    p, xs, cell = _params('lstm'), _xs(), R.lstm_cell
    _, ys = R.run(cell, p, xs, reverse=True)
    _, ys_flip = R.run(cell, p, xs[:, ::-1])
    np.testing.assert_allclose(ys, ys_flip[:, ::-1], **spellings())
    _, base = R.run(cell, p, xs)
    for kw in ({'unroll': 3}, {'hoist': False}):
        np.testing.assert_allclose(R.run(cell, p, xs, **kw)[1], base, **spellings())
    _, tm = R.run(cell, p, jnp.swapaxes(xs, 0, 1), time_axis=0)
    np.testing.assert_allclose(jnp.swapaxes(tm, 0, 1), base, **spellings())
    # A partial with keywords is still recognised (and hoisted) and differs from tanh.
    relu_cell = functools.partial(R.rnn_cell, activation=jax.nn.relu)
    pr = _params('rnn')
    h, y = R.run(relu_cell, pr, xs)
    h_ref = jnp.zeros((BATCH, H))
    for t in range(T):
        h_ref = jax.nn.relu(xs[:, t] @ pr['w_ih'].T + pr['b_ih'] + h_ref @ pr['w_hh'].T
                            + pr['b_hh'])
    np.testing.assert_allclose(h, h_ref, **spellings())
    assert np.abs(np.asarray(h) - np.asarray(R.run(R.rnn_cell, pr, xs)[0])).max() > 0.1


def test_custom_cell_needs_carry_and_bad_input_raises():
    p = _params('rnn')
    custom = lambda prm, c, x: R.rnn_cell(prm, c, x)
    with pytest.raises(TypeError, match='init_carry'):
        R.run(custom, p, _xs())
    c, ys = R.run(custom, p, _xs(), jnp.zeros((BATCH, H)))  # not hoisted: another spelling
    np.testing.assert_allclose(ys, R.run(R.rnn_cell, p, _xs())[1], **spellings())
    with pytest.raises(ValueError, match=r'run: expected xs of rank 3'):
        R.run(R.rnn_cell, p, jnp.zeros((T, N_IN)))
    with pytest.raises(ValueError, match=r'run: expected lengths of shape \(3,\)'):
        R.run(R.rnn_cell, p, _xs(), lengths=jnp.array([1, 2]))
    with pytest.raises(ValueError, match='not both'):
        R.run(R.rnn_cell, p, _xs(), lengths=jnp.ones(3, int), mask=jnp.ones((3, T), bool))
    with pytest.raises(ValueError, match='time_axis'):
        R.run(R.rnn_cell, p, _xs(), time_axis=2)
    with pytest.raises(ValueError, match='bidirectional'):
        R.bidirectional(R.rnn_cell, p, _xs())


# ------------------------------------------------------------------ finite differences (f64)

def _directional_fd_error(f, params, n_dirs=3, eps=1e-6, seed=0):
    """max relative error between grad(f).v and central differences along random v."""
    f = jax.jit(f)
    g = jax.jit(jax.grad(f))(params)
    leaves, tree = jax.tree.flatten(params)
    worst = 0.0
    for i in range(n_dirs):
        ks = jax.random.split(jax.random.key(seed + i), len(leaves))
        v = tree.unflatten([jax.random.normal(k, x.shape, x.dtype)
                            for k, x in zip(ks, leaves, strict=True)])
        shift = lambda s, v=v: jax.tree.map(lambda w, d: w + s * eps * d, params, v)
        fd = (f(shift(1.0)) - f(shift(-1.0))) / (2 * eps)
        an = sum(jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(v),
                                                 strict=True))
        worst = max(worst, float(abs(fd - an) / max(abs(fd), abs(an), 1e-12)))
    return worst


@pytest.mark.parametrize('kind', ['rnn', 'gru', 'lstm'])
def test_gradients_through_sequences_float64(kind):
    """grad vs central differences: padded bidirectional (rnn, gru) and deep bidirectional."""
    with jax.enable_x64(True):
        cell = CELLS[kind][1]
        xs = _xs(dtype=jnp.float64)
        lengths = jnp.array([T, 4, 2])
        target = jax.random.normal(jax.random.key(9), (BATCH, T, 2 * H), jnp.float64)
        n_layers = 2 if kind == 'lstm' else 1  # deep for one cell keeps compile time down
        deep = R.stacked_init(CELLS[kind][0], jax.random.key(3), N_IN, H, n_layers,
                              bidirectional=True, dtype=jnp.float64)

        def loss(p):
            carries, ys = R.stacked(cell, p, xs, lengths=lengths)
            return jnp.sum((ys - target) ** 2) + sum(jnp.sum(c) for c in
                                                     jax.tree.leaves(carries))

        assert _directional_fd_error(loss, deep) < 1e-6


@pytest.mark.parametrize('batch,bias,time_axis', [(BATCH, True, 1), (8, True, 1),
                                                   (8, False, 0)])
def test_lstm_manual_backward_equals_autodiff_float64(batch, bias, time_axis):
    """The hand-written BPTT backward (custom_vjp) vs autodiff of the scan and vs FD, for every
    input (weights, biases, xs, initial carry); batch 8 runs the rows as two independent chains
    on CPU, batch 3 as one; also without biases, and time-major."""
    on_cpu = jax.default_backend() == 'cpu'
    assert _lstm_layer.n_chains(batch) == (2 if batch == 8 and on_cpu else 1)
    with jax.enable_x64(True):
        p = R.lstm_init(jax.random.key(0), N_IN, H, bias=bias, dtype=jnp.float64)
        xs = _xs(batch=batch, dtype=jnp.float64)
        c0 = jax.tree.map(lambda a: a.astype(jnp.float64), _carry('lstm', batch=batch))
        w = jax.random.normal(jax.random.key(5), (batch, T, H), jnp.float64)
        if time_axis == 0:
            xs, w = jnp.swapaxes(xs, 0, 1), jnp.swapaxes(w, 0, 1)

        def loss(args, manual, reverse):
            q, x, c = args
            (h_t, c_t), ys = R.run(R.lstm_cell, q, x, c, reverse=reverse,
                                   manual_backward=manual, time_axis=time_axis)
            return jnp.sum(jnp.sin(ys) * w) + jnp.sum(h_t * c_t) + jnp.sum(c_t)

        for reverse in (False, True):
            args = (p, xs, c0)
            g_auto = jax.grad(loss)(args, False, reverse)
            g_manual = jax.grad(loss)(args, True, reverse)
            for a, b in zip(jax.tree.leaves(g_manual), jax.tree.leaves(g_auto), strict=True):
                np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
        assert _directional_fd_error(lambda a: loss(a, True, False), args) < 1e-6


def test_lstm_manual_backward_second_order_float64():
    """Reverse-over-reverse through the hand-written backward (the backward pass is itself
    plain JAX) equals autodiff of the scan; vmapped over parameter sets too."""
    with jax.enable_x64(True):
        xs = _xs(batch=8, dtype=jnp.float64)

        def grad_norm(p, manual):
            loss = lambda q: jnp.sum(jnp.sin(R.run(R.lstm_cell, q, xs,
                                                   manual_backward=manual)[1]))
            return sum(jnp.sum(g ** 2) for g in jax.tree.leaves(jax.grad(loss)(p)))

        ps = jax.vmap(lambda k: R.lstm_init(k, N_IN, H, dtype=jnp.float64))(
            jax.random.split(jax.random.key(4), 2))
        got = jax.vmap(jax.grad(lambda p: grad_norm(p, True)))(ps)
        want = jax.vmap(jax.grad(lambda p: grad_norm(p, False)))(ps)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.highest
@pytest.mark.parametrize('kind', list(CELLS))
def test_bfloat16_inputs_with_float32_weights_and_zero_length(kind):
    """The default carry takes the dtype the cell computes in (bf16 inputs promote to the f32
    weights), so the run equals the run on the inputs cast to f32 exactly; a zero-length
    sequence returns the initial carry and no outputs, gradients included.

    At 'highest': the two runs are differently compiled (one converts its inputs inside), and
    at a GPU's default precision the products of the two may take different kernels (the H200
    found one unit in the last place apart); with float32 products they agree bitwise."""
    init, cell = CELLS[kind]
    p = init(jax.random.key(0), N_IN, H)
    xs = _xs(batch=8).astype(jnp.bfloat16)
    for manual in (True, False):
        carry, ys = R.run(cell, p, xs, manual_backward=manual)
        carry_ref, ys_ref = R.run(cell, p, xs.astype(jnp.float32), manual_backward=manual)
        assert ys.dtype == jnp.float32
        np.testing.assert_array_equal(ys, ys_ref)
        for a, b in zip(jax.tree.leaves(carry), jax.tree.leaves(carry_ref), strict=True):
            np.testing.assert_array_equal(a, b)

        c0 = _carry(kind, batch=8)
        empty = jnp.zeros((8, 0, N_IN))
        carry, ys = R.run(cell, p, empty, c0, manual_backward=manual)
        assert ys.shape == (8, 0, H)
        for a, b in zip(jax.tree.leaves(carry), jax.tree.leaves(c0), strict=True):
            np.testing.assert_array_equal(a, b)
        def final_carry_sum(q, empty=empty, c0=c0, manual=manual):
            carry = R.run(cell, q, empty, c0, manual_backward=manual)[0]
            return sum(jnp.sum(c) for c in jax.tree.leaves(carry))
        grads = jax.grad(final_carry_sum)(p)
        assert all(not np.any(g) for g in jax.tree.leaves(grads))


@pytest.mark.parametrize('time_axis', [1, 0])
def test_deep_bidirectional_lstm_without_padding_check_grads_float64(time_axis):
    """Unpadded deep bidirectional LSTM runs every layer and direction through the
    hand-written backward; jax.test_util.check_grads (reverse mode) against
    finite differences, in both layouts."""
    from jax.test_util import check_grads

    with jax.enable_x64(True):
        deep = R.stacked_init(R.lstm_init, jax.random.key(3), N_IN, H, 2, bidirectional=True,
                              dtype=jnp.float64)
        xs = _xs(batch=8, dtype=jnp.float64)
        if time_axis == 0:
            xs = jnp.swapaxes(xs, 0, 1)

        def loss(p, x):
            carries, ys = R.stacked(R.lstm_cell, p, x, time_axis=time_axis)
            return jnp.sum(jnp.sin(ys)) + sum(jnp.sum(c ** 2) for c in jax.tree.leaves(carries))

        check_grads(loss, (deep, xs), order=1, modes=['rev'], atol=1e-5, rtol=1e-5)


def test_fd_checker_fails_on_wrong_gradient():
    with jax.enable_x64(True):
        p = _params('rnn', dtype=jnp.float64)
        f = lambda q: jnp.sum(R.run(R.rnn_cell, q, _xs(dtype=jnp.float64))[1] ** 2)

        @jax.custom_vjp
        def bad(q):
            return f(q)
        bad.defvjp(lambda q: (f(q), q),
                   lambda q, g: (jax.tree.map(lambda a: 1.01 * a, jax.grad(f)(q)),))
        assert _directional_fd_error(f, p) < 1e-6
        assert _directional_fd_error(bad, p) > 1e-3
