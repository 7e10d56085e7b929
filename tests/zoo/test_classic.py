"""Perceptron, linear regression and logistic regression against their textbook answers."""

import jax
import numpy as np
import pytest

from functional import activations, optim
from train import datasets
from train.loop import fit
from zoo import linear, logistic, perceptron

# compares with independent references: .ci/run also runs this module under --emulate-precision
pytestmark = pytest.mark.reference


def _fit(module, cfg, data, *, lr, epochs, opt=optim.sgd, batch_size=None, seed=0, **kw):
    params = module.init(jax.random.PRNGKey(seed), cfg)
    loss = lambda p, s, b, k: module.loss(p, s, b, k, cfg)
    return fit(loss, params, opt(lr), data, key=seed, epochs=epochs, batch_size=batch_size,
               progress=False, **kw)


# --- perceptron (seed 004 section 2) ---------------------------------------------------------


@pytest.mark.parametrize("gate", ["and", "or"])
def test_perceptron_learns_and_or(gate):
    ds = datasets.load(gate)
    cfg = perceptron.Config(n_in=2)
    res = _fit(perceptron, cfg, {"x": ds.x_train, "y": ds.y_train}, lr=0.1, epochs=60)
    pred = np.asarray(perceptron.apply(res.state.params, ds.x_test))
    # Independent check of the learned line: step(x.w + b) computed in NumPy.
    w, b = np.asarray(res.state.params["w"]), float(res.state.params["b"])
    np.testing.assert_array_equal((ds.x_test @ w + b >= 0).astype(int), ds.y_test)
    np.testing.assert_array_equal(pred, ds.y_test)
    assert res.history[-1]["accuracy"] == 1.0 and res.history[-1]["loss"] == 0.0


def test_perceptron_never_fits_xor():
    ds = datasets.load("xor")
    cfg = perceptron.Config(n_in=2)
    for seed in range(2):
        res = _fit(perceptron, cfg, {"x": ds.x_train, "y": ds.y_train}, lr=0.1, epochs=200,
                   seed=seed)
        accs = [row["accuracy"] for row in res.history]
        assert max(accs) <= 0.75, f"seed {seed}: a line separated XOR?! {max(accs)}"
        assert min(row["loss"] for row in res.history) > 0


@pytest.mark.highest
def test_perceptron_sgd_step_is_the_perceptron_rule():
    # One SGD step on the perceptron criterion equals the rule w += lr * (y - y_hat) x
    # written here in NumPy, and rule_update.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3)).astype(np.float32)
    y = rng.integers(0, 2, 16).astype(np.float32)
    cfg = perceptron.Config(n_in=3, init_scale=1.0)
    p = perceptron.init(jax.random.PRNGKey(1), cfg)
    g = jax.grad(lambda q: perceptron.loss(q, {}, {"x": x, "y": y}, None, cfg)[0])(p)
    lr = 0.5
    w, b = np.asarray(p["w"]), float(p["b"])
    err = y - (x @ w + b >= 0)
    assert np.any(err != 0)
    w_rule, b_rule = w + lr * (err[:, None] * x).mean(0), b + lr * err.mean()
    np.testing.assert_allclose(w - lr * np.asarray(g["w"]), w_rule, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(b - lr * float(g["b"]), b_rule, rtol=1e-6, atol=1e-7)
    p2 = perceptron.rule_update(p, x, y, lr)
    np.testing.assert_allclose(p2["w"], w_rule, rtol=1e-6, atol=1e-7)
    assert np.array_equal(np.asarray(perceptron.apply(p, x)),
                          np.asarray(activations.step(x @ p["w"] + p["b"])))


# --- linear regression (seed 003 section 1) ----------------------------------------------------


@pytest.mark.highest
def test_linear_regression_matches_least_squares():
    ds = datasets.load("linear")
    cfg = linear.Config(n_in=ds.x_train.shape[1], n_out=1)
    res = _fit(linear, cfg, {"x": ds.x_train, "y": ds.y_train}, lr=0.3, epochs=300)
    x64 = np.c_[ds.x_train.astype(np.float64), np.ones(len(ds.x_train))]
    coef, *_ = np.linalg.lstsq(x64, ds.y_train.astype(np.float64), rcond=None)
    p = res.state.params
    np.testing.assert_allclose(np.asarray(p["w"])[:, 0], coef[:-1], atol=1e-4)
    np.testing.assert_allclose(float(p["b"][0]), coef[-1], atol=1e-4)
    # ... and the least-squares solution recovers the generating weights up to the noise.
    np.testing.assert_allclose(coef[:-1], ds.meta["true_w"], atol=0.05)


@pytest.mark.highest
def test_linear_gradient_is_the_notes_formula():
    # Seed 003: dE/dw = -sum_i (y_i - y_hat_i) x_i for E = 1/2 sum (y - y_hat)^2; our loss is
    # the mean over the batch, so the gradient is that sum divided by n.
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(7, 2)), rng.normal(size=7)
    p = {"w": np.array([[0.3], [-0.2]]), "b": np.array([0.1])}
    g = jax.grad(lambda q: linear.loss(q, {}, {"x": x, "y": y}, None)[0])(p)
    resid = y - (x @ p["w"][:, 0] + p["b"][0])
    np.testing.assert_allclose(np.asarray(g["w"])[:, 0], -(resid[:, None] * x).sum(0) / 7,
                               rtol=1e-5)
    np.testing.assert_allclose(float(g["b"][0]), -resid.sum() / 7, rtol=1e-5)


# --- logistic regression ------------------------------------------------------------------------


def _newton_logistic(x, y, l2, steps=8):
    """Newton's method in float64 for mean BCE + l2/2 ||w||^2 (bias unpenalized)."""
    xb = np.c_[x, np.ones(len(x))]
    theta = np.zeros(xb.shape[1])
    reg = np.r_[np.full(x.shape[1], l2), 0.0]
    for _ in range(steps):
        p = 1 / (1 + np.exp(-xb @ theta))
        grad = xb.T @ (p - y) / len(y) + reg * theta
        hess = (xb * (p * (1 - p))[:, None]).T @ xb / len(y) + np.diag(reg)
        theta = theta - np.linalg.solve(hess, grad)
    return theta, np.linalg.norm(grad)


@pytest.mark.highest
def test_logistic_regression_matches_newton():
    ds = datasets.load("moons", n_train=300)
    l2 = 0.05
    theta, grad_norm = _newton_logistic(ds.x_train.astype(np.float64), ds.y_train, l2)
    assert grad_norm < 1e-10    # Newton has converged
    cfg = logistic.Config(n_in=2, n_out=1, l2=l2)
    res = _fit(logistic, cfg, {"x": ds.x_train, "y": ds.y_train}, lr=1.0, epochs=400)
    p = res.state.params
    np.testing.assert_allclose(np.asarray(p["w"])[:, 0], theta[:2], atol=1e-4)
    np.testing.assert_allclose(float(p["b"][0]), theta[2], atol=1e-4)
    prob = np.asarray(logistic.predict_proba(p, ds.x_test))
    np.testing.assert_allclose(prob, 1 / (1 + np.exp(-(np.c_[ds.x_test, np.ones(len(
        ds.x_test))] @ theta))), atol=1e-4)
    assert res.history[-1]["accuracy"] > 0.8    # moons are nearly, not quite, linear


def test_softmax_regression_with_two_classes_equals_sigmoid_unit():
    # Softmax over logits [0, z] is sigmoid(z): with w2 = 0 the two models agree exactly.
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(9, 3)).astype(np.float32), rng.integers(0, 2, 9)
    w, b = rng.normal(size=(3, 1)).astype(np.float32), rng.normal(size=1).astype(np.float32)
    binary = logistic.loss({"w": w, "b": b}, {}, {"x": x, "y": y}, None, logistic.Config(3, 1))
    soft = logistic.loss({"w": np.c_[np.zeros_like(w), w], "b": np.r_[0.0, b]}, {},
                         {"x": x, "y": y}, None, logistic.Config(3, 2))
    np.testing.assert_allclose(binary[0], soft[0], rtol=1e-6)
    np.testing.assert_allclose(binary[1][1]["accuracy"], soft[1][1]["accuracy"])
