"""Transfer learning: relabelling, head replacement, and the two ways of freezing features."""

import dataclasses

import jax
import numpy as np
import optax
import pytest

from functional import optim
from train import datasets
from train.loop import fit
from train.transfer import few_shot, run_experiment
from zoo import cnn, transfer

SMALL = cnn.Config(input_shape=(8, 8, 1), convs=(cnn.ConvSpec(4, 3, 1, "SAME", pool=2),),
                   hidden=(8,), n_out=3)


def test_split_classes_relabels_in_order():
    x = np.arange(6)[:, None].astype(np.float32)
    y = np.array([5, 0, 7, 5, 9, 7])
    xs, ys = transfer.split_classes(x, y, (7, 5))
    np.testing.assert_array_equal(xs[:, 0], [0, 2, 3, 5])
    np.testing.assert_array_equal(ys, [1, 0, 1, 0])
    with pytest.raises(ValueError, match="distinct"):
        transfer.split_classes(x, y, (5, 5))


def test_replace_head_keeps_features_and_resizes_output():
    params = cnn.init(jax.random.PRNGKey(0), SMALL)
    new, new_cfg = transfer.replace_head(jax.random.PRNGKey(1), params, SMALL, 5)
    assert new_cfg.n_out == 5 and new["out"]["w"].shape == (8, 5)
    assert new["conv1"] is params["conv1"] and new["fc1"] is params["fc1"]
    new2, _ = transfer.replace_head(jax.random.PRNGKey(1), params, SMALL, 5, reset="head")
    assert not np.array_equal(new2["fc1"]["w"], params["fc1"]["w"])
    labels = transfer.param_labels(new)
    assert labels["conv1"] == {"w": "frozen", "b": "frozen"}
    assert labels["fc1"]["w"] == "trainable" and labels["out"]["b"] == "trainable"


def test_mask_and_stop_gradient_freeze_identically():
    rng = np.random.default_rng(0)
    data = {"x": rng.uniform(size=(24, 8, 8, 1)).astype(np.float32),
            "y": rng.integers(0, 3, 24).astype(np.int32)}
    params = cnn.init(jax.random.PRNGKey(0), SMALL)
    runs = {}
    for mode, opt in [("mask", transfer.freeze_optimizer(optim.adam(1e-2), params)),
                      ("stop_gradient", optim.adam(1e-2)),
                      ("none", optim.adam(1e-2))]:
        cfg = transfer.Config(cnn=SMALL, freeze=mode)
        loss = lambda p, s, b, k, c=cfg: transfer.loss(p, s, b, k, c)
        runs[mode] = fit(loss, params, opt, data, key=0, epochs=2, batch_size=8,
                         fast_path="loop", progress=False).state.params
    for mode in ("mask", "stop_gradient"):
        np.testing.assert_array_equal(runs[mode]["conv1"]["w"], params["conv1"]["w"])
        assert not np.array_equal(runs[mode]["out"]["w"], params["out"]["w"])
    assert not np.array_equal(runs["none"]["conv1"]["w"], params["conv1"]["w"])
    # Adam's update of a zero gradient is exactly zero, so the two methods agree bitwise;
    # optax's own multi_transform gives the same frozen layers.
    for a, b in zip(jax.tree.leaves(runs["mask"]), jax.tree.leaves(runs["stop_gradient"]),
                    strict=True):
        np.testing.assert_array_equal(a, b)
    ref = optax.multi_transform({"trainable": optax.adam(1e-2), "frozen": optax.set_to_zero()},
                                transfer.param_labels(params))
    state = ref.init(params)
    grads = jax.tree.map(np.ones_like, params)
    updates, _ = ref.update(grads, state, params)
    assert all(np.all(np.asarray(u) == 0) for u in jax.tree.leaves(updates["conv1"]))


def test_stop_gradient_is_not_enough_with_weight_decay():
    # Why masking exists: with decoupled weight decay a zero gradient still moves a weight.
    params = cnn.init(jax.random.PRNGKey(0), SMALL)
    cfg = transfer.Config(cnn=SMALL, freeze="stop_gradient")
    batch = {"x": np.ones((2, 8, 8, 1), np.float32), "y": np.array([0, 1], np.int32)}
    grads = jax.grad(lambda p: transfer.loss(p, {}, batch, None, cfg)[0])(params)
    opt = optax.adamw(1e-2, weight_decay=0.1)
    updates, _ = opt.update(grads, opt.init(params), params)
    assert np.any(np.asarray(updates["conv1"]["w"]) != 0)
    masked = transfer.freeze_optimizer(opt, params)
    updates, _ = masked.update(grads, masked.init(params), params)
    assert np.all(np.asarray(updates["conv1"]["w"]) == 0)


@pytest.mark.slow      # four compiled fits plus orbax save / restore: ~20 s of CPU
def test_experiment_saves_loads_and_compares(tmp_path):
    ds = datasets.load("digits")
    small = dataclasses.replace(ds, x_train=ds.x_train[:300], y_train=ds.y_train[:300])
    result = run_experiment(small, out=str(tmp_path), make_optimizer=lambda: optim.adam(3e-3),
                            epochs=2, finetune_epochs=5, shots=3)
    assert (tmp_path / "source").is_dir() and (tmp_path / "transfer.json").is_file()
    assert result["features_unchanged"] and result["mask_equals_stop_gradient"]
    assert result["finetune_examples"] == 15
    assert result["source_test_accuracy"] > 0.5       # 5 classes: chance is 0.2
    for run in ("mask", "stop_gradient", "scratch"):
        assert 0 <= result[f"{run}_test_accuracy"] <= 1


def test_few_shot_takes_k_per_class():
    y = np.repeat(np.arange(4), 10)
    x = np.arange(40)
    xs, ys = few_shot(x, y, 3, seed=1)
    assert np.bincount(ys).tolist() == [3, 3, 3, 3]
    np.testing.assert_array_equal(y[xs], ys)
