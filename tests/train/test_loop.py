"""Tests of train.loop: regimes against hand-written NumPy gradient descent, scan == loop
bitwise, NaN guard, early stopping, callbacks, history, and reproducibility across processes.
"""

import functools
import hashlib
import json
import math
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tests.precision import children_env
from train import loop

# the tests marked 'reference' compare with independent references or with fit itself:
# .ci/run also runs them under --emulate-precision

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# --------------------------------------------------------------------------- models and data

ADAM = optax.adam(1e-2)   # one object, so fit's cache reuses compiled steps across tests


def linear_loss(params, model_state, batch, key):
    """Weighted mean of 1/2 * squared error of a linear unit (seed note 003's E)."""
    pred = batch["x"] @ params["w"] + params["b"]
    per = 0.5 * jnp.sum((pred - batch["y"]) ** 2, axis=-1)
    w = batch.get("weight", jnp.ones(per.shape[0], per.dtype))
    loss = jnp.sum(per * w) / jnp.sum(w)
    return loss, (model_state, {"sse": loss})


def mlp_loss(params, model_state, batch, key):
    """Tanh MLP with dropout (exercises the per-step key) and softmax cross-entropy."""
    h = jnp.tanh(batch["x"] @ params["w1"] + params["b1"])
    keep = jax.random.bernoulli(key, 0.9, h.shape)
    h = jnp.where(keep, h / 0.9, 0.0)
    logits = h @ params["w2"] + params["b2"]
    per = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"])
    w = batch.get("weight", jnp.ones(per.shape[0], per.dtype))
    acc = (jnp.argmax(logits, -1) == batch["y"]).astype(jnp.float32)
    s = jnp.sum(w)
    return jnp.sum(per * w) / s, (model_state, {"accuracy": jnp.sum(acc * w) / s})


def conv_loss(params, model_state, batch, key):
    """A tiny 1-D CNN (the model family that was slow inside lax.scan)."""
    x = batch["x"][..., None]                                   # [batch, length, 1]
    h = jax.lax.conv_general_dilated(x, params["k"], (1,), "SAME",
                                     dimension_numbers=("NWC", "WIO", "NWC"))
    h = jax.nn.relu(h).mean(axis=1)                              # [batch, channels]
    logits = h @ params["w"]
    per = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"])
    w = batch.get("weight", jnp.ones(per.shape[0], per.dtype))
    return jnp.sum(per * w) / jnp.sum(w), (model_state, {})


def linear_data(n=20, d=3, k=2, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (x @ rng.normal(size=(d, k)) + 0.1 * rng.normal(size=(n, k))).astype(np.float32)
    params = {"w": jnp.asarray(0.1 * rng.normal(size=(d, k)), jnp.float32),
              "b": jnp.zeros((k,), jnp.float32)}
    return {"x": x, "y": y}, params


def class_data(n=50, d=8, classes=3, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (np.argmax(x[:, :classes], -1)).astype(np.int32)
    return {"x": x, "y": y}


def mlp_params(d=8, h=16, classes=3, seed=2):
    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    return {"w1": jax.random.normal(k1, (d, h)) / np.sqrt(d), "b1": jnp.zeros(h),
            "w2": jax.random.normal(k2, (h, classes)) / np.sqrt(h), "b2": jnp.zeros(classes)}


def np_grad(params, x, y, weight):
    """Gradient of the weighted-mean half SSE of a linear unit, by hand (float64)."""
    err = x @ params["w"] + params["b"] - y
    wn = weight / weight.sum()
    return {"w": x.T @ (err * wn[:, None]), "b": (err * wn[:, None]).sum(0)}, \
        float((0.5 * (err ** 2).sum(-1) * wn).sum())


def leaves_equal(a, b):
    return all(np.array_equal(np.asarray(x), np.asarray(y))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


# --------------------------------------------------------------------------- regimes


@pytest.mark.reference
@pytest.mark.highest
def test_full_batch_is_plain_gradient_descent():
    data, params = linear_data()
    lr, epochs = 0.1, 6
    res = loop.fit(linear_loss, params, optax.sgd(lr), data, key=0, epochs=epochs,
                   batch_size=None, progress=False)
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    x, y = data["x"].astype(np.float64), data["y"].astype(np.float64)
    losses = []
    for _ in range(epochs):
        g, loss = np_grad(p, x, y, np.ones(len(x)))
        losses.append(loss)
        p = {k: p[k] - lr * g[k] for k in p}
    for k in p:
        np.testing.assert_allclose(np.asarray(res.state.params[k]), p[k], atol=1e-6, rtol=0)
    np.testing.assert_allclose([h["loss"] for h in res.history], losses, rtol=1e-6)
    assert [h["step"] for h in res.history] == list(range(1, epochs + 1))
    # The checker sees one step fewer.
    g, _ = np_grad(p, x, y, np.ones(len(x)))
    assert np.abs(np.asarray(res.state.params["w"]) - (p["w"] + lr * g["w"])).max() > 1e-6


@pytest.mark.reference
@pytest.mark.highest
@pytest.mark.parametrize("batch_size,drop_last", [(1, False), (7, False), (7, True)])
def test_minibatch_regimes_match_numpy(batch_size, drop_last):
    data, params = linear_data()
    n, lr, epochs = len(data["x"]), 0.05, 2
    res = loop.fit(linear_loss, params, optax.sgd(lr), data, key=3, epochs=epochs,
                   batch_size=batch_size, drop_last=drop_last, fast_path="loop", progress=False)
    data_key = jax.random.split(jax.random.PRNGKey(3))[1]
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    x, y = data["x"].astype(np.float64), data["y"].astype(np.float64)
    for epoch in range(epochs):
        words = [int(w) for w in np.asarray(data_key)]   # epoch_rng's seeding, written out
        order = np.random.default_rng(np.random.SeedSequence([*words, epoch])).permutation(n)
        assert sorted(order) == list(range(n))
        stop = (n // batch_size) * batch_size if drop_last else n
        total, count = 0.0, 0
        for start in range(0, stop, batch_size):
            rows = order[start:min(start + batch_size, stop)]
            g, loss = np_grad(p, x[rows], y[rows], np.ones(len(rows)))
            total, count = total + loss * len(rows), count + len(rows)
            p = {k: p[k] - lr * g[k] for k in p}
        # The epoch mean over real rows, exact despite the padded last batch.
        np.testing.assert_allclose(res.history[epoch]["loss"], total / count, rtol=1e-5)
        assert res.history[epoch]["count"] == count
    for k in p:
        np.testing.assert_allclose(np.asarray(res.state.params[k]), p[k], atol=1e-5, rtol=0)


def test_epoch_plan_shapes_and_determinism():
    key = jax.random.PRNGKey(0)
    idx, w = loop.epoch_plan(10, 4, epoch=0, data_key=key)
    assert idx.shape == (3, 4) and w.shape == (3, 4)
    assert w.sum() == 10 and sorted(idx[w > 0].tolist()) == list(range(10))
    idx2, _ = loop.epoch_plan(10, 4, epoch=0, data_key=key)
    idx3, _ = loop.epoch_plan(10, 4, epoch=1, data_key=key)
    assert np.array_equal(idx, idx2) and not np.array_equal(idx, idx3)
    idx, w = loop.epoch_plan(10, 4, epoch=0, data_key=key, drop_last=True)
    assert idx.shape == (2, 4) and w is None
    idx, w = loop.epoch_plan(10, None, epoch=5, data_key=key)
    assert idx.tolist() == [list(range(10))] and w is None


# --------------------------------------------------------------------------- fast path


@functools.cache
def fit_mlp(fast_path, key=7, epochs=3):
    """One cached MLP run (several tests compare against the same runs)."""
    return loop.fit(mlp_loss, mlp_params(), ADAM, class_data(), key=key,
                    epochs=epochs, batch_size=8, fast_path=fast_path, progress=False)


@pytest.mark.reference
def test_scanned_epoch_equals_step_loop_bitwise_mlp():
    scan, step_loop = fit_mlp("scan"), fit_mlp("loop")
    assert [t["path"] for t in scan.timings] == ["scan"] * 3
    assert [t["path"] for t in step_loop.timings] == ["loop"] * 3
    assert leaves_equal(scan.state, step_loop.state)
    assert scan.history == step_loop.history
    # A different key changes the result (so the comparison above can fail).
    assert not leaves_equal(fit_mlp("loop", key=8, epochs=1).state.params,
                            step_loop.state.params)


@pytest.mark.reference
def test_scanned_epoch_equals_step_loop_bitwise_conv():
    k1, k2 = jax.random.split(jax.random.PRNGKey(5))
    params = {"k": jax.random.normal(k1, (3, 1, 4)), "w": jax.random.normal(k2, (4, 3))}
    runs = [loop.fit(conv_loss, params, optax.sgd(0.1, momentum=0.9), class_data(), key=7,
                     epochs=2, batch_size=8, fast_path=fp, progress=False)
            for fp in ("scan", "loop")]
    assert leaves_equal(runs[0].state, runs[1].state)
    assert runs[0].history == runs[1].history


def test_auto_fast_path_measures_both_and_keeps_one():
    res = fit_mlp("auto", epochs=4)
    paths = [t["path"] for t in res.timings if "path" in t]
    measured = [t for t in res.timings if "chosen" in t]
    assert paths[:2] == ["loop", "scan"] and len(measured) == 1
    assert set(measured[0]["auto_seconds_per_step"]) == {"loop", "scan"}
    # decided after the first scan epoch, or after a second one when the scan lost the first
    # time; every later epoch takes the chosen path
    # (the decision is logged inside the epoch that made it, before that epoch's entry)
    decided = res.timings.index(measured[0])
    assert decided in (1, 2) and res.timings[decided + 1]["path"] == "scan"
    later = [t["path"] for t in res.timings[decided + 2:]]
    assert later and set(later) == {measured[0]["chosen"]}
    assert leaves_equal(res.state, fit_mlp("loop", epochs=4).state)


@pytest.mark.reference
@pytest.mark.highest
def test_streaming_data_uses_the_step_loop():
    data, params = linear_data(n=24)

    def batches(epoch):   # fixed order: three batches of 8
        for s in range(0, 24, 8):
            yield {k: v[s:s + 8] for k, v in data.items()}

    res = loop.fit(linear_loss, params, optax.sgd(0.1), batches, key=0, epochs=2,
                   progress=False)
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    for _ in range(2):
        for s in range(0, 24, 8):
            g, _ = np_grad(p, data["x"][s:s + 8].astype(np.float64),
                           data["y"][s:s + 8].astype(np.float64), np.ones(8))
            p = {k: p[k] - 0.1 * g[k] for k in p}
    np.testing.assert_allclose(np.asarray(res.state.params["w"]), p["w"], atol=1e-6)
    assert [t["path"] for t in res.timings] == ["loop", "loop"]


# --------------------------------------------------------------------------- train step


@pytest.mark.reference
@pytest.mark.highest
def test_train_step_metrics_and_learning_rate():
    data, params = linear_data()
    opt = optax.inject_hyperparams(optax.sgd)(learning_rate=0.25)
    state = loop.init_train_state(params, opt, key=jax.random.PRNGKey(0))
    step = loop.make_train_step(linear_loss, opt, nan_policy="skip")
    batch = {k: jnp.asarray(v) for k, v in data.items()}
    new, m = jax.jit(step)(state, batch)
    g, loss = np_grad({k: np.asarray(v, np.float64) for k, v in params.items()},
                      data["x"].astype(np.float64), data["y"].astype(np.float64), np.ones(20))
    gnorm = np.sqrt(sum((v ** 2).sum() for v in g.values()))
    np.testing.assert_allclose(m["loss"], loss, rtol=1e-6)
    np.testing.assert_allclose(m["grad_norm"], gnorm, rtol=1e-5)
    np.testing.assert_allclose(m["update_norm"], 0.25 * gnorm, rtol=1e-5)
    pn = np.sqrt(sum((np.asarray(v) ** 2).sum() for v in jax.tree.leaves(new.params)))
    np.testing.assert_allclose(m["param_norm"], pn, rtol=1e-6)
    assert float(m["learning_rate"]) == 0.25 and float(m["count"]) == 20.0
    assert int(m["nonfinite_leaf"]) == -1 and int(new.step) == 1
    # plain optax.sgd exposes no learning rate: it is omitted, not invented
    _, m2 = jax.jit(loop.make_train_step(linear_loss, optax.sgd(0.25)))(
        loop.init_train_state(params, optax.sgd(0.25), key=0), batch)
    assert "learning_rate" not in m2
    # padding rows with weight 0 do not change the step
    padded = {k: jnp.concatenate([v, v[:3] * 100]) for k, v in batch.items()}
    padded["weight"] = jnp.concatenate([jnp.ones(20), jnp.zeros(3)])
    _, mp = jax.jit(step)(state, padded)
    np.testing.assert_allclose(mp["loss"], m["loss"], rtol=1e-6)
    assert float(mp["count"]) == 20.0


def counting_loss(params, model_state, batch, key):
    """Linear loss whose model state counts real rows and tracks a running input mean."""
    loss, (_, metrics) = linear_loss(params, model_state, batch, key)
    w = batch.get("weight", jnp.ones(batch["x"].shape[0]))
    mean = jnp.sum(batch["x"] * w[:, None], 0) / jnp.sum(w)
    new = {"seen": model_state["seen"] + jnp.sum(w),
           "mean": 0.9 * model_state["mean"] + 0.1 * mean}
    return loss, (new, metrics)


def test_model_state_is_threaded_through_steps():
    data, params = linear_data()
    ms = {"seen": jnp.float32(0.0), "mean": jnp.zeros(3)}
    res = loop.fit(counting_loss, params, optax.sgd(0.1), data, key=2, epochs=2, batch_size=7,
                   model_state=ms, fast_path="scan", progress=False)
    assert float(res.state.model_state["seen"]) == 40.0     # padding rows not counted
    # the running mean by hand, following the same batches
    data_key = jax.random.split(jax.random.PRNGKey(2))[1]
    mean = np.zeros(3)
    for epoch in range(2):
        idx, w = loop.epoch_plan(20, 7, epoch=epoch, data_key=data_key)
        for rows, wr in zip(idx, w, strict=True):
            mean = 0.9 * mean + 0.1 * data["x"][rows[wr > 0]].astype(np.float64).mean(0)
    np.testing.assert_allclose(np.asarray(res.state.model_state["mean"]), mean, rtol=1e-5)


@pytest.mark.reference
@pytest.mark.highest
def test_eval_metrics_exact_with_padding():
    data, params = linear_data(n=20)
    ev, _ = linear_data(n=23, seed=4)
    res = loop.fit(linear_loss, params, optax.sgd(0.1), data, key=0, epochs=1,
                   eval_data=(ev["x"], ev["y"]), eval_batch_size=5, progress=False)
    p = {k: np.asarray(v, np.float64) for k, v in res.state.params.items()}
    _, loss = np_grad(p, ev["x"].astype(np.float64), ev["y"].astype(np.float64), np.ones(23))
    np.testing.assert_allclose(res.history[0]["val_loss"], loss, rtol=1e-6)
    assert res.history[0]["val_count"] == 23


# --------------------------------------------------------------------------- NaN guard


def sqrt_loss(params, model_state, batch, key):
    """Finite loss whose gradient for 'a' is NaN at a == 0 (0 * inf)."""
    loss, aux = linear_loss(params, model_state, batch, key)
    return loss + 0.0 * jnp.sqrt(params["a"]), aux


def test_nan_guard_stop_names_step_and_gradient_leaf():
    data, params = linear_data()
    params = {**params, "a": jnp.float32(0.0)}
    with pytest.raises(loop.NonFiniteError, match=r"step 0 .*grads\['a'\]") as err:
        loop.fit(sqrt_loss, params, optax.sgd(0.1), data, key=0, epochs=2, progress=False)
    assert err.value.step == 0 and err.value.leaf == "grads['a']"
    assert isinstance(err.value, FloatingPointError)
    assert leaves_equal(err.value.state.params, params)   # the update was not applied


def test_nan_guard_stop_names_loss_at_planted_step():
    data, params = linear_data(n=20)
    data["x"] = data["x"].copy()
    data["x"][13] = np.nan   # rows 12-15 form batch 3 (batches of 4, no shuffle): step 3
    with pytest.raises(loop.NonFiniteError, match=r"step 3 .*leaf is loss") as err:
        loop.fit(linear_loss, params, optax.sgd(0.1), data, key=0, epochs=2, batch_size=4,
                 shuffle=False, fast_path="scan", progress=False)
    assert int(err.value.state.step) == 3   # frozen after the 3 finite steps
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(err.value.state))


def steep_loss(params, model_state, batch, key):
    """A finite loss whose finite gradients (1e20) make Adam's second moment g^2 overflow to
    inf, while Adam's update m / sqrt(v) stays finite (0): only the optimizer state breaks."""
    loss, aux = linear_loss(params, model_state, batch, key)
    return loss + 1e20 * params["a"], aux


@pytest.mark.parametrize("fast_path", ["scan", "loop"])
def test_nan_guard_covers_the_optimizer_state(fast_path):
    data, params = linear_data()
    params = {**params, "a": jnp.float32(1.0)}
    with pytest.raises(loop.NonFiniteError, match=r"step 0 .*opt_state\[0\]\.nu\['a'\]") as err:
        loop.fit(steep_loss, params, optax.adam(1e-3), data, key=0, epochs=2, batch_size=10,
                 fast_path=fast_path, progress=False)
    assert err.value.leaf == "opt_state[0].nu['a']"
    assert leaves_equal(err.value.state.params, params) and int(err.value.state.step) == 0
    res = loop.fit(steep_loss, params, optax.adam(1e-3), data, key=0, epochs=1, batch_size=10,
                   nan_policy="skip", fast_path=fast_path, progress=False)
    assert res.history[0]["skipped_steps"] == 2 and leaves_equal(res.state.params, params)


def test_stop_returns_the_state_before_the_bad_step_bitwise():
    """The end-of-epoch check and its replay give the very state a step-by-step run reaches
    just before the first non-finite step (CPU: bitwise)."""
    data, params = linear_data(n=40)
    data["x"] = data["x"].copy()
    data["x"][29] = np.nan          # batch 7 of 10 (batches of 4, no shuffle): step 7 of epoch 0
    for fast_path in ("scan", "loop"):
        with pytest.raises(loop.NonFiniteError, match=r"step 7 \(epoch 0\)") as err:
            loop.fit(linear_loss, params, optax.adam(0.05), data, key=0, epochs=3,
                     batch_size=4, shuffle=False, fast_path=fast_path, progress=False)
        step = jax.jit(loop.make_train_step(linear_loss, optax.adam(0.05), nan_policy=None))
        state = loop.init_train_state(params, optax.adam(0.05), key=jax.random.split(
            jax.random.PRNGKey(0))[0])
        for b in range(7):
            state, _ = step(state, {k: v[4 * b:4 * b + 4] for k, v in data.items()})
        assert leaves_equal(err.value.state, state), fast_path


def test_stop_lets_an_overflowing_loss_sum_go_on():
    """A loss sum that overflows float32 while every step is finite fails the cheap
    end-of-epoch check; the replay finds no bad step, and training goes on."""
    data, params = linear_data(n=40)

    def huge(params, model_state, batch, key):
        loss, aux = linear_loss(params, model_state, batch, key)
        return loss + 3e37, aux     # x 4 rows x 10 batches: inf in float32

    res = loop.fit(huge, params, optax.sgd(0.01), data, key=0, epochs=2, batch_size=4,
                   fast_path="scan", progress=False)
    assert [h["step"] for h in res.history] == [10, 20]
    assert math.isinf(res.history[0]["loss"])


def test_streamed_stop_is_replayed_from_the_stream():
    data, params = linear_data(n=40)
    data["x"] = data["x"].copy()
    data["x"][17] = np.inf          # batch 4 of the stream
    batches = lambda epoch: ({k: v[4 * b:4 * b + 4] for k, v in data.items()}
                             for b in range(10))
    with pytest.raises(loop.NonFiniteError, match=r"step 4 .*leaf is loss") as err:
        loop.fit(linear_loss, params, optax.sgd(0.05), batches, key=0, epochs=2,
                 progress=False)
    assert int(err.value.state.step) == 4
    # a one-shot generator cannot be replayed: the error still comes, the step unknown
    with pytest.raises(loop.NonFiniteError, match=r"could not be replayed"):
        loop.fit(linear_loss, params, optax.sgd(0.05), batches(0), key=0, epochs=1,
                 progress=False)


@pytest.mark.reference
def test_norms_every_last_and_none():
    data, params = linear_data(n=40)
    opt = optax.sgd(0.05)
    common = dict(key=0, epochs=2, batch_size=8, shuffle=False, progress=False)
    every = loop.fit(linear_loss, params, opt, data, norms="every", **common)
    last = loop.fit(linear_loss, params, opt, data, norms="last", **common)
    none = loop.fit(linear_loss, params, opt, data, norms=None, **common)
    # the same training whatever is measured
    assert leaves_equal(every.state.params, last.state.params)
    assert leaves_equal(none.state.params, last.state.params)
    # reference: the pure step's norms, step by step
    step = jax.jit(loop.make_train_step(linear_loss, opt, nan_policy=None))
    state = loop.init_train_state(params, opt, key=jax.random.split(jax.random.PRNGKey(0))[0])
    per_epoch = []
    for _ in range(2):
        norms = []
        for b in range(5):
            state, m = step(state, {k: v[8 * b:8 * b + 8] for k, v in data.items()})
            norms.append([float(m[k]) for k in loop.NORM_KEYS])
        per_epoch.append(np.asarray(norms))
    for e in range(2):
        for i, k in enumerate(loop.NORM_KEYS):
            assert every.history[e][k] == pytest.approx(per_epoch[e][:, i].mean(), rel=1e-6)
            assert last.history[e][k] == pytest.approx(per_epoch[e][-1, i], rel=1e-6)
        assert last.history[e]["norm_steps"] == 1 and "norm_steps" not in every.history[e]
        assert not set(loop.NORM_KEYS) & set(none.history[e])
    with pytest.raises(ValueError, match="norms must be one of"):
        loop.fit(linear_loss, params, opt, data, norms="first", **common)


def test_nan_guard_names_parameter_leaf_and_skip_policy():
    data, params = linear_data()
    # a huge rate overflows the parameters while loss and gradients stay finite
    with pytest.raises(loop.NonFiniteError, match=r"params\['w'\]"):
        loop.fit(linear_loss, params, optax.sgd(3e38), data, key=0, epochs=1, progress=False)
    p2 = {**params, "a": jnp.float32(0.0)}
    res = loop.fit(sqrt_loss, p2, optax.sgd(0.1), data, key=0, epochs=2, batch_size=10,
                   nan_policy="skip", fast_path="scan", progress=False)
    assert [h["skipped_steps"] for h in res.history] == [2, 2]
    assert [h["step"] for h in res.history] == [2, 4]
    assert leaves_equal(res.state.params, p2)


def test_global_norm_and_finite_test_small_and_large_leaves():
    # leaves below and above the size where global_norm stops concatenating; ints ignored
    rng = np.random.default_rng(0)
    tree = {"big": jnp.asarray(rng.normal(size=(300, 300)), jnp.float32),
            "small": [jnp.asarray(rng.normal(size=(7,)), jnp.float32),
                      jnp.asarray(rng.normal(size=(3, 5)), jnp.bfloat16)],
            "count": jnp.int32(7)}
    ref = np.sqrt(sum((np.asarray(x, np.float64) ** 2).sum()
                      for x in (tree["big"], *tree["small"])))
    np.testing.assert_allclose(jax.jit(loop.global_norm)(tree), ref, rtol=1e-5)
    np.testing.assert_allclose(loop.global_norm({"a": jnp.ones(4)}), 2.0, rtol=0)
    # the one-reduction finite test: NaN or Inf anywhere is NaN; huge finite values are not
    for where, bad in (("big", np.inf), ("big", np.nan), ("small", -np.inf), ("small", np.nan)):
        planted = jax.tree.map(lambda x: x, tree)
        if where == "big":
            planted["big"] = planted["big"].at[123, 45].set(bad)
        else:
            planted["small"][0] = planted["small"][0].at[3].set(bad)
        assert np.isnan(jax.jit(loop.sum_squares)(planted)), (where, bad)
    huge = {"a": jnp.full((5,), 1e30, jnp.float32)}
    assert np.isposinf(loop.sum_squares(huge))
    # a finite loss whose finite gradients (1e20 each) overflow the squared norm: applied,
    # not flagged, and the reported norm is +inf
    steep = lambda p, s, b, k: (jnp.sum(p["w"]) * 1e20, (s, {}))
    state = loop.init_train_state({"w": jnp.ones(4)}, optax.sgd(1e-21), key=0)
    new, m = jax.jit(loop.make_train_step(steep, optax.sgd(1e-21)))(state, {"x": jnp.ones(1)})
    assert int(m["nonfinite_leaf"]) == -1 and float(m["nonfinite"]) == 0.0
    assert np.isposinf(float(m["grad_norm"]))
    np.testing.assert_allclose(new.params["w"], 0.9, rtol=1e-6)


# --------------------------------------------------------------------------- driver features


def test_early_stopping_callbacks_and_history_file(tmp_path):
    data, params = linear_data()
    # validating on the negated targets: the validation loss rises as training fits y
    val = {"x": data["x"], "y": -data["y"]}
    seen = []

    class Recorder:
        def on_epoch_end(self, epoch, state, logs):
            seen.append((epoch, int(state.step), logs["loss"]))

        def on_fit_end(self, state, history):
            seen.append(("end", len(history)))

    path = tmp_path / "h.jsonl"
    res = loop.fit(linear_loss, params, optax.sgd(0.1), data, key=0, epochs=20,
                   eval_data=val, early_stopping=("val_loss", 2), callbacks=[Recorder()],
                   history_path=str(path), progress=False)
    vals = [h["val_loss"] for h in res.history]
    best, wait, expected = np.inf, 0, None
    for i, v in enumerate(vals):      # the rule written out: stop after `patience` misses
        best, wait = (v, 0) if v < best else (best, wait + 1)
        if wait >= 2:
            expected = i + 1
            break
    assert expected is not None and len(vals) == expected
    assert seen[-1] == ("end", expected) and len(seen) == expected + 1
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows == res.history
    # evaluate() on the final state reproduces the last validation numbers
    again = loop.evaluate(linear_loss, res.state, val, batch_size=6, prefix="val_")
    np.testing.assert_allclose(again["val_loss"], res.history[-1]["val_loss"], rtol=1e-6)
    # a plain callable returning True stops at once
    res2 = loop.fit(linear_loss, params, optax.sgd(0.1), data, key=0, epochs=20,
                    callbacks=[lambda e, s, logs: e == 1], progress=False)
    assert len(res2.history) == 2


def test_bad_arguments_raise_before_compiling():
    data, params = linear_data()
    with pytest.raises(ValueError, match="fast_path"):
        loop.fit(linear_loss, params, optax.sgd(0.1), data, key=0, fast_path="fast")
    with pytest.raises(ValueError, match="batch_size"):
        loop.fit(linear_loss, params, optax.sgd(0.1), data, key=0, batch_size=0)
    with pytest.raises(ValueError, match="leading"):
        loop.fit(linear_loss, params, optax.sgd(0.1), {"x": data["x"], "y": data["y"][:5]},
                 key=0)
    with pytest.raises(ValueError, match="nan_policy"):
        loop.make_train_step(linear_loss, optax.sgd(0.1), nan_policy="ignore")
    with pytest.raises(TypeError, match="optimizer"):
        loop.init_train_state(params, object(), key=0)


# --------------------------------------------------------------------------- reproducibility

SCRIPT = textwrap.dedent("""
    import hashlib, json, sys
    import jax, numpy as np
    sys.path.insert(0, {root!r})
    from tests.train.test_loop import fit_mlp
    out = {{}}
    for seed in {seeds}:
        r = fit_mlp("scan", key=seed)
        h = hashlib.sha256(b"".join(np.asarray(x).tobytes()
                                    for x in jax.tree.leaves(r.state.params))).hexdigest()
        out[seed] = {{"hash": h, "history": r.history}}
    print(json.dumps(out))
""")


def run_scripts(*codes, env=None):
    """Run Python snippets in parallel subprocesses; return their stdouts."""
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
             for code in codes]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err[-3000:]
        outs.append(out)
    return outs


def test_same_seed_same_result_in_two_processes():
    """Two processes on this backend (tests/precision.py: children_env) agree bitwise, and with
    this process where they share its backend and kernels (CPU; a GPU test process would need
    --xla_gpu_deterministic_ops itself, which XLA reads only at start)."""
    env, _ = children_env()
    a, b = map(json.loads, run_scripts(SCRIPT.format(root=ROOT, seeds=[7, 8]),
                                       SCRIPT.format(root=ROOT, seeds=[7]), env=env))
    assert a["7"] == b["7"]
    assert a["7"]["hash"] != a["8"]["hash"]
    assert a["7"]["history"] != a["8"]["history"]
    if jax.default_backend() != "cpu":   # (children then run on CPU only when we do)
        return
    # and the in-process run agrees with both
    r = fit_mlp("scan")
    h = hashlib.sha256(b"".join(np.asarray(x).tobytes()
                                for x in jax.tree.leaves(r.state.params))).hexdigest()
    assert h == a["7"]["hash"]
    assert json.loads(json.dumps(r.history)) == a["7"]["history"]


def test_sampling_with_replacement_draws_independent_batches():
    key = jax.random.PRNGKey(3)
    n, bs = 2000, 100
    with_repl, _ = loop.epoch_plan(n, bs, epoch=0, data_key=key, shuffle="replacement")
    shuffled, _ = loop.epoch_plan(n, bs, epoch=0, data_key=key, shuffle=True)
    assert with_repl.shape == shuffled.shape == (20, 100)
    assert with_repl.min() >= 0 and with_repl.max() < n
    # n draws with replacement from n items cover 1 - (1 - 1/n)^n ~ 1 - 1/e of them;
    # a permutation covers all of them.
    coverage = len(np.unique(with_repl)) / n
    assert abs(coverage - (1 - (1 - 1 / n) ** n)) < 0.03, coverage
    assert len(np.unique(shuffled)) == n
    again, _ = loop.epoch_plan(n, bs, epoch=0, data_key=key, shuffle="replacement")
    other, _ = loop.epoch_plan(n, bs, epoch=1, data_key=key, shuffle="replacement")
    np.testing.assert_array_equal(with_repl, again)
    assert not np.array_equal(with_repl, other)
    with pytest.raises(ValueError, match="shuffle must be"):
        loop.fit(lambda p, s, b, k: (0.0, (s, {})), {"w": np.zeros(2)}, optax.sgd(0.1),
                 {"x": np.zeros((4, 2))}, key=key, shuffle="sometimes", progress=False)


# --------------------------------------------------------------------------- review fixes

def _nan_row_data():
    """Linear data whose row 5 is NaN: with batch_size 2 and no shuffle, batch 2 is bad."""
    data, params = linear_data()
    data["x"] = data["x"].copy()
    data["x"][5, 0] = np.nan
    return data, params


def _hand_skip_epoch(params, data, lr, bs, bad_batches):
    """One epoch of SGD by hand that skips ``bad_batches``: (params, mean loss, rows)."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    x, y = data["x"].astype(np.float64), data["y"].astype(np.float64)
    total = rows = 0.0
    for b in range(len(x) // bs):
        if b in bad_batches:
            continue
        xb, yb = x[b * bs:(b + 1) * bs], y[b * bs:(b + 1) * bs]
        g, loss = np_grad(p, xb, yb, np.ones(bs))
        total, rows = total + loss * bs, rows + bs
        p = {k: p[k] - lr * g[k] for k in p}
    return p, total / rows, rows


@pytest.mark.reference
@pytest.mark.highest
@pytest.mark.parametrize("fast_path", ["scan", "loop"])
def test_skipped_steps_stay_out_of_the_epoch_means(fast_path):
    data, params = _nan_row_data()
    res = loop.fit(linear_loss, params, optax.sgd(0.1), data, key=0, epochs=1, batch_size=2,
                   shuffle=False, nan_policy="skip", fast_path=fast_path, progress=False)
    p, mean_loss, rows = _hand_skip_epoch(params, data, 0.1, 2, {2})
    (h,) = res.history
    assert h["skipped_steps"] == 1 and h["count"] == rows == 18
    np.testing.assert_allclose(h["loss"], mean_loss, rtol=1e-5)
    np.testing.assert_allclose(h["sse"], mean_loss, rtol=1e-5)
    assert all(np.isfinite(h[k]) for k in loop.NORM_KEYS)
    for k in p:
        np.testing.assert_allclose(np.asarray(res.state.params[k]), p[k], atol=1e-6)
    # the checker: counting the skipped batch's rows would give another mean
    assert abs(h["loss"] * 18 / 20 - mean_loss) > 1e-3


@pytest.mark.reference
def test_vmapped_seeds_skip_like_fit():
    from train import experiments

    data, params = _nan_row_data()
    runs = experiments.train_seeds_vmapped(
        linear_loss, lambda key: params, optax.sgd(0.1), data, [0, 1], epochs=1,
        batch_size=2, shuffle=False, nan_policy="skip")
    ref = loop.fit(linear_loss, params, optax.sgd(0.1), data, key=0, epochs=1, batch_size=2,
                   shuffle=False, nan_policy="skip", progress=False).history[0]
    for hist in runs.histories:
        assert hist[0]["count"] == ref["count"] == 18 and hist[0]["skipped_steps"] == 1
        np.testing.assert_allclose(hist[0]["loss"], ref["loss"], rtol=1e-6)


def test_callbacks_may_keep_the_state_they_are_given():
    data, params = linear_data()
    kept = []
    res = loop.fit(linear_loss, params, optax.sgd(0.1), data, key=0, epochs=3, batch_size=5,
                   fast_path="scan", progress=False,
                   callbacks=[lambda e, state, logs: kept.append(state.params)])
    assert len(kept) == 3
    # readable after later epochs donated the training state, and equal to it at the end
    assert leaves_equal(kept[-1], res.state.params)
    assert not leaves_equal(kept[0], kept[-1])


def test_more_bad_arguments_raise_before_any_step(tmp_path):
    data, params = linear_data()
    sgd = optax.sgd(0.1)
    ran = []
    kw = dict(key=0, epochs=2, progress=False, callbacks=[lambda e, s, logs: ran.append(e)])
    cases = [
        (ValueError, "eval_batch_size", dict(eval_data=data, eval_batch_size=0)),
        (TypeError, "eval_batch_size", dict(eval_data=data, eval_batch_size=2.5)),
        (TypeError, "batch_size", dict(batch_size=True)),
        (TypeError, "epochs", dict(epochs=True)),
        (ValueError, "resume=True needs a checkpoint_dir", dict(resume=True)),
        (ValueError, "no eval_data", dict(early_stopping=("val_loss", 2))),
        (ValueError, "no eval_data", dict(keep_best="val_loss",
                                          checkpoint_dir=str(tmp_path / "a"))),
        (ValueError, "patience", dict(early_stopping=("loss", True))),
        (ValueError, "'val_los', which is not in the epoch logs",
         dict(eval_data=data, keep_best="val_los", checkpoint_dir=str(tmp_path / "b"))),
        (ValueError, "'los', which is not in the epoch logs", dict(early_stopping=("los", 2))),
    ]
    for error, match, extra in cases:
        with pytest.raises(error, match=match):
            loop.fit(linear_loss, params, sgd, data, **{**kw, **extra})
    with pytest.raises(ValueError, match="no rows"):
        loop.fit(linear_loss, params, sgd, {k: v[:0] for k, v in data.items()}, **kw)
    with pytest.raises(TypeError, match="must yield batches as dicts of arrays, got int"):
        loop.fit(linear_loss, params, sgd, [1, 2, 3], **kw)
    state = loop.init_train_state(params, sgd, key=0)
    with pytest.raises(ValueError, match="batch_size"):
        loop.evaluate(linear_loss, state, data, batch_size=0)
    with pytest.raises(ValueError, match="no rows"):
        loop.evaluate(linear_loss, state, {k: v[:0] for k, v in data.items()})
    assert ran == []
    # the monitors that do exist pass the check
    res = loop.fit(linear_loss, params, sgd, data, eval_data=data,
                   early_stopping=("val_sse", 5), **kw)
    assert "val_sse" in res.history[-1] and ran == [0, 1]


def test_checkpoint_dir_of_an_earlier_run_is_refused_or_resumed_consistently(tmp_path):
    from train import checkpoint as ck

    data, params = linear_data()
    sgd = optax.sgd(0.1)
    d = str(tmp_path / "ck")
    loop.fit(linear_loss, params, sgd, data, key=1, epochs=3, batch_size=4,
             checkpoint_dir=d, progress=False)
    before = ck.CheckpointManager(d).steps()
    with pytest.raises(ValueError, match="already holds checkpoints"):
        loop.fit(linear_loss, params, sgd, data, key=2, epochs=2, batch_size=4,
                 checkpoint_dir=d, progress=False)
    assert ck.CheckpointManager(d).steps() == before   # nothing deleted
    with pytest.raises(ValueError, match="batch_size: saved 4, now 3"):
        loop.fit(linear_loss, params, sgd, data, key=1, epochs=4, batch_size=3,
                 checkpoint_dir=d, resume=True, progress=False)
    with pytest.raises(ValueError, match="data_key"):
        loop.fit(linear_loss, params, sgd, data, key=2, epochs=4, batch_size=4,
                 checkpoint_dir=d, resume=True, progress=False)
    with pytest.raises(ValueError, match="n: saved 20, now 19"):
        loop.fit(linear_loss, params, sgd, {k: v[:19] for k, v in data.items()}, key=1,
                 epochs=4, batch_size=4, checkpoint_dir=d, resume=True, progress=False)
    # the same settings continue exactly
    res = loop.fit(linear_loss, params, sgd, data, key=1, epochs=4, batch_size=4,
                   checkpoint_dir=d, resume=True, progress=False)
    ref = loop.fit(linear_loss, params, sgd, data, key=1, epochs=4, batch_size=4,
                   progress=False)
    assert leaves_equal(res.state, ref.state) and res.history == ref.history


def test_history_file_is_strict_json_and_fit_writes_manifests(tmp_path):
    from train import manifest

    data, params = linear_data()
    data["x"] = np.full_like(data["x"], np.nan)   # every step skipped: the means are NaN
    hist = tmp_path / "logs" / "history.jsonl"
    ck_dir = tmp_path / "ck"
    res = loop.fit(linear_loss, params, optax.sgd(0.1), data, key=5, epochs=2, batch_size=10,
                   nan_policy="skip", history_path=str(hist), checkpoint_dir=str(ck_dir),
                   progress=False)
    assert np.isnan(res.history[0]["loss"])

    def no_constants(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    rows = [json.loads(line, parse_constant=no_constants)
            for line in hist.read_text().splitlines()]
    assert [r["loss"] for r in rows] == [None, None]
    assert [r["skipped_steps"] for r in rows] == [2, 2]
    for out in (hist.parent, ck_dir):
        m = json.loads((out / "manifest.json").read_text(), parse_constant=no_constants)
        assert m["params_hash"] == manifest.params_hash(res.state.params)
        assert m["seed"] == 5 and m["config"]["batch_size"] == 10
        assert m["config"]["nan_policy"] == "skip" and m["extra"]["epochs_run"] == 2
        assert m["extra"]["final"]["loss"] is None
    assert manifest.json_line({"a": float("inf"), "b": [1.5, float("nan")]}) == \
        '{"a": null, "b": [1.5, null]}\n'


def test_monitors_settings_and_checkpoint_cadence(tmp_path):
    from train import checkpoint as ck

    data, params = linear_data()
    sgd = optax.sgd(0.1)
    kw = dict(key=0, progress=False)
    # skipped_steps is logged only for epochs that skip: not a metric to monitor
    with pytest.raises(ValueError, match="'skipped_steps', which is not in the epoch logs"):
        loop.fit(linear_loss, params, sgd, data, epochs=2, nan_policy="skip",
                 early_stopping=("skipped_steps", 1), **kw)
    for bad in (True, 0):
        with pytest.raises((TypeError, ValueError), match="keep"):
            loop.fit(linear_loss, params, sgd, data, checkpoint_dir=str(tmp_path / "k"),
                     keep=bad, **kw)
    # NumPy bools are plain settings in the checkpoint's JSON meta
    loop.fit(linear_loss, params, sgd, data, epochs=1, batch_size=5, shuffle=np.True_,
             drop_last=np.False_, checkpoint_dir=str(tmp_path / "np"), **kw)

    # an evaluation loss that needs whole batches of 4 rows: no probe of another size runs
    def eval_in_fours(p, s, batch, key):
        x = batch["x"].reshape(-1, 4, batch["x"].shape[-1]).reshape(-1, batch["x"].shape[-1])
        return linear_loss(p, s, {**batch, "x": x}, key)

    for monitor in (None, ("val_loss", 3)):
        res = loop.fit(linear_loss, params, sgd, data, epochs=2, eval_data=data,
                       eval_loss_fn=eval_in_fours, eval_batch_size=4, early_stopping=monitor,
                       **kw)
        np.testing.assert_allclose(res.history[-1]["val_loss"],
                                   loop.evaluate(linear_loss, res.state, data)["loss"],
                                   rtol=1e-6)

    # checkpoint_every_epochs: epochs 2 and 4 of 5 and the last; a resume continues exactly
    d = str(tmp_path / "cadence")
    first = loop.fit(linear_loss, params, sgd, data, epochs=5, batch_size=4, keep=10,
                     checkpoint_every_epochs=2, checkpoint_dir=d, **kw)
    spe = first.history[0]["step"]
    assert ck.CheckpointManager(d).steps() == [2 * spe, 4 * spe, 5 * spe]
    more = loop.fit(linear_loss, params, sgd, data, epochs=8, batch_size=4, keep=10,
                    checkpoint_every_epochs=2, checkpoint_dir=d, resume=True, **kw)
    ref = loop.fit(linear_loss, params, sgd, data, epochs=8, batch_size=4, **kw)
    assert leaves_equal(more.state, ref.state) and more.history == ref.history
    assert ck.CheckpointManager(d).steps() == [2 * spe, 4 * spe, 5 * spe, 6 * spe, 8 * spe]
    with pytest.raises(ValueError, match="checkpoint_every_epochs"):
        loop.fit(linear_loss, params, sgd, data, checkpoint_every_epochs=0, **kw)


# --------------------------------------------------------------------------- precision


@pytest.mark.parametrize("precision", [None, "high", "highest"])
def test_fit_traces_at_the_precision_asked_and_records_it(precision, tmp_path):
    """The loss is traced (Python runs) inside fit's precision scope: it sees the setting in
    force, which the manifest records; None keeps the setting around the call."""
    data, params = linear_data()
    seen = []

    def spy(params, model_state, batch, key):
        seen.append(jax.config.jax_default_matmul_precision)
        return linear_loss(params, model_state, batch, key)

    loop.fit(spy, params, optax.sgd(0.1), data, key=0, epochs=1, batch_size=10,
             eval_data=data, progress=False, precision=precision,
             history_path=str(tmp_path / "h.jsonl"))
    assert seen and set(seen) == {precision}
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["config"]["precision"] == (precision or "default")
    seen.clear()
    with jax.default_matmul_precision("highest"):   # the caller's setting, when fit has none
        loop.fit(spy, params, optax.sgd(0.1), data, key=0, epochs=1, batch_size=5,
                 progress=False, precision=precision)
    assert set(seen) == {precision or "highest"}
    with pytest.raises(ValueError, match="precision must be one of"):
        loop.fit(spy, params, optax.sgd(0.1), data, key=0, precision="tf32")
