"""Why not initialize to zero (seed 004 section 9.0): with identical (e.g. all-zero) initial
weights every hidden unit computes the same function and receives the same gradient, so the
units stay identical however long we train; random initialization breaks the symmetry.

Checked twice, independently: with jax.grad on a network built from functional pieces, and
with the hand-written NumPy backprop of functional.backprop.
"""

import jax
import jax.numpy as jnp
import numpy as np

from functional import activations, backprop, init, losses

# XOR needs at least two distinct hidden units, so a symmetric network cannot fit it.
# (1, 1) appears twice: with balanced XOR targets an all-zero network sits exactly on a
# stationary point and nothing moves at all, which would make the test vacuous.
X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
Y = np.array([[0.0], [1.0], [1.0], [0.0], [0.0]])
HIDDEN, STEPS, LR = 4, 3000, 2.0


def _loss(params, x, y):
    h = activations.sigmoid(x @ params["hidden"]["w"] + params["hidden"]["b"])
    out = activations.sigmoid(h @ params["out"]["w"] + params["out"]["b"])
    return losses.half_sse(out, y, reduction="sum")


@jax.jit
def _train(params):
    def step(p, _):
        loss, g = jax.value_and_grad(_loss)(p, X, Y)
        return jax.tree_util.tree_map(lambda a, b: a - LR * b, p, g), loss

    return jax.lax.scan(step, params, None, length=STEPS)


def _params(kind, key):
    if kind == "zeros":
        w1, w2 = init.zeros(key, (2, HIDDEN), jnp.float64), init.zeros(key, (HIDDEN, 1),
                                                                         jnp.float64)
    elif kind == "constant":
        w1 = init.constant(0.3)(key, (2, HIDDEN), jnp.float64)
        w2 = init.constant(-0.2)(key, (HIDDEN, 1), jnp.float64)
    else:
        k1, k2 = jax.random.split(key)
        w1 = init.notes_other(k1, (2, HIDDEN), jnp.float64)
        w2 = init.notes_other(k2, (HIDDEN, 1), jnp.float64)
    return {"hidden": {"w": w1, "b": jnp.zeros(HIDDEN)}, "out": {"w": w2, "b": jnp.zeros(1)}}


def _spread(w):
    """Largest difference between any hidden unit's incoming weights and unit 0's."""
    return float(np.max(np.abs(np.asarray(w) - np.asarray(w)[:, :1])))


def test_symmetric_init_keeps_hidden_units_identical_jax_grad():
    key = jax.random.key(0)
    with jax.enable_x64(True):
        results = {kind: jax.tree_util.tree_map(np.asarray, _train(_params(kind, key)))
                   for kind in ("zeros", "constant", "random")}
    for kind in ("zeros", "constant"):
        final, loss_curve = results[kind]
        w_in, w_out = final["hidden"]["w"], final["out"]["w"]
        # The weights did move a lot during training ...
        assert np.abs(w_in).max() > 0.1, kind
        # ... but every hidden unit is still a copy of the first one.
        assert _spread(w_in) <= 1e-12, kind
        assert _spread(w_out.T) <= 1e-12 and _spread(final["hidden"]["b"][None]) <= 1e-12
        # So the network acts like one hidden unit and cannot fit XOR.
        assert float(loss_curve[-1]) > 0.2, kind
    final, loss_curve = results["random"]
    assert _spread(final["hidden"]["w"]) > 0.5
    assert float(loss_curve[-1]) < 0.01  # random init breaks symmetry and solves XOR


def test_symmetric_init_keeps_hidden_units_identical_hand_backprop():
    rng = np.random.default_rng(0)
    for kind in ("zeros", "random"):
        if kind == "zeros":
            ws = [np.zeros((2, HIDDEN)), np.zeros((HIDDEN, 1))]
        else:
            ws = [rng.normal(size=(2, HIDDEN)), rng.normal(size=(HIDDEN, 1))]
        bs = [np.zeros(HIDDEN), np.zeros(1)]
        for _ in range(300):
            acts = backprop.forward(ws, bs, X)
            gw, gb, _ = backprop.backward(ws, bs, acts, Y)
            ws = backprop.sgd_step(ws, gw, LR)
            bs = backprop.sgd_step(bs, gb, LR)
        if kind == "zeros":
            assert np.abs(ws[0]).max() > 0.01
            assert _spread(ws[0]) <= 1e-12 and _spread(ws[1].T) <= 1e-12
        else:
            assert _spread(ws[0]) > 0.5
