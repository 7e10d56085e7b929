# %% [markdown]
# # 02 Backpropagation by hand vs `jax.grad`
#
# The notes work one small network through forward and backward passes number by number
# (Matt Mazur's 2-2-2 sigmoid network, "A Step by Step Backpropagation Example"). Here we
# reproduce every number three ways: the notes' formulas in NumPy
# (`functional.backprop`, no autodiff), `jax.grad` through `functional.layers`, and finite
# differences, and do the same for the regression network of the course's first project
# (a linear output unit). Then we look at gradient checking itself: why two-sided differences
# beat one-sided ones, and how the check catches a wrong backward pass.

# %%
from contextlib import contextmanager

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from jax.flatten_util import ravel_pytree

from functional import backprop, gradcheck
from functional.activations import sigmoid
from functional.layers import dense, dense_init
from functional.losses import half_sse

# Values printed in the notes (seed 003) and in Mazur's post, to 9 significant digits.
OUT_H = (0.593269992, 0.596884378)
OUT_O = (0.75136507, 0.772928465)
E_TOTAL = 0.298371109
DE_DW5 = 0.082167041
DE_DW1 = 0.000438568
UPDATED = {"w1": 0.149780716, "w2": 0.19956143, "w3": 0.24975114, "w4": 0.29950229,
           "w5": 0.35891648, "w6": 0.408666186, "w7": 0.511301270, "w8": 0.561370121}

N_CHECK = 4 if SMOKE else 16  # hidden units of the MLP checked in section 4


@contextmanager
def float64_on_cpu():
    """Exact-arithmetic checks run in float64 on the host CPU (present on every runtime;
    TPUs have no native float64)."""
    with jax.default_device(jax.devices("cpu")[0]), jax.enable_x64(True):
        yield


# %% [markdown]
# ## 1. The forward pass
#
# Inputs `i1 = 0.05, i2 = 0.10`, targets `0.01, 0.99`, weights `w1..w8 = 0.15, 0.20, ..., 0.55`,
# one bias per layer (`b1 = 0.35`, `b2 = 0.60`), sigmoid units everywhere:
#
# ```
# net_h1 = w1 i1 + w2 i2 + b1      out_h1 = sigmoid(net_h1)        (h2 with w3, w4)
# net_o1 = w5 out_h1 + w6 out_h2 + b2   out_o1 = sigmoid(net_o1)   (o2 with w7, w8)
# E_total = 1/2 (t1 - out_o1)^2 + 1/2 (t2 - out_o2)^2
# ```
#
# In matrix form the hidden layer is `x @ W1 + b1` with `W1[i, j]` the weight from input `i`
# to unit `j`, so `W1 = [[w1, w3], [w2, w4]]`.

# %%
ex = backprop.worked_example_222()
acts = backprop.forward(ex["weights"], ex["biases"], ex["x"])
x_in, out_h, out_o = acts
e_total = backprop.half_sse(out_o, ex["target"])
print(f"net_h1 = {ex['x'] @ ex['weights'][0][:, 0] + ex['biases'][0]:.4f}")
print(f"out_h = {out_h},  out_o = {out_o},  E_total = {e_total:.9f}")
np.testing.assert_allclose(out_h, OUT_H, atol=1e-9)
np.testing.assert_allclose(out_o, OUT_O, atol=1e-8)
assert abs(e_total - E_TOTAL) < 1e-9

# %% [markdown]
# A slip in the notes: they write the sigmoid as `1 / (1 - e^-x)`, but their numbers use
# `1 / (1 + e^-x)`. With the minus sign `out_h1` would not even be a probability:

# %%
net_h1 = 0.15 * 0.05 + 0.2 * 0.1 + 0.35
print(f"1/(1+e^-x) = {1 / (1 + np.exp(-net_h1)):.4f} (the notes' 0.5933); "
      f"1/(1-e^-x) = {1 / (1 - np.exp(-net_h1)):.4f}")
assert round(1 / (1 + np.exp(-net_h1)), 4) == 0.5933
assert 1 / (1 - np.exp(-net_h1)) > 1

# %% [markdown]
# ## 2. The backward pass, by hand
#
# The chain rule, exactly as the notes write it. For an output weight:
#
# `dE/dw5 = (out_o1 - t1) * out_o1 (1 - out_o1) * out_h1`
#
# i.e. the output's **error term** `delta_o1 = dE/dnet_o1` times the activation feeding `w5`.
# A hidden unit collects the error terms of every output it feeds, weighted by the weights it
# feeds them through, times its own sigmoid slope:
#
# `delta_h1 = (delta_o1 w5 + delta_o2 w7) * out_h1 (1 - out_h1)`, and `dE/dw1 = delta_h1 * i1`.
#
# `functional.backprop.backward` does this for any depth; `named_weights_222` maps its
# matrices back to the names `w1..w8`.

# %%
grad_w, grad_b, deltas = backprop.backward(ex["weights"], ex["biases"], acts, ex["target"])
hand = backprop.named_weights_222(grad_w)
for name, g in hand.items():
    print(f"dE/d{name} = {g: .9f}")
assert abs(hand["w5"] - DE_DW5) < 1e-9
assert abs(hand["w1"] - DE_DW1) < 1e-9

# the same two numbers written out from the formulas above, term by term
d_o = (out_o - ex["target"]) * out_o * (1 - out_o)
w5, w7 = 0.40, 0.50
d_h1 = (d_o[0] * w5 + d_o[1] * w7) * out_h[0] * (1 - out_h[0])
assert abs(d_o[0] * out_h[0] - hand["w5"]) < 1e-15
assert abs(d_h1 * ex["x"][0] - hand["w1"]) < 1e-15

# %% [markdown]
# One gradient-descent step with learning rate 0.5 on the weights (the notes leave the biases
# alone) gives the notes' updated weights:

# %%
new_weights = backprop.sgd_step(ex["weights"], grad_w, ex["learning_rate"])
updated = backprop.named_weights_222(new_weights)
for name, value in UPDATED.items():
    print(f"{name}+ = {updated[name]:.9f}   (notes: {value})")
    assert abs(updated[name] - value) < 1e-8, name

# %% [markdown]
# Repeating the step drives the error down: Mazur reports `E_total = 0.0000351085` after
# 10,000 rounds (full mode reproduces it; smoke mode stops at 1,000).

# %%
weights = ex["weights"]
n_rounds = 1000 if SMOKE else 10_000
errors = []
for _ in range(n_rounds):
    a = backprop.forward(weights, ex["biases"], ex["x"])
    errors.append(backprop.half_sse(a[-1], ex["target"]))
    gw, _, _ = backprop.backward(weights, ex["biases"], a, ex["target"])
    weights = backprop.sgd_step(weights, gw, ex["learning_rate"])
plt.figure(figsize=(5, 3))
plt.loglog(np.arange(1, n_rounds + 1), errors)
plt.xlabel("round")
plt.ylabel("E_total")
plt.title("2-2-2 network, lr 0.5")
plt.show()
print(f"E_total after {n_rounds} rounds: {errors[-1]:.3g}")
if n_rounds == 10_000:
    assert abs(errors[-1] - 0.0000351085) < 5e-11
else:
    assert abs(errors[-1] - 0.00111578556) < 5e-12
assert np.all(np.diff(errors) < 0)

# %% [markdown]
# ## 3. The same gradients from `jax.grad`
#
# Write only the forward pass with jaxzoo's building blocks and let JAX differentiate it.
# Our dense layer has one bias per unit; the notes' shared per-layer bias is the special case
# where both entries are equal, and its gradient is the sum of the two per-unit gradients.

# %%
def to_params(weights, biases, dtype):
    return {f"fc{i + 1}": {"w": jnp.asarray(w, dtype), "b": jnp.full((2,), b, dtype)}
            for i, (w, b) in enumerate(zip(weights, biases, strict=True))}


def loss(params, x, target):
    h = sigmoid(dense(params["fc1"], x))
    out = sigmoid(dense(params["fc2"], h))
    return half_sse(out, target, reduction="sum")  # the notes' E: summed, not averaged


x_batch, t_batch = ex["x"][None], ex["target"][None]  # <f32>[1, 2]: a batch of one

# float32 on the default device (TPU, GPU or CPU). At the default matmul precision a TPU
# multiplies in one bfloat16 pass and a GPU in TF32 (about 3 significant digits); under
# 'highest' every backend keeps float32's ~7 digits.
params32 = to_params(ex["weights"], ex["biases"], jnp.float32)
e32, g32 = jax.value_and_grad(loss)(params32, x_batch, t_batch)
print(f"float32 on {jax.default_backend()}, default precision: E_total = {float(e32):.7f}, "
      f"dE/dw5 = {float(g32['fc2']['w'][0, 0]):.7f}")
np.testing.assert_allclose(float(e32), E_TOTAL, rtol=1e-2)
np.testing.assert_allclose(g32["fc2"]["w"], grad_w[1], rtol=2e-2, atol=1e-5)
with jax.default_matmul_precision("highest"):
    e32, g32 = jax.jit(jax.value_and_grad(loss))(params32, x_batch, t_batch)
print(f"float32 on {jax.default_backend()}, 'highest': E_total = {float(e32):.7f}, "
      f"dE/dw5 = {float(g32['fc2']['w'][0, 0]):.7f}")
np.testing.assert_allclose(float(e32), E_TOTAL, rtol=1e-5)
np.testing.assert_allclose(g32["fc2"]["w"], grad_w[1], rtol=1e-4, atol=1e-7)
np.testing.assert_allclose(g32["fc1"]["w"], grad_w[0], rtol=1e-3, atol=1e-8)

# float64: agrees with the hand-written backward pass to rounding
with float64_on_cpu():
    e64, g64 = jax.value_and_grad(loss)(to_params(ex["weights"], ex["biases"], jnp.float64),
                                        x_batch, t_batch)
    g64 = jax.tree.map(np.asarray, g64)
print(f"float64: E_total = {float(e64):.9f}, dE/dw5 = {g64['fc2']['w'][0, 0]:.9f}")
assert abs(float(e64) - E_TOTAL) < 1e-9
np.testing.assert_allclose(g64["fc1"]["w"], grad_w[0], rtol=0, atol=1e-15)
np.testing.assert_allclose(g64["fc2"]["w"], grad_w[1], rtol=0, atol=1e-15)
np.testing.assert_allclose(g64["fc1"]["b"].sum(), grad_b[0], atol=1e-15)  # shared bias
np.testing.assert_allclose(g64["fc2"]["b"].sum(), grad_b[1], atol=1e-15)

# %% [markdown]
# The notes' second example (seed 004 section 7.1) is a 3-2-1 network without biases; its
# script prints the weight changes `learnrate * error_term * activation`, which is
# `-learnrate * dE/dW` (its error is `target - output`):

# %%
ex321 = backprop.worked_example_321()
a321 = backprop.forward(ex321["weights"], None, ex321["x"])
gw321, _, _ = backprop.backward(ex321["weights"], None, a321, ex321["target"])
delta_w_h_o = -ex321["learning_rate"] * gw321[1][:, 0]
delta_w_i_h = -ex321["learning_rate"] * gw321[0]
print("Change in weights for hidden layer to output layer:\n", delta_w_h_o)
print("Change in weights for input layer to hidden layer:\n", delta_w_i_h)
np.testing.assert_allclose(delta_w_h_o, [0.00804047, 0.00555918], atol=5e-9)
np.testing.assert_allclose(delta_w_i_h, [[1.77005547e-04, -5.11178506e-04],
                                         [3.54011093e-05, -1.02235701e-04],
                                         [-7.08022187e-05, 2.04471402e-04]], rtol=1e-8)

# %% [markdown]
# The course's first project (seed 001, "Your First Neural Network") predicts bike-sharing
# counts, a real number, so its output unit is linear, `f(x) = x`, on top of sigmoid hidden
# units, with the same error `E = 1/2 (target - output)^2`. Only the output error term changes:
# the output's slope is 1, so `delta_out = output - target` without the `out (1 - out)` factor
# (`backprop.forward/backward(..., output='linear')`). The 3-2-1 weights again, with a target
# of 2.5 that no sigmoid could reach, against `jax.grad` in float64:

# %%
x_bike, t_bike = ex321["x"], np.array([2.5])
a_bike = backprop.forward(ex321["weights"], None, x_bike, output="linear")
gw_bike, _, d_bike = backprop.backward(ex321["weights"], None, a_bike, t_bike, output="linear")
print(f"linear output {a_bike[-1][0]:.6f}, output error term {d_bike[-1][0]:.6f}")
np.testing.assert_allclose(d_bike[-1], a_bike[-1] - t_bike, rtol=0, atol=0)


def regression_loss(ws, x, target):
    h = sigmoid(x @ ws[0])
    return half_sse((h @ ws[1])[None], target[None], reduction="sum")


with float64_on_cpu():
    jgw_bike = jax.jit(jax.grad(regression_loss))([jnp.asarray(w) for w in ex321["weights"]],
                                                  jnp.asarray(x_bike), jnp.asarray(t_bike))
    jgw_bike = [np.asarray(g) for g in jgw_bike]
for g_hand, g_jax in zip(gw_bike, jgw_bike, strict=True):
    np.testing.assert_allclose(g_hand, g_jax, rtol=1e-12, atol=1e-15)
# the sigmoid output's error term would be wrong here
gw_sigmoid, _, _ = backprop.backward(ex321["weights"], None, a_bike, t_bike, output="sigmoid")
assert not np.allclose(gw_sigmoid[1], jgw_bike[1], rtol=1e-3)

# %% [markdown]
# ## 4. Gradient checking: one-sided vs two-sided differences
#
# A derivative can be estimated from function values alone:
#
# * one-sided: `(f(theta + eps) - f(theta)) / eps`, error `O(eps)`;
# * two-sided: `(f(theta + eps) - f(theta - eps)) / (2 eps)`, error `O(eps^2)`.
#
# The notes' example is `f(theta) = theta^3` at `theta = 1` (true derivative 3) with
# `eps = 0.01`: one-sided gives 3.0301, two-sided 3.0001.

# %%
f = lambda t: t ** 3
eps = 0.01
one = (f(1 + eps) - f(1)) / eps
two = (f(1 + eps) - f(1 - eps)) / (2 * eps)
print(f"one-sided {one:.6f}, two-sided {two:.6f}, exact 3")
assert abs(one - 3.0301) < 1e-9 and abs(two - 3.0001) < 1e-9

epsilons = np.logspace(-12, -1, 45)
err_one = np.abs((f(1 + epsilons) - f(1)) / epsilons - 3)
err_two = np.abs((f(1 + epsilons) - f(1 - epsilons)) / (2 * epsilons) - 3)
plt.figure(figsize=(5, 3.5))
plt.loglog(epsilons, err_one, "o-", ms=3, label="one-sided  O(eps)")
plt.loglog(epsilons, err_two, "o-", ms=3, label="two-sided  O(eps^2)")
plt.xlabel("eps")
plt.ylabel("|error| (float64)")
plt.legend()
plt.title("d/dtheta theta^3 at 1")
plt.show()
# slopes of the truncation error where rounding does not dominate
big = epsilons > 1e-4
slope_one = np.polyfit(np.log(epsilons[big]), np.log(err_one[big]), 1)[0]
slope_two = np.polyfit(np.log(epsilons[big]), np.log(err_two[big]), 1)[0]
print(f"slopes: one-sided {slope_one:.2f}, two-sided {slope_two:.2f}")
assert abs(slope_one - 1) < 0.05 and abs(slope_two - 2) < 0.05
# too small an eps is worse again: rounding error grows like 1e-16 / eps
assert err_two[0] > 100 * err_two.min()

# %% [markdown]
# The same on a whole network with `functional.gradcheck.numerical_grad`, which perturbs
# every parameter in turn. The gradient-check ratio of the notes (seed 004 section 5.6) is
# `||g_num - g|| / (||g_num|| + ||g||)`: below about `1e-7` all is well, above `1e-3` there
# is a bug. Two-sided differences reach the first regime, one-sided ones barely.

# %%
with float64_on_cpu():
    p64 = to_params(ex["weights"], ex["biases"], jnp.float64)
    analytic = jax.grad(loss)(p64, x_batch, t_batch)
    ratios = {}
    for method in ("forward", "central"):
        num = gradcheck.numerical_grad(loss, p64, x_batch, t_batch, eps=1e-6, method=method)
        ratios[method] = gradcheck.relative_error(
            ravel_pytree(num)[0], ravel_pytree(analytic)[0])
print({k: f"{v:.1e}" for k, v in ratios.items()})
assert ratios["central"] < 1e-8 < ratios["forward"] < 1e-4

# %% [markdown]
# ## 5. A checker that catches a wrong backward pass
#
# The point of gradient checking is to test a backward pass someone wrote. Here is the
# hand-written one with a classic bug (the hidden layer's sigmoid slope `a (1 - a)`
# forgotten), next to the correct one, both compared with central differences:

# %%
def buggy_backward(weights, acts, target):
    out = acts[-1]
    d_out = (out - target) * out * (1 - out)
    d_hidden = d_out @ weights[1].T  # BUG: missing * a (1 - a)
    return [np.outer(acts[0], d_hidden), np.outer(acts[1], d_out)]


def hand_loss(weights):  # the notes' E as a function of the weights only
    a = ex["x"]
    for w, b in zip(weights, ex["biases"], strict=True):
        a = sigmoid(a @ w + b)
    return 0.5 * jnp.sum((ex["target"] - a) ** 2)


with float64_on_cpu():
    numeric = gradcheck.numerical_grad(hand_loss, [jnp.asarray(w) for w in ex["weights"]])
numeric = [np.asarray(g) for g in numeric]
good = gradcheck.relative_error(np.concatenate([g.ravel() for g in grad_w]),
                                np.concatenate([g.ravel() for g in numeric]))
bad_grads = buggy_backward(ex["weights"], acts, ex["target"])
bad = gradcheck.relative_error(np.concatenate([g.ravel() for g in bad_grads]),
                               np.concatenate([g.ravel() for g in numeric]))
print(f"correct backward: ratio {good:.1e};  buggy backward: ratio {bad:.1e}")
assert good < 1e-8 and bad > 1e-3

# %% [markdown]
# `gradcheck.check_grads` packages this for any model: it runs in float64, compares
# `jax.grad` with central differences leaf by leaf, and raises naming the worst leaf. Here it
# checks a small ReLU-free MLP built from `functional.layers`; then we sabotage the gradient
# of one leaf with a `jax.custom_vjp` and watch it fail.

# %%
k1, k2 = jax.random.split(jax.random.key(0))
mlp = {"fc1": dense_init(k1, 5, N_CHECK), "fc2": dense_init(k2, N_CHECK, 3)}
xs = np.random.default_rng(0).normal(size=(8, 5)).astype(np.float32)
ys = np.random.default_rng(1).uniform(size=(8, 3)).astype(np.float32)


def mlp_loss(params, x, y):
    h = jnp.tanh(dense(params["fc1"], x))
    return half_sse(sigmoid(dense(params["fc2"], h)), y)


report = gradcheck.check_grads(mlp_loss, mlp, xs, ys)
print(f"ok={report.ok}, worst leaf {report.worst_leaf}: {report.worst_error:.1e}")
assert report.ok and report.worst_error < 1e-7


@jax.custom_vjp
def scaled_tanh(z):  # forward is tanh; backward deliberately off by 10%
    return jnp.tanh(z)


scaled_tanh.defvjp(lambda z: (jnp.tanh(z), z),
                   lambda z, g: (0.9 * g * (1 - jnp.tanh(z) ** 2),))


def sabotaged_loss(params, x, y):
    h = scaled_tanh(dense(params["fc1"], x))
    return half_sse(sigmoid(dense(params["fc2"], h)), y)


try:
    gradcheck.check_grads(sabotaged_loss, mlp, xs, ys)
except AssertionError as err:
    message = str(err)
    print("caught:", message.splitlines()[0])
else:
    raise AssertionError("check_grads missed a wrong gradient")
assert "fc1" in message

# %% [markdown]
# The notes' advice on gradient checking (seed 004 section 5.7), which the tools above
# follow: use it to debug, not during training (it costs one or two forward passes per
# parameter); compare in float64 with two-sided differences; look at which leaf is wrong;
# include every term of the loss; switch off randomness such as dropout while checking.
