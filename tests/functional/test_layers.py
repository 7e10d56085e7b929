"""functional.layers against flax.linen (weights mapped across), NumPy transcriptions of the
notes' formulas, and jax.vjp; plus the shape-error contract.

Each comparison also has a negative control showing that the check notices a plausible wrong
answer (a flipped kernel, the other momentum convention, an unbiased variance).
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from functional import layers as L
from functional.layers import convolution as LC

# compares with independent references: .ci/run also runs this module under --emulate-precision
pytestmark = pytest.mark.reference

TOL = {"rtol": 1e-5, "atol": 1e-5}


def _rand(seed, shape, scale=1.0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape) * scale, jnp.float32)


def _params(seed, w_shape):
    """Random kernel and bias from NumPy: cheaper than an initializer (no per-shape compile)
    and a nonzero bias so that the bias path is compared too."""
    return {"w": _rand(seed, w_shape, scale=0.5), "b": _rand(seed + 1000, w_shape[-1:])}


def _close(a, b, **tol):
    return np.allclose(np.asarray(a), np.asarray(b), **(tol or TOL))


# ------------------------------------------------------------------------------------------
# Dense
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("x_shape", [(4, 7), (2, 3, 7)])
def test_dense_matches_flax(x_shape):
    params = _params(0, (7, 5))
    x = _rand(1, x_shape)
    ref = nn.Dense(5).apply({"params": {"kernel": params["w"], "bias": params["b"]}}, x)
    y = L.dense(params, x)
    assert y.shape == (*x_shape[:-1], 5)
    np.testing.assert_allclose(y, ref, **TOL)
    # negative control: dropping the bias is noticed
    assert not _close(L.dense({"w": params["w"], "b": 0 * params["b"]}, x), ref)


def test_init_shapes_defaults_and_custom_initializers():
    k = jax.random.key(3)
    p = L.dense_init(k, 300, 200)
    assert p["w"].shape == (300, 200) and p["b"].shape == (200,)
    assert p["w"].dtype == jnp.float32
    np.testing.assert_array_equal(p["b"], 0.0)
    # default is LeCun normal (flax's default), variance 1 / fan_in
    assert abs(float(jnp.var(p["w"])) * 300 - 1.0) < 0.05
    # same key, bitwise same params; any fn(key, shape, dtype) is accepted
    np.testing.assert_array_equal(L.dense_init(k, 300, 200)["w"], p["w"])
    const = lambda key, shape, dtype=jnp.float32: jnp.full(shape, 0.25, dtype)
    q = L.dense_init(k, 3, 2, w_init=const, b_init=const, dtype=jnp.float16)
    assert q["w"].dtype == jnp.float16
    np.testing.assert_array_equal(q["w"], 0.25)

    # shapes only (eval_shape: no per-shape compile of the random draws)
    shape = lambda f, *a, **kw: jax.eval_shape(lambda: f(k, *a, **kw))["w"].shape
    assert shape(L.conv_init, 3, 8, 5) == (5, 5, 3, 8)  # int -> square 2-D
    assert shape(L.conv_init, 3, 8, 5, ndim=1) == (5, 3, 8)
    assert shape(L.conv_init, 3, 8, (2, 4)) == (2, 4, 3, 8)
    assert shape(L.conv1d_init, 3, 8, 5) == (5, 3, 8)
    assert shape(L.conv2d_init, 3, 8, (5,) * 2) == (5, 5, 3, 8)
    assert shape(L.conv_transpose_init, 4, 2, 3) == (3, 3, 4, 2)
    assert shape(L.conv_transpose_init, 4, 2, 3, ndim=1) == (3, 4, 2)
    assert jax.eval_shape(lambda: L.conv2d_init(k, 3, 8, 5))["b"].shape == (8,)
    with pytest.raises(ValueError, match="ndim=2"):
        L.conv_init(k, 3, 8, (5,), ndim=2)
    with pytest.raises(ValueError, match="1-D and 2-D"):
        L.conv_init(k, 3, 8, (1, 2, 3))

    e = L.embedding_init(k, 1000, 64)["table"]
    assert e.shape == (1000, 64) and abs(float(jnp.std(e)) - 1.0) < 0.02
    bp, bs = L.batch_norm_init(6)
    assert {k: v.tolist() for k, v in bs.items()} == {"mean": [0.0] * 6, "var": [1.0] * 6}
    assert bp["scale"].tolist() == [1.0] * 6 and bp["bias"].tolist() == [0.0] * 6


# ------------------------------------------------------------------------------------------
# Convolution
# ------------------------------------------------------------------------------------------

# (x shape, kernel, out channels, stride, padding, dilation)
CONV_CASES = [
    ((2, 16, 3), (3,), 4, 1, "SAME", 1),
    ((2, 17, 3), (5,), 6, 2, "VALID", 1),
    ((2, 16, 2), (3,), 5, 3, 2, 2),
    ((2, 16, 2), (4,), 3, 1, "CAUSAL", 2),
    ((2, 9, 9, 3), (3, 3), 8, 1, "SAME", 1),
    ((2, 9, 10, 3), (3, 3), 2, 2, "SAME", 1),
    ((2, 9, 9, 2), (3, 2), 16, (2, 1), "VALID", 1),
    ((1, 8, 8, 3), (3, 3), 4, 1, 1, 2),
    ((1, 8, 8, 3), (2, 3), 5, 2, ((1, 0), (2, 1)), (1, 2)),
    ((2, 7, 7, 1), (4, 4), 3, 3, (1, 2), 1),
]


@pytest.mark.parametrize("x_shape,kernel,feat,stride,padding,dil", CONV_CASES)
def test_conv_matches_flax(x_shape, kernel, feat, stride, padding, dil):
    params = _params(0, (*kernel, x_shape[-1], feat))
    x = _rand(1, x_shape)
    y = L.conv(params, x, stride=stride, padding=padding, dilation=dil)
    module = nn.Conv(feat, kernel, strides=stride, padding=padding, kernel_dilation=dil)
    ref = module.apply({"params": {"kernel": params["w"], "bias": params["b"]}}, x)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, **TOL)
    assert y.shape[1:-1] == L.conv_output_shape(x_shape[1:-1], kernel, stride=stride,
                                                padding=padding, dilation=dil)
    aliased = (L.conv1d if len(kernel) == 1 else L.conv2d)(
        params, x, stride=stride, padding=padding, dilation=dil)
    np.testing.assert_array_equal(aliased, y)


def _numpy_cross_correlation(x, w, b, stride, pad):
    """The notes' formula a[i,j] = sum_{m,n} w[m,n] x[i+m, j+n] + w_b, per filter, with zero
    padding `pad` on every side and stride `stride` (seed 003, section 5)."""
    x = np.pad(np.asarray(x, np.float64), ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    w = np.asarray(w, np.float64)
    kh, kw, _, d = w.shape
    oh = (x.shape[1] - kh) // stride + 1
    ow = (x.shape[2] - kw) // stride + 1
    out = np.zeros((x.shape[0], oh, ow, d))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, i * stride:i * stride + kh, j * stride:j * stride + kw, :]
            out[:, i, j, :] = np.einsum("bmnc,mncd->bd", patch, w) + np.asarray(b)
    return out


@pytest.mark.highest
def test_conv_is_the_notes_cross_correlation():
    # The notes' picture: a 5x5x3 input, zero padding 1, stride 2, two 3x3x3 filters with one
    # bias each -> a 3x3x2 output, (W - F + 2P) / S + 1 = (5 - 3 + 2) / 2 + 1 = 3.
    params = _params(5, (3, 3, 3, 2))
    x = jnp.asarray(np.random.default_rng(6).integers(0, 3, size=(1, 5, 5, 3)), jnp.float32)
    y = L.conv(params, x, stride=2, padding=1)
    assert y.shape == (1, 3, 3, 2)
    want = _numpy_cross_correlation(x, params["w"], params["b"], 2, 1)
    np.testing.assert_allclose(y, want, **TOL)
    # negative control: true (flipped-kernel) convolution is a different answer
    flipped = {"w": params["w"][::-1, ::-1], "b": params["b"]}
    assert not _close(L.conv(flipped, x, stride=2, padding=1), want)


@pytest.mark.parametrize("size", [7, 8, 13])
@pytest.mark.parametrize("kernel,stride,padding,dil", [
    (3, 1, "VALID", 1), (3, 2, "VALID", 1), (5, 3, "VALID", 2), (3, 2, "SAME", 1),
    (4, 3, "SAME", 1), (3, 1, 1, 1), (5, 2, 2, 1), (3, 2, (0, 3), 1), (2, 3, ((2, 1),), 1),
])
def test_conv_output_size_formula(size, kernel, stride, padding, dil):
    f_eff = (kernel - 1) * dil + 1
    if padding == "SAME":
        want = math.ceil(size / stride)
    else:
        if padding == "VALID":
            lo = hi = 0
        elif isinstance(padding, int):
            lo = hi = padding
        elif isinstance(padding[0], tuple):
            lo, hi = padding[0]
        else:
            lo, hi = padding
            padding = ((lo, hi),)
        want = (size - f_eff + lo + hi) // stride + 1  # (W - F + 2P) / S + 1
    params = _params(0, (kernel, 1, 1))
    if want < 1:  # the kernel does not fit: an error, not an empty output
        with pytest.raises(ValueError, match="the effective kernel"):
            L.conv(params, jnp.ones((1, size, 1)), padding=padding, dilation=dil)
        return
    got = L.conv_output_shape(size, kernel, stride=stride, padding=padding, dilation=dil)
    assert got == (want,)
    y = L.conv(params, jnp.ones((1, size, 1)), stride=stride, padding=padding, dilation=dil)
    assert y.shape == (1, want, 1)


# ------------------------------------------------------------------------------------------
# Transposed convolution
# ------------------------------------------------------------------------------------------

CONVT_CASES = [
    ((2, 5, 5, 3), (3, 3), 4, 1, "SAME", 1),
    ((2, 5, 5, 3), (3, 3), 4, 2, "SAME", 1),
    ((2, 4, 6, 2), (4, 4), 3, 2, "SAME", 1),
    ((2, 4, 4, 2), (2, 2), 3, 3, "SAME", 1),
    ((2, 5, 5, 3), (3, 3), 2, 2, "VALID", 1),
    ((1, 4, 4, 2), (2, 3), 5, (3, 2), "VALID", 1),
    ((1, 4, 4, 2), (3, 3), 2, 2, ((1, 2), (0, 1)), 1),
    ((1, 5, 5, 2), (3, 3), 2, 2, "SAME", 2),
    ((2, 6, 3), (3,), 4, 2, "SAME", 1),
    ((2, 6, 3), (4,), 4, 3, "VALID", 1),
]


@pytest.mark.parametrize("x_shape,kernel,feat,stride,padding,dil", CONVT_CASES)
def test_conv_transpose_matches_flax(x_shape, kernel, feat, stride, padding, dil):
    params = _params(0, (*kernel, x_shape[-1], feat))
    x = _rand(2, x_shape)
    y = L.conv_transpose(params, x, stride=stride, padding=padding, dilation=dil)
    module = nn.ConvTranspose(feat, kernel, strides=stride, padding=padding,
                              kernel_dilation=dil)
    ref = module.apply({"params": {"kernel": params["w"], "bias": params["b"]}}, x)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, **TOL)
    s = (stride,) * len(kernel) if isinstance(stride, int) else stride
    f_eff = [(k - 1) * dil + 1 for k in kernel]
    if padding == "SAME":
        assert y.shape[1:-1] == tuple(w * si for w, si in zip(x_shape[1:-1], s, strict=True))
    elif padding == "VALID":
        assert y.shape[1:-1] == tuple(w * si + max(f - si, 0)
                                      for w, si, f in zip(x_shape[1:-1], s, f_eff, strict=True))


@pytest.mark.parametrize("n,k,s,padding", [(9, 3, 2, "VALID"), (10, 4, 2, "VALID"),
                                           (8, 4, 2, "SAME"), (9, 3, 3, "VALID")])
def test_conv_transpose_is_the_gradient_of_conv(n, k, s, padding):
    """With the kernel flipped and its channel axes swapped, conv_transpose is the adjoint of
    conv: the vector-Jacobian product of conv with respect to its input."""
    pc = {"w": _rand(1, (k, k, 3, 5)), "b": jnp.zeros((5,))}
    x = _rand(3, (2, n, n, 3))
    y, vjp = jax.vjp(lambda x: L.conv(pc, x, stride=s, padding=padding), x)
    g = _rand(4, y.shape)
    (want,) = vjp(g)
    pt = {"w": jnp.swapaxes(pc["w"][::-1, ::-1], 2, 3), "b": jnp.zeros((3,))}
    got = L.conv_transpose(pt, g, stride=s, padding=padding)
    assert got.shape == x.shape
    np.testing.assert_allclose(got, want, **TOL)
    # negative control: without the flip it is not the gradient
    unflipped = {"w": jnp.swapaxes(pc["w"], 2, 3), "b": pt["b"]}
    assert not _close(L.conv_transpose(unflipped, g, stride=s, padding=padding), want)


# ------------------------------------------------------------------------------------------
# The canonical-layout VJP of conv / conv_transpose (fast_grad=True) against jax.grad of lax
# ------------------------------------------------------------------------------------------

# (kernel, stride, padding, dilation): stride/dilation/padding combinations in 1-D and 2-D,
# including padding larger than the kernel and strides that leave input elements unused
# (VALID with 10 % 3 != 0), where the backward paddings go negative.
GRAD_CASES = [
    ((3,), 1, "SAME", 1), ((5,), 2, 1, 1), ((3,), 3, "VALID", 2), ((2,), 2, "CAUSAL", 3),
    ((3,), 2, ((4, 0),), 1),
    ((3, 3), 2, "SAME", 1), ((3, 2), (1, 3), "VALID", (2, 1)), ((2, 3), 2, ((2, 1), (0, 3)), 2),
]


def _lax_conv(p, x, kernel_ndim, stride, padding, dilation):
    """The reference: lax.conv_general_dilated with JAX's own autodiff rules."""
    n = kernel_ndim
    pads = LC._explicit_padding(padding, x.shape[1:-1], p["w"].shape[:n],
                                LC._tuple(stride, n, "s", "t"), LC._tuple(dilation, n, "d", "t"),
                                "t")
    dims = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC")}[n]
    return jax.lax.conv_general_dilated(
        x, p["w"], LC._tuple(stride, n, "s", "t"), pads,
        rhs_dilation=LC._tuple(dilation, n, "d", "t"), dimension_numbers=dims) + p["b"]


@pytest.mark.parametrize("kernel,stride,padding,dilation,dtype",
                         [(*c, "float32") for c in GRAD_CASES]
                         + [(*c, "float64") for c in GRAD_CASES[1::2]])
def test_conv_fast_grad_matches_jax_grad_of_lax(kernel, stride, padding, dilation, dtype):
    """Forward bitwise equal, gradients (w, b, x) equal to jax.grad of lax to rounding."""
    n = len(kernel)
    with jax.enable_x64(dtype == "float64"):
        x = jnp.asarray(_rand(7, (2, 10, 3) if n == 1 else (2, 10, 9, 3)), dtype)
        p = jax.tree.map(lambda a: jnp.asarray(a, dtype), _params(8, (*kernel, 3, 4)))
        kw = {"stride": stride, "padding": padding, "dilation": dilation}
        y = L.conv(p, x, **kw)
        ct = jnp.asarray(_rand(9, y.shape), dtype)
        # jitted: one compilation each is cheaper than op-by-op dispatch of the backward pass
        got = jax.jit(jax.grad(lambda p, x: jnp.vdot(L.conv(p, x, **kw), ct), (0, 1)))(p, x)
        want = jax.jit(jax.grad(lambda p, x: jnp.vdot(_lax_conv(p, x, n, **kw), ct),
                                (0, 1)))(p, x)
        assert got[1].dtype == jnp.dtype(dtype)
        np.testing.assert_array_equal(y, _lax_conv(p, x, n, **kw))
        tol = {"rtol": 1e-6, "atol": 1e-6} if dtype == "float32" else {"rtol": 1e-13,
                                                                         "atol": 1e-13}
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_allclose(a, b, **tol)
        # negative control: the kernel gradient of the unflipped layout differs
        assert not _close(got[0]["w"], jnp.flip(want[0]["w"], axis=tuple(range(n))), **tol)


@pytest.mark.parametrize("stride,padding", [(2, "SAME"), (3, "VALID"), (2, ((2, 1), (0, 2)))])
def test_conv_transpose_fast_grad_matches_jax_grad(stride, padding):
    """conv_transpose (input dilation) through the same VJP: equal to fast_grad=False."""
    p = _params(11, (3, 2, 3, 4))
    x = _rand(12, (2, 5, 4, 3))
    kw = {"stride": stride, "padding": padding, "dilation": (1, 2)}
    ct = _rand(13, L.conv_transpose(p, x, **kw).shape)
    grads = [jax.grad(lambda p, x, fg=fg: jnp.vdot(L.conv_transpose(p, x, fast_grad=fg, **kw),
                                                   ct), (0, 1))(p, x) for fg in (True, False)]
    for a, b in zip(*map(jax.tree.leaves, grads), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.highest
def test_conv_fast_grad_under_vmap_grad_of_grad_and_jvp():
    """Per-example gradients under vmap and reverse-over-reverse match lax's; forward mode
    needs fast_grad=False (documented), and then equals the reverse-mode directional
    derivative."""
    p = _params(14, (3, 3, 4))
    xs = _rand(15, (5, 1, 9, 3))                      # 5 examples of batch 1

    def loss(p, x, fg=True):
        return jnp.sum(jnp.tanh(L.conv(p, x, stride=2, padding=1, fast_grad=fg)) ** 2)

    def loss_lax(p, x):
        return jnp.sum(jnp.tanh(_lax_conv(p, x, 1, 2, 1, 1)) ** 2)

    got = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0)))(p, xs)
    want = jax.jit(jax.vmap(jax.grad(loss_lax), in_axes=(None, 0)))(p, xs)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    # grad of grad (a Hessian-vector product by reverse over reverse)
    v = jax.tree.map(lambda a: jnp.ones_like(a) * 0.1, p)
    hvp = lambda f: jax.grad(lambda p: jax.tree.reduce(  # noqa: E731
        jnp.add, jax.tree.map(jnp.vdot, jax.grad(f)(p, xs[0]), v)))(p)
    for a, b in zip(jax.tree.leaves(jax.jit(hvp, static_argnums=0)(loss)),
                    jax.tree.leaves(jax.jit(hvp, static_argnums=0)(loss_lax)), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # forward mode: the custom VJP refuses, fast_grad=False works
    with pytest.raises(TypeError, match="jvp"):
        jax.jvp(lambda p: loss(p, xs[0]), (p,), (v,))
    _, tangent = jax.jvp(lambda p: loss(p, xs[0], False), (p,), (v,))
    g = jax.grad(loss)(p, xs[0])
    np.testing.assert_allclose(tangent, sum(jnp.vdot(g[k], v[k]) for k in g), rtol=1e-5)


# ------------------------------------------------------------------------------------------
# Pooling and flatten
# ------------------------------------------------------------------------------------------

POOL_CASES = [
    ((2, 8, 8, 3), 2, None, "VALID"),
    ((2, 9, 7, 3), (3, 2), (2, 1), "VALID"),
    ((2, 9, 9, 2), 3, 2, "SAME"),
    ((1, 6, 6, 2), (2, 3), 2, ((1, 0), (1, 2))),
    ((2, 11, 4), 3, 2, "SAME"),
    ((2, 12, 4), (4,), None, "VALID"),
]


@pytest.mark.parametrize("x_shape,window,stride,padding", POOL_CASES)
def test_pools_match_flax(x_shape, window, stride, padding):
    x = _rand(7, x_shape)
    n = len(x_shape) - 2
    win = (window,) * n if isinstance(window, int) else window
    st = None if stride is None else ((stride,) * n if isinstance(stride, int) else stride)
    st = st or win  # our default stride is the window (PyTorch's); flax's default is 1
    y = L.max_pool(x, window, stride, padding)
    np.testing.assert_allclose(y, nn.max_pool(x, win, st, padding), **TOL)
    assert y.shape[1:-1] == L.conv_output_shape(x_shape[1:-1], win, stride=st,
                                                padding=padding)
    for include in (True, False):
        np.testing.assert_allclose(
            L.avg_pool(x, window, stride, padding, count_include_pad=include),
            nn.avg_pool(x, win, st, padding, count_include_pad=include), **TOL)


def test_pools_by_hand():
    # 4x4 single-channel map, 2x2 windows, stride 2 (the notes' pooling picture)
    a = np.array([[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]], np.float32)
    x = jnp.asarray(a)[None, :, :, None]
    np.testing.assert_array_equal(L.max_pool(x, 2)[0, :, :, 0], [[6, 8], [3, 4]])
    np.testing.assert_allclose(L.avg_pool(x, 2)[0, :, :, 0], [[3.25, 5.25], [2, 2]])
    # negative control: SAME padding with a 3x3 window on 4x4 changes the counts at the edges
    incl = L.avg_pool(x, 3, 1, "SAME", count_include_pad=True)
    excl = L.avg_pool(x, 3, 1, "SAME", count_include_pad=False)
    np.testing.assert_allclose(excl[0, 0, 0, 0], (1 + 1 + 5 + 6) / 4)
    np.testing.assert_allclose(incl[0, 0, 0, 0], (1 + 1 + 5 + 6) / 9)
    # max pooling never picks a padded zero
    np.testing.assert_allclose(L.max_pool(-x - 1, 3, 1, "SAME")[0, 0, 0, 0], -2.0)


def test_flatten():
    x = jnp.arange(2 * 3 * 4 * 5, dtype=jnp.float32).reshape(2, 3, 4, 5)
    np.testing.assert_array_equal(L.flatten(x), np.asarray(x).reshape(2, 60))
    assert L.flatten(jnp.ones((7,))).shape == (7, 1)


# ------------------------------------------------------------------------------------------
# Dropout
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_dropout_fraction_expectation_and_key(rate):
    n = 200_000
    x = jnp.full((n,), 2.0)
    key = jax.random.key(11)
    y = L.dropout(x, rate, key=key, train=True)
    dropped = np.asarray(y == 0.0)
    sigma = math.sqrt(rate * (1 - rate) / n)
    assert abs(dropped.mean() - rate) < 5 * sigma
    # survivors are scaled by 1 / (1 - rate), so the expectation is kept
    np.testing.assert_allclose(np.asarray(y)[~dropped], 2.0 / (1 - rate), rtol=1e-6)
    assert abs(float(jnp.mean(y)) - 2.0) < 5 * 2.0 * sigma / (1 - rate)
    # same key -> same mask; another key -> another mask
    np.testing.assert_array_equal(L.dropout(x, rate, key=key, train=True), y)
    other = L.dropout(x, rate, key=jax.random.key(12), train=True)
    assert not np.array_equal(np.asarray(other == 0), dropped)


def test_dropout_identity_and_errors():
    x = _rand(0, (3, 4))
    assert L.dropout(x, 0.5) is x
    assert L.dropout(x, 0.5, key=jax.random.key(0), train=False) is x
    assert L.dropout(x, 0.0, train=True) is x
    with pytest.raises(ValueError, match="key"):
        L.dropout(x, 0.5, train=True)
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            L.dropout(x, bad, key=jax.random.key(0), train=True)
    # usable inside jit with the key as an argument
    f = jax.jit(lambda x, k: L.dropout(x, 0.5, key=k, train=True))
    np.testing.assert_array_equal(f(x, jax.random.key(3)),
                                  L.dropout(x, 0.5, key=jax.random.key(3), train=True))


# ------------------------------------------------------------------------------------------
# Normalization
# ------------------------------------------------------------------------------------------


def _bn_setup(x_shape, seed):
    c = x_shape[-1]
    params = {"scale": _rand(seed, (c,)) + 1.0, "bias": _rand(seed + 1, (c,))}
    state = {"mean": _rand(seed + 2, (c,)), "var": jnp.abs(_rand(seed + 3, (c,))) + 0.5}
    x = _rand(seed + 4, x_shape, scale=3.0) + 2.0
    variables = {"params": {"scale": params["scale"], "bias": params["bias"]},
                 "batch_stats": {"mean": state["mean"], "var": state["var"]}}
    return params, state, x, variables


@pytest.mark.parametrize("x_shape", [(16, 5), (4, 6, 6, 3)])
def test_batch_norm_matches_flax(x_shape):
    params, state, x, variables = _bn_setup(x_shape, 20)
    momentum = 0.8

    # train: batch statistics, running statistics updated
    y, new_state = L.batch_norm(params, state, x, train=True, momentum=momentum)
    bn = nn.BatchNorm(use_running_average=False, momentum=momentum, epsilon=1e-5)
    ref, updates = bn.apply(variables, x, mutable=["batch_stats"])
    np.testing.assert_allclose(y, ref, **TOL)
    np.testing.assert_allclose(new_state["mean"], updates["batch_stats"]["mean"], **TOL)
    np.testing.assert_allclose(new_state["var"], updates["batch_stats"]["var"], **TOL)

    # the same update written out in NumPy (biased variance, momentum weighs the old value)
    xs = np.asarray(x, np.float64).reshape(-1, x_shape[-1])
    want_mean = momentum * np.asarray(state["mean"]) + (1 - momentum) * xs.mean(0)
    want_var = momentum * np.asarray(state["var"]) + (1 - momentum) * xs.var(0)
    np.testing.assert_allclose(new_state["mean"], want_mean, **TOL)
    np.testing.assert_allclose(new_state["var"], want_var, **TOL)
    # negative controls: PyTorch's momentum convention and the unbiased variance both differ
    torch_mean = (1 - momentum) * np.asarray(state["mean"]) + momentum * xs.mean(0)
    assert not _close(new_state["mean"], torch_mean)
    unbiased = momentum * np.asarray(state["var"]) + (1 - momentum) * xs.var(0, ddof=1)
    assert not _close(new_state["var"], unbiased)

    # eval: running statistics, state returned unchanged
    y_eval, same = L.batch_norm(params, state, x, train=False, momentum=momentum)
    ref_eval = nn.BatchNorm(use_running_average=True, momentum=momentum,
                            epsilon=1e-5).apply(variables, x)
    np.testing.assert_allclose(y_eval, ref_eval, **TOL)
    assert same is state
    assert not _close(y_eval, y)


def test_batch_norm_axis_name_averages_across_shards():
    params, state, x, _ = _bn_setup((12, 4), 30)
    y_all, s_all = L.batch_norm(params, state, x, train=True)
    shards = x.reshape(3, 4, 4)
    f = jax.vmap(lambda xs: L.batch_norm(params, state, xs, train=True, axis_name="d"),
                 axis_name="d")
    y_sh, s_sh = f(shards)
    np.testing.assert_allclose(y_sh.reshape(12, 4), y_all, **TOL)
    np.testing.assert_allclose(s_sh["mean"][0], s_all["mean"], **TOL)
    np.testing.assert_allclose(s_sh["var"][1], s_all["var"], **TOL)
    # negative control: without the cross-shard mean each shard uses its own statistics
    y_local, _ = jax.vmap(lambda xs: L.batch_norm(params, state, xs, train=True))(shards)
    assert not _close(y_local.reshape(12, 4), y_all)


@pytest.mark.parametrize("x_shape", [(6, 8), (2, 5, 8)])
def test_layer_norm_matches_flax(x_shape):
    params = {"scale": _rand(40, (8,)) + 1.0, "bias": _rand(41, (8,))}
    x = _rand(42, x_shape, scale=2.0) + 1.0
    y = L.layer_norm(params, x)
    ref = nn.LayerNorm().apply({"params": params}, x)
    np.testing.assert_allclose(y, ref, **TOL)
    plain = L.layer_norm(L.layer_norm_init(8), x)
    np.testing.assert_allclose(np.mean(plain, -1), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.var(np.asarray(plain, np.float64), -1), 1.0, rtol=1e-4)


# ------------------------------------------------------------------------------------------
# Embedding
# ------------------------------------------------------------------------------------------


def test_embedding_matches_flax_and_one_hot():
    params = {"table": _rand(8, (11, 6))}
    ids = jnp.asarray(np.random.default_rng(9).integers(0, 11, size=(3, 5)), jnp.int32)
    y = L.embedding(params, ids)
    assert y.shape == (3, 5, 6)
    ref = nn.Embed(11, 6).apply({"params": {"embedding": params["table"]}}, ids)
    np.testing.assert_allclose(y, ref, **TOL)
    # the one-hot product spells the same lookup, exactly only with float32 products (at the
    # default precision a GPU or TPU rounds the table to TF32 or bfloat16 in it)
    one_hot = jnp.matmul(jax.nn.one_hot(ids, 11), params["table"], precision="highest")
    np.testing.assert_allclose(y, one_hot, **TOL)
    with pytest.raises(ValueError, match=r"\[0, 11\).*\[0, 11\]"):
        L.embedding(params, jnp.array([0, 11]))
    with pytest.raises(TypeError, match="integer"):
        L.embedding(params, jnp.array([0.0, 1.0]))
    # under jit ids cannot be checked: an out-of-range id gives a NaN row, never another row
    rows = jax.jit(L.embedding)(params, jnp.array([2, 11]))
    np.testing.assert_array_equal(rows[0], params["table"][2])
    assert np.isnan(np.asarray(rows[1])).all()


# ------------------------------------------------------------------------------------------
# Gradients: every layer differentiates correctly in float64 (central differences)
# ------------------------------------------------------------------------------------------


def test_gradients_through_all_layers_match_finite_differences():
    from jax.test_util import check_grads

    with jax.enable_x64(True):
        r = np.random.default_rng(0)
        f64 = lambda *shape: jnp.asarray(r.normal(size=shape), jnp.float64)
        params = {
            "conv": {"w": f64(3, 3, 2, 4), "b": f64(4)},
            "bn": {"scale": f64(4) + 1.0, "bias": f64(4)},
            "up": {"w": f64(2, 2, 4, 3), "b": f64(3)},
            "fc": {"w": f64(12, 5), "b": f64(5)},
            "ln": {"scale": f64(5), "bias": f64(5)},
            "emb": {"table": f64(7, 5)},
        }
        state = {"mean": jnp.zeros(4, jnp.float64), "var": jnp.ones(4, jnp.float64)}
        x, ids = f64(2, 6, 6, 2), jnp.array([3, 6])

        def f(p):
            h = L.conv(p["conv"], x, padding=1)
            h, _ = L.batch_norm(p["bn"], state, h, train=True)
            h = L.max_pool(jnp.tanh(h), 2)
            h = L.avg_pool(h, 2, 1, "SAME", count_include_pad=False)
            h = L.conv_transpose(p["up"], h, stride=2)
            h = L.dense(p["fc"], L.flatten(L.avg_pool(h, 3)))
            h = L.layer_norm(p["ln"], h) + L.embedding(p["emb"], ids)
            return jnp.sum(jnp.sin(h))

        f = jax.jit(f)  # one compile instead of one per eager op and shape
        assert f(params).dtype == jnp.float64
        check_grads(f, (params,), order=1, modes=("rev",), atol=1e-6, rtol=1e-6)


# ------------------------------------------------------------------------------------------
# Shape errors: name the layer, the expected and the actual shape, before tracing
# ------------------------------------------------------------------------------------------

_DENSE = _params(0, (4, 3))
_CONV1 = _params(0, (5, 3, 2))
_CONV2 = _params(0, (3, 3, 3, 2))
_CONVT = _params(0, (3, 3, 3, 2))
_BN = L.batch_norm_init(5)
_LN = L.layer_norm_init(5)

BAD_SHAPES = [
    ("dense", lambda: L.dense(_DENSE, jnp.ones((2, 5))), ["[..., 4]", "(2, 5)"]),
    ("dense", lambda: L.dense(_DENSE, jnp.float32(1.0)), ["[..., 4]", "()"]),
    ("conv", lambda: L.conv(_CONV2, jnp.ones((2, 8, 3))), ["[batch, height, width, 3]",
                                                          "(2, 8, 3)"]),
    ("conv", lambda: L.conv(_CONV2, jnp.ones((2, 8, 8, 4))), ["[batch, height, width, 3]",
                                                             "(2, 8, 8, 4)"]),
    ("conv", lambda: L.conv(_CONV1, jnp.ones((2, 8, 2))), ["[batch, length, 3]",
                                                          "(2, 8, 2)"]),
    ("conv", lambda: L.conv(_CONV2, jnp.ones((1, 2, 2, 3)), padding="VALID"),
     ["spatial dims >= the effective kernel", "(1, 2, 2, 3)"]),
    ("conv1d", lambda: L.conv1d(_CONV2, jnp.ones((2, 8, 8, 3))), ["1-D kernel",
                                                                  "(3, 3, 3, 2)"]),
    ("conv2d", lambda: L.conv2d(_CONV1, jnp.ones((2, 8, 3))), ["2-D kernel", "(5, 3, 2)"]),
    ("conv_transpose", lambda: L.conv_transpose(_CONVT, jnp.ones((2, 4, 4, 2))),
     ["[batch, height, width, 3]", "(2, 4, 4, 2)"]),
    ("max_pool", lambda: L.max_pool(jnp.ones((4, 4)), 2), ["rank >= 3", "(4, 4)"]),
    ("avg_pool", lambda: L.avg_pool(jnp.ones((1, 2, 2, 1)), 3), ["window (3, 3) after padding",
                                                                 "(1, 2, 2, 1)"]),
    ("batch_norm", lambda: L.batch_norm(*_BN, jnp.ones((8, 4)), train=True),
     ["[batch, ..., 5]", "(8, 4)"]),
    ("batch_norm", lambda: L.batch_norm(*_BN, jnp.ones((5,)), train=False),
     ["[batch, ..., 5]", "(5,)"]),
    ("layer_norm", lambda: L.layer_norm(_LN, jnp.ones((2, 3, 6))), ["[..., 5]", "(2, 3, 6)"]),
    ("embedding", lambda: L.embedding({"table": jnp.ones((3,))}, jnp.array([0])),
     ["[vocab_size, dim]", "(3,)"]),
    ("flatten", lambda: L.flatten(jnp.float32(2.0)), ["[batch, ...]", "()"]),
]


@pytest.mark.parametrize("layer,call,fragments", BAD_SHAPES,
                         ids=[f"{i}-{c[0]}" for i, c in enumerate(BAD_SHAPES)])
def test_bad_shapes_raise_value_error(layer, call, fragments):
    with pytest.raises(ValueError) as err:
        call()
    msg = str(err.value)
    assert msg.startswith(f"{layer}:"), msg
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)


def test_shape_errors_fire_at_trace_time_inside_jit():
    with pytest.raises(ValueError, match=r"dense: expected x of shape \[\.\.\., 4\]"):
        jax.jit(L.dense)(_DENSE, jnp.ones((2, 5)))
    with pytest.raises(ValueError, match=r"conv: .*got shape \(2, 8, 8, 4\)"):
        jax.jit(L.conv)(_CONV2, jnp.ones((2, 8, 8, 4)))


def test_bad_arguments():
    x = jnp.ones((1, 8, 8, 3))
    with pytest.raises(ValueError, match="conv: expected padding"):
        L.conv(_CONV2, x, padding="FULL")
    with pytest.raises(ValueError, match="conv: expected padding"):
        L.conv(_CONV2, x, padding=(1, 2, 3))
    with pytest.raises(ValueError, match="CAUSAL"):
        L.conv(_CONV2, x, padding="CAUSAL")
    with pytest.raises(ValueError, match="stride must be positive"):
        L.conv(_CONV2, x, stride=0)
    with pytest.raises(ValueError, match="conv: expected dilation as an int or 2 ints"):
        L.conv(_CONV2, x, dilation=(1, 2, 3))
    with pytest.raises(ValueError, match="conv_transpose: expected padding"):
        L.conv_transpose(_CONVT, x, padding=1)
    with pytest.raises(ValueError, match="max_pool: expected window as an int or 2 ints"):
        L.max_pool(x, (2, 2, 2))
    with pytest.raises(TypeError, match="batch_norm: expected train as a Python bool"):
        L.batch_norm(*_BN, jnp.ones((2, 5)), train=None)
