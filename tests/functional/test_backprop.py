"""Backprop by hand (functional.backprop) against the notes' worked numbers and jax.grad.

References: seed 003 section 3 (Matt Mazur's 2-2-2 example; the published values below are
the ones printed in the notes and in Mazur's post, 9 significant digits) and seed 004
section 7.1 (the 3-2-1 NumPy example; the printed output of that script).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from functional import activations, backprop, losses

# compares with independent references: .ci/run also runs this module under --emulate-precision
pytestmark = pytest.mark.reference

# Published values (seed 003 / Mazur 2015).
E_TOTAL = 0.298371109
OUT_H = (0.593269992, 0.596884378)
OUT_O = (0.75136507, 0.772928465)
DE_DW5 = 0.082167041
DE_DW1 = 0.000438568
UPDATED = {
    "w1": 0.149780716, "w2": 0.19956143, "w3": 0.24975114, "w4": 0.29950229,
    "w5": 0.35891648, "w6": 0.408666186, "w7": 0.511301270, "w8": 0.561370121,
}
INITIAL = {"w1": 0.15, "w2": 0.20, "w3": 0.25, "w4": 0.30,
           "w5": 0.40, "w6": 0.45, "w7": 0.50, "w8": 0.55}

# Printed output of seed 004 section 7.1's script.
DELTA_W_H_O = np.array([0.00804047, 0.00555918])
DELTA_W_I_H = np.array([[1.77005547e-04, -5.11178506e-04],
                        [3.54011093e-05, -1.02235701e-04],
                        [-7.08022187e-05, 2.04471402e-04]])


def _scalar_222():
    """Seed 003's derivation written out unit by unit (no matrices), as an independent
    transcription: returns E_total and dE/dw for w1..w8."""
    s = lambda z: 1.0 / (1.0 + np.exp(-z))
    i1, i2, t1, t2, b1, b2 = 0.05, 0.10, 0.01, 0.99, 0.35, 0.60
    w = INITIAL
    h1 = s(w["w1"] * i1 + w["w2"] * i2 + b1)
    h2 = s(w["w3"] * i1 + w["w4"] * i2 + b1)
    o1 = s(w["w5"] * h1 + w["w6"] * h2 + b2)
    o2 = s(w["w7"] * h1 + w["w8"] * h2 + b2)
    e = 0.5 * (t1 - o1) ** 2 + 0.5 * (t2 - o2) ** 2
    d_o1 = (o1 - t1) * o1 * (1 - o1)
    d_o2 = (o2 - t2) * o2 * (1 - o2)
    d_h1 = (d_o1 * w["w5"] + d_o2 * w["w7"]) * h1 * (1 - h1)
    d_h2 = (d_o1 * w["w6"] + d_o2 * w["w8"]) * h2 * (1 - h2)
    grads = {"w1": d_h1 * i1, "w2": d_h1 * i2, "w3": d_h2 * i1, "w4": d_h2 * i2,
             "w5": d_o1 * h1, "w6": d_o1 * h2, "w7": d_o2 * h1, "w8": d_o2 * h2}
    return e, (h1, h2), (o1, o2), grads


def test_worked_222_forward_matches_notes():
    ex = backprop.worked_example_222()
    acts = backprop.forward(ex["weights"], ex["biases"], ex["x"])
    np.testing.assert_allclose(acts[1], OUT_H, atol=1e-9)
    np.testing.assert_allclose(acts[2], OUT_O, atol=1e-8)
    assert backprop.half_sse(acts[2], ex["target"]) == pytest.approx(E_TOTAL, abs=1e-9)


def test_worked_222_gradients_and_update_match_notes():
    ex = backprop.worked_example_222()
    acts = backprop.forward(ex["weights"], ex["biases"], ex["x"])
    gw, gb, _ = backprop.backward(ex["weights"], ex["biases"], acts, ex["target"])
    grads = backprop.named_weights_222(gw)
    assert grads["w5"] == pytest.approx(DE_DW5, abs=1e-9)
    assert grads["w1"] == pytest.approx(DE_DW1, abs=1e-9)
    # All eight: against the unit-by-unit transcription, and against the published
    # updated weights (w - w+) / lr, which pins each gradient to ~1e-8.
    _, _, _, ref = _scalar_222()
    for name in INITIAL:
        assert grads[name] == pytest.approx(ref[name], abs=1e-15), name
        implied = (INITIAL[name] - UPDATED[name]) / ex["learning_rate"]
        assert grads[name] == pytest.approx(implied, abs=2e-8), name
    # One step, weights only (the notes keep the shared biases fixed).
    new = backprop.named_weights_222(backprop.sgd_step(ex["weights"], gw, ex["learning_rate"]))
    for name, value in UPDATED.items():
        assert new[name] == pytest.approx(value, abs=1e-8), name
    # Shared scalar biases get the sum of the layer's error terms.
    assert np.ndim(gb[0]) == 0 and np.ndim(gb[1]) == 0


def test_worked_321_matches_notes_printout():
    ex = backprop.worked_example_321()
    acts = backprop.forward(ex["weights"], None, ex["x"])
    gw, _, _ = backprop.backward(ex["weights"], None, acts, ex["target"])
    lr = ex["learning_rate"]
    # The notes add learnrate * error_term * activation, i.e. -lr * dE/dW.
    np.testing.assert_allclose(-lr * gw[1][:, 0], DELTA_W_H_O, atol=5e-9)
    np.testing.assert_allclose(-lr * gw[0], DELTA_W_I_H, rtol=1e-8, atol=1e-14)

    # A transcription of the notes' script itself.
    s = lambda z: 1 / (1 + np.exp(-z))
    x, target = ex["x"], 0.6
    wih, who = ex["weights"][0], ex["weights"][1][:, 0]
    hidden = s(x @ wih)
    out = s(hidden @ who)
    out_err = (target - out) * out * (1 - out)
    hid_err = np.dot(out_err, who) * hidden * (1 - hidden)
    np.testing.assert_allclose(-lr * gw[1][:, 0], lr * out_err * hidden, rtol=1e-13)
    np.testing.assert_allclose(-lr * gw[0], lr * hid_err * x[:, None], rtol=1e-13)


def _jax_mlp_loss(weights, biases, x, target):
    """The same sigmoid MLP from functional pieces; E = half_sse with reduction='sum'."""
    a = x
    for w, b in zip(weights, biases, strict=True):
        a = activations.sigmoid(jnp.dot(a, w) + b)
    return losses.half_sse(a[None], target[None], reduction="sum")


@pytest.mark.parametrize("example", ["222", "321"])
def test_jax_grad_matches_hand_backprop(example):
    ex = getattr(backprop, f"worked_example_{example}")()
    biases = ex["biases"] or [np.zeros(w.shape[1]) for w in ex["weights"]]
    acts = backprop.forward(ex["weights"], ex["biases"], ex["x"])
    gw, _, _ = backprop.backward(ex["weights"], ex["biases"], acts, ex["target"])
    with jax.enable_x64(True):
        args = [jnp.asarray(v, jnp.float64) for v in (ex["x"], ex["target"])]
        ws = [jnp.asarray(w, jnp.float64) for w in ex["weights"]]
        bs = [jnp.asarray(b, jnp.float64) for b in biases]
        e, jgw = jax.value_and_grad(_jax_mlp_loss)(ws, bs, *args)
        assert e.dtype == jnp.float64
        new = [w - ex["learning_rate"] * g for w, g in zip(ws, jgw, strict=True)]
    assert float(e) == pytest.approx(backprop.half_sse(acts[-1], ex["target"]), abs=1e-12)
    for g_hand, g_jax in zip(gw, jgw, strict=True):
        np.testing.assert_allclose(np.asarray(g_jax), g_hand, rtol=0, atol=1e-9)
    if example == "222":
        assert float(e) == pytest.approx(E_TOTAL, abs=1e-9)
        named = backprop.named_weights_222([np.asarray(w) for w in new])
        for name, value in UPDATED.items():
            assert named[name] == pytest.approx(value, abs=1e-8), name


def test_batch_backward_sums_examples_and_per_unit_biases():
    rng = np.random.default_rng(0)
    ws = [rng.normal(size=(3, 4)), rng.normal(size=(4, 2))]
    bs = [rng.normal(size=4), rng.normal(size=2)]
    x, t = rng.normal(size=(5, 3)), rng.uniform(size=(5, 2))
    acts = backprop.forward(ws, bs, x)
    gw, gb, _ = backprop.backward(ws, bs, acts, t)
    # Batch gradient = sum of single-example gradients.
    sum_w = [np.zeros_like(w) for w in ws]
    sum_b = [np.zeros_like(b) for b in bs]
    for i in range(5):
        a_i = backprop.forward(ws, bs, x[i])
        gw_i, gb_i, _ = backprop.backward(ws, bs, a_i, t[i])
        sum_w = [s + g for s, g in zip(sum_w, gw_i, strict=True)]
        sum_b = [s + g for s, g in zip(sum_b, gb_i, strict=True)]
    for a, b in zip(gw + gb, sum_w + sum_b, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    # And a central difference on one bias entry.
    eps = 1e-6
    bp_, bm_ = [bs[0].copy(), bs[1]], [bs[0].copy(), bs[1]]
    bp_[0][2] += eps
    bm_[0][2] -= eps
    num = (backprop.half_sse(backprop.forward(ws, bp_, x)[-1], t)
           - backprop.half_sse(backprop.forward(ws, bm_, x)[-1], t)) / (2 * eps)
    assert gb[0][2] == pytest.approx(num, rel=1e-7)


def test_backprop_rejects_bad_shapes():
    ex = backprop.worked_example_222()
    with pytest.raises(ValueError, match=r"weights\[0\] must be \[3, n_out\], got \(2, 2\)"):
        backprop.forward(ex["weights"], ex["biases"], np.zeros(3))
    acts = backprop.forward(ex["weights"], ex["biases"], ex["x"])
    with pytest.raises(ValueError, match="target must have the output's shape"):
        backprop.backward(ex["weights"], ex["biases"], acts, np.zeros(3))


def test_jax_grad_through_functional_layers_dense_matches_hand_backprop():
    # functional.layers is written in parallel (helper `layers`); this runs once it is merged.
    layers = pytest.importorskip("functional.layers")
    ex = backprop.worked_example_222()
    acts = backprop.forward(ex["weights"], ex["biases"], ex["x"])
    gw, gb, _ = backprop.backward(ex["weights"], ex["biases"], acts, ex["target"])
    with jax.enable_x64(True):
        params = {
            f"fc{i + 1}": {"w": jnp.asarray(w, jnp.float64),
                           "b": jnp.full((2,), float(b), jnp.float64)}
            for i, (w, b) in enumerate(zip(ex["weights"], ex["biases"], strict=True))
        }

        def loss(p, x, t):
            h = activations.sigmoid(layers.dense(p["fc1"], x))
            out = activations.sigmoid(layers.dense(p["fc2"], h))
            return losses.half_sse(out, t, reduction="sum")

        x, t = jnp.asarray(ex["x"][None]), jnp.asarray(ex["target"][None])
        e, g = jax.value_and_grad(loss)(params, x, t)
        g = jax.tree_util.tree_map(np.asarray, g)
    assert float(e) == pytest.approx(E_TOTAL, abs=1e-9)
    np.testing.assert_allclose(g["fc1"]["w"], gw[0], atol=1e-9, rtol=0)
    np.testing.assert_allclose(g["fc2"]["w"], gw[1], atol=1e-9, rtol=0)
    # A per-unit bias gets each unit's error term; the notes' shared bias gets their sum.
    assert g["fc2"]["b"].sum() == pytest.approx(float(gb[1]), abs=1e-12)
    assert g["fc1"]["b"].sum() == pytest.approx(float(gb[0]), abs=1e-12)


# --- Regression: sigmoid hidden layers, LINEAR output (seed 001, project 1: bike sharing) ---

def _jax_regression_loss(weights, biases, x, target):
    """Sigmoid hidden layers, identity output, E = 1/2 sum (target - out)^2 (jax, float64)."""
    a = x
    for w, b in zip(weights[:-1], biases[:-1], strict=True):
        a = activations.sigmoid(jnp.dot(a, w) + b)
    out = jnp.dot(a, weights[-1]) + biases[-1]
    return losses.half_sse(out, target, reduction="sum")


def _regression_net(sizes, batch, seed):
    rng = np.random.default_rng(seed)
    ws = [rng.normal(0, n_in ** -0.5, size=(n_in, n_out))
          for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)]
    bs = [rng.normal(size=n_out) for n_out in sizes[1:]]
    x = rng.normal(size=(batch, sizes[0]))
    t = rng.normal(size=(batch, sizes[-1])) * 3.0   # real-valued targets outside [0, 1]
    return ws, bs, x, t


def _check_against_jax(ws, bs, x, t, grad_w, grad_b, *, atol=1e-12):
    """The checker: hand gradients vs jax.grad of the same loss in float64."""
    with jax.enable_x64(True):
        args = [[jnp.asarray(a, jnp.float64) for a in group] for group in (ws, bs)]
        jgw, jgb = jax.grad(_jax_regression_loss, argnums=(0, 1))(
            *args, jnp.asarray(x, jnp.float64), jnp.asarray(t, jnp.float64))
        assert jgw[0].dtype == jnp.float64
    for g_hand, g_jax in zip(list(grad_w) + list(grad_b), list(jgw) + list(jgb), strict=True):
        np.testing.assert_allclose(g_hand, np.asarray(g_jax), rtol=1e-10, atol=atol)


@pytest.mark.parametrize("sizes,batch", [((6, 4, 1), 16), ((3, 5, 4, 2), 7), ((2, 1), 3)])
def test_linear_output_backward_matches_jax_grad_float64(sizes, batch):
    ws, bs, x, t = _regression_net(sizes, batch, seed=len(sizes) + batch)
    acts = backprop.forward(ws, bs, x, output="linear")
    # the output is the last layer's weighted sum itself: not squashed into (0, 1)
    np.testing.assert_allclose(acts[-1], acts[-2] @ ws[-1] + bs[-1], rtol=1e-15, atol=1e-15)
    with jax.enable_x64(True):
        e = _jax_regression_loss([jnp.asarray(w) for w in ws], [jnp.asarray(b) for b in bs],
                                 jnp.asarray(x), jnp.asarray(t))
    assert backprop.half_sse(acts[-1], t) == pytest.approx(float(e), rel=1e-13)
    gw, gb, deltas = backprop.backward(ws, bs, acts, t, output="linear")
    np.testing.assert_allclose(deltas[-1], acts[-1] - t, rtol=0, atol=0)   # slope 1
    _check_against_jax(ws, bs, x, t, gw, gb)


def test_linear_output_backward_matches_central_differences():
    ws, bs, x, t = _regression_net((4, 3, 2), 5, seed=11)
    gw, gb, _ = backprop.backward(ws, bs, backprop.forward(ws, bs, x, output="linear"), t,
                                  output="linear")
    eps = 1e-6

    def energy(ws_, bs_):
        return backprop.half_sse(backprop.forward(ws_, bs_, x, output="linear")[-1], t)

    for layer, (i, j) in [(0, (1, 2)), (1, (2, 0)), (1, (0, 1))]:
        plus, minus = [w.copy() for w in ws], [w.copy() for w in ws]
        plus[layer][i, j] += eps
        minus[layer][i, j] -= eps
        num = (energy(plus, bs) - energy(minus, bs)) / (2 * eps)
        assert gw[layer][i, j] == pytest.approx(num, rel=1e-7, abs=1e-9)
    plus, minus = [b.copy() for b in bs], [b.copy() for b in bs]
    plus[1][1] += eps
    minus[1][1] -= eps
    assert gb[1][1] == pytest.approx((energy(ws, plus) - energy(ws, minus)) / (2 * eps),
                                     rel=1e-7, abs=1e-9)


def test_the_checker_fails_on_a_wrong_gradient():
    ws, bs, x, t = _regression_net((6, 4, 1), 16, seed=3)
    acts = backprop.forward(ws, bs, x, output="linear")
    gw, gb, _ = backprop.backward(ws, bs, acts, t, output="linear")
    _check_against_jax(ws, bs, x, t, gw, gb)                 # the right gradient passes
    # the classic slip: the sigmoid output's error term on a linear output unit
    wrong_w, wrong_b, _ = backprop.backward(ws, bs, acts, t, output="sigmoid")
    with pytest.raises(AssertionError):
        _check_against_jax(ws, bs, x, t, wrong_w, wrong_b)
    # one entry off by one part in a million is caught too
    nudged = [g.copy() for g in gw]
    nudged[0][2, 1] *= 1 + 1e-6
    with pytest.raises(AssertionError):
        _check_against_jax(ws, bs, x, t, nudged, gb)
    # and a missing bias gradient term (forgetting to sum over the batch)
    with pytest.raises(AssertionError):
        _check_against_jax(ws, bs, x, t, gw, [gb[0], gb[1] / len(x)])


def test_sigmoid_output_is_the_default_and_unchanged():
    ex = backprop.worked_example_222()
    default = backprop.forward(ex["weights"], ex["biases"], ex["x"])
    explicit = backprop.forward(ex["weights"], ex["biases"], ex["x"], output="sigmoid")
    for a, b in zip(default, explicit, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(default[2], OUT_O, atol=1e-8)


def test_output_kind_is_validated():
    ex = backprop.worked_example_222()
    with pytest.raises(ValueError, match=r"backprop.forward: output must be one of"):
        backprop.forward(ex["weights"], ex["biases"], ex["x"], output="relu")
    acts = backprop.forward(ex["weights"], ex["biases"], ex["x"])
    with pytest.raises(ValueError, match=r"backprop.backward: output must be one of"):
        backprop.backward(ex["weights"], ex["biases"], acts, ex["target"], output="identity")
