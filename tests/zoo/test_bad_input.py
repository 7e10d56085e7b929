"""Bad input to the feed-forward zoo: each raises ValueError/TypeError naming the function,
what was expected and what came, before any tracing (so these tests compile nothing)."""

import jax
import jax.numpy as jnp
import pytest

from zoo import autoencoder, cnn, linear, logistic, mlp, perceptron

KEY = jax.random.PRNGKey(0)


@pytest.mark.parametrize("make,error,message", [
    (lambda: mlp.Config(task="ranking"), ValueError, r"mlp\.Config: task .*'ranking'"),
    (lambda: mlp.Config(hidden=100), TypeError, r"mlp\.Config: hidden must be a tuple.*int 100"),
    (lambda: mlp.Config(hidden=(100, 0)), ValueError, r"sizes must be >= 1.*\(100, 0\)"),
    (lambda: mlp.Config(dropout=1.5), ValueError, r"mlp\.Config: dropout .*\[0, 1\).*1\.5"),
    (lambda: mlp.Config(dropout=-0.1), ValueError, r"mlp\.Config: dropout .*-0\.1"),
    (lambda: mlp.Config(activation="swish"), ValueError, r"unknown activation 'swish'"),
    (lambda: mlp.Config(w_init="glorot"), ValueError, r"unknown initializer 'glorot'"),
    (lambda: cnn.Config(dropout=1.0), ValueError, r"cnn\.Config: dropout .*1\.0"),
    (lambda: cnn.Config(input_shape=(40,)), ValueError, r"cnn\.Config: input_shape .*\(40,\)"),
    (lambda: cnn.Config(convs=()), ValueError, r"cnn\.Config: needs at least one ConvSpec"),
    (lambda: cnn.Config(input_shape=(2, 1)), ValueError, r"cnn: conv block 0 .* to nothing"),
    (lambda: autoencoder.Config(input_shape=(8, 8)), ValueError,
     r"autoencoder\.Config: input_shape .*\(8, 8\)"),
    (lambda: autoencoder.Config(input_shape=(6, 6, 1)), ValueError, r"divisible by 4"),
    (lambda: autoencoder.Config(loss="l1"), ValueError, r"'bce' or 'mse', got 'l1'"),
    (lambda: autoencoder.Config(noise_std=-1.0), ValueError, r"noise_std must be >= 0"),
    (lambda: logistic.init(KEY, logistic.Config(n_in=0)), ValueError, r"logistic\.init: .*0"),
    (lambda: linear.init(KEY, linear.Config(n_in=0)), ValueError, r"linear\.init: .*0"),
    (lambda: perceptron.init(KEY, perceptron.Config(n_in=0)), ValueError,
     r"perceptron\.init: n_in must be >= 1, got 0"),
])
def test_bad_configs_are_rejected_with_the_value(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_hidden_given_as_a_list_is_stored_as_a_tuple():
    # a list would make the frozen Config unhashable (jit static arguments need the hash)
    cfg = mlp.Config(hidden=[8, 4])
    assert cfg.hidden == (8, 4) and hash(cfg) == hash(mlp.Config(hidden=(8, 4)))


def _shapes(module, cfg):
    # parameter shapes without running the initializers (conv inits are slow to compile, and
    # the shape check must fire before any parameter is read anyway)
    return jax.eval_shape(lambda k: module.init(k, cfg), KEY)


def test_wrong_input_shapes_name_expected_and_got():
    cfg = mlp.Config(n_in=4, hidden=(3,), n_out=2)
    params = mlp.init(KEY, cfg)
    with pytest.raises(ValueError, match=r"mlp\.apply: expected 4 input features.*\(2, 5\)"):
        mlp.apply(params, jnp.zeros((2, 5)), cfg)
    with pytest.raises(ValueError, match=r"mlp\.apply: expected x of shape \[batch, 4\]"):
        mlp.apply(params, jnp.zeros(4), cfg)
    drop = mlp.Config(n_in=4, hidden=(3,), n_out=2, dropout=0.5)
    with pytest.raises(ValueError, match=r"mlp\.apply: train=True with dropout > 0 needs key"):
        mlp.apply(params, jnp.zeros((2, 4)), drop, train=True)
    ccfg = cnn.mnist1d_config()
    with pytest.raises(ValueError, match=r"cnn\.apply: expected x of shape \[batch, 40, 1\].*"
                                         r"\(3, 39, 1\)"):
        cnn.apply(_shapes(cnn, ccfg), jnp.zeros((3, 39)), ccfg)
    acfg = autoencoder.Config()
    with pytest.raises(ValueError, match=r"autoencoder\.encode: .*\[batch, 8, 8, 1\].*"
                                         r"\(2, 8, 8\)"):
        autoencoder.apply(_shapes(autoencoder, acfg), jnp.zeros((2, 8, 8)), acfg)
    with pytest.raises(ValueError, match=r"perceptron: expected x of shape \[batch, 2\]"):
        perceptron.apply(perceptron.init(KEY, perceptron.Config()), jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"logistic\.apply: expected x .*\(2,\)"):
        logistic.apply(logistic.init(KEY, logistic.Config()), jnp.zeros(2))


def test_out_of_range_labels_are_reported_by_the_loss():
    cfg = mlp.Config(n_in=4, hidden=(3,), n_out=2)
    batch = {"x": jnp.zeros((3, 4)), "y": jnp.asarray([0, 1, 2])}
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\).*\[0, 2\]"):
        mlp.loss(mlp.init(KEY, cfg), {}, batch, None, cfg)
