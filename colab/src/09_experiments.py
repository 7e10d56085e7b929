# %% [markdown]
# # 09 Experiments: sweeps, seeds, and random search on the right scale
# Most of what the notes say about training is a comparison: batch vs stochastic vs mini-batch
# gradient descent, the learning rate, momentum / RMSprop / Adam (seed 004 section 4), and how
# to search hyperparameters (sections 9.3-9.4): sample at random rather than on a grid, on the
# right *scale* (a learning rate log-uniformly), then zoom in on the best region ("coarse to
# fine"). `train.experiments` turns each of these into a few lines:
#
# * an *experiment* is a function `(config, seed) -> (history, params)`;
# * `run_grid_vmapped` trains all seeds of a configuration at once, `vmap`ped inside one jit;
# * `random_search` samples configurations, scores them, zooms, and samples again.
#
# The model is the notes' MLP on the 8x8 handwritten digits.

# %%
import time

import jax
import matplotlib.pyplot as plt
import numpy as np

from train import datasets
from train import experiments as ex
from zoo import mlp

ds = datasets.load("digits")
x_train = ds.x_train.reshape(len(ds.x_train), -1)
x_test = ds.x_test.reshape(len(ds.x_test), -1)
train = {"x": x_train, "y": ds.y_train}
test = {"x": x_test, "y": ds.y_test}
EPOCHS = 4 if SMOKE else 20
SEEDS = [0, 1] if SMOKE else [0, 1, 2, 3]


def build(config):
    """config -> (init_fn, loss_fn, optimizer): everything a trial needs."""
    cfg = mlp.Config(n_in=64, hidden=(config.get("hidden", 32),), n_out=10)
    init_fn = lambda key: mlp.init(key, cfg)
    loss_fn = lambda p, s, batch, key: mlp.loss(p, s, batch, key, cfg)
    return init_fn, loss_fn, ex.make_optimizer(config["optimizer"], config["lr"])


# %% [markdown]
# ## 1. Learning rate x optimizer, several seeds each
# A grid is every combination of the values given. For each configuration the seeds train
# together: one compiled program advances all of them, and each equals the run `fit` would
# make with that seed alone. Curves show the mean over seeds with the range shaded.

# %%
configs = ex.grid(optimizer=["sgd", "momentum", "adam"],
                  lr=[1e-3, 1e-1] if SMOKE else [1e-3, 1e-2, 1e-1])
t0 = time.perf_counter()
trials = ex.run_grid_vmapped(build, configs, SEEDS, train, epochs=EPOCHS, batch_size=64,
                             eval_data=test, keep_params=True)
print(f"{len(trials)} trials ({len(configs)} configs x {len(SEEDS)} seeds) in "
      f"{time.perf_counter() - t0:.0f} s")

fig, ax = plt.subplots(figsize=(7, 4))
for label, epochs, values in ex.curves(trials, "loss", label_by=["optimizer", "lr"]):
    (line,) = ax.plot(epochs, values.mean(0), label=label)
    ax.fill_between(epochs, values.min(0), values.max(0), color=line.get_color(), alpha=0.2)
ax.set(xlabel="epoch", ylabel="train loss", yscale="log", title="digits MLP, batch 64")
ax.legend(fontsize="small", ncol=2)
plt.show()

rows = ex.table(trials, ["loss", "val_accuracy"])
final = {(r["optimizer"], r["lr"]): [] for r in rows}
for r in rows:
    final[r["optimizer"], r["lr"]].append(r["val_accuracy"])
for (opt, lr), accs in final.items():
    print(f"{opt:9s} lr={lr:<6g} test accuracy {np.mean(accs):.1%} +- {np.std(accs):.1%}")
# plain SGD with a tiny learning rate barely moves; the same rate with Adam learns
assert np.mean(final["sgd", 1e-3]) < np.mean(final["sgd", 1e-1])
assert np.mean(final["adam", 1e-3]) > np.mean(final["sgd", 1e-3]) + 0.2

# %% [markdown]
# The vmapped seeds are the same runs as training each seed alone with `fit` (`vmap` batches
# the matrix products differently, so the agreement is to float rounding, not bitwise; at a
# learning rate on the edge of stability, such as Adam's 0.1 here, rounding differences grow
# over many epochs, so we compare a stable configuration).

# %%
check = {"optimizer": "momentum", "lr": 1e-3}
one = ex.run_grid(ex.fit_experiment(build, train, epochs=EPOCHS, batch_size=64,
                                    fast_path="scan"), [check], seeds=[SEEDS[-1]],
                  keep_params=True)[0]
vm = [t for t in trials if t.config == check and t.seed == SEEDS[-1]][0]
diff = max(float(np.max(np.abs(a - b))) for a, b in
           zip(jax.tree.leaves(one.params), jax.tree.leaves(vm.params), strict=True))
print(f"{check}, seed {SEEDS[-1]}: max |params(fit alone) - params(vmapped)| = {diff:.1e}")
assert diff < 1e-4
np.testing.assert_allclose(one.final("loss"), vm.final("loss"), rtol=1e-4)

# %% [markdown]
# ## 2. Batch, mini-batch and stochastic gradient descent
# With the same number of epochs, full-batch gradient descent takes one step per epoch,
# mini-batch n/B steps and stochastic gradient descent n steps (seed 004 section 4.4).
# More, noisier steps win per epoch; full batch needs far more epochs.

# %%
regimes = ex.grid(optimizer=["sgd"], lr=[0.1], batch_size=[None, 64, 1])
reg_trials = ex.run_grid_vmapped(build, regimes, SEEDS[:1], train, epochs=EPOCHS)
fig, ax = plt.subplots(figsize=(6, 3.5))
for t in reg_trials:
    name = ex.regime(t.config["batch_size"])
    ax.plot([h["epoch"] for h in t.history], [h["loss"] for h in t.history], "o-",
            label=f"{name} (batch {t.config['batch_size']})")
ax.set(xlabel="epoch", ylabel="train loss", yscale="log")
ax.legend()
plt.show()
loss_of = {ex.regime(t.config["batch_size"]): t.final("loss") for t in reg_trials}
print({k: round(v, 4) for k, v in loss_of.items()})
assert loss_of["stochastic"] < loss_of["mini-batch"] < loss_of["batch"]

# %% [markdown]
# ## 3. Random search on a log scale, coarse to fine
# A learning rate between 1e-4 and 1 is drawn log-uniformly: each decade equally likely. Drawn
# uniformly, 90% of the samples would land in [0.1, 1].

# %%
lr_dim = ex.LogUniform(1e-4, 1.0)
draws = np.array([c["lr"] for c in ex.sample({"lr": lr_dim}, 4_000, np.random.default_rng(0))])
per_decade = np.histogram(np.log10(draws), bins=[-4, -3, -2, -1, 0])[0]
print("samples per decade:", per_decade)
assert np.all(np.abs(per_decade - 1000) < 100)

# %% [markdown]
# The search: a coarse round samples the whole space, the next samples the region spanned by
# the best few (widened a little), and the best configuration over all rounds wins. The score is
# the final validation loss, averaged over seeds.

# %%
space = {"optimizer": "momentum", "lr": ex.LogUniform(1e-4, 1.0),
         "hidden": ex.Choice((16, 64))}
experiment = ex.fit_experiment(build, train, eval_data=test, epochs=EPOCHS, batch_size=64,
                               fast_path="scan")
t0 = time.perf_counter()
search = ex.random_search(experiment, space, score="val_loss",
                          n_trials=(5, 3) if SMOKE else (12, 8), rounds=2, top_k=2,
                          seeds=SEEDS[:1], search_seed=0)
print(f"{len(search.trials)} trials in {time.perf_counter() - t0:.0f} s; best {search.best_config} "
      f"val_loss {search.best_score:.3f}")
coarse, fine = search.spaces
print(f"lr range: coarse [{coarse['lr'].low:.1e}, {coarse['lr'].high:.1e}] -> "
      f"fine [{fine['lr'].low:.1e}, {fine['lr'].high:.1e}]; hidden {fine['hidden'].values}")

fig, ax = plt.subplots(figsize=(6, 3.5))
for rnd, name in ((0, "coarse"), (1, "fine")):
    pts = [(t.config["lr"], t.score) for t in search.trials if t.round == rnd]
    ax.scatter(*zip(*pts, strict=True), label=name)
ax.axvspan(fine["lr"].low, fine["lr"].high, color="C1", alpha=0.1)
ax.axvline(search.best_config["lr"], color="k", ls="--", lw=0.8)
ax.set(xscale="log", yscale="log", xlabel="learning rate", ylabel="validation loss")
ax.legend()
plt.show()

# the fine round searched a narrower region, inside the coarse one, around the best
width = lambda d: np.log(d.high) - np.log(d.low)
assert width(fine["lr"]) < width(coarse["lr"])
assert fine["lr"].low <= search.best_config["lr"] <= fine["lr"].high
assert all(fine["lr"].low <= t.config["lr"] <= fine["lr"].high
           for t in search.trials if t.round == 1)
best_coarse = min(t.score for t in search.trials if t.round == 0)
assert search.best_score <= best_coarse
