"""Losses against optax and NumPy transcriptions, with weights and masks; shape errors."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from functional import losses as L

# compares with independent references: .ci/run also runs this module under --emulate-precision
pytestmark = pytest.mark.reference

RNG = np.random.default_rng(0)
B, C = 6, 5
PRED = RNG.normal(size=(B, 3)).astype(np.float32)
TARGET = RNG.normal(size=(B, 3)).astype(np.float32)
LOGITS = (RNG.normal(size=(B, C)) * 2).astype(np.float32)
LABELS = RNG.integers(0, C, size=B).astype(np.int32)
W = np.array([1.0, 0.0, 2.0, 0.5, 1.0, 0.0], np.float32)


def _wmean(per_example, w):
    return np.sum(w * per_example) / np.sum(w)


def test_half_sse_is_notes_E_and_matches_optax_l2_loss():
    per_ex = 0.5 * np.sum((TARGET - PRED) ** 2, axis=1)
    ref = np.asarray(optax.l2_loss(PRED, TARGET)).sum(axis=1)  # optax: 0.5 * (p - t)^2
    np.testing.assert_allclose(ref, per_ex, rtol=1e-6)
    np.testing.assert_allclose(L.half_sse(PRED, TARGET), per_ex.mean(), rtol=1e-6)
    np.testing.assert_allclose(L.half_sse(PRED, TARGET, reduction="sum"), per_ex.sum(), rtol=1e-6)
    np.testing.assert_allclose(L.half_sse(PRED, TARGET, weights=W), _wmean(per_ex, W), rtol=1e-6)
    np.testing.assert_allclose(L.half_sse(PRED, TARGET, weights=W, reduction="none"),
                               W * per_ex, rtol=1e-6)
    # Gradient w.r.t. the prediction is (y_hat - y) per example (seed 003 section 1).
    g = jax.grad(lambda p: L.half_sse(p, TARGET, reduction="sum"))(PRED)
    np.testing.assert_allclose(g, PRED - TARGET, rtol=1e-6)
    # Seed 003's E_total for the worked example's outputs.
    out = np.array([[0.75136507, 0.772928465]])
    assert float(L.half_sse(out, np.array([[0.01, 0.99]]))) == pytest.approx(0.298371109, abs=1e-7)


def test_mse_matches_optax_and_torch_convention():
    sq = (PRED - TARGET) ** 2
    np.testing.assert_allclose(L.mse(PRED, TARGET), np.mean(optax.squared_error(PRED, TARGET)),
                               rtol=1e-6)
    np.testing.assert_allclose(L.mse(PRED, TARGET, weights=W), _wmean(sq.mean(1), W), rtol=1e-6)
    # 1-D predictions: one value per example.
    np.testing.assert_allclose(L.mse(PRED[:, 0], TARGET[:, 0], weights=W),
                               _wmean(sq[:, 0], W), rtol=1e-6)


def test_binary_cross_entropy_matches_optax_and_is_stable():
    logits = LOGITS[:, :3]
    labels = (RNG.uniform(size=(B, 3)) > 0.5).astype(np.float32)
    ref = np.asarray(optax.sigmoid_binary_cross_entropy(logits, labels))
    np.testing.assert_allclose(L.binary_cross_entropy_with_logits(logits, labels),
                               ref.mean(), rtol=1e-6)
    np.testing.assert_allclose(L.binary_cross_entropy_with_logits(logits, labels, weights=W),
                               _wmean(ref.mean(1), W), rtol=1e-6)
    # Soft labels, NumPy transcription of -z log s - (1 - z) log(1 - s).
    z = RNG.uniform(size=(B, 3))
    s = 1 / (1 + np.exp(-logits.astype(np.float64)))
    direct = -(z * np.log(s) + (1 - z) * np.log(1 - s)).mean(1)
    np.testing.assert_allclose(L.binary_cross_entropy_with_logits(logits, z.astype(np.float32),
                                                                  reduction="none"),
                               direct, rtol=1e-5)
    big = jnp.asarray([1000.0, -1000.0, 1000.0])
    lab = jnp.asarray([1.0, 0.0, 0.0])
    val, grad = jax.value_and_grad(
        lambda x: L.binary_cross_entropy_with_logits(x, lab, reduction="sum"))(big)
    assert float(val) == pytest.approx(1000.0)
    np.testing.assert_allclose(grad, [0.0, 0.0, 1.0])


def test_softmax_cross_entropy_matches_optax_with_weights_and_masks():
    ref = np.asarray(optax.softmax_cross_entropy_with_integer_labels(LOGITS, LABELS))
    np.testing.assert_allclose(L.softmax_cross_entropy(LOGITS, LABELS), ref.mean(), rtol=1e-6)
    np.testing.assert_allclose(L.softmax_cross_entropy(LOGITS, LABELS, weights=W),
                               _wmean(ref, W), rtol=1e-6)
    onehot = np.eye(C, dtype=np.float32)[LABELS]
    np.testing.assert_allclose(L.softmax_cross_entropy_with_targets(LOGITS, onehot, weights=W),
                               _wmean(ref, W), rtol=1e-6)
    soft = RNG.dirichlet(np.ones(C), size=B).astype(np.float32)
    np.testing.assert_allclose(L.softmax_cross_entropy_with_targets(LOGITS, soft),
                               np.mean(optax.softmax_cross_entropy(LOGITS, soft)), rtol=1e-6)
    # Sequences: [batch, time, classes] with a [batch, time] padding mask -> mean over the
    # unmasked positions; a [batch] weight averages over time inside each example.
    logits = RNG.normal(size=(3, 4, C)).astype(np.float32)
    labels = RNG.integers(0, C, size=(3, 4)).astype(np.int32)
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]], np.float32)
    per_pos = np.asarray(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
    np.testing.assert_allclose(L.softmax_cross_entropy(logits, labels, weights=mask),
                               (per_pos * mask).sum() / mask.sum(), rtol=1e-6)
    np.testing.assert_allclose(L.softmax_cross_entropy(logits, labels, weights=mask[:, 0] * 2),
                               per_pos.mean(1).mean(), rtol=1e-6)
    # Extreme logits stay finite, with correct gradient softmax - onehot.
    x = jnp.asarray([[1000.0, 0.0]])
    val, g = jax.value_and_grad(lambda v: L.softmax_cross_entropy(v, jnp.asarray([1])))(x)
    assert float(val) == pytest.approx(1000.0)
    np.testing.assert_allclose(g, [[1.0, -1.0]])


def test_weighted_mean_all_zero_weights_is_zero_with_finite_grad():
    zero = np.zeros(B, np.float32)
    val, g = jax.value_and_grad(lambda x: L.softmax_cross_entropy(x, LABELS, weights=zero))(
        jnp.asarray(LOGITS))
    assert float(val) == 0.0 and np.all(np.isfinite(g)) and np.all(np.asarray(g) == 0)


def test_accuracy():
    pred = LOGITS.argmax(1)
    labels = LABELS.copy()
    labels[:3] = pred[:3]
    labels[3:] = (pred[3:] + 1) % C
    assert float(L.accuracy(LOGITS, labels)) == pytest.approx(0.5)
    assert float(L.accuracy(LOGITS, labels, weights=W)) == pytest.approx(
        _wmean((pred == labels).astype(float), W))
    assert float(L.accuracy(LOGITS, labels, weights=W, reduction="sum")) == pytest.approx(3.0)
    # Binary: logits of the labels' shape, threshold at 0.
    assert float(L.accuracy(jnp.asarray([2.0, -1.0, 0.5, -3.0]),
                            jnp.asarray([1, 0, 0, 0]))) == pytest.approx(0.75)


def test_bad_shapes_and_types_raise_with_shapes_in_message():
    with pytest.raises(ValueError, match=r"half_sse: target must have the shape of pred "
                                         r"\(6, 3\), got \(6, 2\)"):
        L.half_sse(PRED, TARGET[:, :2])
    with pytest.raises(ValueError, match=r"mse: weights must have shape \(6,\) or \(6, 3\).*"
                                         r"got \(5,\)"):
        L.mse(PRED, TARGET, weights=W[:5])
    with pytest.raises(ValueError, match=r"softmax_cross_entropy: .*logits \(6, 5\) and "
                                         r"labels \(5,\)"):
        L.softmax_cross_entropy(LOGITS, LABELS[:5])
    with pytest.raises(TypeError, match="labels must be integer class indices, got dtype float32"):
        L.softmax_cross_entropy(LOGITS, LABELS.astype(np.float32))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 5\).*\[0, 7\]"):
        L.softmax_cross_entropy(LOGITS, np.where(LABELS == LABELS[0], 7, LABELS))
    with pytest.raises(ValueError, match="binary_cross_entropy_with_logits: labels must have"):
        L.binary_cross_entropy_with_logits(LOGITS, LABELS)
    with pytest.raises(ValueError, match=r"softmax_cross_entropy_with_targets: targets must "
                                         r"have the shape"):
        L.softmax_cross_entropy_with_targets(LOGITS, LOGITS[:, :2])
    with pytest.raises(ValueError, match=r"accuracy: .*got logits \(6, 5\) and labels \(6, 2\)"):
        L.accuracy(LOGITS, np.zeros((6, 2), np.int32))
    with pytest.raises(ValueError, match="reduction must be one of"):
        L.mse(PRED, TARGET, reduction="avg")
    with pytest.raises(ValueError, match="needs a leading batch axis"):
        L.mse(np.float32(1.0), np.float32(2.0))


def test_losses_work_under_jit():
    f = jax.jit(lambda x, y, w: L.softmax_cross_entropy(x, y, weights=w))
    np.testing.assert_allclose(f(LOGITS, LABELS, W), L.softmax_cross_entropy(LOGITS, LABELS,
                                                                             weights=W), rtol=1e-6)
