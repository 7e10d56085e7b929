"""Gradient checking: passes on a small MLP and a small CNN, fails (naming the leaf) on a
planted wrong gradient, and shows that two-sided differences beat one-sided ones
(seed 004 sections 5.5-5.7)."""

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from functional import activations, gradcheck, losses

RNG = np.random.default_rng(0)


def _mlp_params(sizes):
    params = {}
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        params[f"fc{i + 1}"] = {
            "w": (RNG.normal(size=(n_in, n_out)) / np.sqrt(n_in)).astype(np.float32),
            "b": (RNG.normal(size=(n_out,)) * 0.1).astype(np.float32),
        }
    return params


def mlp_loss(params, x, y):
    h = x
    names = sorted(params)
    for name in names[:-1]:
        h = activations.tanh(h @ params[name]["w"] + params[name]["b"])
    logits = h @ params[names[-1]]["w"] + params[names[-1]]["b"]
    return losses.softmax_cross_entropy(logits, y)


def cnn_loss(params, x, y):
    # conv 3x3 (SAME, stride 1) -> relu -> conv 3x3 stride 2 (VALID) -> softplus -> mean pool
    # -> dense, channels-last, kernels [kh, kw, in, out] as in functional.layers.
    dn = ("NHWC", "HWIO", "NHWC")
    h = jax.lax.conv_general_dilated(x, params["conv1"]["w"], (1, 1), "SAME",
                                     dimension_numbers=dn) + params["conv1"]["b"]
    h = activations.elu(h)
    h = jax.lax.conv_general_dilated(h, params["conv2"]["w"], (2, 2), "VALID",
                                     dimension_numbers=dn) + params["conv2"]["b"]
    h = activations.softplus(h).mean(axis=(1, 2))
    logits = h @ params["out"]["w"] + params["out"]["b"]
    return losses.softmax_cross_entropy(logits, y)


def test_passes_on_small_mlp_with_about_2000_params():
    params = _mlp_params([16, 48, 24, 5])  # 16*48+48 + 48*24+24 + 24*5+5 = 2117 params
    n = sum(np.size(v) for layer in params.values() for v in layer.values())
    x = RNG.normal(size=(8, 16)).astype(np.float32)
    y = RNG.integers(0, 5, size=8).astype(np.int32)
    t0 = time.perf_counter()
    report = gradcheck.check_grads(mlp_loss, params, x, y)
    elapsed = time.perf_counter() - t0
    assert report.ok and report.worst_error < 1e-7, report
    assert set(report.errors) == {f"fc{i}/{p}" for i in (1, 2, 3) for p in ("w", "b")}
    assert sum(report.checked.values()) == n == 2117
    print(f"check_grads on a {n}-parameter MLP: {elapsed:.2f} s, worst {report.worst_error:.1e}")
    # Params given in float32 come back untouched (the check works on float64 copies).
    assert params["fc1"]["w"].dtype == np.float32


def test_passes_on_small_cnn_and_subsamples_with_max_entries():
    params = {
        "conv1": {"w": RNG.normal(size=(3, 3, 2, 4)) * 0.4, "b": RNG.normal(size=4) * 0.1},
        "conv2": {"w": RNG.normal(size=(3, 3, 4, 6)) * 0.3, "b": RNG.normal(size=6) * 0.1},
        "out": {"w": RNG.normal(size=(6, 3)), "b": np.zeros(3)},
    }
    params = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float32), params)
    x = RNG.normal(size=(4, 7, 7, 2)).astype(np.float32)
    y = RNG.integers(0, 3, size=4).astype(np.int32)
    # Leaves larger than max_entries are subsampled (the full check of a CNN built from
    # functional.layers is the test below).
    report = gradcheck.check_grads(cnn_loss, params, x, y, max_entries=40)
    assert report.ok and report.worst_error < 1e-7, report
    assert report.checked == {"conv1/w": 40, "conv1/b": 4, "conv2/w": 40, "conv2/b": 6,
                              "out/w": 18, "out/b": 3}


@jax.custom_vjp
def _bad_tanh(x):
    return jnp.tanh(x)


def _bad_tanh_fwd(x):
    t = jnp.tanh(x)
    return t, t


def _bad_tanh_bwd(t, g):
    return (g * (1 - t),)  # planted bug: should be 1 - t**2


_bad_tanh.defvjp(_bad_tanh_fwd, _bad_tanh_bwd)


def test_fails_on_planted_wrong_gradient_naming_the_leaf():
    params = _mlp_params([6, 5, 3])
    x = RNG.normal(size=(4, 6)).astype(np.float32)
    y = RNG.integers(0, 3, size=4).astype(np.int32)

    def loss(p, x, y):
        h = _bad_tanh(x @ p["fc1"]["w"] + p["fc1"]["b"])
        return losses.softmax_cross_entropy(h @ p["fc2"]["w"] + p["fc2"]["b"], y)

    with pytest.raises(AssertionError, match=r"leaf 'fc1/(w|b)': relative error") as err:
        gradcheck.check_grads(loss, params, x, y)
    # The error report lists the clean output layer too, with a tiny error there.
    assert "fc2/w" in str(err.value)
    # A bug confined to one leaf: scaling the gradient of one bias only.
    @jax.custom_vjp
    def scaled(b):
        return b

    scaled.defvjp(lambda b: (b, None), lambda _, g: (1.01 * g,))
    good = lambda p, x, y: mlp_loss(p, x, y)
    bad = lambda p, x, y: mlp_loss({**p, "fc2": {**p["fc2"], "b": scaled(p["fc2"]["b"])}}, x, y)
    assert gradcheck.check_grads(good, params, x, y).ok
    with pytest.raises(AssertionError, match=r"leaf 'fc2/b'"):
        gradcheck.check_grads(bad, params, x, y)


def test_numerical_grad_matches_jax_grad_and_central_beats_forward():
    with jax.enable_x64(True):
        params = {"a": jnp.asarray(RNG.normal(size=(3,))), "b": jnp.asarray(0.7)}
        f = lambda p: jnp.sum(jnp.sin(p["a"]) * p["b"] ** 3) + jnp.exp(p["b"])
        exact = jax.grad(f)(params)
        central = gradcheck.numerical_grad(f, params, eps=1e-5)
        assert gradcheck.relative_error(central["a"], exact["a"]) < 1e-9
        # Error vs step: forward (one-sided) is O(eps), central (two-sided) is O(eps^2).
        errs = {}
        for method in ("forward", "central"):
            errs[method] = []
            for eps in (1e-2, 1e-3):
                g = gradcheck.numerical_grad(f, params, eps=eps, method=method)
                errs[method].append(float(jnp.abs(g["b"] - exact["b"])))
    fwd_ratio = errs["forward"][0] / errs["forward"][1]
    cen_ratio = errs["central"][0] / errs["central"][1]
    assert 7 < fwd_ratio < 13       # 10x smaller step, 10x smaller error
    assert 70 < cen_ratio < 130     # 10x smaller step, 100x smaller error
    assert errs["central"][0] < errs["forward"][0] / 100


def test_relative_error_and_argument_errors():
    assert gradcheck.relative_error([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert gradcheck.relative_error([0.0], [0.0]) == 0.0
    assert gradcheck.relative_error([1.0, 0.0], [-1.0, 0.0]) == pytest.approx(1.0)
    assert gradcheck.relative_error([3.0], [1.0]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="method must be 'central' or 'forward'"):
        gradcheck.numerical_grad(lambda p: p.sum(), jnp.ones(2), method="backward")
    with pytest.raises(TypeError, match=r"floating, got int32 at w"):
        gradcheck.check_grads(lambda p: p["w"].sum(), {"w": jnp.ones(2, jnp.int32)})
    with pytest.raises(ValueError, match="must return a scalar"):
        gradcheck.check_grads(lambda p: p * 2, jnp.ones(2))


def test_has_aux_and_fixed_non_array_arguments():
    params = _mlp_params([4, 3, 2])
    x = RNG.normal(size=(5, 4)).astype(np.float32)
    y = RNG.integers(0, 2, size=5).astype(np.int32)

    def loss(p, batch, cfg, *, scale):
        value = scale * mlp_loss(p, batch["x"], batch["y"])
        return value, {"cfg": cfg}

    report = gradcheck.check_grads(loss, params, {"x": x, "y": y}, "a-config", scale=2.0,
                                   has_aux=True)
    assert report.ok


def test_passes_on_mlp_and_cnn_built_from_functional_layers():
    # functional.layers is written in parallel (helper `layers`); this runs once it is merged.
    layers = pytest.importorskip("functional.layers")
    # NumPy draws in the layers' layout (no jax.random compilations for a few tiny arrays).
    f32 = lambda *shape, s=1.0: (RNG.normal(size=shape) * s).astype(np.float32)
    cnn = {
        "conv1": {"w": f32(3, 3, 2, 4, s=0.5), "b": f32(4, s=0.1)},
        "conv2": {"w": f32(3, 3, 4, 6, s=0.3), "b": f32(6, s=0.1)},
        "out": {"w": f32(6 * 2 * 2, 3, s=0.4), "b": f32(3, s=0.1)},
    }

    def cnn_layers_loss(p, x, y):
        h = activations.relu(layers.conv(p["conv1"], x, padding="SAME"))
        h = layers.avg_pool(h, 2)
        h = activations.tanh(layers.conv(p["conv2"], h, stride=1, padding=1))
        h = layers.max_pool(h, 2)
        return losses.softmax_cross_entropy(layers.dense(p["out"], layers.flatten(h)), y)

    x = f32(3, 8, 8, 2)
    y = np.array([0, 2, 1], np.int32)
    report = gradcheck.check_grads(cnn_layers_loss, cnn, x, y)
    assert report.ok and report.worst_error < 1e-6, report
