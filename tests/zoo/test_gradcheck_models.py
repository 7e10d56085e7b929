"""Every zoo model's loss gradient against central differences in float64 (check_grads)."""

import jax
import numpy as np
import pytest

from functional.gradcheck import check_grads
from zoo import autoencoder, cnn, linear, logistic, mlp, perceptron, transfer

RNG = np.random.default_rng(0)
# Convolutions evaluated one perturbation at a time are slow on CPU; a random subset of
# entries per leaf keeps each check to a few seconds and still tests every leaf.
CONV = {"max_entries": 12}


def _batch(x_shape, y, weight=True):
    n = x_shape[0]
    batch = {"x": RNG.normal(size=x_shape), "y": y}
    if weight:   # a padding row with weight 0 must not count
        batch["weight"] = np.r_[np.ones(n - 1), 0.0]
    return batch


def _loss_of(module, cfg, batch, key=None):
    def f(params):
        return module.loss(params, {}, batch, key, cfg, train=True)[0]
    return f


def _random_params(params, scale=0.5, seed=1):
    # Zero-initialized models (linear, logistic) are checked at a random point instead.
    leaves, tree = jax.tree.flatten(params)
    rng = np.random.default_rng(seed)
    return jax.tree.unflatten(tree, [scale * rng.normal(size=np.shape(x)) for x in leaves])


def test_perceptron_criterion():
    cfg = perceptron.Config(n_in=3)
    params = _random_params(perceptron.init(jax.random.PRNGKey(0), cfg))
    batch = _batch((6, 3), RNG.integers(0, 2, 6))
    check_grads(_loss_of(perceptron, cfg, batch), params)


def test_linear():
    cfg = linear.Config(n_in=3, n_out=2)
    params = _random_params(linear.init(jax.random.PRNGKey(0), cfg))
    check_grads(_loss_of(linear, cfg, _batch((5, 3), RNG.normal(size=(5, 2)))), params)


@pytest.mark.parametrize("n_out", [1, 4])
def test_logistic(n_out):
    cfg = logistic.Config(n_in=3, n_out=n_out, l2=0.3)
    params = _random_params(logistic.init(jax.random.PRNGKey(0), cfg))
    y = RNG.integers(0, max(n_out, 2), 6)
    check_grads(_loss_of(logistic, cfg, _batch((6, 3), y)), params)


@pytest.mark.parametrize("task,activation", [("classification", "tanh"),
                                             ("regression", "sigmoid")])
def test_mlp(task, activation):
    cfg = mlp.Config(n_in=4, hidden=(5, 3), n_out=3, activation=activation, task=task,
                     w_init="notes_tanh")
    params = mlp.init(jax.random.PRNGKey(0), cfg)
    y = RNG.integers(0, 3, 5) if task == "classification" else RNG.normal(size=(5, 3))
    check_grads(_loss_of(mlp, cfg, _batch((5, 4), y)), params, vectorize=True)


def test_mlp_dropout_with_fixed_key():
    cfg = mlp.Config(n_in=4, hidden=(6,), n_out=3, activation="tanh", dropout=0.5)
    params = mlp.init(jax.random.PRNGKey(0), cfg)
    batch = _batch((5, 4), RNG.integers(0, 3, 5))
    check_grads(_loss_of(mlp, cfg, batch, key=jax.random.PRNGKey(3)), params, vectorize=True)


def test_cnn_1d_and_2d():
    # Small versions of both presets; tanh avoids ReLU kinks under finite differences.
    c1 = cnn.Config(input_shape=(12, 1),
                    convs=(cnn.ConvSpec(3, 5, 2, 1), cnn.ConvSpec(2, 3, 2, 1)),
                    n_out=3, activation="tanh")
    p1 = cnn.init(jax.random.PRNGKey(0), c1)
    check_grads(_loss_of(cnn, c1, _batch((3, 12), RNG.integers(0, 3, 3))), p1, **CONV)
    c2 = cnn.Config(input_shape=(8, 8, 1), convs=(cnn.ConvSpec(2, 3, 1, "SAME", pool=2),
                                                  cnn.ConvSpec(3, 3, 1, "SAME", pool=2)),
                    hidden=(4,), n_out=3, activation="tanh")
    p2 = cnn.init(jax.random.PRNGKey(1), c2)
    check_grads(_loss_of(cnn, c2, _batch((2, 8, 8, 1), RNG.integers(0, 3, 2))), p2, **CONV)


@pytest.mark.parametrize("noise_std,loss_name", [(0.0, "bce"), (0.3, "mse")])
def test_autoencoder(noise_std, loss_name):
    cfg = autoencoder.Config(input_shape=(4, 4, 1), channels=(2, 2), noise_std=noise_std,
                             loss=loss_name)
    # Random (nonzero) biases: with zero biases some decoder pre-activations are exactly 0,
    # a ReLU kink where one-sided finite differences and the gradient legitimately disagree.
    params = _random_params(autoencoder.init(jax.random.PRNGKey(0), cfg))
    batch = {"x": RNG.uniform(size=(2, 4, 4, 1)), "weight": np.array([1.0, 0.5])}
    check_grads(_loss_of(autoencoder, cfg, batch, key=jax.random.PRNGKey(2)), params,
                rtol=1e-5, **CONV)


def test_transfer_loss_and_stop_gradient():
    base = cnn.Config(input_shape=(8, 8, 1), convs=(cnn.ConvSpec(2, 3, 1, "SAME", pool=2),),
                      hidden=(4,), n_out=3, activation="tanh")
    params = transfer.init(jax.random.PRNGKey(0), transfer.Config(cnn=base))
    batch = _batch((3, 8, 8, 1), RNG.integers(0, 3, 3))
    full = transfer.Config(cnn=base, freeze="none")
    check_grads(_loss_of(transfer, full, batch), params, **CONV)
    # stop_gradient: feature gradients exactly zero, head gradients unchanged.
    frozen = transfer.Config(cnn=base, freeze="stop_gradient")
    g_full = jax.grad(_loss_of(transfer, full, batch))(params)
    g_frozen = jax.grad(_loss_of(transfer, frozen, batch))(params)
    assert all(np.all(np.asarray(x) == 0) for x in jax.tree.leaves(g_frozen["conv1"]))
    assert np.any(np.asarray(g_full["conv1"]["w"]) != 0)
    for name in ("fc1", "out"):
        np.testing.assert_allclose(g_frozen[name]["w"], g_full[name]["w"], rtol=1e-6)


def test_check_grads_catches_a_wrong_model_gradient():
    # The checker is only worth something if it fails: a loss whose custom gradient is off by
    # a factor (as a hand-derived backward pass with a slip would be) must be rejected.
    cfg = linear.Config(n_in=3, n_out=1)
    params = _random_params(linear.init(jax.random.PRNGKey(0), cfg))
    batch = _batch((5, 3), RNG.normal(size=(5, 1)), weight=False)

    @jax.custom_vjp
    def scaled(w):
        return w

    scaled.defvjp(lambda w: (w, None), lambda _, g: (1.5 * g,))

    def wrong(p):
        return linear.loss({"w": scaled(p["w"]), "b": p["b"]}, {}, batch, None, cfg)[0]

    with pytest.raises(AssertionError, match="w"):
        check_grads(wrong, params)
