# %% [markdown]
# # 05 CNNs, autoencoders and transfer learning
#
# A fully connected layer ignores where pixels are and needs a weight for every
# pixel-unit pair. A convolution slides one small filter over the image instead: local
# connections, shared weights, and pooling to shrink the map (seed 003 section 5). This
# notebook checks the arithmetic of convolution (cross-correlation, stride, zero padding,
# output sizes, pooling), trains a LeNet-style CNN on the 8x8 digits, squeezes digits through
# a convolutional autoencoder, and reuses a trained CNN's filters for new classes (transfer
# learning), all with `zoo` models and `train.loop.fit`.

# %%
import itertools
from functools import partial

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from functional import layers, optim
from functional.losses import accuracy
from train import datasets
from train.loop import fit
from zoo import autoencoder, cnn, mlp, transfer

CNN_EPOCHS = 4 if SMOKE else 30
AE_EPOCHS = 8 if SMOKE else 40
PRE_EPOCHS = 4 if SMOKE else 30  # pretraining on digits 0-4
FINETUNE_STEPS = 60 if SMOKE else 300  # full-batch steps on the few-shot set
SHOTS = 10  # training images per new class

# %% [markdown]
# ## 1. Convolution is cross-correlation
#
# The notes' formula for one output of a filter `w` with bias `w_b` (stride 1):
#
# `a[i, j] = f( sum_m sum_n w[m, n] * x[i + m, j + n] + w_b )`
#
# The filter is not flipped. Mathematics' convolution flips it by 180 degrees first, which
# is why the notes call the CNN operation **cross-correlation**. `functional.layers.conv`
# (channels-last, kernels `<f32>[kh, kw, in, out]`) computes exactly the formula above:

# %%
rng = np.random.default_rng(0)
x = rng.integers(0, 3, size=(5, 5)).astype(np.float32)
w = rng.integers(-1, 2, size=(3, 3)).astype(np.float32)
by_hand = np.array([[np.sum(w * x[i:i + 3, j:j + 3]) + 1.0 for j in range(3)]
                    for i in range(3)])
ours = layers.conv({"w": w[:, :, None, None], "b": jnp.ones(1)}, x[None, :, :, None],
                   padding="VALID")[0, :, :, 0]
print("input\n", x, "\nfilter\n", w, "\nfeature map (bias 1)\n", np.asarray(ours))
np.testing.assert_array_equal(ours, by_hand)

# Mathematical convolution = cross-correlation with the flipped filter
math_conv = jax.scipy.signal.convolve2d(x, w, mode="valid")
flipped = layers.conv({"w": w[::-1, ::-1, None, None], "b": jnp.zeros(1)}, x[None, :, :, None],
                      padding="VALID")[0, :, :, 0]
np.testing.assert_allclose(flipped, math_conv, atol=1e-6)
assert not np.allclose(by_hand - 1.0, math_conv)  # unflipped they differ (w is not symmetric)

# %% [markdown]
# ## 2. Stride, zero padding and output sizes
#
# With input width `W`, filter size `F`, zero padding `P` on each side and stride `S`, the
# output width is `(W - F + 2P) / S + 1`. The notes' animated example (cs231n's): a 5x5x3
# input, two 3x3x3 filters, zero padding 1, stride 2, gives a 3x3x2 output. Each filter has
# its own bias and sums over all input channels.

# %%
x3 = rng.integers(0, 3, size=(1, 5, 5, 3)).astype(np.float32)
two_filters = {"w": rng.integers(-1, 2, size=(3, 3, 3, 2)).astype(np.float32),
               "b": np.array([1.0, 0.0], np.float32)}
y3 = layers.conv(two_filters, x3, stride=2, padding=1)
print("output shape", y3.shape)
assert y3.shape == (1, 3, 3, 2)
padded = np.pad(x3[0], ((1, 1), (1, 1), (0, 0)))
for i, j, d in itertools.product(range(3), range(3), range(2)):
    patch = padded[2 * i:2 * i + 3, 2 * j:2 * j + 3, :]
    assert np.isclose(y3[0, i, j, d], np.sum(patch * two_filters["w"][..., d])
                      + two_filters["b"][d])

# the size formula, checked against real outputs over a grid of settings
for W, F, P, S in itertools.product([5, 7, 8], [1, 3, 5], [0, 1, 2], [1, 2, 3]):
    if W + 2 * P < F:
        continue
    # jax.eval_shape traces the layer for shapes only: no compilation, no arithmetic
    out = jax.eval_shape(partial(layers.conv, stride=S, padding=P),
                         {"w": jnp.ones((F, 1, 1)), "b": jnp.zeros(1)},
                         jnp.ones((1, W, 1))).shape[1]
    assert out == (W - F + 2 * P) // S + 1 == layers.conv_output_shape(W, F, stride=S,
                                                                       padding=P)[0]
print("(W - F + 2P) / S + 1 holds for every setting tried")

# %% [markdown]
# **Pooling** shrinks each channel on its own; 2x2 max pooling with stride 2 keeps the
# largest value of each block (the classic example):

# %%
block = jnp.array([[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]], jnp.float32)
pooled = layers.max_pool(block[None, :, :, None], 2)[0, :, :, 0]
print(np.asarray(pooled))
np.testing.assert_array_equal(pooled, [[6, 8], [3, 4]])

# %% [markdown]
# ## 3. A CNN on the digits
#
# `zoo.cnn.lenet_config` sizes a LeNet-style network for 8x8 images: two blocks of
# 3x3 convolution + ReLU + 2x2 max-pool (16 then 32 filters, 8 -> 4 -> 2 pixels), a dense
# layer of 64 and the 10-way output. Convolutions run faster per step than inside one
# `lax.scan` on CPU, hence `fast_path="loop"`.

# %%
ds = datasets.load("digits")
train_data = {"x": ds.x_train, "y": ds.y_train}
test_data = {"x": ds.x_test, "y": ds.y_test}
cnn_cfg = cnn.lenet_config((8, 8, 1), n_out=10)
cnn_params = cnn.init(jax.random.key(0), cnn_cfg)
n_params = sum(a.size for a in jax.tree.leaves(cnn_params))
print({k: {n: v.shape for n, v in p.items()} for k, p in cnn_params.items()})
print(f"{n_params:,} parameters; feature map before the dense layers: "
      f"{cnn.feature_shape(cnn_cfg)}")
assert cnn.feature_shape(cnn_cfg) == (2, 2, 32)

res = fit(partial(cnn.loss, cfg=cnn_cfg), cnn_params, optim.adam(1e-3), train_data, key=0,
          epochs=CNN_EPOCHS, batch_size=32, fast_path="loop", progress=False)
cnn_trained = res.state.params
cnn_acc = float(accuracy(cnn.apply(cnn_trained, ds.x_test, cnn_cfg), ds.y_test))
print(f"test accuracy after {CNN_EPOCHS} epochs: {cnn_acc:.3f}")
assert cnn_acc > (0.85 if SMOKE else 0.97)

fig, axes = plt.subplots(2, 8, figsize=(8, 2.2))
for ax, k in zip(axes.ravel(), range(16), strict=True):
    ax.imshow(np.asarray(cnn_trained["conv1"]["w"][:, :, 0, k]), cmap="RdBu")
    ax.set(xticks=[], yticks=[])
fig.suptitle("the 16 learned 3x3 filters of the first layer")
plt.show()

# %% [markdown]
# Weight sharing in numbers: the first convolution has `3*3*1*16 + 16 = 160` parameters
# whatever the image size; a dense layer from the 64 pixels to 16 units would need 1,040, and
# from a 224x224 image more than 800,000.

# %%
assert cnn_trained["conv1"]["w"].size + cnn_trained["conv1"]["b"].size == 160
mlp_equiv = jax.eval_shape(partial(mlp.init, cfg=mlp.Config(n_in=64, hidden=(16,), n_out=10)),
                           jax.random.key(0))["fc1"]
assert mlp_equiv["w"].size + mlp_equiv["b"].size == 1040

# %% [markdown]
# ## 4. A convolutional autoencoder
#
# An autoencoder learns to reproduce its input through a bottleneck. `zoo.autoencoder`'s
# encoder is conv + ReLU + max-pool twice (8x8x1 -> 4x4x16 -> 2x2x8: a code of 32 numbers
# for 64 pixels); the decoder mirrors it with **transposed convolutions** (stride 2, each
# doubling the size) and a final 3x3 convolution to pixel logits. The loss is per-pixel
# binary cross-entropy against the input.

# %%
ae_cfg = autoencoder.Config(input_shape=(8, 8, 1), channels=(16, 8))
ae_params = autoencoder.init(jax.random.key(0), ae_cfg)
code = autoencoder.encode(ae_params, ds.x_test[:2], ae_cfg)
print("code shape", code.shape)
assert code.shape == (2, 2, 2, 8)
ae = fit(partial(autoencoder.loss, cfg=ae_cfg), ae_params, optim.adam(1e-2),
         {"x": ds.x_train}, key=0, epochs=AE_EPOCHS, batch_size=64, fast_path="loop",
         progress=False)
recon = autoencoder.apply(ae.state.params, ds.x_test, ae_cfg)
ae_mse = float(jnp.mean((recon - ds.x_test) ** 2))
mean_image_mse = float(jnp.mean((ds.x_train.mean(0) - ds.x_test) ** 2))
print(f"test pixel MSE: autoencoder {ae_mse:.4f}, predicting the mean image {mean_image_mse:.4f}")

fig, axes = plt.subplots(2, 10, figsize=(10, 2.3))
for i in range(10):
    axes[0, i].imshow(ds.x_test[i, :, :, 0], cmap="gray_r", vmin=0, vmax=1)
    axes[1, i].imshow(recon[i, :, :, 0], cmap="gray_r", vmin=0, vmax=1)
    for ax in axes[:, i]:
        ax.set(xticks=[], yticks=[])
axes[0, 0].set_ylabel("input")
axes[1, 0].set_ylabel("output")
plt.show()
assert ae_mse < (0.6 if SMOKE else 0.35) * mean_image_mse

# %% [markdown]
# ## 5. Transfer learning
#
# Train a CNN on the digits 0-4 (task A). Then keep its convolution layers, replace the
# classifier by a fresh one for the digits 5-9 (task B), and train only the new head on a
# handful of examples: 10 images per class. Does what was learned on 0-4 help with 5-9?
# Freezing is done in the optimizer:
# `zoo.transfer.freeze_optimizer` routes the convolution parameters to
# `optax.set_to_zero()`, so they never move.

# %%
t_cfg = transfer.Config(cnn=cnn.lenet_config((8, 8, 1), n_out=5))
xa, ya = transfer.split_classes(ds.x_train, ds.y_train, (0, 1, 2, 3, 4))
xa_test, ya_test = transfer.split_classes(ds.x_test, ds.y_test, (0, 1, 2, 3, 4))
pre = fit(partial(transfer.loss, cfg=t_cfg), transfer.init(jax.random.key(1), t_cfg),
          optim.adam(1e-3), {"x": xa, "y": ya}, key=0, epochs=PRE_EPOCHS, batch_size=32,
          fast_path="loop", progress=False)
source = pre.state.params
acc_a = float(accuracy(transfer.apply(source, xa_test, t_cfg), ya_test))
print(f"task A (digits 0-4): test accuracy {acc_a:.3f}")

xb, yb = transfer.split_classes(ds.x_train, ds.y_train, (5, 6, 7, 8, 9))
xb_test, yb_test = transfer.split_classes(ds.x_test, ds.y_test, (5, 6, 7, 8, 9))
few = np.concatenate([np.flatnonzero(yb == c)[:SHOTS] for c in range(5)])
few_data = {"x": xb[few], "y": yb[few]}
print(f"task B (digits 5-9): {len(few)} training images, {len(yb_test)} test images")

new_params, new_cnn = transfer.replace_head(jax.random.key(2), source, t_cfg.cnn, 5)
b_cfg = transfer.Config(cnn=new_cnn, freeze="mask")
# one loss and one optimizer object, reused below, so fit compiles the step once
head_loss = partial(transfer.loss, cfg=b_cfg)
head_opt = transfer.freeze_optimizer(optim.adam(1e-3), new_params)
frozen = fit(head_loss, new_params, head_opt, few_data, key=0, epochs=FINETUNE_STEPS,
             batch_size=None, fast_path="loop", progress=False)
acc_transfer = float(accuracy(transfer.apply(frozen.state.params, xb_test, b_cfg), yb_test))

# The control: the same head training on top of *random* frozen convolution layers
# (same loss and optimizer objects, so nothing is recompiled)
random_feats, _ = transfer.replace_head(jax.random.key(2), transfer.init(jax.random.key(4),
                                                                        t_cfg), t_cfg.cnn, 5)
rand = fit(head_loss, random_feats, head_opt, few_data, key=0, epochs=FINETUNE_STEPS,
           batch_size=None, fast_path="loop", progress=False)
acc_random = float(accuracy(transfer.apply(rand.state.params, xb_test, b_cfg), yb_test))
print(f"task B test accuracy from {len(few)} images: frozen 0-4 features {acc_transfer:.3f}, "
      f"frozen random features {acc_random:.3f} (chance 0.2)")

# %% [markdown]
# The mechanism works: the convolution layers after fine-tuning are bit for bit those
# learned on 0-4, and a new head classifies 5-9 from 50 images far above chance. The honest
# finding is the comparison: on these tiny 8x8 images the 0-4 filters are **no better** than
# random frozen filters under the same head (and the zoo's `transfer` entry measures a
# network trained from scratch on the 50 images at ~95% against ~94% for the transferred
# one). With 64 pixels, random 3x3 filters already give a dense head rich enough features.
# Transfer learning pays off when the features are expensive to learn: larger images, deeper
# networks, a big source data set (ImageNet) and a small target one.

# %%
for name in ("conv1", "conv2"):
    for leaf in ("w", "b"):
        np.testing.assert_array_equal(frozen.state.params[name][leaf], source[name][leaf])
        assert not np.array_equal(source[name][leaf], random_feats[name][leaf])
assert acc_a > (0.9 if SMOKE else 0.97)
assert acc_transfer > (0.6 if SMOKE else 0.75)
assert acc_random > 0.6  # the reason transfer does not win here

# %% [markdown]
# **Summary.** Convolutions are small shared filters slid over the input (cross-correlation),
# with output size `(W - F + 2P) / S + 1`; stacking them with pooling gives compact, accurate
# image classifiers. The same layers, run backwards with transposed convolutions, make an
# autoencoder; and filters learned on one task can be frozen and reused for another.
