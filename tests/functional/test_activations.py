"""Activations: jax.grad against the closed-form derivatives of the notes, values against
NumPy / jax.nn, and stability at extreme inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from functional import activations as A

# compares with independent references: .ci/run also runs this module under --emulate-precision
pytestmark = pytest.mark.reference

X = np.linspace(-6.0, 6.0, 241)  # includes 0 exactly (index 120)
XNZ = X[np.abs(X) > 1e-9]  # away from the kinks


def _elementwise_grad(f):
    return jax.jit(jax.vmap(jax.grad(lambda x: f(x))))


def _np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# (function, NumPy value, closed-form derivative written from the value or input)
CASES = {
    "sigmoid": (A.sigmoid, _np_sigmoid, lambda x: _np_sigmoid(x) * (1 - _np_sigmoid(x))),
    "tanh": (A.tanh, np.tanh, lambda x: 1 - np.tanh(x) ** 2),
    "relu": (A.relu, lambda x: np.maximum(x, 0), lambda x: (x > 0).astype(float)),
    "leaky_relu": (A.leaky_relu, lambda x: np.where(x >= 0, x, 0.01 * x),
                   lambda x: np.where(x >= 0, 1.0, 0.01)),
    "elu": (A.elu, lambda x: np.where(x > 0, x, np.expm1(x)),
            lambda x: np.where(x > 0, 1.0, np.exp(x))),
    "softplus": (A.softplus, lambda x: np.log1p(np.exp(x)), _np_sigmoid),
    "step": (A.step, lambda x: (x >= 0).astype(float), lambda x: np.zeros_like(x)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_value_and_derivative_match_closed_form(name):
    f, value, deriv = CASES[name]
    x32 = jnp.asarray(XNZ, jnp.float32)
    np.testing.assert_allclose(f(x32), value(XNZ), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_elementwise_grad(f)(x32), deriv(XNZ), rtol=1e-5, atol=1e-6)


def test_derivatives_at_kinks():
    g = lambda f: float(jax.grad(f)(0.0))
    assert g(A.relu) == 0.0  # convention shared with jax.nn.relu and PyTorch
    assert g(A.leaky_relu) == 1.0
    assert g(A.elu) == pytest.approx(1.0)  # continuous derivative for alpha = 1
    assert g(A.step) == 0.0
    assert float(A.step(0.0)) == 1.0 and float(A.step(-1e-30)) == 0.0


def test_parameters_of_leaky_relu_and_elu():
    x = jnp.asarray(XNZ, jnp.float32)
    np.testing.assert_allclose(A.leaky_relu(x, 0.2), jax.nn.leaky_relu(x, 0.2), rtol=1e-6)
    np.testing.assert_allclose(A.elu(x, 0.5), jax.nn.elu(x, 0.5), rtol=1e-6, atol=1e-7)
    gx = jax.vmap(jax.grad(lambda v: A.elu(v, 0.5)))(x)
    np.testing.assert_allclose(gx, np.where(XNZ > 0, 1.0, 0.5 * np.exp(XNZ)), rtol=3e-5)


def test_softmax_and_log_softmax_match_numpy_and_jacobian():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(4, 5)) * 3
    e = np.exp(z - z.max(-1, keepdims=True))
    p = e / e.sum(-1, keepdims=True)
    z32 = jnp.asarray(z, jnp.float32)
    np.testing.assert_allclose(A.softmax(z32), p, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(A.log_softmax(z32), np.log(p), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(A.softmax(z32.T, axis=0), p.T, rtol=1e-5, atol=1e-7)
    # Jacobians: d softmax = diag(p) - p p^T ; d log_softmax = I - 1 p^T.
    row, prow = z32[0], p[0]
    np.testing.assert_allclose(jax.jacobian(A.softmax)(row),
                               np.diag(prow) - np.outer(prow, prow), atol=1e-6)
    np.testing.assert_allclose(jax.jacobian(A.log_softmax)(row),
                               np.eye(5) - np.outer(np.ones(5), prow), atol=1e-6)


def test_stability_at_extremes():
    big = jnp.asarray([-1000.0, -100.0, 0.0, 100.0, 1000.0], jnp.float32)
    assert float(A.sigmoid(-1000.0)) == 0.0 and float(A.sigmoid(1000.0)) == 1.0
    # softplus(-100) = log1p(e^-100) = 3.7e-44 is subnormal in float32: a CPU flushes it to 0,
    # a GPU keeps it (3.8e-44). Either is right to within the smallest normal float32.
    np.testing.assert_allclose(A.softplus(big), np.logaddexp(0.0, np.asarray(big, np.float64)),
                               rtol=1e-6, atol=np.finfo(np.float32).smallest_normal)
    np.testing.assert_allclose(A.elu(big), [-1, -1, 0, 100, 1000], rtol=1e-6)
    np.testing.assert_allclose(A.softmax(jnp.asarray([1000.0, 0.0])), [1.0, 0.0], atol=0)
    np.testing.assert_allclose(A.log_softmax(jnp.asarray([1000.0, 0.0])), [0.0, -1000.0])
    np.testing.assert_allclose(A.softmax(jnp.asarray([-1000.0, -1000.0])), [0.5, 0.5])
    for name, (f, _, _) in CASES.items():
        vals, grads = jax.jit(lambda v, f=f: (f(v), jax.vmap(jax.grad(f))(v)))(big)
        assert np.all(np.isfinite(vals)), name
        assert np.all(np.isfinite(grads)), name
    for f in (A.softmax, A.log_softmax):
        jac = jax.jit(jax.jacobian(f))(jnp.asarray([1000.0, 0.0, -1000.0]))
        assert np.all(np.isfinite(jac))
    # A row of -inf (fully masked) gives no nan from the max shift.
    row = jnp.asarray([-jnp.inf, 0.0])
    np.testing.assert_allclose(A.softmax(row), [0.0, 1.0])


def test_get_and_errors():
    for name in ("step", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus",
                 "softmax", "log_softmax"):
        assert A.get(name) is getattr(A, name)
    assert float(A.get("identity")(3.0)) == 3.0
    with pytest.raises(ValueError, match=r"unknown activation 'swish'.*sigmoid"):
        A.get("swish")
    with pytest.raises(ValueError, match=r"softmax: axis 2 is out of range.*\(3, 4\)"):
        A.softmax(jnp.zeros((3, 4)), axis=2)
