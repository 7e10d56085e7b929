# %% [markdown]
# # 04 MLPs, initialization, symmetry, vanishing and exploding gradients
#
# A multi-layer perceptron is a stack of dense layers with a nonlinearity between them; each
# hidden layer re-describes its input so that the next one can separate the classes more
# easily. This notebook trains an MLP with the zoo (`zoo.mlp` + `train.loop.fit`), then follows
# the notes (seed 004 sections 5.3-10.1, seed 003 section 4): a hidden layer as a change of
# coordinates (XOR), how many hidden units (under- and overfitting), why depth (a sawtooth that
# 12 units in 6 layers compute exactly and 12 in one layer cannot), and the lessons about
# initialization: equal weights never become different (symmetry), the scale of random weights
# must match the activation (the notes' three rules), in deep networks a wrong scale makes
# gradients vanish or explode exponentially with depth, and large weights saturate units.
# It ends with ReLU's sparse activations and cheap derivative.

# %%
import re
from functools import partial

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from functional import activations, init, optim
from functional.layers import dense
from functional.losses import accuracy, binary_cross_entropy_with_logits
from train import datasets
from train.loop import fit
from zoo import gradients, mlp

EPOCHS = 8 if SMOKE else 40
SYM_EPOCHS = 5 if SMOKE else 30
DEEP_EPOCHS = 3 if SMOKE else 20
DRAW = 256 if SMOKE else 1024  # size of the square weight matrices drawn in section 7

# %% [markdown]
# ## 1. Data: 8x8 handwritten digits
#
# scikit-learn ships 1,797 digit images with the package, so nothing is downloaded.
# `train.datasets.load('digits')` splits them into 80% train / 20% test with pixels in [0, 1].

# %%
ds = datasets.load("digits")
print(f"train {ds.x_train.shape}, test {ds.x_test.shape}, classes {ds.meta['n_classes']}")
fig, axes = plt.subplots(1, 10, figsize=(10, 1.3))
for ax, img, label in zip(axes, ds.x_train[:10], ds.y_train[:10], strict=True):
    ax.imshow(img[..., 0], cmap="gray_r")
    ax.set(title=str(label), xticks=[], yticks=[])
plt.show()
train_data = {"x": ds.x_train, "y": ds.y_train}
test_data = {"x": ds.x_test, "y": ds.y_test}


@partial(jax.jit, static_argnames="cfg")  # one compiled call instead of op-by-op dispatch
def _test_accuracy(params, cfg):
    return accuracy(mlp.apply(params, ds.x_test, cfg), ds.y_test)


def test_accuracy(params, cfg):
    return float(_test_accuracy(params, cfg))


# %% [markdown]
# ## 2. An MLP, trained
#
# `zoo.mlp` is `x -> [dense -> activation] * len(hidden) -> dense` with a softmax
# cross-entropy loss; `train.loop.fit` runs mini-batch Adam over it (each epoch is one jitted
# `lax.scan`). 64 inputs, 128 ReLU units, 10 outputs, He initialization:

# %%
cfg = mlp.Config(n_in=64, hidden=(128,), n_out=10, activation="relu", w_init="he_normal")
params = mlp.init(jax.random.key(0), cfg)
print({name: {k: v.shape for k, v in layer.items()} for name, layer in params.items()})
result = fit(partial(mlp.loss, cfg=cfg), params, optim.adam(1e-3), train_data, key=0,
             epochs=EPOCHS, batch_size=32, eval_data=test_data, fast_path="scan",
             progress=False)
history = result.history
plt.figure(figsize=(5, 3))
plt.plot([h["accuracy"] for h in history], label="train")
plt.plot([h["val_accuracy"] for h in history], label="test")
plt.xlabel("epoch")
plt.ylabel("accuracy")
plt.legend()
plt.show()
mlp_acc = test_accuracy(result.state.params, cfg)
print(f"test accuracy after {EPOCHS} epochs: {mlp_acc:.3f}")
assert abs(mlp_acc - history[-1]["val_accuracy"]) < 1e-6
assert mlp_acc > (0.9 if SMOKE else 0.955)

# %% [markdown]
# ## 3. A hidden layer is a change of coordinates
#
# The notes (seed 004 section 6.1): a hidden layer turns the previous layer's vector into a new
# one; it is a change of coordinates that bends the space until the classes become linearly
# separable. XOR is the classic case: points near (1, 1) and (-1, -1) form one class, points
# near (1, -1) and (-1, 1) the other, and no straight line separates them. A network with two
# tanh hidden units and one sigmoid output can: its output unit is a linear classifier of the
# hidden coordinates `(h1, h2) = tanh(x W + b)`, so when the network classifies every point,
# the hidden layer has made the classes linearly separable.
#
# Two hidden units are the fewest that can do it, and with so few the error surface has local
# minima: from about half of the random starts, gradient descent settles on a solution that
# gets three of the four clusters right (notebook 01, section 7, shows why it cannot tell). We
# train 16 starts at once (`jax.vmap` over the initial weights, NumPy-drawn) and keep the best.

# %%
def descend(loss, params, opt, steps):
    """Full-batch descent with optimizer ``opt`` for a fixed number of steps in one lax.scan;
    returns the params and the loss before each step."""
    def step(carry, _):
        p, s = carry
        value, g = jax.value_and_grad(loss)(p)
        updates, s = opt.update(g, s, p)
        return (optim.apply_updates(p, updates), s), value

    (params, _), values = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
    return params, values


def f32(tree):
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), tree)


rng_xor = np.random.default_rng(0)
corners = rng_xor.choice([-1.0, 1.0], size=(200, 2))
x_xor = (corners + 0.25 * rng_xor.normal(size=(200, 2))).astype(np.float32)
y_xor = (corners[:, 0] != corners[:, 1]).astype(np.float32)   # 1 where the signs differ
N_STARTS = 16
xor_starts = f32({  # Glorot-normal weights, zero biases, one row per start
    "hidden": {"w": rng_xor.normal(0, 0.5 ** 0.5, (N_STARTS, 2, 2)),
               "b": np.zeros((N_STARTS, 2))},
    "out": {"w": rng_xor.normal(0, (2 / 3) ** 0.5, (N_STARTS, 2, 1)),
            "b": np.zeros((N_STARTS, 1))}})


def hidden_coords(p, x):
    return jnp.tanh(dense(p["hidden"], x))


def xor_logits(p, x):
    return dense(p["out"], hidden_coords(p, x))[:, 0]


def xor_loss(p):
    return binary_cross_entropy_with_logits(xor_logits(p, x_xor), y_xor)


xor_nets, xor_losses = jax.jit(jax.vmap(lambda p: descend(xor_loss, p, optim.adam(0.05), 500)))(
    xor_starts)
best = int(np.argmin(xor_losses[:, -1]))
xor_net = jax.tree.map(lambda a: a[best], xor_nets)
start_acc = np.mean((np.asarray(jax.vmap(xor_logits, (0, None))(xor_nets, x_xor)) > 0)
                    == y_xor, axis=1)
print("training accuracy of the 16 starts:", np.round(start_acc, 3))

# %% [markdown]
# Below, left: the input plane with a grid of straight lines and the network's (curved)
# decision boundary. Right: the same points and grid lines in the hidden coordinates. The
# hidden layer has folded the plane so that the two classes sit on opposite sides of one line.
# To check that this is the hidden layer's doing and not the output unit's, we fit the *same*
# linear classifier (least squares on +-1 targets, `np.linalg.lstsq`) once on the raw
# coordinates and once on the hidden ones.

# %%
def linear_classifier(features, labels):
    """Least-squares linear classifier: coefficients [w..., b] and its training accuracy."""
    design = np.hstack([np.asarray(features, np.float64), np.ones((len(labels), 1))])
    coef = np.linalg.lstsq(design, 2 * labels - 1.0, rcond=None)[0]
    return coef, float(np.mean((design @ coef > 0) == (labels > 0.5)))


h_xor = hidden_coords(xor_net, x_xor)
_, acc_raw = linear_classifier(x_xor, y_xor)
line, acc_hidden = linear_classifier(h_xor, y_xor)
print(f"least-squares linear classifier: on the inputs {acc_raw:.3f}, on the hidden "
      f"coordinates {acc_hidden:.3f}")

fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
ticks = np.linspace(-2, 2, 9)
along = np.linspace(-2, 2, 100)
gx, gy = np.meshgrid(np.linspace(-2, 2, 101), np.linspace(-2, 2, 101))
grid_logits = xor_logits(xor_net, jnp.asarray(np.stack([gx.ravel(), gy.ravel()], 1)))
axes[0].contour(gx, gy, np.asarray(grid_logits).reshape(gx.shape), levels=[0], colors="k")
for t in ticks:
    for line_pts in (np.stack([np.full(100, t), along], 1), np.stack([along, np.full(100, t)], 1)):
        axes[0].plot(*line_pts.T, color="0.85", lw=0.8)
        axes[1].plot(*np.asarray(hidden_coords(xor_net, jnp.asarray(line_pts, jnp.float32))).T,
                     color="0.85", lw=0.8)
for ax, pts in ((axes[0], x_xor), (axes[1], np.asarray(h_xor))):
    ax.scatter(*pts.T, c=y_xor, cmap="coolwarm", s=12, edgecolors="k", linewidths=0.3)
hx, hy = np.meshgrid(np.linspace(-1.05, 1.05, 101), np.linspace(-1.05, 1.05, 101))
axes[1].contour(hx, hy, line[0] * hx + line[1] * hy + line[2], levels=[0], colors="k")
axes[1].set(xlim=(-1.05, 1.05), ylim=(-1.05, 1.05), title="hidden coordinates (h1, h2)")
axes[0].set(title="input plane (x1, x2)")
plt.tight_layout()
plt.show()
assert start_acc[best] >= 0.99 and np.sum(start_acc < 0.9) > 0   # local minima exist
assert acc_raw < 0.9        # no line separates XOR (the best gets 3 of 4 clusters, ~0.75-0.8)
assert acc_hidden >= 0.99   # one line does in the hidden coordinates (1.0 for data seeds 0-4)

# %% [markdown]
# ## 4. How many hidden units? Under- and overfitting
#
# The notes (seed 004 section 10.1): with too few hidden units the network cannot learn the
# task; with too many it fits the training set's noise as well ("过拟合", overfitting). We fit
# `y = sin(3x) + 0.3 x` from 16 noisy examples (noise standard deviation `sigma = 0.3`) with one
# hidden layer of 1 to 64 tanh units, trained by full-batch Adam (3,000 steps), and measure the
# mean squared error on the training examples and on 1,000 new ones. `sigma^2 = 0.09` is the
# floor: even the true function has that error on new data, and a training error far below it
# means the network has memorized noise. Each width is trained on 12 independent data sets and
# the errors averaged, all 84 networks in one compiled call: they are padded to 64 units with
# a mask that zeroes the unused ones, so every network has the same shapes.

# %%
WIDTHS = np.array([1, 2, 4, 8, 16, 32, 64])
N_REPEATS, N_FIT, SIGMA = 12, 16, 0.3
rng_w = np.random.default_rng(1)
truth = lambda x: np.sin(3 * x) + 0.3 * x
x_fit = rng_w.uniform(-2, 2, (N_REPEATS, N_FIT))
y_fit = truth(x_fit) + SIGMA * rng_w.normal(size=x_fit.shape)
x_new = rng_w.uniform(-2, 2, (N_REPEATS, 1000))
y_new = truth(x_new) + SIGMA * rng_w.normal(size=x_new.shape)
unit_mask = (np.arange(WIDTHS.max()) < WIDTHS[:, None]).astype(np.float32)  # [width, unit]
shape = (N_REPEATS, len(WIDTHS), WIDTHS.max())
width_nets = f32({"w1": 4 * rng_w.normal(size=shape), "b1": 4 * rng_w.normal(size=shape),
                  "w2": rng_w.normal(size=shape) * unit_mask / np.sqrt(WIDTHS)[:, None],
                  "b2": np.zeros(shape[:2])})


def width_net(p, mask, x):
    return (jnp.tanh(x[:, None] * p["w1"] + p["b1"]) * mask) @ p["w2"] + p["b2"]


def width_mse(p, mask, x, y):
    return jnp.mean((width_net(p, mask, x) - y) ** 2)


# [repeat, width]: vmap over the widths (same data), then over the repeats (own data)
all_mse = jax.vmap(jax.vmap(width_mse, (0, 0, None, None)), (0, None, 0, 0))
x_fit, y_fit, x_new, y_new = f32((x_fit, y_fit, x_new, y_new))
# the networks share no parameters, so the gradient of the sum is each network's own gradient
width_nets, _ = jax.jit(lambda p: descend(
    lambda q: jnp.sum(all_mse(q, unit_mask, x_fit, y_fit)), p, optim.adam(1e-2), 3000))(width_nets)
train_mse = np.asarray(all_mse(width_nets, unit_mask, x_fit, y_fit)).mean(axis=0)
test_mse = np.asarray(all_mse(width_nets, unit_mask, x_new, y_new)).mean(axis=0)
for w, a, b in zip(WIDTHS, train_mse, test_mse, strict=True):
    print(f"{w:3d} hidden units: train MSE {a:.3f}, test MSE {b:.3f}")

fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
axes[0].semilogx(WIDTHS, train_mse, "o-", label="train")
axes[0].semilogx(WIDTHS, test_mse, "o-", label="test")
axes[0].axhline(SIGMA ** 2, color="gray", ls="--", label="noise sigma^2")
axes[0].set(xlabel="hidden units", ylabel="mean squared error", yscale="log")
axes[0].legend()
xs_plot = jnp.linspace(-2, 2, 200)
axes[1].plot(xs_plot, truth(np.asarray(xs_plot)), "k--", lw=1, label="truth")
axes[1].plot(x_fit[0], y_fit[0], "ko", ms=4)
best_width = int(np.argmin(test_mse))
for i in (0, best_width, len(WIDTHS) - 1):
    net_i = jax.tree.map(lambda a, i=i: a[0, i], width_nets)
    axes[1].plot(xs_plot, width_net(net_i, unit_mask[i], xs_plot), label=f"{WIDTHS[i]} units")
axes[1].set(ylim=(-3, 3), title="fits to the first data set")
axes[1].legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# One unit underfits: its training error alone is far above the noise floor. The widest
# networks drive the training error far below the floor, memorizing the noise, and pay for it
# on new data. The best test error lies in between. (Where exactly depends on the amount of
# data and noise; and a wider network trained with early stopping or regularization, or past
# the point where it interpolates the data, can generalize better again: the "double descent"
# of modern, heavily over-parameterized networks.)

# %%
assert train_mse[0] > 2 * SIGMA ** 2 and test_mse[0] > 2 * SIGMA ** 2          # underfitting
assert train_mse[-1] < SIGMA ** 2 / 4 and test_mse[-1] > 10 * train_mse[-1]    # overfitting
assert 0 < best_width < len(WIDTHS) - 1                                        # in between
assert test_mse[best_width] < 0.8 * min(test_mse[0], test_mse[-1])

# %% [markdown]
# ## 5. Why depth?
#
# The notes (seed 004 section 9.1, "circuit theory"): a deep network can keep every layer
# small, while a shallow one may need exponentially many hidden units for the same function.
# Telgarsky's sawtooth (2016) makes this exact. The tent map `t(x) = 2 relu(x) - 4 relu(x - 1/2)`
# folds [0, 1] onto itself; composing it `L` times gives a sawtooth with `2^(L-1)` teeth, i.e.
# `2^L` linear pieces. A ReLU network computes it with **2 units per layer**: each hidden layer
# holds `relu(s)` and `relu(s - 1/2)` of the previous tent. A one-hidden-layer ReLU network on
# a 1-D input is piecewise linear with at most one kink per unit, so it needs about `2^L` units.
#
# Both networks below are `zoo.mlp` parameter dicts written by hand, for `L = 6`: the deep one
# has 6 hidden layers of 2 units (12 units), the shallow one 64 units with kinks at `k/64`.
# They are evaluated under `jax.default_matmul_precision('highest')` (a TPU's default bfloat16
# pass would round `x` to 8 bits and the comparison would measure that rounding).

# %%
L_SAW = 6
x_saw = np.arange(4096, dtype=np.float32)[:, None] / 4096     # exact in float32
y_saw = x_saw[:, 0].copy()
for _ in range(L_SAW):
    y_saw = np.where(y_saw < 0.5, 2 * y_saw, 2 - 2 * y_saw)   # the tent map, in NumPy

saw_cfg = mlp.Config(n_in=1, hidden=(2,) * L_SAW, n_out=1, activation="relu",
                      task="regression")
fold = {"w": np.array([[2.0, 2.0], [-4.0, -4.0]]), "b": np.array([0.0, -0.5])}
deep_saw = f32({"fc1": {"w": np.array([[1.0, 1.0]]), "b": np.array([0.0, -0.5])},
                **{f"fc{i}": fold for i in range(2, L_SAW + 1)},
                "out": {"w": np.array([[2.0], [-4.0]]), "b": np.zeros(1)}})
n_kinks = 2 ** L_SAW
shallow_cfg = mlp.Config(n_in=1, hidden=(n_kinks,), n_out=1, activation="relu",
                         task="regression")
slope_changes = np.r_[2.0 ** L_SAW, 2.0 ** (L_SAW + 1) * (-1.0) ** np.arange(1, n_kinks)]
shallow_saw = f32({"fc1": {"w": np.ones((1, n_kinks)), "b": -np.arange(n_kinks) / n_kinks},
                   "out": {"w": slope_changes[:, None], "b": np.zeros(1)}})
with jax.default_matmul_precision("highest"):
    deep_out = np.asarray(mlp.apply(deep_saw, x_saw, saw_cfg))[:, 0]
    shallow_out = np.asarray(mlp.apply(shallow_saw, x_saw, shallow_cfg))[:, 0]
pieces = 1 + int(np.sum(np.abs(np.diff(np.diff(deep_out))) > 1e-2))
print(f"deep, {2 * L_SAW} units: max error {np.abs(deep_out - y_saw).max():.1e}, "
      f"{pieces} linear pieces; shallow, {n_kinks} units: max error "
      f"{np.abs(shallow_out - y_saw).max():.1e}")
assert np.abs(deep_out - y_saw).max() < 1e-4 and np.abs(shallow_out - y_saw).max() < 1e-4
assert pieces == 2 ** L_SAW

# %% [markdown]
# Each layer doubles the number of teeth (left: the deep network cut after 1, 2, 3 and 6
# layers). And a shallow network with as few units as the deep one, 12? It has at most 12 kinks,
# so at least `32 - 12 = 20` of the 32 teeth contain none, and on such a tooth it is a straight
# line, whose best fit to a tooth leaves the tooth's own variance, `1/12` of its height squared.
# So *however it is trained*, its mean squared error is at least `(20/32) / 12 = 0.052`
# (computed below on the sample grid), 62% of the error of predicting 1/2 everywhere; the deep
# network with the same 12 units has error 0. In general the deep network needs `2L` units and
# the shallow one `2^L`: 20 against 1,024 for `L = 10`. (Trained from random weights, gradient
# descent rarely finds the sawtooth, deep or shallow: depth makes such a function
# *representable* with few units, not necessarily *learnable*.)

# %%
units = 2 * L_SAW
tooth = y_saw[: 4096 // 2 ** (L_SAW - 1)]               # the samples of one tooth
line_fit = np.polyval(np.polyfit(np.arange(tooth.size), tooth, 1), np.arange(tooth.size))
bound = (2 ** (L_SAW - 1) - units) / 2 ** (L_SAW - 1) * np.mean((tooth - line_fit) ** 2)
constant_mse = float(np.mean((y_saw - 0.5) ** 2))
print(f"any shallow ReLU net with {units} units: MSE >= {bound:.4f} (predicting 1/2: "
      f"{constant_mse:.4f}); the deep one with {units} units: 0")
fig, axes = plt.subplots(1, 2, figsize=(11, 3))
with jax.default_matmul_precision("highest"):
    for depth in (1, 2, 3, L_SAW):
        cut_cfg = mlp.Config(n_in=1, hidden=(2,) * depth, n_out=1, activation="relu",
                             task="regression")
        cut = {**{f"fc{i}": deep_saw[f"fc{i}"] for i in range(1, depth + 1)},
               "out": deep_saw["out"]}
        axes[0].plot(x_saw, mlp.apply(cut, x_saw, cut_cfg), lw=1,
                     label=f"{depth} layer(s), {2 * depth} units")
axes[0].legend(fontsize=7, loc="lower right")
axes[0].set(title="deep ReLU nets of 2 units per layer", xlabel="x")
axes[1].plot(x_saw, shallow_out, "C1-", lw=2, label=f"shallow, {n_kinks} units")
axes[1].plot(x_saw, deep_out, "k:", label=f"deep, {units} units")
axes[1].legend(fontsize=7, loc="lower right")
axes[1].set(title=f"the same sawtooth (L = {L_SAW})", xlabel="x")
plt.tight_layout()
plt.show()
assert 0.6 * constant_mse < bound < constant_mse

# %% [markdown]
# ## 6. Why not start from zeros? Symmetry
#
# The notes (seed 004 section 9.0): if every weight starts equal, every hidden unit computes
# the same function, receives the same gradient and is updated the same way, so they stay
# identical forever and the layer is no wider than one unit. With all-zero weights and tanh
# it is even worse: `tanh(0) = 0`, so the output weights get no gradient, the hidden weights
# get none back, and only the output bias learns (the class frequencies).
#
# We train the same small tanh network from three starts: all zeros, all 0.1, and random
# (the notes' tanh rule).

# %%
sym_cfg = mlp.Config(n_in=64, hidden=(32,), n_out=10, activation="tanh", w_init="notes_tanh")
random_params = mlp.init(jax.random.key(1), sym_cfg)
starts = {
    "zeros": jax.tree.map(jnp.zeros_like, random_params),
    "constant 0.1": jax.tree.map(lambda a: jnp.full_like(a, 0.1) if a.ndim == 2 else a * 0,
                                 random_params),
    "random (notes_tanh)": random_params,
}
trained = {}
# one loss function and one optimizer object for all three runs: fit reuses the compiled step
sym_loss, sym_opt = partial(mlp.loss, cfg=sym_cfg), optim.sgd(0.1, momentum=0.9)
for name, p0 in starts.items():
    res = fit(sym_loss, p0, sym_opt, train_data, key=0, epochs=SYM_EPOCHS, batch_size=32,
              fast_path="scan", progress=False)
    trained[name] = res.state.params
    w1 = np.asarray(res.state.params["fc1"]["w"])
    spread = np.abs(w1 - w1[:, :1]).max()  # how different are the hidden units' weights?
    print(f"{name:20s}: test accuracy {test_accuracy(res.state.params, sym_cfg):.3f}, "
          f"max difference between hidden units' incoming weights {spread:.1e}")

# %% [markdown]
# Zero init leaves the hidden layer at exactly zero and predicts from the bias alone; a
# constant init trains, but all 32 hidden units are still copies of one another; random init
# breaks the symmetry and uses all of them.

# %%
z = trained["zeros"]
assert np.all(np.asarray(z["fc1"]["w"]) == 0) and np.all(np.asarray(z["out"]["w"]) == 0)
assert test_accuracy(z, sym_cfg) < 0.15  # about the most frequent class's share
c = trained["constant 0.1"]
w1, w_out = np.asarray(c["fc1"]["w"]), np.asarray(c["out"]["w"])
assert np.abs(w1 - w1[:, :1]).max() < 1e-5  # every column (hidden unit) the same
assert np.abs(w_out - w_out[:1]).max() < 1e-5  # every hidden unit's outgoing weights the same
assert np.abs(w1 - 0.1).max() > 1e-2  # ... although the weights did move
r = np.asarray(trained["random (notes_tanh)"]["fc1"]["w"])
assert np.abs(r - r[:, :1]).max() > 0.5
assert test_accuracy(trained["random (notes_tanh)"], sym_cfg) > test_accuracy(c, sym_cfg) + 0.1

# %% [markdown]
# Why the constant start is stuck: at every step the gradient of each hidden unit's incoming
# weights is the same vector for every unit. One `jax.grad` at the trained weights shows it
# (at the very start it is even zero: equal output weights give every class the same logit,
# so the error sent back, `sum_k delta_k * 0.1`, cancels):

# %%
batch = {"x": ds.x_train[:64], "y": ds.y_train[:64]}
g = jax.jit(jax.grad(lambda p: mlp.loss(p, {}, batch, None, sym_cfg)[0]))(trained["constant 0.1"])
g1 = np.asarray(g["fc1"]["w"])
print("gradient columns identical:", np.allclose(g1, g1[:, :1]), "| norm", np.linalg.norm(g1))
assert np.allclose(g1, g1[:, :1], atol=1e-7) and np.linalg.norm(g1) > 1e-4

# %% [markdown]
# ## 7. The notes' initialization rules
#
# Random weights, but at which scale? The notes (seed 004 section 5.4) give one rule per
# activation, in NumPy:
#
# | activation | notes (`W = randn(fan_in, fan_out) / d`) | variance | known as | `init.` |
# | --- | --- | --- | --- | --- |
# | ReLU | `d = sqrt(fan_in / 2)` | `2 / fan_in` | He | `notes_relu` |
# | tanh | `d = sqrt(fan_in)` | `1 / fan_in` | LeCun | `notes_tanh` |
# | other | `d = sqrt((fan_in + fan_out) / 2)` | `2 / (fan_in + fan_out)` | Glorot | `notes_other` |
#
# The aim is that each layer keeps the variance of its signal: a unit sums `fan_in` products,
# so the weights' variance must be about `1 / fan_in`, doubled for ReLU which zeroes half its
# inputs.

# %%
fan_in, fan_out = DRAW, DRAW // 2
for name, expected_var in [("notes_relu", 2 / fan_in), ("notes_tanh", 1 / fan_in),
                           ("notes_other", 2 / (fan_in + fan_out))]:
    w = init.get(name)(jax.random.key(0), (fan_in, fan_out))
    var = float(jnp.var(w))
    print(f"{name:12s}: variance {var:.3e}, rule {expected_var:.3e}")
    assert abs(var / expected_var - 1) < 0.03
# and the notes' ReLU rule is He initialization
he = init.he_normal(jax.random.key(0), (fan_in, fan_out))
assert abs(float(jnp.var(he)) / (2 / fan_in) - 1) < 0.03

# %% [markdown]
# ## 8. Vanishing and exploding gradients
#
# Backpropagation multiplies the error, layer by layer, by the transposed weights and by the
# activation's slope. Through `L` layers the gradient reaching the first layer is a product of
# `L` such factors, so it shrinks or grows exponentially with depth (seed 004 section 5.3):
#
# * sigmoid's slope is at most 1/4, so its gradients vanish;
# * naive `normal(0, 1)` weights multiply a unit's scale by about `sqrt(fan_in)`, so with ReLU
#   activations and gradients explode;
# * with the notes' rules every layer keeps one scale.
#
# `zoo.gradients.gradient_norm_study` measures the norm of `dL/dW` for each of the 10 layers
# of a width-100 MLP at initialization, for each activation with the notes' rule and with
# naive `normal(0, 1)`:

# %%
study = gradients.gradient_norm_study(jax.random.key(0), depth=10, width=100, batch=256)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
for (act, w_init), res in study.items():
    style = "-" if w_init != "normal" else "--"
    axes[0].semilogy(np.arange(1, 11), res["grad_norm"], style, marker="o", ms=3,
                     label=f"{act}, {w_init}")
    axes[1].semilogy(np.arange(1, 10), res["activation_std"], style, marker="o", ms=3)
axes[0].set(xlabel="layer (input side first)", ylabel="||dL/dW||", title="gradient norms")
axes[1].set(xlabel="hidden layer", ylabel="std of activations", title="activations")
axes[0].legend(fontsize=7)
plt.tight_layout()
plt.show()


def first_over_last(act, w_init):
    norms = np.asarray(study[(act, w_init)]["grad_norm"])
    return norms[0] / norms[-1]


for key in study:
    print(f"{key[0]:8s} {key[1]:12s}: first/last layer gradient ratio "
          f"{first_over_last(*key):.1e}, last hidden activation std "
          f"{float(study[key]['activation_std'][-1]):.1e}")

# %% [markdown]
# The numbers behind the plot: sigmoid vanishes (the first layer gets a millionth of the
# last layer's gradient) even with its best rule; tanh and ReLU with the notes' rules keep
# every layer within a small factor; naive `normal(0, 1)` weights make ReLU activations
# explode and tanh's gradients grow towards the input.

# %%
assert first_over_last("sigmoid", "notes_other") < 1e-4
assert 0.1 < first_over_last("relu", "notes_relu") < 10
assert 0.1 < first_over_last("tanh", "notes_tanh") < 10
assert first_over_last("tanh", "normal") > 100
assert float(study[("relu", "normal")]["activation_std"][-1]) > 1e5
assert 0.1 < float(study[("relu", "notes_relu")]["activation_std"][-1]) < 10

# %% [markdown]
# What this does to training: the same 10-layer network on the digits, plain SGD with
# momentum, sigmoid with its rule vs ReLU with He's. The sigmoid network's early layers hardly
# move, and it stays near chance while the ReLU network learns.

# %%
deep = {}
for act, w_init in [("sigmoid", "notes_other"), ("relu", "notes_relu")]:
    deep_cfg = mlp.Config(n_in=64, hidden=(64,) * 9, n_out=10, activation=act, w_init=w_init)
    res = fit(partial(mlp.loss, cfg=deep_cfg), mlp.init(jax.random.key(2), deep_cfg),
              optim.sgd(0.01, momentum=0.9), train_data, key=0, epochs=DEEP_EPOCHS,
              batch_size=32, fast_path="scan", progress=False)
    deep[act] = test_accuracy(res.state.params, deep_cfg)
    print(f"10 layers, {act:7s} ({w_init}): test accuracy {deep[act]:.3f}")
assert deep["sigmoid"] < 0.3 and deep["relu"] > (0.7 if SMOKE else 0.9)

# %% [markdown]
# ## 9. Large initial weights: saturated units, and why section 8 still saw gradients grow
#
# The notes (seed 004 section 9.0) warn against *large* random weights: the units' inputs land
# where sigmoid or tanh is flat, the slope there is nearly 0, so the gradient is small and
# gradient descent becomes very slow. Section 8 seems to say the opposite: with `normal(0, 1)`
# weights the tanh network's gradients *grew* a thousandfold towards the input. Both are true;
# they are two different products.
#
# First the notes' effect, in a network with one hidden layer of 32 tanh units on the digits.
# Three starts that differ only in scale: the notes' tanh rule (std `1/sqrt(64) = 0.125`),
# `normal(0, 1)` (8x larger) and 30x larger; the same output layer; the same plain SGD (lr 0.5,
# 300 full-batch steps; all three in one `jax.vmap`). We record the tanh slope `1 - h^2` at the
# start, how far the hidden weights move, and the training loss.

# %%
SCALES = np.array([1.0, 8.0, 30.0])   # multiples of the notes' rule
x_digits, y_digits = ds.x_train.reshape(len(ds.x_train), -1), ds.y_train
rng_sat = np.random.default_rng(4)
w_hidden = rng_sat.normal(size=(64, 32)) / 8                # the notes' tanh rule
w_out = rng_sat.normal(size=(32, 10)) / np.sqrt(32)
sat_starts = f32({"fc1": {"w": SCALES[:, None, None] * w_hidden, "b": np.zeros((3, 32))},
                  "out": {"w": np.broadcast_to(w_out, (3, 32, 10)), "b": np.zeros((3, 10))}})
sat_cfg = mlp.Config(n_in=64, hidden=(32,), n_out=10, activation="tanh")
sat_batch = {"x": x_digits, "y": y_digits}


def sat_loss(p):
    return mlp.loss(p, {}, sat_batch, None, sat_cfg)[0]


sat_nets, sat_losses = jax.jit(jax.vmap(lambda p: descend(sat_loss, p, optim.sgd(0.5), 300)))(
    sat_starts)
sat = {}
for i, scale in enumerate(SCALES):   # the start's slopes and the weights' movement, in NumPy
    w_start, w_end = (np.asarray(t["fc1"]["w"][i]) for t in (sat_starts, sat_nets))
    h = np.tanh(x_digits @ w_start)                         # biases start at 0
    moved = np.linalg.norm(w_end - w_start) / np.linalg.norm(w_start)
    sat[scale] = {"slope": float(np.mean(1 - h ** 2)), "moved": moved,
                  "loss": float(sat_losses[i, -1])}
    print(f"{scale:4.0f}x the notes' rule: mean tanh slope at the start {sat[scale]['slope']:.3f}, "
          f"hidden weights moved {moved:6.1%}, training loss {float(sat_losses[i, 0]):.2f} -> "
          f"{sat[scale]['loss']:.3f}")
plt.figure(figsize=(5, 3))
for i, scale in enumerate(SCALES):
    plt.semilogy(sat_losses[i], label=f"{scale:.0f}x the notes' rule")
plt.xlabel("SGD step")
plt.ylabel("training loss")
plt.legend()
plt.show()

# %% [markdown]
# The larger the weights, the flatter the units sit (mean slope about 0.8 -> 0.2 -> 0.05), the less
# the hidden layer learns (its weights move by a tenth as much, or less) and the worse the
# network ends; the output layer still learns on top of nearly fixed hidden features.

# %%
assert sat[1.0]["slope"] > 0.6 and sat[8.0]["slope"] < 0.3 and sat[30.0]["slope"] < 0.1
assert sat[8.0]["moved"] < 0.25 * sat[1.0]["moved"] and sat[30.0]["moved"] < 0.1 * sat[1.0]["moved"]
assert sat[8.0]["loss"] > 1.2 * sat[1.0]["loss"] and sat[30.0]["loss"] > 2 * sat[1.0]["loss"]

# %% [markdown]
# Now section 8's deep network, 10 tanh layers of 100 units with `normal(0, 1)` weights. Its
# units are even more saturated (mean slope about 0.08). But backpropagation multiplies the
# error by the next layer's transposed weights as well as by the slopes: through a layer of `n`
# units whose outgoing weights have variance `s^2`, the error's norm changes by a factor of
# about `sqrt(n s^2 E[slope^2])`. With `normal(0, 1)`, `n s^2 = 100` outweighs
# `E[slope^2] ~ 0.06`: a factor of about 2.4 per layer, about 2,000 over nine layers. With the
# notes' rule `n s^2 = 1` and every factor is a little below 1. Multiplying the factors (and the
# ratio of the input's and the last hidden layer's sizes, which enter `dL/dW`) predicts
# section 8's first/last gradient ratio:

# %%
for w_init in ("notes_tanh", "normal"):
    tanh_cfg = mlp.Config(n_in=100, hidden=(100,) * 9, n_out=10, activation="tanh",
                          w_init=w_init)
    k_p, k_x = jax.random.split(jax.random.key(7))
    p_tanh = mlp.init(k_p, tanh_cfg)
    x_probe = jax.random.normal(k_x, (256, 100))
    _, hidden = mlp.apply(p_tanh, x_probe, tanh_cfg, return_hidden=True)
    names = mlp.layer_names(tanh_cfg)
    slopes = np.array([float(jnp.mean(1 - h ** 2)) for h in hidden])
    factors = np.array([float(jnp.sqrt(100 * jnp.var(p_tanh[names[l + 1]]["w"])
                                       * jnp.mean((1 - h ** 2) ** 2)))
                        for l, h in enumerate(hidden)])
    predicted = np.prod(factors) * float(jnp.sqrt(jnp.mean(x_probe ** 2)
                                                  / jnp.mean(hidden[-1] ** 2)))
    measured = first_over_last("tanh", w_init)
    print(f"tanh, {w_init:10s}: mean slope {slopes.mean():.3f}, factor per layer "
          f"{factors.min():.2f}-{factors.max():.2f}, predicted first/last {predicted:.3g}, "
          f"measured in section 8 {measured:.3g}")
    assert 1 / 3 < predicted / measured < 3
    if w_init == "normal":
        assert slopes.max() < 0.15 and factors.min() > 1.5 and measured > 100
    else:
        assert slopes.mean() > 0.5 and factors.max() < 1.1

# %% [markdown]
# So the two effects meet in one formula. Saturation shrinks each unit's local derivative, and
# with it the gradient of the weights *entering* a saturated unit: in a shallow network that is
# all there is, and learning slows, as the notes say. Large weights also enlarge what each layer
# passes back, and in a deep, wide network that product can win, so the backpropagated gradient
# explodes even though most units are saturated (it then flows mostly through the few
# unsaturated ones). Either way the cure is the notes' scale.

# %% [markdown]
# ## 10. ReLU: sparse activations and a cheap gradient
#
# Seed 003 lists ReLU's advantages over sigmoid: it is fast (no exponential, in the forward
# pass or the derivative), it mitigates vanishing gradients (slope 1 where active, while
# sigmoid's is at most 1/4: section 8's 10-layer comparison), and its activations are
# **sparse**: a ReLU unit outputs exactly 0 for every input on the wrong side of its
# hyperplane, so each example is represented by a subset of the units, while a sigmoid unit is
# never exactly 0 (in float32 only below about -88, far outside these pre-activations) and every
# unit takes part in every example. Section 2's ReLU network on the test digits, at its He
# initialization and trained, and sigmoid applied to the trained pre-activations:

# %%
_, (h_init,) = mlp.apply(params, ds.x_test, cfg, return_hidden=True)       # He init
_, (h_relu,) = mlp.apply(result.state.params, ds.x_test, cfg, return_hidden=True)
pre = dense(result.state.params["fc1"], ds.x_test.reshape(len(ds.x_test), -1))
h_sigmoid = activations.sigmoid(pre)
zeros_init, zeros_trained = float(jnp.mean(h_init == 0)), float(jnp.mean(h_relu == 0))
on_somewhere, off_somewhere = jnp.any(h_relu > 0, axis=0), jnp.any(h_relu == 0, axis=0)
switching = float(jnp.mean(on_somewhere & off_somewhere))   # on for some digits, off for others
dead = float(jnp.mean(~on_somewhere))
print(f"outputs exactly 0: ReLU {zeros_init:.0%} at initialization, {zeros_trained:.0%} "
      f"trained; sigmoid {float(jnp.mean(h_sigmoid == 0)):.0%}")
print(f"units on for some test digits and off for others: {switching:.0%}; off for all: {dead:.0%}")
assert zeros_init > 0.35 and zeros_trained > 0.15 and float(jnp.mean(h_sigmoid == 0)) == 0
assert switching > 0.5

# %% [markdown]
# Which units are silent depends on the digit: that is the sparse code. It is moderate here:
# about half of the outputs are 0 at initialization and a quarter after training (the notes'
# 15-30% "optimal" activation rate takes more, e.g. an L1 penalty on the activations as in
# Glorot et al. 2011). Its dark side shows too: a few units are 0 for *every* digit. Such "dead"
# ReLUs get no gradient and stay dead; leaky ReLU or ELU (`functional.activations`) keep a small
# slope to avoid that.

# %% [markdown]
# The cheap gradient: ReLU's derivative is a comparison, `1 if x > 0 else 0`, while sigmoid's,
# `s (1 - s)`, needs the exponential inside `s`. The jaxpr (JAX's program) of each derivative
# shows which operations it runs:

# %%
z = jnp.linspace(-6, 6, 1201)
transcendental = re.compile(r"\b(exp|expm1|log|log1p|logistic|tanh)\b")
for name in ("relu", "sigmoid"):
    act = activations.get(name)
    program = str(jax.make_jaxpr(jax.grad(lambda x, act=act: jnp.sum(act(x))))(z))
    print(f"{name:7s} derivative uses: {sorted(set(transcendental.findall(program))) or 'none'}")
    assert bool(transcendental.search(program)) == (name == "sigmoid")
d_relu = jax.vmap(jax.grad(activations.relu))(z)
d_sigmoid = jax.vmap(jax.grad(activations.sigmoid))(z)
assert set(np.unique(np.asarray(d_relu))) == {0.0, 1.0}
assert abs(float(d_sigmoid.max()) - 0.25) < 1e-6

# %% [markdown]
# **Summary.** A hidden layer bends the input space until a line separates the classes; too few
# hidden units underfit, too many memorize noise; depth buys functions that a single layer
# needs exponentially many units for. Initialize randomly (symmetry), at the scale the
# activation needs (the notes' rules, i.e. He for ReLU, LeCun for tanh, Glorot otherwise):
# too large a scale saturates sigmoid and tanh units, which slows a shallow network and can
# still explode a deep one's gradients. Prefer ReLU-family units in deep stacks: their slope is
# 1 where they are active, so gradients keep their size through depth, their derivative costs a
# comparison, and their activations are sparse.
