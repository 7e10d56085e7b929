# %% [markdown]
# # 08 Generative adversarial networks
# The notes' fifth project generates faces with a GAN (seed 001). A GAN is a game between two
# networks (Goodfellow et al. 2014): a generator G turns random codes z into samples, and a
# discriminator D tells real samples from generated ones. D minimizes the cross-entropy of
# "real or fake"; G tries to make D call its samples real. This notebook:
#
# 1. shows why G uses the *non-saturating* loss `-log D(G(z))` rather than the game's
#    `log(1 - D(G(z)))`;
# 2. trains an MLP GAN on a ring of 8 Gaussians and measures how many modes it covers as it
#    trains (mode collapse is the classic GAN failure);
# 3. trains a DCGAN (Radford et al. 2016) on 8x8 handwritten digits.

# %%
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from train import datasets
from train.gan import fit_gan
from zoo import gan

# %% [markdown]
# ## 1. Two losses for the generator
# Early in training D rejects G's samples easily: D(G(z)) is close to 0. The original game's
# generator loss `log(1 - D(G(z)))` is flat there (its gradient with respect to D's logit l is
# `-sigmoid(l)`, almost 0), so G learns nothing. The non-saturating loss `-log D(G(z))` has the
# gradient `-(1 - sigmoid(l))`, almost -1: strong exactly when G is bad.

# %%
logits = jnp.linspace(-6.0, 6.0, 121)
per_logit = {kind: jax.vmap(jax.grad(lambda l, k=kind: gan.generator_loss(l[None], k)))(logits)
             for kind in ("minimax", "non_saturating")}
plt.figure(figsize=(5.5, 3.2))
for kind, g in per_logit.items():
    plt.plot(jax.nn.sigmoid(logits), g, label=kind)
plt.xlabel("D(G(z))"), plt.ylabel("dLoss_G / dlogit"), plt.legend()
plt.title("generator gradient")
plt.show()
l0 = jnp.array([-5.0])    # D is confident the sample is fake
g_mm = float(jax.grad(lambda l: gan.generator_loss(l, "minimax"))(l0)[0])
g_ns = float(jax.grad(lambda l: gan.generator_loss(l, "non_saturating"))(l0)[0])
print(f"at D(G(z)) = {float(jax.nn.sigmoid(l0[0])):.4f}: minimax {g_mm:.4f}, "
      f"non-saturating {g_ns:.4f}")
np.testing.assert_allclose(g_mm, -jax.nn.sigmoid(-5.0), rtol=1e-5)
np.testing.assert_allclose(g_ns, -(1 - jax.nn.sigmoid(-5.0)), rtol=1e-5)

# %% [markdown]
# ## 2. The ring of 8 Gaussians
# Eight narrow Gaussians (std 0.02) on a circle of radius 2. A sample is *high quality* when it
# lies within 3 standard deviations of a mode, and a mode is *covered* when at least 1% of the
# samples land on it (the measure of Srivastava et al. 2017). We train in rounds with
# `fit_gan(..., state=..., epoch_offset=...)`, which continues exactly as one long run, and
# measure coverage after each round. Both players use Adam with beta1 = 0.5 and a cosine decay
# of the learning rate over the run (`gan.default_optimizers`).

# %%
ds_ring = datasets.load("gaussian_ring")
centers, std = np.asarray(ds_ring.meta["centers"]), float(ds_ring.meta["std"])
cfg_ring = gan.Config(kind="mlp", latent_dim=2, data_shape=(2,),
                      hidden=128 if SMOKE else 256, depth=2 if SMOKE else 3)
ROUNDS, EPOCHS_PER_ROUND, BATCH = (3, 10, 256) if SMOKE else (5, 20, 256)
steps = ROUNDS * EPOCHS_PER_ROUND * (len(ds_ring.x_train) // BATCH)
# smoke mode: a larger learning rate for a run 3x shorter (the default is 5e-4)
g_opt, d_opt = gan.default_optimizers(cfg_ring, total_steps=steps, lr=3e-3 if SMOKE else None)
key = jax.random.PRNGKey(0)
state = gan.init_gan_state(key, cfg_ring, g_opt, d_opt)
eval_key = jax.random.PRNGKey(123)
coverage = [gan.mode_coverage(gan.sample(state.params, 5_000, cfg_ring, key=eval_key,
                                         state=state.model_state), centers, std)]
snapshots = [np.asarray(gan.sample(state.params, 1_000, cfg_ring, key=eval_key,
                                   state=state.model_state))]
t0 = time.perf_counter()
for r in range(ROUNDS):
    res = fit_gan(cfg_ring, ds_ring.x_train, key=key, epochs=EPOCHS_PER_ROUND,
                  batch_size=BATCH, g_opt=g_opt, d_opt=d_opt, state=state,
                  epoch_offset=r * EPOCHS_PER_ROUND, progress=False)
    state = res.state
    s = gan.sample(state.params, 5_000, cfg_ring, key=eval_key, state=state.model_state)
    coverage.append(gan.mode_coverage(s, centers, std))
    snapshots.append(np.asarray(s[:1_000]))
    h = res.history[-1]
    print(f"epoch {(r + 1) * EPOCHS_PER_ROUND:3d}: {coverage[-1]['modes_covered']}/8 modes, "
          f"{coverage[-1]['high_quality']:.0%} high quality, D(real) {h['d_real']:.2f}, "
          f"D(fake) {h['d_fake']:.2f}")
print(f"{time.perf_counter() - t0:.0f} s")

fig, axes = plt.subplots(1, len(snapshots), figsize=(2.6 * len(snapshots), 2.8))
for i, (ax, pts) in enumerate(zip(axes, snapshots, strict=True)):
    ax.scatter(ds_ring.x_test[:1000, 0], ds_ring.x_test[:1000, 1], s=1, c="lightgray")
    ax.scatter(pts[:, 0], pts[:, 1], s=1)
    ax.set(xlim=(-3, 3), ylim=(-3, 3), aspect="equal", xticks=[], yticks=[],
           title=f"epoch {i * EPOCHS_PER_ROUND}: {coverage[i]['modes_covered']}/8")
plt.show()
first, last = coverage[0], coverage[-1]
assert last["modes_covered"] > first["modes_covered"]
assert last["high_quality"] > first["high_quality"] + 0.3
if not SMOKE:
    assert last["modes_covered"] == 8 and last["high_quality"] >= 0.8

# %% [markdown]
# ## 3. DCGAN on handwritten digits
# Radford et al.'s recipe: no pooling (strided convolutions down in D, transposed convolutions
# up in G), batch norm in both players except G's output and D's input, ReLU in G and leaky
# ReLU (0.2) in D, weights from N(0, 0.02), Adam with learning rate 2e-4 and beta1 = 0.5.
# Images are scaled to [-1, 1] to match G's tanh output.

# %%
ds_dig = datasets.load("digits")
x = np.asarray(ds_dig.x_train, np.float32)
x = 2.0 * (x - x.min()) / (x.max() - x.min()) - 1.0
cfg_dc = gan.Config(kind="dcgan", latent_dim=32, data_shape=x.shape[1:],
                    base_channels=16 if SMOKE else 64)
EPOCHS_DC = 6 if SMOKE else 150
g_opt, d_opt = gan.default_optimizers(cfg_dc, total_steps=EPOCHS_DC * (len(x) // 64))
z_key = jax.random.PRNGKey(7)
state0 = gan.init_gan_state(jax.random.PRNGKey(1), cfg_dc, g_opt, d_opt)
before = np.asarray(gan.sample(state0.params, 64, cfg_dc, key=z_key, state=state0.model_state))
t0 = time.perf_counter()
res_dc = fit_gan(cfg_dc, x, key=jax.random.PRNGKey(1), epochs=EPOCHS_DC, batch_size=64,
                 g_opt=g_opt, d_opt=d_opt, progress=False)
after = np.asarray(gan.sample(res_dc.state.params, 64, cfg_dc, key=z_key,
                              state=res_dc.state.model_state))
print(f"{EPOCHS_DC} epochs in {time.perf_counter() - t0:.0f} s; last epoch: "
      f"d_loss {res_dc.history[-1]['d_loss']:.3f}, g_loss {res_dc.history[-1]['g_loss']:.3f}")


def grid(images, side=8):
    h, w = images.shape[1:3]
    out = np.ones((side * (h + 1), side * (w + 1)))
    for i, im in enumerate(images[:side * side]):
        r, c = divmod(i, side)
        out[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = (im[..., 0] + 1) / 2
    return out


fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
for ax, ims, title in zip(axes, (x[:64], before, after), ("real", "untrained G", "trained G"),
                          strict=True):
    ax.imshow(grid(ims), cmap="gray", vmin=0, vmax=1)
    ax.set(title=title, xticks=[], yticks=[])
plt.show()

# The samples' average image moves towards the data's (an untrained G gives a flat grey blur).
assert after.shape == (64, 8, 8, 1) and after.min() >= -1 and after.max() <= 1
gap = lambda s: float(np.abs(s.mean(0) - x.mean(0)).mean())
print(f"|mean image - data mean image|: untrained {gap(before):.3f}, trained {gap(after):.3f}")
assert gap(after) < gap(before)
