"""Initializers: empirical variance of a large draw against each formula, for dense and
convolution kernels; bitwise agreement with jax.nn.initializers where the name coincides;
orthogonality; errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from functional import init as I

KEY = jax.random.key(0)
DENSE = (256, 200)          # fan_in 256, fan_out 200
CONV = (3, 3, 64, 48)       # receptive 9: fan_in 576, fan_out 432

# name -> (variance formula, truncated?)
RULES = {
    "lecun_normal": (lambda fi, fo: 1 / fi, True),
    "xavier_normal": (lambda fi, fo: 2 / (fi + fo), True),
    "xavier_uniform": (lambda fi, fo: 2 / (fi + fo), None),
    "he_normal": (lambda fi, fo: 2 / fi, True),
    "he_uniform": (lambda fi, fo: 2 / fi, None),
    "notes_relu": (lambda fi, fo: 1 / (fi / 2), False),        # randn / sqrt(fan_in / 2)
    "notes_tanh": (lambda fi, fo: 1 / fi, False),              # randn / sqrt(fan_in)
    "notes_other": (lambda fi, fo: 1 / ((fi + fo) / 2), False),  # randn / sqrt((fi+fo)/2)
}


def test_aliases_are_the_same_initializers():
    assert I.glorot_normal is I.xavier_normal and I.glorot_uniform is I.xavier_uniform
    assert I.kaiming_normal is I.he_normal and I.kaiming_uniform is I.he_uniform
    for alias in ("glorot_normal", "glorot_uniform", "kaiming_normal", "kaiming_uniform"):
        assert I.get(alias) is getattr(I, alias)


def test_fans_dense_conv_and_vectors():
    assert I.fans(DENSE) == (256, 200)
    assert I.fans(CONV) == (9 * 64, 9 * 48)
    assert I.fans((5, 8, 16)) == (40, 80)  # 1-D conv kernel [width, in, out]
    assert I.fans((7,)) == (7, 7) and I.fans(()) == (1, 1)


@pytest.mark.parametrize("shape", [DENSE, CONV], ids=["dense", "conv"])
@pytest.mark.parametrize("name", sorted(RULES))
def test_empirical_variance_matches_formula(name, shape):
    formula, truncated = RULES[name]
    fn = I.get(name)
    w32 = fn(KEY, shape)
    assert w32.shape == shape and w32.dtype == jnp.float32
    w = np.asarray(w32, dtype=np.float64)
    fi, fo = I.fans(shape)
    var = formula(fi, fo)
    n = w.size  # >= 27,000 draws: sd of the sample variance <= sqrt(2 / n) < 0.9%
    assert abs(w.mean()) < 4 * np.sqrt(var / n)
    assert w.var() == pytest.approx(var, rel=4 * np.sqrt(2 / n))
    z = np.abs(w) / np.sqrt(var)
    if truncated is True:   # cut at 2 sd of the untruncated normal, 2 / 0.8796 of the target
        assert z.max() <= 2 / 0.87962566103423978 + 1e-5
    elif truncated is False:  # plain normal: about 4.6% of draws beyond 2 sd
        assert z.max() > 3.5 and np.mean(z > 2) == pytest.approx(0.0455, abs=0.005)
    else:  # uniform on [-sqrt(3 var), sqrt(3 var))
        assert z.max() <= np.sqrt(3) + 1e-5 and z.max() > np.sqrt(3) * 0.999


JAX_SAME = {
    "lecun_normal": jax.nn.initializers.lecun_normal(),
    "xavier_normal": jax.nn.initializers.glorot_normal(),
    "xavier_uniform": jax.nn.initializers.glorot_uniform(),
    "he_normal": jax.nn.initializers.he_normal(),
    "he_uniform": jax.nn.initializers.he_uniform(),
}


@pytest.mark.parametrize("name", sorted(JAX_SAME))
def test_same_bits_as_jax_nn_initializers(name):
    for shape in [DENSE, CONV]:  # shapes already drawn above: no new compilations
        ours = I.get(name)(KEY, shape)
        theirs = JAX_SAME[name](KEY, shape, jnp.float32)
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))


def test_factories_zeros_ones_constant():
    w = np.asarray(I.normal(0.1)(KEY, DENSE))
    assert w.std() == pytest.approx(0.1, rel=0.02)
    u = np.asarray(I.uniform(0.3)(KEY, DENSE))
    assert u.min() >= -0.3 and u.max() < 0.3 and u.var() == pytest.approx(0.09 / 3, rel=0.02)
    assert u.min() < -0.29  # symmetric, not [0, scale)
    assert np.all(np.asarray(I.zeros(KEY, (3, 2))) == 0)
    assert np.all(np.asarray(I.ones(KEY, (4,))) == 1)
    assert np.all(np.asarray(I.constant(1.5)(KEY, (2, 2), jnp.float32)) == 1.5)
    assert I.he_normal(KEY, [3, 2], None).dtype == jnp.float32  # None -> default dtype
    # Same key, same bits; different key, different draw.
    np.testing.assert_array_equal(I.he_normal(KEY, DENSE), I.he_normal(KEY, DENSE))
    assert not np.array_equal(I.he_normal(KEY, DENSE), I.he_normal(jax.random.key(1), DENSE))
    # Vectors (biases) use fan_in = fan_out = n.
    assert np.asarray(I.notes_tanh(KEY, (20000,))).var() == pytest.approx(1 / 20000, rel=0.05)


@pytest.mark.parametrize("shape", [(64, 64), (30, 100), (3, 3, 8, 16)])
def test_orthogonal(shape):
    w = np.asarray(I.orthogonal(KEY, shape), np.float64).reshape(-1, shape[-1])
    rows, cols = w.shape
    gram = w.T @ w if rows >= cols else w @ w.T
    np.testing.assert_allclose(gram, np.eye(min(rows, cols)), atol=2e-5)


def test_errors():
    with pytest.raises(ValueError, match=r"unknown initializer 'he'.*he_normal"):
        I.get("he")
    with pytest.raises(ValueError, match=r"orthogonal: shape must be at least 2-D, got \(5,\)"):
        I.orthogonal(KEY, (5,))
    with pytest.raises(TypeError, match="he_normal: dtype must be a floating dtype, got int32"):
        I.he_normal(KEY, (2, 2), jnp.int32)
    with pytest.raises(ValueError, match=r"negative sizes, got \(2, -1\)"):
        I.zeros(KEY, (2, -1))
