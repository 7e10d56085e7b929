# %% [markdown]
# # 01 Gradients and gradient descent
#
# What a gradient is, why stepping against it is the fastest way down, and the practical side
# of gradient descent from the notes: batch, stochastic and mini-batch updates and what the batch
# size trades, feature scaling, the learning rate and its decay, and what gradient descent cannot
# do (local minima, saddles). Every claim below is checked by an `assert`, so this notebook
# doubles as a test (CI runs it in smoke mode).

# %%
import time
from functools import partial

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from jax import lax

from functional import schedules
from functional.losses import half_sse
from train.datasets import standardize

N_EXAMPLES = 256 if SMOKE else 2048
EPOCHS = 8 if SMOKE else 40
N_ANGLES = 720 if SMOKE else 3600

# %% [markdown]
# ## 1. The gradient points uphill; its negative is the steepest way down
#
# The notes ask: if we may move a fixed small distance `sqrt(dx^2 + dy^2) = eps` in the
# (x, y) plane, which `(dx, dy)` makes `f(x, y) - f(x + dx, y + dy)` largest? The answer is the
# direction of `-grad f`. Their examples:
#
# | f(x, y) | gradient | steepest descent direction |
# | --- | --- | --- |
# | `3x` | `(3, 0)` | `(-1, 0)` |
# | `3x + 2y` | `(3, 2)` | `(-3, -2)` |
# | `xy` at `(1, 4)` | `(y, x) = (4, 1)` | `(-4, -1)` |
#
# `jax.grad` gives the same vectors:

# %%
examples = {
    "3x": (lambda p: 3 * p[0], jnp.array([0.3, -0.7]), [3.0, 0.0]),
    "3x + 2y": (lambda p: 3 * p[0] + 2 * p[1], jnp.array([0.3, -0.7]), [3.0, 2.0]),
    "xy": (lambda p: p[0] * p[1], jnp.array([1.0, 4.0]), [4.0, 1.0]),
}
for name, (f, point, expected) in examples.items():
    g = jax.grad(f)(point)
    print(f"f = {name:8s} at {np.asarray(point)}: grad = {np.asarray(g)}")
    np.testing.assert_allclose(g, expected, rtol=1e-6)

# %% [markdown]
# Now the question itself, by brute force: try every direction on a small circle of radius
# `eps` around the point and keep the one that lowers `f` the most.

# %%
eps = 1e-3
angles = jnp.linspace(-jnp.pi, jnp.pi, N_ANGLES, endpoint=False)
units = jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=1)  # <f32>[N_ANGLES, 2]

fig, axes = plt.subplots(1, 3, figsize=(12, 3))
for ax, (name, (f, point, _)) in zip(axes, examples.items(), strict=True):
    decrease = f(point) - jax.vmap(f)(point + eps * units)
    best = angles[jnp.argmax(decrease)]
    g = jax.grad(f)(point)
    steepest = jnp.arctan2(-g[1], -g[0])
    gap = jnp.abs(jnp.angle(jnp.exp(1j * (best - steepest))))  # wrap to [0, pi]
    print(f"{name:8s}: best angle {np.degrees(best):7.2f} deg, -grad at "
          f"{np.degrees(steepest):7.2f} deg")
    assert gap < np.radians(0.5), (name, gap)  # float32 rounding and the eps^2 term
    ax.plot(np.degrees(angles), decrease / eps)
    ax.axvline(np.degrees(steepest), color="C3", ls="--", label="direction of -grad")
    ax.set(title=f"f = {name}", xlabel="direction (degrees)", ylabel="decrease / eps")
axes[0].legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# The largest decrease per unit step is exactly `|grad f|` (the height of each curve's peak):
# the first-order change along a unit direction `u` is `grad f . u`, which is most negative
# when `u = -grad f / |grad f|`. That is all gradient descent uses: repeat
# `theta <- theta - alpha * grad f(theta)`.
#
# On an elongated bowl `f = x^2 + 10 y^2` the steepest direction is perpendicular to the
# contour lines, not towards the minimum, so the path zig-zags:

# %%
bowl = lambda p: p[0] ** 2 + 10 * p[1] ** 2


def descend(f, start, lr, steps):
    """Plain gradient descent; returns the visited points <f32>[steps + 1, 2]."""
    def step(p, _):
        p = p - lr * jax.grad(f)(p)
        return p, p
    _, path = lax.scan(step, start, None, length=steps)
    return jnp.concatenate([start[None], path])


path = descend(bowl, jnp.array([-4.5, 1.5]), lr=0.09, steps=40)
xx, yy = np.meshgrid(np.linspace(-5, 5, 101), np.linspace(-2, 2, 81))
plt.figure(figsize=(6, 3))
plt.contour(xx, yy, xx ** 2 + 10 * yy ** 2, levels=20, cmap="viridis")
plt.plot(path[:, 0], path[:, 1], "o-", color="C3", ms=3)
plt.title("steepest descent on x^2 + 10 y^2 (lr 0.09)")
plt.show()
assert bowl(path[-1]) < 1e-3 * bowl(path[0])
# each step is orthogonal-ish to the contour: the y coordinate flips sign (zig-zag)
assert jnp.all(jnp.sign(path[1:8, 1]) != jnp.sign(path[:7, 1]))

# %% [markdown]
# ## 2. Batch, stochastic and mini-batch gradient descent
#
# A linear unit `y_hat = x . w + b` trained with the notes' error `E = 1/2 (y - y_hat)^2`
# (averaged over the examples used in a step). The three flavours differ only in how many
# examples each step looks at:
#
# * **batch** GD: all `n` examples per step; one step per epoch, smooth progress;
# * **stochastic** GD: one example per step; `n` noisy steps per epoch;
# * **mini-batch** GD: `b` examples per step (here 32), the usual compromise.
#
# One jitted function trains all three: an epoch is a `lax.scan` over the shuffled batches.
# It also takes a learning-rate decay for section 5.

# %%
rng = np.random.default_rng(0)
true_w = np.array([2.0, -3.0, 0.5], dtype=np.float32)
x_data = rng.normal(size=(N_EXAMPLES, 3)).astype(np.float32)
y_data = (x_data @ true_w + 1.0 + 0.3 * rng.normal(size=N_EXAMPLES)).astype(np.float32)


def predict(params, x):
    return x @ params["w"] + params["b"]


def loss_fn(params, x, y):
    return half_sse(predict(params, x), y)  # mean over the examples of 1/2 (y - y_hat)^2


@partial(jax.jit, static_argnames=("batch_size", "epochs"))
def train_linear(params, x, y, key, lr, decay=0.0, *, batch_size, epochs):
    """Returns the final params and the full-data loss after every step.

    The learning rate in epoch e is lr / (1 + decay * e) (the notes' decay formula).
    """
    n = x.shape[0]
    steps = n // batch_size

    def epoch(params, inputs):
        e, k = inputs
        perm = jax.random.permutation(k, n)[: steps * batch_size].reshape(steps, batch_size)
        alpha = lr / (1.0 + decay * e)

        def step(params, idx):
            grads = jax.grad(loss_fn)(params, x[idx], y[idx])
            params = jax.tree.map(lambda p, g: p - alpha * g, params, grads)
            return params, loss_fn(params, x, y)

        return lax.scan(step, params, perm)

    params, losses = lax.scan(epoch, params, (jnp.arange(epochs), jax.random.split(key, epochs)))
    return params, losses.reshape(-1)


params0 = {"w": jnp.zeros(3), "b": jnp.zeros(())}
# the least-squares optimum, solved directly, for reference
design = np.hstack([x_data, np.ones((N_EXAMPLES, 1), np.float32)])
coef = np.linalg.lstsq(design, y_data, rcond=None)[0]
best_loss = float(loss_fn({"w": coef[:3], "b": coef[3]}, x_data, y_data))

runs = {"batch (b = n)": (N_EXAMPLES, 0.5), "mini-batch (b = 32)": (32, 0.2),
        "stochastic (b = 1)": (1, 0.005)}
results = {}
plt.figure(figsize=(7, 3.5))
for label, (b, lr) in runs.items():
    params, losses = train_linear(params0, x_data, y_data, jax.random.key(1), lr,
                                  batch_size=b, epochs=EPOCHS)
    results[label] = (params, np.asarray(losses))
    seen = np.arange(1, len(losses) + 1) * b
    plt.semilogy(seen / N_EXAMPLES, losses - best_loss + 1e-6, label=f"{label}, lr {lr}")
    print(f"{label:20s}: {len(losses):6d} steps, final loss {losses[-1]:.5f} "
          f"(optimum {best_loss:.5f})")
plt.xlabel("epochs (examples seen / n)")
plt.ylabel("loss - optimum")
plt.legend()
plt.show()

# %% [markdown]
# All three reach the least-squares answer. Batch descent decreases the loss at every step;
# stochastic descent gets there in fewer epochs but its full-data loss goes up and down.

# %%
for label, (params, losses) in results.items():
    assert losses[-1] < best_loss * 1.02, (label, losses[-1], best_loss)
    np.testing.assert_allclose(params["w"], coef[:3], atol=0.03)
batch_losses = results["batch (b = n)"][1]
sgd_losses = results["stochastic (b = 1)"][1]
assert np.all(np.diff(batch_losses) <= 1e-7), "batch GD with a small lr descends monotonically"
assert np.sum(np.diff(sgd_losses) > 0) > 0.1 * len(sgd_losses), "SGD's loss is noisy"

# %% [markdown]
# ## 3. What the batch size trades, beyond steps per epoch
#
# The notes (seed 004 section 4.4.2) list what a larger batch buys and costs: fewer iterations
# per epoch and better use of parallel hardware, a more accurate descent direction with less
# oscillation, but more time (more examples) to reach the same accuracy, and beyond some size
# the direction hardly improves. Each of those is measurable. A fresh problem of fixed size (the
# same in smoke and full mode): a linear unit with 16 standard-normal features and 1,024
# training examples `y = x . w_true + 0.5 * noise`.
#
# **Gradient noise.** A mini-batch gradient is the mean of `b` per-example gradients drawn
# without replacement, so its squared distance from the full-batch gradient has expectation
# `sigma^2 / b * (n - b) / (n - 1)`, where `sigma^2` is the per-example gradients' variance:
# quadrupling the batch quarters the noise. We measure it at the least-squares optimum, where the
# full gradient is zero and every bit of a mini-batch gradient is noise (per-example gradients
# under `jax.default_matmul_precision('highest')`, so that TPU/GPU matmul rounding does not add
# noise of its own).

# %%
rng_bs = np.random.default_rng(3)
N_BS, D_BS, NOISE_BS = 1024, 16, 0.5
w_bs = rng_bs.normal(size=D_BS).astype(np.float32)
x_bs = rng_bs.normal(size=(N_BS, D_BS)).astype(np.float32)
y_bs = (x_bs @ w_bs + NOISE_BS * rng_bs.normal(size=N_BS)).astype(np.float32)

design_bs = np.hstack([x_bs, np.ones((N_BS, 1))]).astype(np.float64)
coef_bs = np.linalg.lstsq(design_bs, y_bs.astype(np.float64), rcond=None)[0]
optimum_bs = {"w": jnp.asarray(coef_bs[:-1], jnp.float32),
              "b": jnp.asarray(coef_bs[-1], jnp.float32)}
with jax.default_matmul_precision("highest"):
    per_example = jax.vmap(jax.grad(loss_fn), in_axes=(None, 0, 0))(
        optimum_bs, x_bs[:, None], y_bs[:, None])
g_i = np.hstack([np.asarray(per_example["w"]).reshape(N_BS, -1),
                 np.asarray(per_example["b"]).reshape(N_BS, 1)]).astype(np.float64)
g_full = g_i.mean(axis=0)
sigma2 = float(np.mean(np.sum((g_i - g_full) ** 2, axis=1)))
print(f"|full gradient| at the optimum {np.linalg.norm(g_full):.1e}; per-example variance "
      f"{sigma2:.3f}")
noise = {}
for b in (1, 4, 16, 64, 256):
    draws = []
    for _ in range(max(1, 256 * b // N_BS)):  # about 256 mini-batches per size
        batches = rng_bs.permutation(N_BS)[: N_BS // b * b].reshape(-1, b)
        draws.append(np.sum((g_i[batches].mean(axis=1) - g_full) ** 2, axis=1))
    noise[b] = (float(np.mean(np.concatenate(draws))), sigma2 / b * (N_BS - b) / (N_BS - 1))
    print(f"b = {b:3d}: E|g_b - g|^2 = {noise[b][0]:.4f}, predicted {noise[b][1]:.4f}")
plt.figure(figsize=(4.5, 3))
plt.loglog(list(noise), [v[0] for v in noise.values()], "o", label="measured")
plt.loglog(list(noise), [v[1] for v in noise.values()], "-", label="sigma^2 / b * (n-b)/(n-1)")
plt.xlabel("batch size b")
plt.ylabel("gradient noise")
plt.legend()
plt.show()
for b, (measured, predicted) in noise.items():
    assert abs(measured / predicted - 1) < 0.25, (b, measured, predicted)
assert noise[4][0] > 3 * noise[16][0] > 9 * noise[64][0]

# %% [markdown]
# **Equal epochs vs equal steps.** Same learning rate (0.1) for every batch size. Given the
# same number of *epochs* (examples seen), the small batch (8) has taken 16 times more steps
# and is far ahead; given the same number of *steps*, the large batch has seen more examples
# and its less noisy steps settle closer to the optimum. We measure generalization exactly: for
# standard-normal inputs the expected loss on new examples is
# `1/2 (0.5^2 + |w - w_true|^2 + bias^2)`, so its excess over the noise's `1/2 0.5^2` is
# `1/2 (|w - w_true|^2 + bias^2)` (no test-set sampling error). Wall time per epoch
# is printed, not asserted: it depends on the machine and its load, and this model is so small
# that fixed per-call costs dominate. On parallel hardware a step on 128 examples costs far less
# than 16 steps on 8 (the notes' "faster per epoch"), which is why large batches are used at all.

# %%
LR_BS = 0.1


def excess_test_loss(params):
    """Expected loss on new examples minus the noise's share (exact for normal inputs)."""
    return 0.5 * float(np.sum((np.asarray(params["w"]) - w_bs) ** 2) + params["b"] ** 2)


p0_bs = {"w": jnp.zeros(D_BS), "b": jnp.zeros(())}
bs_runs = {"b = 8, 2 epochs": (8, 2), "b = 128, 2 epochs": (128, 2),
           "b = 128, 32 epochs": (128, 32)}
excess, seconds = {}, {}
for label, (b, epochs) in bs_runs.items():
    args = (p0_bs, x_bs, y_bs, jax.random.key(4), LR_BS)
    compiled = train_linear.lower(*args, batch_size=b, epochs=epochs).compile()
    t0 = time.perf_counter()
    params_bs, _ = jax.block_until_ready(compiled(*args))
    seconds[label] = (time.perf_counter() - t0) / epochs
    excess[label] = excess_test_loss(params_bs)
    print(f"{label:18s}: {N_BS // b * epochs:4d} steps, excess test loss {excess[label]:.2e}, "
          f"{1e3 * seconds[label]:.2f} ms per epoch")
print(f"least-squares solution: excess test loss {excess_test_loss(optimum_bs):.2e}")
# equal epochs: 16x more steps wins (4.5-40x lower excess over data seeds 0-3)
assert excess["b = 8, 2 epochs"] < 0.3 * excess["b = 128, 2 epochs"]
# equal steps (256 each): the larger batch's quieter steps end nearer the optimum (5-10x)
assert excess["b = 128, 32 epochs"] < 0.5 * excess["b = 8, 2 epochs"]

# %% [markdown]
# The noise falls as `1 / b`, so every doubling of the batch buys less in absolute terms: the
# notes' "beyond some size the direction no longer changes". A common further worry, that very
# large batches generalize worse (sharp minima, Keskar et al. 2017), needs a non-convex model
# and much more data to show; a linear unit has one minimum, so here the test loss simply
# follows how far training got. What holds everywhere: compare batch sizes both at equal
# *steps* (compute on parallel hardware) and at equal *epochs* (data), because the answers differ.

# %% [markdown]
# ## 4. Feature scaling
#
# When features live on very different ranges the error surface is a long narrow valley: the
# learning rate must be small enough for the steep direction, so progress along the flat one
# crawls. Standardizing each feature (zero mean, unit variance, fitted on the training data:
# `train.datasets.standardize`) makes the bowl round.
#
# The curvature of the mean squared error is `H = X^T X / n`; gradient descent is stable for
# `lr < 2 / lambda_max` and its slowest direction shrinks by `1 - lr * lambda_min` per step, so
# the condition number `lambda_max / lambda_min` sets the number of steps.

# %%
x_raw = np.stack([rng.uniform(0, 1, N_EXAMPLES), rng.uniform(0, 1000, N_EXAMPLES)],
                 axis=1).astype(np.float32)
y_raw = (x_raw @ np.array([3.0, 0.004], np.float32) + 0.1 * rng.normal(size=N_EXAMPLES)
         ).astype(np.float32)
scaler = standardize(x_raw)
x_scaled = scaler.transform(x_raw)


def curvature(x):
    design = np.hstack([x, np.ones((len(x), 1))]).astype(np.float64)
    return np.linalg.eigvalsh(design.T @ design / len(x))


steps_fs = 100 if SMOKE else 500
fs = {}
for label, x in [("raw", x_raw), ("standardized", x_scaled)]:
    eig = curvature(x)
    lr = 1.0 / eig.max()  # the largest safe-and-fast rate for this surface
    p0 = {"w": jnp.zeros(2), "b": jnp.zeros(())}
    _, losses = train_linear(p0, x, y_raw, jax.random.key(0), lr, batch_size=N_EXAMPLES,
                             epochs=steps_fs)
    design = np.hstack([x, np.ones((N_EXAMPLES, 1), np.float32)])
    c = np.linalg.lstsq(design, y_raw, rcond=None)[0]
    opt = float(loss_fn({"w": c[:2], "b": c[2]}, x, y_raw))
    fs[label] = (eig.max() / eig.min(), np.asarray(losses) - opt)
    print(f"{label:12s}: condition number {eig.max() / eig.min():12.1f}, "
          f"excess loss after {steps_fs} steps {losses[-1] - opt:.2e}")
    plt.semilogy(np.maximum(np.asarray(losses) - opt, 1e-7), label=label)
plt.xlabel("batch GD step")
plt.ylabel("loss - optimum")
plt.legend()
plt.title("feature scaling")
plt.show()
assert fs["raw"][0] > 1e4 * fs["standardized"][0]
assert fs["standardized"][1][-1] < 1e-3   # 0 in float32; ~5e-5 with bfloat16 matmuls (TPU)
assert fs["raw"][1][-1] > 1e3 * max(fs["standardized"][1][-1], 1e-7)

# %% [markdown]
# ## 5. The learning rate, and decaying it
#
# On a one-dimensional bowl `f(w) = lambda/2 w^2` a step multiplies `w` by `1 - lr * lambda`:
# too small a rate crawls, `lr = 1/lambda` lands in one step, between `1/lambda` and
# `2/lambda` the iterate overshoots and oscillates, and beyond `2/lambda` it diverges
# (the notes' "jumps over the minimum").

# %%
lam = 4.0
rates = {"0.1 / lambda (too small)": 0.025, "1 / lambda": 0.25, "1.8 / lambda": 0.45,
         "2.1 / lambda (diverges)": 0.525}
finals = {}
plt.figure(figsize=(6, 3))
for label, lr in rates.items():
    path = descend(lambda p: lam / 2 * p[0] ** 2 + 0 * p[1], jnp.array([1.0, 0.0]), lr, 20)
    finals[label] = abs(float(path[-1, 0]))
    plt.plot(path[:, 0], "o-", ms=3, label=label)
plt.ylim(-3, 3)
plt.xlabel("step")
plt.ylabel("w")
plt.legend(fontsize=8)
plt.show()
assert finals["1 / lambda"] < 1e-6
assert 1e-3 < finals["1.8 / lambda"] < finals["0.1 / lambda (too small)"] < 1
assert finals["2.1 / lambda (diverges)"] > 1

# %% [markdown]
# With stochastic updates a constant learning rate never settles: each step follows one
# example's gradient, so the parameters keep jittering around the optimum at a level set by
# the rate. The notes decay it per epoch,
# `alpha = alpha_0 / (1 + decay_rate * epoch_num)`, which keeps early progress fast and
# shrinks the jitter later.

# %%
decay_runs = {}
for label, decay in [("constant", 0.0), ("decay_rate = 1", 1.0)]:
    _, losses = train_linear(params0, x_data, y_data, jax.random.key(2), 0.03, decay,
                             batch_size=1, epochs=EPOCHS)
    losses = np.asarray(losses)
    decay_runs[label] = losses[-N_EXAMPLES:].mean() - best_loss  # mean excess in the last epoch
    plt.semilogy(np.arange(len(losses)) / N_EXAMPLES, losses - best_loss + 1e-7, label=label,
                 alpha=0.8)
    print(f"{label:15s}: mean excess loss in the last epoch {decay_runs[label]:.2e}")
plt.xlabel("epoch")
plt.ylabel("loss - optimum")
plt.legend()
plt.title("SGD, lr 0.03")
plt.show()
assert decay_runs["decay_rate = 1"] < 0.3 * decay_runs["constant"]

# The same decay as a reusable schedule (a function of the step count; notebook 03):
# with first_epoch=0 it is the rate used in epoch e above.
decay_fn = schedules.inverse_time_decay(0.03, 1.0, steps_per_epoch=N_EXAMPLES, first_epoch=0)
for e in range(3):
    np.testing.assert_allclose(decay_fn(e * N_EXAMPLES + 5), 0.03 / (1 + e), rtol=1e-6)

# %% [markdown]
# ## 6. A slip in the notes' training loop
#
# The notes' NumPy loop for a sigmoid unit (seed 004 section 5.1) accumulates
# `del_w += learnrate * error_term * x` over the records but then applies
# `weights += np.dot(error_term, x)`: only the **last** record's term, with the learning rate
# dropped, and, since its `error = output - y`, with the sign of gradient *ascent*. The
# intended update is `weights -= del_w / n_records`. Transcribed both ways:

# %%
def sigmoid_np(z):
    return 1 / (1 + np.exp(-z))


feat = rng.normal(size=(200, 3))
targ = (feat @ np.array([1.5, -2.0, 0.5]) + 0.3 * rng.normal(size=200) > 0).astype(float)


def notes_loop(fixed, epochs=100, learnrate=0.5):
    weights = np.random.default_rng(42).normal(scale=1 / 3 ** 0.5, size=3)
    losses = []
    for _ in range(epochs):
        del_w = np.zeros(3)
        for x, y in zip(feat, targ, strict=True):
            output = sigmoid_np(np.dot(x, weights))
            error_term = (output - y) * output * (1 - output)
            del_w += learnrate * error_term * x
        if fixed:
            weights -= del_w / len(feat)  # descend along the mean gradient
        else:
            weights += np.dot(error_term, x)  # as printed
        losses.append(np.mean((sigmoid_np(feat @ weights) - targ) ** 2))
    return np.array(losses)


as_printed, corrected = notes_loop(fixed=False), notes_loop(fixed=True)
print(f"MSE after 100 epochs: as printed {as_printed[-1]:.3f}, corrected {corrected[-1]:.3f}")
assert corrected[-1] < 0.1 < as_printed[-1]
assert np.all(np.diff(corrected) < 0)

# %% [markdown]
# ## 7. What gradient descent cannot do: local minima and saddles
#
# The notes (seed 004 section 5.2) ask whether gradient descent is a universal training
# algorithm, and answer no: besides functions without gradients and badly conditioned ones
# (section 4), it cannot cope with many local optima. Gradient descent only ever sees the slope
# where it stands. On the surface
# `f(x, y) = x^4 / 4 + 0.15 x^3 - x^2 / 2 + y^2 / 2` there are two minima, at `x = -1.25`
# (the global one) and `x = 0.8` (a local one, higher), with a saddle point at the origin
# between them: a minimum along `y`, a maximum along `x`. We run the same gradient descent
# (lr 0.1, 300 steps) from a row of starting points, and twice from near the saddle.

# %%
C_TILT = 0.15


def surface(p):
    """f(x, y) for p = (x, y); also works on NumPy arrays of points (x and y rows)."""
    return p[0] ** 4 / 4 + C_TILT * p[0] ** 3 - p[0] ** 2 / 2 + p[1] ** 2 / 2


# stationary points along x: x (x^2 + 3c x - 1) = 0, i.e. x = 0 and the two minima
x_global, x_local = np.sort(np.roots([1.0, 3 * C_TILT, -1.0]))
f_global, f_local = (float(surface(np.array([x, 0.0]))) for x in (x_global, x_local))


@jax.jit
def descend_from(starts, lr=0.1, steps=300):
    """Gradient descent from each row of starts; returns paths and gradient norms."""
    def run(start):
        def step(p, _):
            g = jax.grad(surface)(p)
            return p - lr * g, (p, jnp.linalg.norm(g))
        _, (path, gnorm) = lax.scan(step, start, None, length=steps)
        return path, gnorm
    return jax.vmap(run)(starts)


row = np.array([[x0, 1.5] for x0 in np.linspace(-2, 2, 8)], np.float32)  # x0 != 0
near_saddle = np.array([[0.0, 1.8], [1e-6, 1.8]], np.float32)
paths, gnorms = descend_from(jnp.asarray(np.vstack([row, near_saddle])))
paths, gnorms = np.asarray(paths), np.asarray(gnorms)
ends = paths[:, -1]

xx, yy = np.meshgrid(np.linspace(-2.2, 2.2, 121), np.linspace(-2, 2, 101))
zz = surface(np.stack([xx, yy]))
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
axes[0].contour(xx, yy, zz, levels=30, cmap="viridis")
for i, path in enumerate(paths):
    axes[0].plot(path[:, 0], path[:, 1], "-", color="C3" if i < len(row) else "C1", lw=1)
axes[0].plot([x_global, x_local, 0], [0, 0, 0], "k*", ms=10)
axes[0].set(title="GD paths (stars: global min, local min, saddle)", xlabel="x", ylabel="y")
axes[1].semilogy(gnorms[-2], label="start (0, 1.8): on the ridge")
axes[1].semilogy(gnorms[-1], label="start (1e-6, 1.8)")
axes[1].set(xlabel="step", ylabel="|grad f|", title="near the saddle")
axes[1].legend()
plt.tight_layout()
plt.show()
for (x0, y0), (x1, y1) in zip(row, ends[: len(row)], strict=True):
    print(f"start ({x0:5.2f}, {y0:.1f}) -> ({x1:6.3f}, {y1:.0e}), "
          f"f = {surface(np.array([x1, y1])):.3f}")
print(f"global minimum f = {f_global:.3f}, local minimum f = {f_local:.3f}")

# %% [markdown]
# Which minimum gradient descent finds depends only on where it starts: every start left of the
# ridge `x = 0` ends in the global minimum, every start right of it in the local one, although
# that one is worse by 0.32, and nothing in the slope at the end says so. The Hessian
# (`jax.hessian`) tells the stationary points apart: positive definite at a minimum, one
# negative eigenvalue at a saddle.

# %%
for (x0, _), end in zip(row, ends[: len(row)], strict=True):
    np.testing.assert_allclose(end, [x_global if x0 < 0 else x_local, 0.0], atol=1e-3)
assert f_local > f_global + 0.3
hessian = jax.jit(jax.hessian(surface))
for point in ([x_global, 0.0], [x_local, 0.0]):
    assert np.linalg.eigvalsh(np.asarray(hessian(jnp.array(point)))).min() > 0.5
assert np.linalg.eigvalsh(np.asarray(hessian(jnp.zeros(2)))).min() < -0.5

# %% [markdown]
# And the saddle. Started exactly on the ridge, `x` stays 0 (its gradient is exactly 0 there):
# gradient descent converges to the saddle and stops, a point with zero gradient that is no
# minimum. Started a hair off it (`x = 1e-6`), it first slides down into the saddle, where the
# gradient almost vanishes, and lingers there for dozens of steps (the `x` offset grows only
# by a factor `1 + lr = 1.1` per step) before it escapes to the local minimum. In
# high-dimensional networks saddles are far more common than bad local minima (Dauphin et al.
# 2014): plateaus in a loss curve are often this.

# %%
on_ridge, off_ridge = 8, 9  # rows of paths
print(f"from (0, 1.8): ends at {ends[on_ridge]}, |grad| {gnorms[on_ridge, -1]:.1e}")
stalled = (gnorms[off_ridge] < 1e-2) & (surface(paths[off_ridge].T) > f_local + 0.1)
print(f"from (1e-6, 1.8): {int(stalled.sum())} steps with |grad| < 0.01 far above any minimum,"
      f" then ends at {np.round(ends[off_ridge], 3)}")
assert np.all(paths[on_ridge][:, 0] == 0) and gnorms[on_ridge, -1] < 1e-6
assert stalled.sum() >= 20
np.testing.assert_allclose(ends[off_ridge], [x_local, 0.0], atol=1e-3)

# %% [markdown]
# **Summary.** The gradient is the direction of steepest ascent, so descent steps against it.
# How many examples a step looks at trades smoothness against speed; feature scaling makes the
# error surface round so one learning rate suits every direction; the rate must stay below
# `2 / curvature`, and decaying it lets stochastic updates settle. The batch size trades gradient
# noise against steps per epoch, so compare batch sizes at equal steps and at equal epochs.
# Gradient descent sees only the local slope: where it ends depends on where it starts, and it
# can stall at saddles. Notebook 03 replaces the plain update with momentum, RMSprop and Adam.
