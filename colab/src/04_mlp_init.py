# %% [markdown]
# # 04 MLPs, initialization, symmetry, vanishing and exploding gradients
#
# A multi-layer perceptron is a stack of dense layers with a nonlinearity between them; each
# hidden layer re-describes its input so that the next one can separate the classes more
# easily. Whether such a network trains at all depends on where its weights start. This
# notebook trains an MLP with the zoo (`zoo.mlp` + `train.loop.fit`), then shows the notes'
# three lessons about initialization: equal weights never become different (symmetry), the
# scale of random weights must match the activation (the notes' three rules), and in deep
# networks a wrong scale makes gradients vanish or explode exponentially with depth.

# %%
from functools import partial

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from functional import init, optim
from functional.losses import accuracy
from train import datasets
from train.loop import fit
from zoo import gradients, mlp

EPOCHS = 8 if SMOKE else 40
SYM_EPOCHS = 5 if SMOKE else 30
DEEP_EPOCHS = 3 if SMOKE else 20
DRAW = 256 if SMOKE else 1024  # size of the square weight matrices drawn in section 3

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


def test_accuracy(params, cfg):
    return float(accuracy(mlp.apply(params, ds.x_test, cfg), ds.y_test))


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
# ## 3. Why not start from zeros? Symmetry
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
g = jax.grad(lambda p: mlp.loss(p, {}, batch, None, sym_cfg)[0])(trained["constant 0.1"])
g1 = np.asarray(g["fc1"]["w"])
print("gradient columns identical:", np.allclose(g1, g1[:, :1]), "| norm", np.linalg.norm(g1))
assert np.allclose(g1, g1[:, :1], atol=1e-7) and np.linalg.norm(g1) > 1e-4

# %% [markdown]
# ## 4. The notes' initialization rules
#
# Random weights, but at which scale? The notes (seed 004 section 5.4) give one rule per
# activation, in NumPy:
#
# | activation | notes | variance | known as | `functional.init` |
# | --- | --- | --- | --- | --- |
# | ReLU | `randn(fan_in, fan_out) / sqrt(fan_in / 2)` | `2 / fan_in` | He | `notes_relu` |
# | tanh | `randn(fan_in, fan_out) / sqrt(fan_in)` | `1 / fan_in` | LeCun | `notes_tanh` |
# | other | `randn(...) / sqrt((fan_in + fan_out) / 2)` | `2 / (fan_in + fan_out)` | Glorot | `notes_other` |
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
# ## 5. Vanishing and exploding gradients
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
              optim.sgd(0.05, momentum=0.9), train_data, key=0, epochs=DEEP_EPOCHS,
              batch_size=32, fast_path="scan", progress=False)
    deep[act] = test_accuracy(res.state.params, deep_cfg)
    print(f"10 layers, {act:7s} ({w_init}): test accuracy {deep[act]:.3f}")
assert deep["sigmoid"] < 0.3 and deep["relu"] > (0.5 if SMOKE else 0.9)

# %% [markdown]
# **Summary.** Initialize randomly (symmetry), at the scale the activation needs (the notes'
# rules, i.e. He for ReLU, LeCun for tanh, Glorot otherwise), and prefer ReLU-family units in
# deep stacks: their slope is 1 where they are active, so gradients keep their size through
# depth.
