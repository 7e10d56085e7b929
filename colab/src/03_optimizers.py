# %% [markdown]
# # 03 Optimizers: momentum, RMSprop, Adam and friends
#
# `functional.optim` writes the classic update rules out by hand with optax's contract
# (`init(params) -> state`, `update(grads, state, params) -> (updates, state)`). This notebook
# checks them three ways: against the NumPy update rules printed in the notes, against optax
# step by step, and by watching them on the Rosenbrock valley. It ends with learning-rate
# schedules (`functional.schedules`), which live inside the optimizer state.

# %%
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from jax import lax

from functional import optim, schedules

N_STEPS = 1000 if SMOKE else 3000  # steps on Rosenbrock (compile time dominates either way)
N_COMPARE = 100 if SMOKE else 500  # steps in the ours-vs-optax comparisons

# %% [markdown]
# ## 1. The test function: Rosenbrock's banana valley
#
# `f(x, y) = (1 - x)^2 + 100 (y - x^2)^2` has its minimum `f = 0` at `(1, 1)` at the bottom of
# a long curved valley whose floor is almost flat while its walls are steep, the situation
# the notes describe for momentum and RMSprop: large oscillation across the valley, slow
# progress along it.

# %%
def rosenbrock(p):
    return (1 - p["x"]) ** 2 + 100 * (p["y"] - p["x"] ** 2) ** 2


START = {"x": jnp.array(-1.5, jnp.float32), "y": jnp.array(2.0, jnp.float32)}


def run(opt, steps, start=START):
    """Applies ``opt`` for ``steps`` gradient steps; returns the path {x: [steps+1], y: ...}."""
    def step(carry, _):
        params, state = carry
        grads = jax.grad(rosenbrock)(params)
        updates, state = opt.update(grads, state, params)
        params = optim.apply_updates(params, updates)
        return (params, state), params

    _, path = lax.scan(step, (start, opt.init(start)), None, length=steps)
    return jax.tree.map(lambda s, p: jnp.concatenate([s[None], p]), start, path)


grid_x, grid_y = np.meshgrid(np.linspace(-2, 2, 201), np.linspace(-1, 3, 201))
grid_f = (1 - grid_x) ** 2 + 100 * (grid_y - grid_x ** 2) ** 2

# %% [markdown]
# ## 2. The notes' update rules, transcribed, vs ours
#
# The notes give NumPy versions (after cs231n) of momentum, RMSprop and Adam. Their Adam has
# **no bias correction** and their momentum keeps a velocity in parameter units
# (`v = mu v - lr g; w += v`), where optax and PyTorch accumulate raw gradients
# (`v = mu v + g; w -= lr v`). `functional.optim` makes each of these conventions a keyword,
# so the notes' rules are one call away:

# %%
def notes_momentum(w, dw, cfg):
    v = cfg["momentum"] * cfg.get("velocity", np.zeros_like(w)) - cfg["learning_rate"] * dw
    cfg["velocity"] = v
    return w + v


def notes_rmsprop(x, dx, cfg):
    cfg["cache"] = cfg["decay_rate"] * cfg.get("cache", np.zeros_like(x)) + (
        1 - cfg["decay_rate"]) * dx ** 2
    return x - cfg["learning_rate"] * dx / (np.sqrt(cfg["cache"]) + cfg["epsilon"])


def notes_adam(x, dx, cfg):  # as printed: no bias correction
    cfg["m"] = cfg["beta1"] * cfg.get("m", np.zeros_like(x)) + (1 - cfg["beta1"]) * dx
    cfg["v"] = cfg["beta2"] * cfg.get("v", np.zeros_like(x)) + (1 - cfg["beta2"]) * dx ** 2
    return x - cfg["learning_rate"] * cfg["m"] / (np.sqrt(cfg["v"]) + cfg["epsilon"])


def numpy_path(rule, cfg, steps):
    w = np.array([-1.5, 2.0])
    grad = jax.jit(jax.grad(lambda w: rosenbrock({"x": w[0], "y": w[1]})))
    path = [w]
    for _ in range(steps):
        w = rule(w, np.asarray(grad(w), np.float64), cfg)
        path.append(w)
    return np.array(path)


pairs = {
    "momentum": (notes_momentum, {"learning_rate": 1e-4, "momentum": 0.9},
                 optim.momentum(1e-4, 0.9, form="notes")),
    "rmsprop": (notes_rmsprop, {"learning_rate": 1e-3, "decay_rate": 0.99, "epsilon": 1e-8},
                optim.rmsprop(1e-3, decay=0.99, eps=1e-8, eps_in_sqrt=False)),
    "adam (no bias correction)": (
        notes_adam, {"learning_rate": 1e-2, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8},
        optim.adam(1e-2, bias_correction=False)),
}
for name, (rule, cfg, ours) in pairs.items():
    ref = numpy_path(rule, cfg, N_COMPARE)
    path = run(ours, N_COMPARE)
    got = np.stack([path["x"], path["y"]], axis=1)
    err = np.abs(got - ref).max()
    print(f"{name:26s}: max |ours - notes| over {N_COMPARE} steps = {err:.1e}")
    np.testing.assert_allclose(got, ref, rtol=2e-4, atol=2e-5)

# %% [markdown]
# Why bias correction matters: `m` and `v` start at zero, so early on they underestimate the
# gradient's moments. Without correction the first step is `lr * 0.1 g / sqrt(0.001 g^2)`,
# about `3.16 lr` in every coordinate; with it (Kingma & Ba, optax, `optim.adam`'s default)
# the first step is exactly `lr` per coordinate.

# %%
first = {}
for label, opt in [("notes", optim.adam(0.01, bias_correction=False)),
                   ("paper", optim.adam(0.01))]:
    path = run(opt, 1)
    first[label] = np.array([path["x"][1] - path["x"][0], path["y"][1] - path["y"][0]])
    print(f"{label}: first step {first[label]}")
np.testing.assert_allclose(np.abs(first["paper"]), 0.01, rtol=1e-4)
np.testing.assert_allclose(np.abs(first["notes"]), 0.01 * 0.1 / np.sqrt(0.001), rtol=1e-4)

# %% [markdown]
# ## 3. Ours vs optax, step by step
#
# The same optimizers (optax's defaults where it has them) from both libraries, run on
# Rosenbrock; the iterates must agree to float32 rounding at every step.

# %%
cosine = dict(init_value=0.01, decay_steps=N_COMPARE)
comparisons = {
    "sgd": (optim.sgd(1e-3), optax.sgd(1e-3)),
    "momentum": (optim.momentum(1e-4, 0.9), optax.sgd(1e-4, momentum=0.9)),
    "nesterov": (optim.nesterov(1e-4, 0.9), optax.sgd(1e-4, momentum=0.9, nesterov=True)),
    "adagrad": (optim.adagrad(0.1), optax.adagrad(0.1)),
    "rmsprop": (optim.rmsprop(1e-2), optax.rmsprop(1e-2)),
    "adadelta": (optim.adadelta(1.0), optax.adadelta(1.0)),
    "adam": (optim.adam(1e-2), optax.adam(1e-2)),
    "adamw": (optim.adamw(1e-2, weight_decay=0.1), optax.adamw(1e-2, weight_decay=0.1)),
    "nadam": (optim.nadam(1e-2), optax.nadam(1e-2)),
    "adam + cosine schedule": (optim.adam(schedules.cosine_decay(**cosine)),
                               optax.adam(optax.cosine_decay_schedule(**cosine))),
}
for name, (ours, theirs) in comparisons.items():
    a, b = run(ours, N_COMPARE), run(theirs, N_COMPARE)
    err = max(float(jnp.abs(a[k] - b[k]).max()) for k in a)
    print(f"{name:24s}: max |ours - optax| = {err:.1e}")
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=name)

# %% [markdown]
# Because both follow the same contract they also mix: an optax transform inside our chain
# and ours inside optax's.

# %%
mixed_a = run(optim.chain(optax.clip_by_global_norm(1.0), optim.adam(1e-2)), N_COMPARE)
mixed_b = run(optax.chain(optim.clip_by_global_norm(1.0), optax.adam(1e-2)), N_COMPARE)
for k in mixed_a:
    np.testing.assert_allclose(mixed_a[k], mixed_b[k], rtol=1e-5, atol=1e-6)
print("mixed chains agree")

# %% [markdown]
# ## 4. Trajectories on Rosenbrock
#
# Each optimizer with a learning rate that is reasonable for it (plain SGD must stay below
# `2 / curvature` across the steep walls, so it crawls along the floor).

# %%
racers = {
    "sgd 1e-3": optim.sgd(1e-3),
    "momentum 1e-3, 0.9": optim.momentum(1e-3, 0.9),
    "nesterov 1e-3, 0.9": optim.nesterov(1e-3, 0.9),
    "adagrad 1.0": optim.adagrad(1.0),
    "rmsprop 3e-3": optim.rmsprop(3e-3),
    "adam 0.05": optim.adam(0.05),
}
paths, finals = {}, {}
for name, opt in racers.items():
    paths[name] = run(opt, N_STEPS)
    finals[name] = float(rosenbrock(jax.tree.map(lambda a: a[-1], paths[name])))

fig, ax = plt.subplots(figsize=(7, 6))
ax.contour(grid_x, grid_y, np.log10(grid_f + 1e-3), levels=25, cmap="Greys", linewidths=0.6)
for name, path in paths.items():
    ax.plot(path["x"], path["y"], lw=1.2, label=f"{name}: f = {finals[name]:.1e}")
ax.plot([1], [1], "k*", ms=12)
ax.plot([START["x"]], [START["y"]], "ko")
ax.set(xlim=(-2, 2), ylim=(-1, 3), title=f"{N_STEPS} steps from (-1.5, 2)")
ax.legend(fontsize=8, loc="lower right")
plt.show()
for name, value in finals.items():
    print(f"{name:20s} f = {value:.2e}")

# %% [markdown]
# With the same learning rate, momentum travels along the flat valley floor much faster than
# plain SGD, and the adaptive methods (which scale each coordinate by its own gradient size)
# make steady progress too.

# %%
assert all(np.isfinite(v) for v in finals.values())
assert finals["momentum 1e-3, 0.9"] < 0.1 * finals["sgd 1e-3"]
assert finals["nesterov 1e-3, 0.9"] < 0.1 * finals["sgd 1e-3"]
assert finals["adam 0.05"] < finals["sgd 1e-3"]
assert min(finals.values()) < 1e-3

# %% [markdown]
# ## 5. Learning-rate schedules
#
# A schedule is a function of the step count. Passed as `learning_rate`, it is evaluated on
# the count in the optimizer state inside the compiled step, so the rate changes every step
# without recompiling, and `optim.current_learning_rate(state)` reads it back.
#
# The notes' decays (seed 004 section 4.8) count epochs from 1: with `lr0 = 0.2` and
# `decay_rate = 1`, `lr = lr0 / (1 + decay_rate * epoch)` gives 0.1, 0.067, 0.05, 0.04.

# %%
inv = schedules.inverse_time_decay(0.2, 1.0)
values = [float(inv(jnp.array(t))) for t in range(4)]
print("inverse time decay, epochs 1-4:", np.round(values, 3))
np.testing.assert_allclose(values, [0.1, 0.2 / 3, 0.05, 0.04], rtol=1e-6)

steps_per_epoch, total = 10, 300
catalogue = {
    "constant 0.1": schedules.constant(0.1),
    "step_decay (x0.5 / 5 epochs)": schedules.step_decay(0.1, 0.5, 5,
                                                         steps_per_epoch=steps_per_epoch),
    "inverse_time_decay (notes)": schedules.inverse_time_decay(
        0.1, 0.3, steps_per_epoch=steps_per_epoch, first_epoch=0),
    "0.95^epoch (notes)": schedules.epoch_exponential_decay(
        0.1, 0.95, steps_per_epoch=steps_per_epoch, first_epoch=0),
    "k / sqrt(epoch) (notes)": schedules.inverse_sqrt_decay(0.1,
                                                            steps_per_epoch=steps_per_epoch),
    "cosine": schedules.cosine_decay(0.1, total),
    "warmup + cosine": schedules.warmup(schedules.cosine_decay(0.1, total - 30), 30),
}
t = jnp.arange(total)
plt.figure(figsize=(7, 3.5))
for name, fn in catalogue.items():
    plt.plot(t, jax.vmap(fn)(t), label=name)
plt.xlabel("step")
plt.ylabel("learning rate")
plt.legend(fontsize=7)
plt.show()

# the general schedules are optax's, value for value
np.testing.assert_allclose(jax.vmap(catalogue["cosine"])(t),
                           jax.vmap(optax.cosine_decay_schedule(0.1, total))(t), rtol=1e-6)
np.testing.assert_allclose(
    jax.vmap(catalogue["warmup + cosine"])(t),
    jax.vmap(optax.warmup_cosine_decay_schedule(0.0, 0.1, 30, total, 0.0))(t),
    rtol=1e-5, atol=1e-8)

# %% [markdown]
# The rate lives in the optimizer state: after `n` updates the state holds `schedule(n)`,
# and `optim.set_learning_rate` overrides it (for example on a plateau) without tracing the
# step function again. We count traces with a Python side effect, which runs only while
# tracing:

# %%
traces = []
sched = schedules.exponential_decay(0.05, 10, 0.5)
opt = optim.adam(sched)


@jax.jit
def adam_step(params, state):
    traces.append(1)
    grads = jax.grad(rosenbrock)(params)
    updates, state = opt.update(grads, state, params)
    return optim.apply_updates(params, updates), state


params, state = START, opt.init(START)
for n in range(1, 31):
    params, state = adam_step(params, state)
    assert np.isclose(optim.current_learning_rate(state), sched(n), rtol=1e-6)
state = optim.set_learning_rate(state, 1e-3)
params, state = adam_step(params, state)
print(f"rate after 30 steps {float(sched(30)):.2e}; overridden to 1e-3; traces: {len(traces)}")
assert len(traces) == 1
assert np.isclose(optim.current_learning_rate(state), sched(31), rtol=1e-6)  # back on schedule

# %% [markdown]
# **Summary.** Momentum averages gradients so that oscillations across a valley cancel and
# progress along it accumulates; RMSprop and Adagrad divide each coordinate by the size of
# its recent gradients; Adam does both, with bias correction for the zero start. The notes'
# printed rules are special cases selected by keywords, and every rule matches optax step by
# step.
