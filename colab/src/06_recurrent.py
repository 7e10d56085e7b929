# %% [markdown]
# # 06 Recurrent networks: RNN, LSTM, GRU, backpropagation through time
# A recurrent network reads a sequence one step at a time and carries a state from step to step
# (the notes' "s-t-e-e-p" example: after the first "e" only the state can tell whether an "e" or
# a "p" comes next). This notebook follows the notes:
#
# 1. cells in `lax.scan` shape, the basic, bidirectional and deep RNNs of seed 003;
# 2. the notes' "s-t-e-e-p": a tiny RNN learns to continue it, and its hidden state shows how;
# 3. backpropagation through time (BPTT): full, chunked, and the notes' k-step truncation
#    (seed 000's `bptt_truncate`), checked against a NumPy transcription of the notes' routine;
# 4. vanishing and exploding gradients (the notes' `y = x w^n`), the LSTM's cell state that
#    carries them, and what gradient clipping does;
# 5. the adding problem, where the LSTM bridges a long time lag and a vanilla RNN does not;
# 6. one-step-ahead forecasting of a time series, against the naive last-value forecast;
# 7. a character-level language model trained on a TV script, and sampling from it.

# %%
import functools
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

from functional import bptt, optim, recurrent
from functional.layers import dense
from functional.losses import softmax_cross_entropy
from train import datasets
from train.loop import fit
from train.plots_recurrent import plot_gradient_norms_by_lag
from zoo import adding, char_lm

key = jax.random.PRNGKey(0)

# %% [markdown]
# ## 1. A cell is one step: `cell(params, carry, x_t) -> (carry, y_t)`
# Weights follow PyTorch's layout (`w_ih: [G*H, n_in]`, `w_hh: [G*H, H]`; the LSTM stacks its
# gates i, f, g, o, the GRU r, z, n). Because a cell has exactly the signature `lax.scan` wants,
# a whole sequence is one `lax.scan`; `recurrent.run` adds masks for padding, reversal and the
# batch-major layout `[batch, time, features]`.

# %%
B, T, N_IN, H = 4, 12, 3, 8
xs = jax.random.normal(jax.random.PRNGKey(1), (B, T, N_IN))

cells = {"rnn": (recurrent.rnn_cell, recurrent.rnn_init),
         "gru": (recurrent.gru_cell, recurrent.gru_init),
         "lstm": (recurrent.lstm_cell, recurrent.lstm_init)}
for name, (cell, cell_init) in cells.items():
    p = cell_init(key, N_IN, H)
    # `run`, and the same thing spelled out: lax.scan of the cell over time-major inputs.
    # `run` computes the input projections of all steps in one product, the plain scan one per
    # step: at the default precision a GPU rounds the big product to TF32 and runs the small
    # ones exactly (a TPU rounds both to bfloat16), so the two agree to float32 only with
    # float32 products.
    c0 = recurrent.init_carry(cell, p, B)
    with jax.default_matmul_precision("highest"):
        _, ys = recurrent.run(cell, p, xs)
        _, ys_scan = jax.lax.scan(functools.partial(cell, p), c0, jnp.swapaxes(xs, 0, 1))
    np.testing.assert_allclose(ys, jnp.swapaxes(ys_scan, 0, 1), atol=1e-5)  # float32
    print(f"{name:4s}: w_ih {p['w_ih'].shape}, w_hh {p['w_hh'].shape} -> outputs {ys.shape}")

# %% [markdown]
# Seed 003's bidirectional RNN concatenates a forward and a backward pass (`[s_t ; s'_t]`); its
# deep RNN feeds each layer's outputs to the next. Padding is masked: the final state of a
# sequence of length 7 padded to 12 is its state after step 7.

# %%
p_bi = recurrent.bidirectional_init(recurrent.gru_init, key, N_IN, H)
_, ys_bi = recurrent.bidirectional(recurrent.gru_cell, p_bi, xs)
p_deep = recurrent.stacked_init(recurrent.lstm_init, key, N_IN, H, n_layers=3)
_, ys_deep = recurrent.stacked(recurrent.lstm_cell, p_deep, xs)
print("bidirectional GRU outputs", ys_bi.shape, "| 3-layer LSTM outputs", ys_deep.shape)
assert ys_bi.shape == (B, T, 2 * H) and ys_deep.shape == (B, T, H)

p_gru = recurrent.gru_init(key, N_IN, H)
lengths = jnp.array([12, 7, 3, 12])
with jax.default_matmul_precision("highest"):   # float32 products: see the check above
    carry_masked, _ = recurrent.run(recurrent.gru_cell, p_gru, xs, lengths=lengths)
    carry_short, _ = recurrent.run(recurrent.gru_cell, p_gru, xs[1:2, :7])
np.testing.assert_allclose(carry_masked[1], carry_short[0], atol=1e-6)

# %% [markdown]
# ## 2. "s-t-e-e-p": why the network needs a state
# The notes' example (seed 001): predict each next letter of "steep". After "s" comes "t", after
# "t" an "e", but after an "e" comes either "e" or "p": a network that sees only the current
# letter must hedge, and the best it can do is 50/50 on both "e" steps, a cross-entropy of at
# least `2 ln 2 / 4 = 0.35` nats per step. A recurrent network routes its previous hidden state
# back into the hidden layer (`h_t = tanh(W_ih x_t + W_hh h_{t-1} + b)`), so after the second
# "e" its state differs from after the first. We train a 6-unit RNN (`recurrent.rnn_cell`, a
# dense readout, Adam) on the one word and print what it computes at every step.

# %%
LETTERS = "step"
steep = jnp.array([LETTERS.index(c) for c in "steep"])
steep_x = jax.nn.one_hot(steep[:-1], len(LETTERS))[None]  # [1, 4, 4]: s, t, e, e
steep_y = steep[1:]                                        # targets: t, e, e, p
# PyTorch's initialization, U(-1/sqrt(6), 1/sqrt(6)) for every entry, drawn with NumPy (a
# jax.random draw would compile anew for each of these small shapes)
rng_steep = np.random.default_rng(3)
p_steep = jax.tree.map(
    lambda shape: jnp.asarray(rng_steep.uniform(-6 ** -0.5, 6 ** -0.5, shape), jnp.float32),
    {"rnn": {"w_ih": (6, 4), "w_hh": (6, 6), "b_ih": (6,), "b_hh": (6,)},
     "out": {"w": (6, 4), "b": (4,)}}, is_leaf=lambda x: isinstance(x, tuple))


def steep_forward(p, xs):
    """Hidden states <f32>[1, T, 6] and next-letter logits <f32>[1, T, 4]."""
    _, hs = recurrent.run(recurrent.rnn_cell, p["rnn"], xs)
    return hs, dense(p["out"], hs)


def steep_loss(p):
    return softmax_cross_entropy(steep_forward(p, steep_x)[1][0], steep_y)


def adam_descent(loss, params, learning_rate, steps):
    """Full-batch Adam for a fixed number of steps in one lax.scan; returns params, losses."""
    opt = optim.adam(learning_rate)

    def step(carry, _):
        p, s = carry
        value, g = jax.value_and_grad(loss)(p)
        updates, s = opt.update(g, s, p)
        return (optim.apply_updates(p, updates), s), value

    (params, _), values = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
    return params, values


p_steep, steep_losses = jax.jit(adam_descent, static_argnums=(0, 3))(
    steep_loss, p_steep, 0.05, 200)
hs, logits = steep_forward(p_steep, steep_x)
probs = jax.nn.softmax(logits[0])
print(f"cross-entropy per step: {steep_losses[0]:.3f} before, {steep_losses[-1]:.4f} after")
for t, letter in enumerate("stee"):
    state = " ".join(f"{v:+.2f}" for v in np.asarray(hs[0, t]))
    guess = " ".join(f"{c}:{q:.3f}" for c, q in zip(LETTERS, np.asarray(probs[t]), strict=True))
    print(f"input {letter!r}  h = [{state}]  next: {guess}")

# %% [markdown]
# Both "e" inputs are identical vectors; only the hidden state tells them apart, and it does.
# To let the network *continue* the word we feed it "s" and then its own most likely letter,
# carrying the state from step to step. Written out in NumPy, the step is the notes' formula,
# `h = tanh(W_ih x + b_ih + W_hh h + b_hh)`, and the readout `h W_out + b_out`; its states must
# match the ones `recurrent.run` computed.

# %%
q = jax.tree.map(lambda a: np.asarray(a, np.float64), p_steep)
h, letter, text = np.zeros(6), 0, "s"
for t in range(4):
    x = np.eye(len(LETTERS))[letter]
    h = np.tanh(q["rnn"]["w_ih"] @ x + q["rnn"]["b_ih"] + q["rnn"]["w_hh"] @ h + q["rnn"]["b_hh"])
    np.testing.assert_allclose(h, hs[0, t], atol=2e-2)  # float32 (bfloat16 matmuls on TPU)
    letter = int(np.argmax(h @ q["out"]["w"] + q["out"]["b"]))
    text += LETTERS[letter]
print("greedy continuation of 's':", text)
assert text == "steep"
p_right = probs[jnp.arange(4), steep_y]
assert float(p_right.min()) > 0.9                  # right on every step, including both "e"s
assert float(steep_losses[-1]) < 0.1 < 2 * np.log(2) / 4   # below any memoryless predictor
assert float(jnp.linalg.norm(hs[0, 2] - hs[0, 3])) > 0.5   # the two "e" states differ

# %% [markdown]
# ## 3. Backpropagation through time
# Full BPTT is nothing but `jax.grad` through the scan. Two truncations are in use:
#
# * **chunked** (char-rnn, PyTorch's language model): the sequence is cut into chunks and no
#   gradient crosses a chunk boundary (`bptt.run_chunked`);
# * **the notes' k-step truncation** (seed 000, `bptt_truncate = k`): the error of every output
#   y_t flows back through at most k+1 steps, t, t-1, ..., t-k (`bptt.truncated_outputs`).
#
# Forward values are the same in all three; only the gradients differ. Below is seed 000's RNN
# (`s_t = tanh(U x_t + W s_{t-1})`, `o_t = softmax(V s_t)`, one-hot words, no biases) with the
# notes' `bptt` routine transcribed to NumPy, compared with `jax.grad` in float64.

# %%
def seed000_bptt(U, V, W, x, y, bptt_truncate):
    """The notes' routine (seed 000), NumPy, one sequence of word ids x with targets y."""
    T, hid = len(x), W.shape[0]
    s = np.zeros((T + 1, hid))                      # s[-1] is the initial state
    o = np.zeros((T, V.shape[0]))
    for t in range(T):
        s[t] = np.tanh(U[:, x[t]] + W @ s[t - 1])
        z = V @ s[t]
        o[t] = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    dU, dV, dW = np.zeros_like(U), np.zeros_like(V), np.zeros_like(W)
    delta_o = o.copy()
    delta_o[np.arange(T), y] -= 1.0
    for t in reversed(range(T)):
        dV += np.outer(delta_o[t], s[t])
        delta_t = V.T @ delta_o[t] * (1 - s[t] ** 2)
        for step in reversed(range(max(0, t - bptt_truncate), t + 1)):
            dW += np.outer(delta_t, s[step - 1])
            dU[:, x[step]] += delta_t
            delta_t = W.T @ delta_t * (1 - s[step - 1] ** 2)
    return {"U": dU, "V": dV, "W": dW}


VOCAB, HID, T_NOTES = 6, 5, 10
rng = np.random.default_rng(0)
U = rng.uniform(-1, 1, (HID, VOCAB)) / np.sqrt(VOCAB)
V = rng.uniform(-1, 1, (VOCAB, HID)) / np.sqrt(HID)
W = rng.uniform(-1, 1, (HID, HID))
x_ids, y_ids = rng.integers(0, VOCAB, T_NOTES), rng.integers(0, VOCAB, T_NOTES)


def seq_loss(p, outputs):
    """Summed cross-entropy of the readout V on the RNN outputs (as in seed 000)."""
    xs1 = jax.nn.one_hot(x_ids, VOCAB, dtype=p["U"].dtype)[None]      # [1, T, vocab]
    ys1 = outputs({"w_ih": p["U"], "w_hh": p["W"]}, xs1)[0]
    logp = jax.nn.log_softmax(ys1 @ p["V"].T)
    return -jnp.sum(logp[jnp.arange(T_NOTES), y_ids])


full = lambda q, xs1: recurrent.run(recurrent.rnn_cell, q, xs1)[1]
k_step = lambda k: lambda q, xs1: bptt.truncated_outputs(recurrent.rnn_cell, q, xs1, k)
chunked = lambda c: lambda q, xs1: bptt.run_chunked(recurrent.rnn_cell, q, xs1, chunk=c)[1]

grad = jax.jit(jax.grad(seq_loss), static_argnums=1)   # one compilation per variant
with jax.enable_x64(True):
    p64 = {"U": jnp.asarray(U), "V": jnp.asarray(V), "W": jnp.asarray(W)}
    g_full = grad(p64, full)
    for k in (0, 3, T_NOTES - 1, T_NOTES + 5):
        ours = grad(p64, k_step(k))
        notes = seed000_bptt(U, V, W, x_ids, y_ids, k)
        err = max(float(np.max(np.abs(ours[n] - notes[n]))) for n in "UVW")
        diff_full = float(np.max(np.abs(ours["W"] - g_full["W"])))
        print(f"k={k:2d}: max |ours - notes| = {err:.1e}   |dW - dW_full| = {diff_full:.2e}")
        assert err < 1e-12
        if k >= T_NOTES - 1:   # k >= T - 1: the truncation never bites, exactly full BPTT
            np.testing.assert_allclose(ours["W"], g_full["W"], rtol=1e-12, atol=1e-14)
        else:
            assert diff_full > 1e-6
    # chunked truncation: one chunk covering the sequence is full BPTT, shorter chunks are not
    for c in (3, T_NOTES):
        g_c = grad(p64, chunked(c))
        d = float(np.max(np.abs(g_c["W"] - g_full["W"])))
        print(f"chunk={c:2d}: |dW - dW_full| = {d:.2e}")
        assert (d < 1e-12) if c >= T_NOTES else (d > 1e-6)
    # forward values are identical in all three
    xs1 = jax.nn.one_hot(x_ids, VOCAB, dtype=jnp.float64)[None]
    q = {"w_ih": p64["U"], "w_hh": p64["W"]}
    np.testing.assert_allclose(k_step(2)(q, xs1), full(q, xs1), atol=1e-12)
    np.testing.assert_allclose(chunked(3)(q, xs1), full(q, xs1), atol=1e-12)

# %% [markdown]
# ## 4. Vanishing and exploding gradients, the LSTM's constant error carousel, clipping
# How much of the error at the last step reaches the state `lag` steps earlier? In a tanh RNN
# each step multiplies the error by `W^T diag(1 - s^2)`, so it shrinks geometrically (seed 004's
# vanishing gradients). The LSTM's cell state `c_t = f * c_{t-1} + i * g` passes it on
# multiplied only by the forget gate, which starts near sigma(1) = 0.73 with a forget bias of 1.
# Gradient clipping (Pascanu et al. 2013) is the remedy for the opposite, exploding case.

# %%
T_LAG = 30 if SMOKE else 60
xs_lag = jax.random.normal(jax.random.PRNGKey(2), (16, T_LAG, 4))
p_rnn = recurrent.rnn_init(key, 4, 32)
p_lstm = recurrent.lstm_init(key, 4, 32, forget_bias=1.0)
norms_by_lag = jax.jit(bptt.gradient_norms_by_lag, static_argnums=0)
curves = {"tanh RNN": norms_by_lag(recurrent.rnn_cell, p_rnn, xs_lag),
          "LSTM (forget bias 1)": norms_by_lag(recurrent.lstm_cell, p_lstm, xs_lag)}
fig = plot_gradient_norms_by_lag(curves, ax=plt.subplots(figsize=(6, 3.5))[1])
plt.show()
late = {name: float(norms[-1] / norms[0]) for name, (lags, norms) in curves.items()}
print("||grad at the first step|| / ||grad one step back||:", late)
assert late["tanh RNN"] < 1e-3 and late["LSTM (forget bias 1)"] > 100 * late["tanh RNN"]

big = jax.tree.map(lambda a: 100.0 * a, p_rnn)   # stands for an exploding gradient
clipped, norm = bptt.clip_grad_norm(big, 1.0)
ref, _ = optax.clip_by_global_norm(1.0).update(big, optax.EmptyState())
print(f"gradient norm {float(norm):.1f} -> {float(bptt.global_norm(clipped)):.3f} after clipping")
for a, b in zip(jax.tree.leaves(clipped), jax.tree.leaves(ref), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-6)

# %% [markdown]
# The notes' explanation of both problems (seed 001): the state passes through the same weight
# at every step, so after n steps the signal is `y = x w^n`, which goes to 0 when `|w| < 1` and
# to infinity when `|w| > 1`. In the simplest RNN, one linear unit `h_t = w h_{t-1} + x_t`, the
# gradient that reaches n steps back is exactly `w^n`; `gradient_norms_by_lag` with an identity
# activation measures it (under `jax.default_matmul_precision('highest')`, since the 1x1
# "matmuls" would otherwise round `w` to bfloat16 on a TPU, and `1.1^60` amplifies that).
#
# A tanh RNN explodes too, although its state cannot (`|h| <= 1`): wherever its units are not
# saturated, each step multiplies the gradient by `W_hh^T`. With `W_hh = 2 x` an orthogonal
# matrix (every singular value 2) and the inputs of the cell above, the gradient grows by orders
# of magnitude with the lag, faster than the linear unit's with `w = 1.1`; with the PyTorch
# initialization above (smaller recurrent weights) it vanishes.

# %%
linear_cell = functools.partial(recurrent.rnn_cell, activation=lambda z: z)
xs_one = jax.random.normal(jax.random.PRNGKey(4), (16, T_LAG, 1))
orthogonal = np.linalg.qr(np.random.default_rng(5).normal(size=(32, 32)))[0]
p_big = dict(p_rnn, w_hh=jnp.asarray(2.0 * orthogonal, jnp.float32))
with jax.default_matmul_precision("highest"):
    power_curves = {f"linear, w = {w}": norms_by_lag(
        linear_cell, {"w_ih": jnp.ones((1, 1)), "w_hh": jnp.full((1, 1), w)}, xs_one)
        for w in (0.9, 1.0, 1.1)}
    lags_big, norms_big = norms_by_lag(recurrent.rnn_cell, p_big, xs_lag)
fig, ax = plt.subplots(figsize=(6, 3.5))
plot_gradient_norms_by_lag({**power_curves, "tanh RNN, W_hh = 2 x orthogonal": (
    lags_big, norms_big)}, ax=ax)
plt.show()
for name, (lags, norms) in power_curves.items():
    w = float(name.split("= ")[1])
    print(f"{name}: gradient {T_LAG} steps back {float(norms[-1]):.3g} (w^{T_LAG} = "
          f"{w ** T_LAG:.3g})")
    np.testing.assert_allclose(norms, w ** np.asarray(lags, np.float64), rtol=1e-4)
growth = float(norms_big[-1] / norms_big[0])
print(f"tanh RNN with W_hh = 2 x orthogonal: gradient {T_LAG} steps back / one step back = "
      f"{growth:.0f} (1.1^{T_LAG - 1} = {1.1 ** (T_LAG - 1):.0f})")
assert growth > 1.1 ** (T_LAG - 1)   # faster than the linear unit with w = 1.1 (by 8-27x)

# %% [markdown]
# **What clipping does.** Exploding gradients make the loss surface a cliff: train the one
# weight of `h_t = w h_{t-1} + x_t` so that after 40 steps of `x = (1, 0, 0, ...)` the output
# `w^39` matches the one made with `w = 0.9`, starting from `w = 1.15`. There the gradient is
# about 2e6; at `w = 0.95` it is 0.7. No single learning rate suits both: lr 0.5 is right
# for the valley but throws `w` to -1e6 on the first step (then inf and nan); lr 1e-7 survives
# the cliff and then stalls in the valley. Clipping the gradient's norm to 0.1 (Pascanu et al.
# 2013, `bptt.clip_grad_norm`) keeps its direction and caps its length, so on the cliff each step
# moves `w` by at most `lr x 0.1 = 0.05`, while in the valley, where the gradient is small,
# nothing changes. Scalar arithmetic only, so the numbers are the same on every backend.

# %%
def y_power(w, n=40):
    """h_n of h_t = w h_{t-1} + x_t for x = (1, 0, ..., 0): the notes' y = x w^(n-1)."""
    h, _ = jax.lax.scan(lambda h, x: (w * h + x, None), 0.0, jnp.zeros(n).at[0].set(1.0))
    return h


def power_loss(w):
    return 0.5 * (y_power(w) - y_power(0.9)) ** 2


@functools.partial(jax.jit, static_argnames="max_norm")
def power_descent(w0, lr, max_norm=None, steps=100):
    def step(w, _):
        g = jax.grad(power_loss)(w)
        if max_norm is not None:
            g, _ = bptt.clip_grad_norm(g, max_norm)
        return w - lr * g, w - lr * g
    return jax.lax.scan(step, w0, None, length=steps)[1]


ws = np.linspace(0.5, 1.2, 300)
closed_form = lambda w: 0.5 * (w ** 39 - 0.9 ** 39) ** 2   # NumPy, for the plot
np.testing.assert_allclose(jax.vmap(power_loss)(ws), closed_form(ws), rtol=1e-4, atol=1e-9)
plt.figure(figsize=(6, 3.5))
plt.semilogy(ws, closed_form(ws) + 1e-12, color="gray", label="loss")
runs = {"lr 0.5": (0.5, None), "lr 1e-7": (1e-7, None), "lr 0.5, clip 0.1": (0.5, 0.1)}
paths = {}
for label, (lr, max_norm) in runs.items():
    paths[label] = np.asarray(power_descent(1.15, lr, max_norm))
    finite = paths[label][np.isfinite(paths[label]) & (np.abs(paths[label]) < 2)]
    plt.semilogy(finite, closed_form(finite) + 1e-12, "o", ms=3, label=label)
    print(f"{label:17s}: w after 1, 2, 100 steps {paths[label][[0, 1, -1]]}")
plt.xlabel("w")
plt.legend()
plt.title("loss of w^39 vs 0.9^39, from w = 1.15")
plt.show()
assert not np.isfinite(paths["lr 0.5"][-1])                     # blew up
assert abs(paths["lr 1e-7"][-1] - 0.9) > 0.05                   # stalled far from 0.9
np.testing.assert_allclose(paths["lr 0.5, clip 0.1"][-1], 0.9, atol=1e-4)
steps_taken = np.abs(np.diff(np.concatenate([[1.15], paths["lr 0.5, clip 0.1"]])))
assert steps_taken.max() <= 0.05 + 1e-6                          # capped at lr * max_norm

# %% [markdown]
# ## 5. The adding problem (Hochreiter & Schmidhuber 1997, experiment 4)
# Each step carries a value in [-1, 1] and a marker. Two steps are marked, the first within the
# first ten steps; the target is `0.5 + (X1 + X2) / 4`. The network must hold X1 for about T
# steps. Predicting the mean gives mse = Var(y) ~ 0.04; a sequence counts as solved when the
# absolute error is below 0.04. We train an LSTM and a tanh RNN of the same size on the same
# sequences: T = 100 as in the paper (T = 10 in smoke mode). The LSTM starts as the paper's
# does in spirit (`adding.Config` defaults): a forget-gate bias of 5, so the cell keeps what it
# stores for about 100 steps, and an input-gate bias of -3, so unmarked steps do not overwrite
# it before the gate has learned when to open.

# %%
T_ADD = 10 if SMOKE else 100
N_ADD = 3_000 if SMOKE else 15_000
EPOCHS_ADD = 2 if SMOKE else 3
LR_ADD = 1e-2 if SMOKE else 3e-3
ds_add = datasets.load("adding", T=T_ADD, n_train=N_ADD, n_test=1000)
train_add = {"x": ds_add.x_train, "y": ds_add.y_train, "lengths": ds_add.meta["lengths_train"]}
test_add = {"x": ds_add.x_test, "y": ds_add.y_test, "lengths": ds_add.meta["lengths_test"]}
var_y = float(np.var(ds_add.y_test))
opt_add = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(LR_ADD))
results_add = {}
for cell in ("lstm", "rnn"):
    cfg = adding.Config(hidden=32, cell=cell)
    loss_fn = functools.partial(adding.loss, cfg=cfg)
    t0 = time.perf_counter()
    res = fit(loss_fn, adding.init(jax.random.PRNGKey(0), cfg), opt_add, train_add, key=0,
              epochs=EPOCHS_ADD, batch_size=32, eval_data=test_add, fast_path="scan",
              progress=False)
    results_add[cell] = res.history
    last = res.history[-1]
    print(f"{cell:4s} T={T_ADD}: test mse {last['val_mse']:.4f} (Var(y) {var_y:.4f}), "
          f"solved {last['val_solved']:.1%}  [{time.perf_counter() - t0:.0f} s]")

fig, ax = plt.subplots(figsize=(6, 3.5))
for cell, hist in results_add.items():
    ax.plot([h["epoch"] for h in hist], [h["val_mse"] for h in hist], "o-", label=cell)
ax.axhline(var_y, color="gray", ls="--", label="predict the mean")
ax.set(xlabel="epoch", ylabel="test mse", yscale="log", title=f"adding problem, T={T_ADD}")
ax.legend()
plt.show()
lstm_mse, rnn_mse = results_add["lstm"][-1]["val_mse"], results_add["rnn"][-1]["val_mse"]
assert lstm_mse < 0.25 * var_y and lstm_mse < 0.5 * rnn_mse

# %% [markdown]
# ## 6. Forecasting a time series one step ahead
# The notes list time series among the sequences RNNs suit (seed 001, with a Keras LSTM
# forecasting tutorial as reference; the first project forecasts bike rentals hour by hour).
# A daily cycle with a second harmonic, 600 hourly readings with noise of standard deviation
# 0.15: at each hour the RNN reads the current value and predicts the next. The first 400
# hours train it (overlapping 48-hour windows, the first 8 hours of each window only warm the
# state up), the last 200 test it. The baseline any forecast must beat is the naive one,
# "the next value equals the last one"; no forecast can beat the noise itself, an error of
# `0.15^2 = 0.0225`.

# %%
rng_ts = np.random.default_rng(7)
hours = np.arange(600)
clean = np.sin(2 * np.pi * hours / 24) + 0.5 * np.sin(4 * np.pi * hours / 24 + 1.0)
series = (clean + 0.15 * rng_ts.normal(size=hours.size)).astype(np.float32)
SPLIT, WINDOW, WARM = 400, 48, 8
starts = np.arange(0, SPLIT - WINDOW, 8)
x_win = jnp.asarray(np.stack([series[s:s + WINDOW] for s in starts]))[..., None]
y_win = jnp.asarray(np.stack([series[s + 1:s + WINDOW + 1] for s in starts]))
H_TS = 16
p_ts = jax.tree.map(   # PyTorch's initialization, drawn with NumPy as in section 2
    lambda shape: jnp.asarray(rng_ts.uniform(-H_TS ** -0.5, H_TS ** -0.5, shape), jnp.float32),
    {"rnn": {"w_ih": (H_TS, 1), "w_hh": (H_TS, H_TS), "b_ih": (H_TS,), "b_hh": (H_TS,)},
     "out": {"w": (H_TS, 1), "b": (1,)}}, is_leaf=lambda x: isinstance(x, tuple))


def forecast(p, xs):
    """One-step-ahead forecasts <f32>[batch, time] of inputs <f32>[batch, time, 1]."""
    _, hs = recurrent.run(recurrent.rnn_cell, p["rnn"], xs)
    return dense(p["out"], hs)[..., 0]


def forecast_loss(p):
    return jnp.mean((forecast(p, x_win)[:, WARM:] - y_win[:, WARM:]) ** 2)


@jax.jit
def fit_and_forecast(p):
    """Trains on the windows, then forecasts the whole series from a zero state."""
    p, losses = adam_descent(forecast_loss, p, 1e-2, 300)
    return losses, forecast(p, jnp.asarray(series[None, :-1, None]))[0]


ts_losses, pred = fit_and_forecast(p_ts)
pred = np.asarray(pred)                      # pred[t] is the forecast of series[t + 1]
target = series[1:]
mse_rnn = float(np.mean((pred[SPLIT:] - target[SPLIT:]) ** 2))
mse_naive = float(np.mean((series[:-1][SPLIT:] - target[SPLIT:]) ** 2))
print(f"test MSE over hours {SPLIT + 1}-599: RNN {mse_rnn:.4f}, naive last value {mse_naive:.4f},"
      f" noise floor {0.15 ** 2:.4f}")
shown = np.arange(SPLIT, SPLIT + 96)
plt.figure(figsize=(9, 3))
plt.plot(shown + 1, target[shown], "k.", ms=4, label="observed")
plt.plot(shown + 1, pred[shown], "C0-", label=f"RNN forecast (MSE {mse_rnn:.3f})")
plt.plot(shown + 1, series[:-1][shown], "C1--", lw=1, label=f"last value (MSE {mse_naive:.3f})")
plt.xlabel("hour")
plt.legend(fontsize=8, loc="upper right")
plt.show()
# measured 0.22-0.28x the naive error and 1.1-1.4x the noise floor over NumPy seeds 0, 1, 2, 4 and 7
assert mse_rnn < 0.5 * mse_naive and mse_rnn < 2 * 0.15 ** 2

# %% [markdown]
# ## 7. Character-level TV-script generation
# The notes' third project: a network reads a script one character at a time and predicts the
# next. The corpus here is generated by a known probabilistic grammar, so its entropy rate is
# known exactly: no model can go below `entropy_bits_per_char`.
#
# Training uses *stateful* truncated BPTT: the text is cut into `streams` contiguous rows, batch
# c holds chunk c of every row, and the carry passes from batch to batch (values as if the whole
# text were one sequence, gradients truncated at chunk boundaries). `fit(..., shuffle=False)`
# keeps the order; the carry lives in the model state.

# %%
ds_tv = datasets.load("tv_script", n_lines=600 if SMOKE else 4000)
vocab = ds_tv.meta["vocab"]
floor = ds_tv.meta["entropy_bits_per_char"]
print(ds_tv.meta["text_train"][:160])
cfg_lm = char_lm.Config(vocab_size=len(vocab), cell="lstm", hidden=64 if SMOKE else 128,
                        streams=16 if SMOKE else 32, chunk=32 if SMOKE else 64)
lm_data = char_lm.stream_batches(ds_tv.x_train, cfg_lm.streams, cfg_lm.chunk)
params_lm = char_lm.init(jax.random.PRNGKey(0), cfg_lm)
bpc_before = char_lm.bits_per_char(params_lm, cfg_lm, ds_tv.x_test)
t0 = time.perf_counter()
res_lm = fit(functools.partial(char_lm.loss, cfg=cfg_lm), params_lm,
             optax.chain(optax.clip_by_global_norm(5.0), optax.adam(3e-3)), lm_data, key=0,
             epochs=4 if SMOKE else 10, batch_size=cfg_lm.streams, shuffle=False,
             model_state=char_lm.init_state(cfg_lm), fast_path="scan", progress=False)
params_lm = res_lm.state.params
bpc = char_lm.bits_per_char(params_lm, cfg_lm, ds_tv.x_test)
unigram = np.bincount(ds_tv.x_train, minlength=len(vocab)) / len(ds_tv.x_train)
unigram_bits = float(-np.sum(unigram[unigram > 0] * np.log2(unigram[unigram > 0])))
print(f"{time.perf_counter() - t0:.0f} s; test bits/char: untrained {bpc_before:.2f}, "
      f"trained {bpc:.3f}; unigram {unigram_bits:.2f}; entropy floor {floor:.3f}")
plt.figure(figsize=(6, 3.5))
plt.plot([h["epoch"] for h in res_lm.history], [h["bits_per_char"] for h in res_lm.history],
         "o-", label="train (chunks)")
plt.axhline(floor, color="gray", ls="--", label="entropy floor")
plt.xlabel("epoch"), plt.ylabel("bits per character"), plt.legend()
plt.show()
assert floor <= bpc < 0.6 * unigram_bits

# %% [markdown]
# Sampling: the priming text is run through the network, then each next character is drawn from
# `softmax(logits / temperature)`. Temperature 0 is greedy decoding (always the most likely
# character), low temperatures give safe, repetitive text and high ones more surprising text.
# The same key always gives the same text.

# %%
prime = "ALICE:"
samples = {}
for temperature in (0.0, 1.0) if SMOKE else (0.0, 0.5, 1.0):
    samples[temperature] = char_lm.sample(params_lm, vocab.encode(prime), cfg_lm, length=120,
                                          key=jax.random.PRNGKey(1), temperature=temperature)
    text = vocab.decode(np.asarray(samples[temperature]))
    print(f"--- temperature {temperature}:\n{prime}{text}\n")

again = char_lm.sample(params_lm, vocab.encode(prime), cfg_lm, length=120,
                       key=jax.random.PRNGKey(1), temperature=1.0)
assert np.array_equal(again, samples[1.0])   # reproducible from the key
logits = char_lm.apply(params_lm, jnp.asarray(vocab.encode(prime))[None], cfg_lm)
assert int(samples[0.0][0]) == int(jnp.argmax(logits[0, -1]))   # temperature 0 = argmax
