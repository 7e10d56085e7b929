"""Experiment driver: grids, coarse-to-fine random search, tables and figures, and training
several seeds at once with vmap."""

import csv
import json
import math

import numpy as np
import pytest

from tests.precision import assert_same_arithmetic
from train import experiments as ex
from train.experiments import vmapped
from train.manifest import params_hash

# the tests marked 'reference' compare with independent references or with fit itself:
# .ci/run also runs them under --emulate-precision

# --- a host-side experiment with a known answer ------------------------------------------------
# Gradient descent on f(w) = a/2 * w^2 from w0 = 1: after T steps w_T = (1 - lr*a)^T, so the
# loss is smallest at lr = 1/a (one step lands on the minimum) and diverges for lr > 2/a
# (seed 004, 4.1.1.2: too large a learning rate overshoots).
A, T = 4.0, 5


def quadratic_experiment(config, seed):
    w = 1.0 + 0.0 * seed
    history = []
    for epoch in range(1, T + 1):
        w = w - config["lr"] * A * w
        history.append({"epoch": epoch, "loss": 0.5 * A * w * w})
    return history, {"w": np.asarray([w], np.float64)}


def test_grid_is_the_cartesian_product_in_row_major_order():
    g = ex.grid(optimizer=["sgd", "adam"], lr=[0.1, 0.01], batch_size=[None])
    assert g == [{"optimizer": "sgd", "lr": 0.1, "batch_size": None},
                 {"optimizer": "sgd", "lr": 0.01, "batch_size": None},
                 {"optimizer": "adam", "lr": 0.1, "batch_size": None},
                 {"optimizer": "adam", "lr": 0.01, "batch_size": None}]
    with pytest.raises(TypeError, match="grid.*'lr'"):
        ex.grid(lr=0.1)
    with pytest.raises(TypeError, match="grid.*'optimizer'"):
        ex.grid(optimizer="sgd")


def test_regime_names_follow_the_notes():
    assert [ex.regime(b) for b in (None, 1, 32)] == ["batch", "stochastic", "mini-batch"]


@pytest.mark.reference
def test_make_optimizer_matches_optax_aliases():
    import jax.numpy as jnp
    import optax

    params = {"w": jnp.asarray([1.0, -2.0])}
    grads = {"w": jnp.asarray([0.5, 0.25])}
    for name, ref in [("sgd", optax.sgd(0.1)), ("momentum", optax.sgd(0.1, momentum=0.9)),
                      ("adam", optax.adam(0.1)), ("rmsprop", optax.rmsprop(0.1))]:
        opt = ex.make_optimizer(name, 0.1)
        s, r = opt.init(params), ref.init(params)
        for _ in range(3):
            u, s = opt.update(grads, s, params)
            v, r = ref.update(grads, r, params)
        np.testing.assert_array_equal(u["w"], v["w"])
    with pytest.raises(ValueError, match="make_optimizer.*'lbfgs2'"):
        ex.make_optimizer("lbfgs2", 0.1)


def test_run_grid_runs_every_config_and_seed_and_writes_csv(tmp_path):
    configs = ex.grid(lr=[0.05, 0.25, 0.6])
    seen = []
    trials = ex.run_grid(quadratic_experiment, configs, seeds=[0, 1], out_dir=tmp_path,
                         on_trial=seen.append)
    assert [(t.config["lr"], t.seed) for t in trials] == [
        (0.05, 0), (0.05, 1), (0.25, 0), (0.25, 1), (0.6, 0), (0.6, 1)]
    assert seen == trials
    for t in trials:  # the closed form, independently of the driver
        assert t.final("loss") == pytest.approx(0.5 * A * (1 - t.config["lr"] * A) ** (2 * T))
        assert t.params is None
        assert t.params_hash == params_hash(quadratic_experiment(t.config, t.seed)[1])
    with open(tmp_path / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6
    assert list(rows[0])[:6] == ["lr", "seed", "round", "score", "epochs", "loss"]
    for row, t in zip(rows, trials, strict=True):
        assert float(row["lr"]) == t.config["lr"] and int(row["seed"]) == t.seed
        assert float(row["loss"]) == t.final("loss")  # repr round-trips exactly
        assert int(row["epochs"]) == T and row["params_hash"] == t.params_hash
    # Each trial has its own directory with its history and a manifest.
    for k, t in enumerate(trials):
        run_dir = tmp_path / f"trial_{k:04d}_seed{t.seed}"
        lines = (run_dir / "history.jsonl").read_text().splitlines()
        assert [json.loads(line) for line in lines] == t.history
        manifest = json.loads((run_dir / "manifest.json").read_text())
        assert manifest["params_hash"] == t.params_hash and manifest["seed"] == t.seed
        assert manifest["config"] == t.config and manifest["extra"]["final"] == t.history[-1]


def test_run_grid_rejects_bad_experiment_output():
    with pytest.raises(TypeError, match="run_grid.*history, params"):
        ex.run_grid(lambda c, s: [], [{}])


def test_log_uniform_sampling_is_uniform_per_decade():
    rng = np.random.default_rng(0)
    lrs = np.array([c["lr"] for c in ex.sample({"lr": ex.LogUniform(1e-4, 1.0)}, 4000, rng)])
    assert lrs.min() >= 1e-4 and lrs.max() <= 1.0
    per_decade = np.histogram(np.log10(lrs), bins=4, range=(-4, 0))[0] / len(lrs)
    np.testing.assert_allclose(per_decade, 0.25, atol=0.03)
    # A linear-uniform sampler would put ~90% in the top decade: the check can tell.
    lin = np.random.default_rng(0).uniform(1e-4, 1.0, 4000)
    assert abs(np.histogram(np.log10(lin), bins=4, range=(-4, 0))[0][-1] / 4000 - 0.25) > 0.5

    betas = np.array([c["b"] for c in ex.sample({"b": ex.OneMinusLogUniform(0.9, 0.999)},
                                                 3000, np.random.default_rng(1))])
    frac = np.histogram(np.log10(1 - betas), bins=2, range=(-3, -1))[0] / len(betas)
    np.testing.assert_allclose(frac, 0.5, atol=0.03)


def test_sample_mixes_fixed_values_choices_and_integers():
    space = {"optimizer": ex.Choice(("sgd", "adam")), "hidden": ex.LogUniform(8, 512, True),
             "epochs": 3}
    configs = ex.sample(space, 200, np.random.default_rng(2))
    assert {c["optimizer"] for c in configs} == {"sgd", "adam"}
    assert all(isinstance(c["hidden"], int) and 8 <= c["hidden"] <= 512 for c in configs)
    assert all(c["epochs"] == 3 for c in configs)
    # The same search seed gives the same configurations.
    assert ex.sample(space, 5, np.random.default_rng(7)) == ex.sample(
        space, 5, np.random.default_rng(7))


def test_zoom_narrows_on_each_dimensions_scale():
    space = {"lr": ex.LogUniform(1e-4, 1.0), "opt": ex.Choice(("sgd", "adam", "rmsprop")),
             "beta": ex.OneMinusLogUniform(0.9, 0.999), "layers": ex.Uniform(1, 9, True)}
    best = [{"lr": 1e-3, "opt": "adam", "beta": 0.99, "layers": 3},
            {"lr": 1e-2, "opt": "adam", "beta": 0.99, "layers": 5}]
    finer = ex.zoom(space, best, margin=0.25)
    # lr in units of the 4 decades: 1e-3 -> 0.25, 1e-2 -> 0.5; widened by 0.25 (one decade)
    assert finer["lr"].low == pytest.approx(1e-4) and finer["lr"].high == pytest.approx(1e-1)
    assert finer["opt"] == ex.Choice(("adam",))
    # 1 - 0.99 = 1e-2 sits in the middle of [1e-3, 1e-1]: half a decade each side.
    assert 1 - finer["beta"].high == pytest.approx(10 ** -2.5)
    assert 1 - finer["beta"].low == pytest.approx(10 ** -1.5)
    assert (finer["layers"].low, finer["layers"].high) == (1, 7)
    with pytest.raises(ValueError, match="zoom"):
        ex.zoom(space, [])
    with pytest.raises(ValueError, match="LogUniform"):
        ex.LogUniform(0.0, 1.0)


def test_coarse_to_fine_search_closes_in_on_the_known_optimum():
    space = {"lr": ex.LogUniform(1e-3, 1.0)}
    res = ex.random_search(quadratic_experiment, space, score="loss", n_trials=[12, 12],
                           rounds=2, top_k=2, search_seed=0)
    coarse = [t for t in res.trials if t.round == 0]
    fine = [t for t in res.trials if t.round == 1]
    assert len(coarse) == len(fine) == 12
    best_coarse = min(coarse, key=lambda t: t.score)
    opt = 1.0 / A
    # The fine region holds the coarse best and is narrower, on the log scale.
    lo, hi = res.spaces[1]["lr"].low, res.spaces[1]["lr"].high
    assert lo <= best_coarse.config["lr"] <= hi
    assert math.log(hi / lo) < math.log(1.0 / 1e-3)
    # ...and the search ends nearer the optimum lr = 1/a than the coarse round did.
    assert abs(math.log(res.best_config["lr"] / opt)) <= abs(
        math.log(best_coarse.config["lr"] / opt))
    assert abs(math.log(res.best_config["lr"] / opt)) < 0.05
    assert res.best_score == min(t.score for t in res.trials)
    # Scores are what the closed form says.
    for t in res.trials:
        assert t.score == pytest.approx(0.5 * A * (1 - t.config["lr"] * A) ** (2 * T))


def test_random_search_maximizes_and_ranks_diverged_runs_last():
    def exp(config, seed):
        acc = -abs(math.log10(config["lr"]) + 2) if config["lr"] < 0.5 else math.nan
        return [{"accuracy": acc}], {"w": np.zeros(1)}

    res = ex.random_search(exp, {"lr": ex.LogUniform(1e-4, 1.0)}, score="accuracy",
                           mode="max", n_trials=20, rounds=1, search_seed=3)
    assert math.isfinite(res.best_score)
    assert abs(math.log10(res.best_config["lr"]) + 2) < 0.3
    with pytest.raises(KeyError, match="'val_loss'"):
        ex.random_search(exp, {"lr": ex.LogUniform(1e-4, 1e-2)}, score="val_loss",
                         n_trials=1, rounds=1)


def test_plots_write_images_of_the_mean_curves(tmp_path):
    trials = ex.run_grid(quadratic_experiment, ex.grid(lr=[0.05, 0.1]), seeds=[0, 1])
    drawn = ex.plot_curves(trials, tmp_path / "lr.png", metric="loss", label_by=["lr"],
                           title="learning rates")
    assert [label for label, _, _ in drawn] == ["lr=0.05", "lr=0.1"]
    label, epochs, values = drawn[0]
    np.testing.assert_array_equal(epochs, np.arange(1, T + 1))
    np.testing.assert_allclose(values.mean(0), [0.5 * A * 0.8 ** (2 * e) for e in epochs])
    assert (tmp_path / "lr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    res = ex.random_search(quadratic_experiment, {"lr": ex.LogUniform(1e-3, 1.0)},
                           score="loss", n_trials=4, rounds=2, top_k=1)
    points = ex.plot_search(res, tmp_path / "search.svg", param="lr")
    assert sorted(points) == [0, 1] and len(points[1][0]) == 4
    assert (tmp_path / "search.svg").read_text().lstrip().startswith("<?xml")
    with pytest.raises(ValueError, match="plot_curves.*'accuracy'"):
        ex.plot_curves(trials, tmp_path / "x.png", metric="accuracy")


# --- a tiny MLP written inline with jax.numpy + optax (the zoo is written in parallel) --------

N_TRAIN, N_IN, N_OUT = 60, 4, 3


def _mlp_data(seed=0, n=N_TRAIN):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_IN)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0.5).astype(np.int32)
    return {"x": x, "y": y}


def build_mlp(config):
    """init_fn, loss_fn and optimizer for a one-hidden-layer MLP described by ``config``."""
    import jax
    import jax.numpy as jnp
    import optax

    hidden = config.get("hidden", 8)
    act = {"relu": jax.nn.relu, "tanh": jnp.tanh}[config.get("activation", "tanh")]
    scale = {"he": lambda fan_in: jnp.sqrt(2.0 / fan_in),
             "lecun": lambda fan_in: jnp.sqrt(1.0 / fan_in)}[config.get("init", "lecun")]

    def init_fn(key):
        k1, k2 = jax.random.split(key)
        return {"fc1": {"w": scale(N_IN) * jax.random.normal(k1, (N_IN, hidden)),
                        "b": jnp.zeros(hidden)},
                "out": {"w": scale(hidden) * jax.random.normal(k2, (hidden, N_OUT)),
                        "b": jnp.zeros(N_OUT)}}

    def loss_fn(params, model_state, batch, key):
        h = act(batch["x"] @ params["fc1"]["w"] + params["fc1"]["b"])
        logits = h @ params["out"]["w"] + params["out"]["b"]
        per = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"])
        w = batch.get("weight", jnp.ones_like(per))
        acc = jnp.sum((jnp.argmax(logits, -1) == batch["y"]) * w) / jnp.sum(w)
        return jnp.sum(per * w) / jnp.sum(w), (model_state, {"accuracy": acc})

    opt = ex.make_optimizer(config.get("optimizer", "adam"), config.get("lr", 0.05))
    return init_fn, loss_fn, opt


def _close_trees(a, b, atol):
    import jax

    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    return all(np.allclose(np.asarray(x), np.asarray(y), rtol=0, atol=atol)
               for x, y in zip(la, lb, strict=True))


@pytest.fixture(scope="module")
def seed_runs():
    """Three seeds of one config: vmapped, sequential, and one fit per seed (the reference)."""
    config = {"optimizer": "adam", "lr": 0.05, "batch_size": 16, "epochs": 3}
    data, val = _mlp_data(0), _mlp_data(1, 30)
    init_fn, loss_fn, opt = build_mlp(config)
    seeds = [0, 1, 2]
    kw = dict(epochs=3, batch_size=16, eval_data=val)
    vm = ex.train_seeds_vmapped(loss_fn, init_fn, opt, data, seeds, **kw)
    seq = ex.train_seeds_vmapped(loss_fn, init_fn, opt, data, seeds, vmap=False, **kw)
    vm_loop = ex.train_seeds_vmapped(loss_fn, init_fn, opt, data, seeds, fast_path="loop", **kw)
    experiment = ex.fit_experiment(build_mlp, data, eval_data=val, fast_path="scan")
    one_by_one = [experiment(config, s) for s in seeds]
    return config, data, seeds, vm, seq, one_by_one, vm_loop


@pytest.mark.reference
def test_vmapped_seeds_equal_running_the_seeds_one_by_one(seed_runs):
    _, _, seeds, vm, seq, one_by_one, vm_loop = seed_runs
    for i, (history, params) in enumerate(one_by_one):
        # Same parameters as fit, seed by seed: bitwise without vmap; vmap batches the
        # matmuls differently, which moves the last bit (seen: 1.8e-7), hence 1e-6.
        assert_same_arithmetic(seq.params_of(i), params, err_msg=f"seed {seeds[i]}")
        assert _close_trees(vm.params_of(i), params, 1e-6), f"seed {seeds[i]}"
        assert _close_trees(vm_loop.params_of(i), params, 1e-6), f"seed {seeds[i]}"
        assert vm_loop.histories[i][-1]["loss"] == pytest.approx(history[-1]["loss"], rel=1e-5)
        assert len(vm.histories[i]) == len(history) == 3
        for got, ref in zip(vm.histories[i], history, strict=True):
            assert got["epoch"] == ref["epoch"] and got["step"] == ref["step"]
            for k in ("loss", "accuracy", "grad_norm", "param_norm", "update_norm",
                      "val_loss", "val_accuracy"):
                assert got[k] == pytest.approx(ref[k], rel=1e-5, abs=1e-6), (i, k)
    # Different seeds give different runs, so the comparison above can fail.
    assert not _close_trees(vm.params_of(0), one_by_one[1][1], 1e-3)


@pytest.mark.reference
@pytest.mark.parametrize("seed_groups, fast_path", [(1, "scan"), (3, "scan"), (2, "loop")])
def test_seed_groups_change_nothing_but_speed(seed_runs, seed_groups, fast_path):
    """Seeds split into groups that advance side by side: every seed still equals its own fit
    run (1e-6, as for one vmapped group), whatever the grouping and path."""
    config, data, seeds, _, _, one_by_one, _ = seed_runs
    init_fn, loss_fn, opt = build_mlp(config)
    runs = ex.train_seeds_vmapped(loss_fn, init_fn, opt, data, seeds, epochs=3,
                                  batch_size=16, seed_groups=seed_groups, fast_path=fast_path)
    for i, (history, params) in enumerate(one_by_one):
        assert _close_trees(runs.params_of(i), params, 1e-6), f"seed {seeds[i]}"
        assert runs.histories[i][-1]["loss"] == pytest.approx(history[-1]["loss"], rel=1e-5)
    # the groups are stitched back in seed order: a swap would fail the check above
    assert not _close_trees(runs.params_of(0), one_by_one[1][1], 1e-3)


def test_seed_group_bounds_and_bad_values():
    assert ex.group_bounds(8, 2, True, "f") == [(0, 4), (4, 8)]
    assert ex.group_bounds(5, 5, True, "f") == [(i, i + 1) for i in range(5)]
    for n, g in ((3, 2), (7, 3), (10, 4)):
        bounds = ex.group_bounds(n, g, True, "f")
        sizes = [hi - lo for lo, hi in bounds]
        assert bounds[0][0] == 0 and bounds[-1][1] == n and len(bounds) == g
        assert all(a[1] == b[0] for a, b in zip(bounds[:-1], bounds[1:], strict=True))
        assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
    assert ex.group_bounds(4, None, False, "f") == [(0, 4)]   # no vmap: one group
    init_fn, loss_fn, opt = build_mlp({"lr": 0.1})
    for bad in (0, 4, True, 1.5, "2"):
        with pytest.raises(ValueError, match="seed_groups must be None or an int from 1"):
            ex.train_seeds_vmapped(loss_fn, init_fn, opt, _mlp_data(0), [0, 1, 2], epochs=1,
                                   seed_groups=bad)


@pytest.mark.reference
def test_run_grid_vmapped_matches_run_grid_with_fit(seed_runs, tmp_path):
    config, data, seeds, vm, _, one_by_one, _ = seed_runs
    trials = ex.run_grid_vmapped(build_mlp, [config], seeds, data, keep_params=True,
                                 out_dir=tmp_path)
    assert [t.seed for t in trials] == seeds
    for t, (history, params) in zip(trials, one_by_one, strict=True):
        assert _close_trees(t.params, params, 1e-6)
        assert t.final("loss") == pytest.approx(history[-1]["loss"], rel=1e-5)
    assert (tmp_path / "results.csv").exists()


def test_grid_over_the_notes_axes_with_fit_and_figures(tmp_path):
    """Regime x optimizer x activation on the MLP through fit: the loss falls in every
    configuration, full-batch takes one step per epoch, and the figure/table are written."""
    configs = ex.grid(batch_size=[None, 20], optimizer=["sgd", "adam"], lr=[0.1],
                      activation=["tanh"], epochs=[4])
    data = _mlp_data(0)
    trials = ex.run_grid(ex.fit_experiment(build_mlp, data, fast_path="loop"), configs,
                         seeds=[0])
    for t in trials:
        steps_per_epoch = 1 if t.config["batch_size"] is None else 3
        assert [row["step"] for row in t.history] == [steps_per_epoch * e for e in (1, 2, 3, 4)]
        assert t.history[-1]["loss"] < t.history[0]["loss"]
    drawn = ex.plot_curves(trials, tmp_path / "opt.png", label_by=["batch_size", "optimizer"])
    assert len(drawn) == 4
    rows = ex.write_csv(trials, tmp_path / "t.csv")
    assert [ex.regime(r["batch_size"]) for r in rows] == ["batch"] * 2 + ["mini-batch"] * 2


@pytest.mark.parametrize("batch_size, shuffle, drop_last", [
    (None, True, False), (16, True, False), (16, True, True), (20, True, False),
    (16, False, False), (1, True, False)])
def test_batched_epoch_plans_equal_fits_plan_per_seed(batch_size, shuffle, drop_last):
    import jax
    import jax.numpy as jnp

    from train import loop

    keys = [jax.random.split(ex.seed_keys(s)[1])[1] for s in (0, 5, 9)]
    for epoch in (0, 3):
        idx, w = vmapped.trial_plans(N_TRAIN, batch_size, epoch, jnp.stack(keys), shuffle,
                                     drop_last)
        for i, k in enumerate(keys):
            ref_idx, ref_w = loop.epoch_plan(N_TRAIN, batch_size, epoch=epoch, data_key=k,
                                             shuffle=shuffle, drop_last=drop_last)
            np.testing.assert_array_equal(idx[i], ref_idx)
            assert (w is None) == (ref_w is None)
            if w is not None:
                np.testing.assert_array_equal(w, ref_w)


def test_zoom_keeps_integer_dimensions_whole_and_search_survives_them():
    space = {"layers": ex.Uniform(1, 4, integer=True), "h": ex.LogUniform(8, 512, integer=True)}
    best = [{"layers": 2, "h": 64}, {"layers": 2, "h": 70}]
    finer = ex.zoom(space, best, margin=0.1)
    # layers: units 1/3 +- 0.1 -> [1.7, 2.3] -> rounded outwards to the integers [1, 3]
    assert finer["layers"] == ex.Uniform(1, 3, integer=True)
    assert finer["h"].low == math.floor(8 * (512 / 8) ** (math.log(64 / 8) /
                                                            math.log(512 / 8) - 0.1))
    assert isinstance(finer["h"].low, int) and isinstance(finer["h"].high, int)
    # the best agree and there is no margin: a fixed value, not Uniform(2, 2)
    assert ex.zoom(space, best, margin=0.0)["layers"] == 2

    def exp(config, seed):
        return [{"loss": (config["layers"] - 2) ** 2 + abs(math.log(config["h"] / 64))}], {}

    res = ex.random_search(exp, space, score="loss", n_trials=np.int64(8), rounds=3,
                           top_k=2, margin=0.0, search_seed=1)
    assert len(res.trials) == 24
    assert all(isinstance(t.config["layers"], int) for t in res.trials)
    with pytest.raises(ValueError, match="n_trials"):
        ex.random_search(exp, space, score="loss", n_trials=2.5, rounds=1)
    with pytest.raises(ValueError, match="n_trials"):
        ex.random_search(exp, space, score="loss", n_trials=[4, True], rounds=2)


@pytest.mark.reference
def test_seeds_one_by_one_do_not_free_params_an_init_fn_shares():
    import optax

    from tests.train.test_loop import linear_data, linear_loss
    from train import loop

    data, params = linear_data()
    w0 = np.array(params["w"])
    runs = ex.train_seeds_vmapped(linear_loss, lambda key: params, optax.sgd(0.1), data,
                                  [0, 1], epochs=2, batch_size=5, vmap=False, fast_path="scan")
    # the caller's arrays are neither freed (reading them raised) nor changed
    np.testing.assert_array_equal(np.asarray(params["w"]), w0)
    for i, seed in enumerate([0, 1]):
        _, run_key = ex.seed_keys(seed)
        ref = loop.fit(linear_loss, params, optax.sgd(0.1), data, key=run_key, epochs=2,
                       batch_size=5, fast_path="scan", progress=False)
        assert_same_arithmetic(np.asarray(runs.params_of(i)["w"]),
                               np.asarray(ref.state.params["w"]))


def test_vmapped_trials_trace_at_the_precision_asked():
    import jax

    seen = []
    data = _mlp_data(0)

    def build(config):
        init_fn, loss_fn, opt = build_mlp(config)[:3]

        def spy(params, model_state, batch, key):
            seen.append(jax.config.jax_default_matmul_precision)
            return loss_fn(params, model_state, batch, key)
        return init_fn, spy, opt

    ex.train_trials(build, [{"lr": 0.1}, {"lr": 0.2}], [0, 1], data, epochs=1, batch_size=16,
                    precision="highest")
    assert seen and set(seen) == {"highest"}


# --- hyperparameter sweeps in one jit (train.experiments.sweep) -----------------------------


def build_sweep(config):
    """``build_mlp`` plus the hyperparameters a sweep holds as arrays: an init scale and the
    optimizer's rate, momentum and weight decay (optax takes arrays for all of them)."""
    import jax
    import optax

    init_fn, loss_fn, _ = build_mlp(config)
    scale = config.get("init_scale", 1.0)
    opt = optax.chain(optax.add_decayed_weights(config.get("weight_decay", 0.0)),
                      optax.sgd(config["lr"], momentum=config.get("momentum", 0.9)))
    return (lambda key: jax.tree.map(lambda p: scale * p, init_fn(key))), loss_fn, opt


SWEEP_CONFIGS = [
    {"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-3, "init_scale": 1.0, "hidden": 8},
    {"lr": 0.2, "momentum": 0.5, "weight_decay": 0.0, "init_scale": 0.5, "hidden": 8},
    {"lr": 0.1, "momentum": 0.8, "weight_decay": 1e-2, "init_scale": 2.0, "hidden": 4},
    {"lr": 0.02, "momentum": 0.95, "weight_decay": 3e-3, "init_scale": 1.5, "hidden": 8},
]


@pytest.fixture(scope="module")
def sweep_reference():
    """Each (config, seed) trained alone through fit: the reference for the sweeps."""
    data, val = _mlp_data(0), _mlp_data(1, 30)
    experiment = ex.fit_experiment(build_sweep, data, eval_data=val, epochs=3, batch_size=16,
                                   fast_path="scan")
    seeds = [0, 1]
    return data, val, seeds, [experiment(c, s) for c in SWEEP_CONFIGS for s in seeds]


def test_traced_keys_are_the_varying_reals():
    assert ex.traced_keys(SWEEP_CONFIGS) == ["lr", "momentum", "weight_decay", "init_scale"]
    assert ex.traced_keys([{"lr": 0.1, "hidden": 4}, {"lr": 0.1, "hidden": 8}]) == []


@pytest.mark.reference
@pytest.mark.parametrize("vmap", [True, False])
def test_a_sweep_mixing_shapes_equals_each_trial_alone(sweep_reference, vmap):
    """Four configs (two hidden sizes: two shape groups; lr, momentum, weight decay and init
    scale traced) x two seeds: vmapped, each trial within rounding of fit (atol 1e-5 on the
    parameters, float32, here on CPU); one by one (vmap=False), bitwise (on CPU; within a few
    ulps where XLA may fuse the two programs differently: assert_same_arithmetic)."""
    import jax

    data, val, seeds, reference = sweep_reference
    trials = ex.run_grid_vmapped(build_sweep, SWEEP_CONFIGS, seeds, data, epochs=3,
                                 batch_size=16, eval_data=val, keep_params=True, vmap=vmap)
    assert [(t.config, t.seed) for t in trials] == [(c, s) for c in SWEEP_CONFIGS
                                                     for s in seeds]
    for t, (history, params) in zip(trials, reference, strict=True):
        if vmap:
            assert _close_trees(t.params, params, 1e-5), (t.config, t.seed)
            assert t.history[-1]["val_loss"] == pytest.approx(history[-1]["val_loss"],
                                                              rel=1e-5)
        else:
            assert_same_arithmetic(t.params, params, err_msg=f"{t.config}, seed {t.seed}")
            if jax.default_backend() == "cpu":   # bitwise here: the hashes and histories too
                assert t.params_hash == params_hash(params), (t.config, t.seed)
                assert t.history == history


@pytest.mark.reference
def test_the_reference_tolerance_would_catch_a_wrong_trial(sweep_reference):
    """The 1e-5 check above is not vacuous: a neighbouring learning rate misses it."""
    data, val, seeds, reference = sweep_reference
    off = dict(SWEEP_CONFIGS[0], lr=SWEEP_CONFIGS[0]["lr"] * 1.001)
    trial = ex.run_grid_vmapped(build_sweep, [off], seeds[:1], data, epochs=3, batch_size=16,
                                eval_data=val, keep_params=True)[0]
    assert not _close_trees(trial.params, reference[0][1], 1e-5)


@pytest.mark.reference
def test_chunks_change_nothing_but_memory(sweep_reference):
    data, val, seeds, reference = sweep_reference
    trials = ex.run_grid_vmapped(build_sweep, SWEEP_CONFIGS, seeds, data, epochs=3,
                                 batch_size=16, eval_data=val, keep_params=True, chunk_size=3)
    for t, (_, params) in zip(trials, reference, strict=True):
        assert _close_trees(t.params, params, 1e-5)
    assert ex.auto_chunk_size(64, per_trial=10, budget=1000) == 64
    assert ex.auto_chunk_size(64, per_trial=100, budget=1000) == 10   # 7 chunks of <= 10
    assert ex.auto_chunk_size(5, per_trial=10 ** 9, budget=1) == 1
    with pytest.raises(ValueError, match="chunk_size"):
        ex.run_grid_vmapped(build_sweep, SWEEP_CONFIGS, seeds, data, epochs=1, chunk_size=0)


def test_a_real_the_builder_branches_on_is_trained_value_by_value():
    """A float the model reads in Python (here: whether to add a penalty) cannot be traced:
    the sweep finds that by tracing, trains it value by value, and still matches fit."""
    from train.experiments.sweep import traceable_keys

    def build(config):
        init_fn, loss_fn, opt = build_sweep(config)
        if config["penalty"] > 0:   # Python control flow on the value
            base = loss_fn

            def loss_fn(params, model_state, batch, key):
                loss, aux = base(params, model_state, batch, key)
                return loss + config["penalty"] * params["out"]["w"].sum() ** 2, aux
        return init_fn, loss_fn, opt

    configs = [dict(SWEEP_CONFIGS[0], penalty=p, lr=lr) for p, lr in ((0.0, 0.05), (0.1, 0.07))]
    data = _mlp_data(0)
    assert traceable_keys(build, configs[0], ["lr", "penalty"], data, batch_size=16) == ["lr"]
    trials = ex.run_grid_vmapped(build, configs, [0], data, epochs=2, batch_size=16,
                                 keep_params=True)
    alone = ex.fit_experiment(build, data, epochs=2, batch_size=16, fast_path="scan")
    for t, config in zip(trials, configs, strict=True):
        assert _close_trees(t.params, alone(config, 0)[1], 1e-5)


def test_random_search_trains_each_round_as_one_batch(sweep_reference):
    data, val, seeds, _ = sweep_reference
    calls = []
    experiment = ex.sweep_experiment(build_sweep, data, eval_data=val, epochs=2, batch_size=16)
    run_batch = experiment.run_batch
    experiment.run_batch = lambda configs, s, **kw: calls.append(len(configs)) or run_batch(
        configs, s, **kw)
    space = {"lr": ex.LogUniform(1e-2, 0.3), "momentum": ex.OneMinusLogUniform(0.5, 0.95),
             "hidden": 8}
    result = ex.random_search(experiment, space, score="val_loss", n_trials=4, rounds=2,
                              seeds=[0, 1])
    assert calls == [4, 4] and len(result.trials) == 16
    # the batched search equals the one-trial-at-a-time search, up to rounding
    one_by_one = ex.random_search(ex.fit_experiment(build_sweep, data, eval_data=val, epochs=2,
                                                    batch_size=16, fast_path="scan"),
                                  space, score="val_loss", n_trials=4, rounds=2, seeds=[0, 1])
    assert [t.config for t in result.trials] == [t.config for t in one_by_one.trials]
    np.testing.assert_allclose([t.score for t in result.trials],
                               [t.score for t in one_by_one.trials], rtol=1e-5)


def test_same_arithmetic_check_fails_on_a_different_result():
    """The check behind the vmap=False claims is not blind: it notices one float32 ulp on CPU
    (bitwise there) and many ulps anywhere, and a different tree structure."""
    import jax

    a = {"w": np.array([1.0, 2.0], np.float32)}
    assert_same_arithmetic(a, {"w": a["w"].copy()})
    off = np.nextafter(a["w"], np.float32(3), dtype=np.float32) if jax.default_backend() == \
        "cpu" else a["w"] * np.float32(1 + 2 ** -16)
    with pytest.raises(AssertionError):
        assert_same_arithmetic(a, {"w": off})
    with pytest.raises(AssertionError):
        assert_same_arithmetic(a, {"w": a["w"], "b": a["w"]})
