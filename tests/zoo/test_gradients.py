"""Vanishing / exploding gradients: per-layer norms against NumPy backprop, and their shape."""

import os

import jax
import numpy as np
import pytest

from train import plots
from zoo import gradients, mlp

# compares with independent references: .ci/run also runs this module under --emulate-precision
pytestmark = pytest.mark.reference


def _numpy_layer_grad_norms(params, names, x, y, act):
    """Backprop by hand (seed 004 section 7): softmax CE, mean over the batch."""
    f, df = {"tanh": (np.tanh, lambda a: 1 - a ** 2),
             "sigmoid": (lambda z: 1 / (1 + np.exp(-z)), lambda a: a * (1 - a)),
             "relu": (lambda z: np.maximum(z, 0), lambda a: (a > 0).astype(float))}[act]
    acts = [x]
    for name in names[:-1]:
        acts.append(f(acts[-1] @ params[name]["w"] + params[name]["b"]))
    logits = acts[-1] @ params[names[-1]]["w"] + params[names[-1]]["b"]
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    delta = p.copy()
    delta[np.arange(len(y)), y] -= 1
    delta /= len(y)
    norms = []
    for i in range(len(names) - 1, -1, -1):
        norms.append(np.linalg.norm(acts[i].T @ delta))
        if i:
            delta = (delta @ params[names[i]]["w"].T) * df(acts[i])
    return np.array(norms[::-1])


@pytest.mark.parametrize("act,w_init", [("tanh", "notes_tanh"), ("sigmoid", "notes_other"),
                                        ("relu", "notes_relu")])
@pytest.mark.highest
def test_norms_match_numpy_backprop(act, w_init):
    key = jax.random.PRNGKey(3)
    out = gradients.layer_gradient_norms(key, activation=act, w_init=w_init, depth=4, width=8,
                                         n_classes=3, batch=16)
    # Rebuild the same network and batch (same key splits) and backprop in float64 NumPy.
    cfg = mlp.Config(n_in=8, hidden=(8,) * 3, n_out=3, activation=act, w_init=w_init)
    k_params, k_x, k_y = jax.random.split(key, 3)
    params = jax.tree.map(lambda a: np.asarray(a, np.float64), mlp.init(k_params, cfg))
    x = np.asarray(jax.random.normal(k_x, (16, 8)), np.float64)
    y = np.asarray(jax.random.randint(k_y, (16,), 0, 3))
    expected = _numpy_layer_grad_norms(params, mlp.layer_names(cfg), x, y, act)
    np.testing.assert_allclose(np.asarray(out["grad_norm"]), expected, rtol=1e-4)


def test_ten_layer_study_shows_vanishing_and_exploding(tmp_path):
    study = gradients.gradient_norm_study(jax.random.PRNGKey(0))
    ratio = {k: float(v["grad_norm"][0] / v["grad_norm"][-1]) for k, v in study.items()}
    # sigmoid: derivative <= 1/4 per layer -> the first layer's gradient vanishes.
    assert ratio[("sigmoid", "notes_other")] < 1e-3
    # the notes' initializers keep tanh and ReLU within an order of magnitude across depth.
    assert 0.1 < ratio[("tanh", "notes_tanh")] < 10
    assert 0.1 < ratio[("relu", "notes_relu")] < 10
    # naive normal(0, 1): ReLU activations and gradients explode, tanh's gradient grows
    # towards the input by orders of magnitude.
    assert float(study[("relu", "normal")]["activation_std"][-1]) > 1e5
    assert float(study[("relu", "normal")]["grad_norm"].min()) > 1e5 * float(
        study[("relu", "notes_relu")]["grad_norm"].max())
    assert ratio[("tanh", "normal")] > 100
    path = plots.plot_gradient_norms(study, str(tmp_path / "g.png"))
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_plot_history_writes_png(tmp_path):
    history = [{"epoch": i, "loss": 1.0 / (i + 1), "val_loss": 1.2 / (i + 1),
                "accuracy": 0.5 + 0.1 * i} for i in range(4)]
    path = plots.plot_history(history, str(tmp_path / "sub" / "loss.png"), title="t")
    assert os.path.getsize(path) > 1000
    with pytest.raises(ValueError, match="empty"):
        plots.plot_history([], str(tmp_path / "x.png"))

