"""Generative adversarial networks: an MLP GAN and a DCGAN, as pure functions.

References:
    Goodfellow et al. 2014, "Generative Adversarial Nets" (the minimax game and the
    non-saturating generator loss, section 3).
    Radford, Metz & Chintala 2016, "Unsupervised Representation Learning with Deep Convolutional
    GANs" (DCGAN: strided and transposed convolutions instead of pooling, batch norm in both
    players except the generator output and discriminator input, ReLU in the generator, leaky
    ReLU with slope 0.2 in the discriminator, weights from N(0, 0.02), Adam with lr 2e-4 and
    beta1 0.5).
    Salimans et al. 2016, "Improved Techniques for Training GANs" (one-sided label smoothing).
    Seed 001 of the notes: the course's fifth project (face generation with a GAN).

The two players live side by side in one params pytree, ``{'generator': ..., 'discriminator':
...}``, with batch-norm statistics in a matching ``model_state`` (``{}`` entries for the MLP GAN).
``gan_step`` updates both players inside one pure function, each with its own optimizer, so a
driver jits it once; a player's loss is differentiated with respect to that player's parameters
only, so each gradient moves its own player alone.

Shapes: latent codes ``<f32>[batch, latent_dim]``; MLP GAN samples ``<f32>[batch, data_dim]``;
DCGAN samples ``<f32>[batch, height, width, channels]`` in ``[-1, 1]`` (tanh output): the
generator projects z to a 2x2 feature map and doubles it with each transposed convolution;
the discriminator mirrors it with stride-2 convolutions down to 2x2.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from functional import activations, layers, losses, optim, schedules
from functional import init as initializers
from zoo.data_info import DataInfo, Inputs

LOSSES = ("non_saturating", "minimax")
KINDS = ("mlp", "dcgan")


@dataclass(frozen=True)
class Config:
    """Hyperparameters of a GAN (static: never traced).

    Attributes:
        kind: ``'mlp'`` (fully connected players) or ``'dcgan'`` (convolutional players).
        latent_dim: size of the generator's input code z ~ N(0, I).
        data_shape: shape of one sample: ``(data_dim,)`` for the MLP GAN,
            ``(height, width, channels)`` for the DCGAN (height = width = 4 * 2**k, k >= 1).
        hidden: width of the MLP players' hidden layers.
        depth: number of hidden layers of each MLP player.
        base_channels: channels of the DCGAN's widest feature map.
        generator_loss: ``'non_saturating'`` (maximize log D(G(z)); Goodfellow section 3) or
            ``'minimax'`` (minimize log(1 - D(G(z))), the original game).
        real_label: target for real samples in the discriminator loss; 0.9 is one-sided label
            smoothing (fake targets stay 0).
        d_steps: discriminator updates per generator update.
    """

    kind: str = "mlp"
    latent_dim: int = 2
    data_shape: tuple[int, ...] = (2,)
    hidden: int = 128
    depth: int = 2
    base_channels: int = 64
    generator_loss: str = "non_saturating"
    real_label: float = 1.0
    d_steps: int = 1

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"gan.Config: kind must be one of {KINDS}, got {self.kind!r}")
        if self.generator_loss not in LOSSES:
            raise ValueError(
                f"gan.Config: generator_loss must be one of {LOSSES}, got {self.generator_loss!r}"
            )
        if not 0.0 < self.real_label <= 1.0:
            raise ValueError(f"gan.Config: real_label must be in (0, 1], got {self.real_label}")
        if self.kind == "mlp" and len(self.data_shape) != 1:
            raise ValueError(
                f"gan.Config: the MLP GAN needs data_shape (data_dim,), got {self.data_shape}"
            )
        if self.kind == "dcgan":
            if len(self.data_shape) != 3 or self.data_shape[0] != self.data_shape[1]:
                raise ValueError(
                    "gan.Config: the DCGAN needs data_shape (size, size, channels), "
                    f"got {self.data_shape}"
                )
            if self.data_shape[0] < 8 or self.data_shape[0] & (self.data_shape[0] - 1):
                raise ValueError(
                    "gan.Config: the DCGAN's image size must be a power of two >= 8, "
                    f"got {self.data_shape[0]}"
                )
        if self.latent_dim < 1 or self.d_steps < 1:
            raise ValueError(
                "gan.Config: latent_dim and d_steps must be >= 1, "
                f"got {self.latent_dim} and {self.d_steps}"
            )


# Side of the DCGAN generator's first feature map (and of the discriminator's last).
_SEED = 2

# DCGAN weights are drawn from N(0, 0.02) (Radford et al., section 4).
_dcgan_w = initializers.normal(0.02)


def _n_upsamplings(cfg: Config) -> int:
    """Stride-2 stages between the 2x2 seed feature map and the image (8x8 -> 2, 32x32 -> 4)."""
    return (cfg.data_shape[0] // 2).bit_length() - 1


# ----------------------------------------------------------------------------- initialization

def _mlp_init(key, sizes):
    keys = jax.random.split(key, len(sizes) - 1)
    return {f"fc{i}": layers.dense_init(k, a, b) for i, (k, a, b) in
            enumerate(zip(keys, sizes[:-1], sizes[1:], strict=True))}


def _dcgan_generator_init(key, cfg):
    n_up = _n_upsamplings(cfg)
    chans = [cfg.base_channels // 2**i for i in range(n_up)] + [cfg.data_shape[2]]
    keys = jax.random.split(key, n_up + 1)
    params = {"project": layers.dense_init(keys[0], cfg.latent_dim, _SEED * _SEED * chans[0],
                                           w_init=_dcgan_w)}
    state = {}
    params["bn_project"], state["bn_project"] = layers.batch_norm_init(chans[0])
    for i in range(n_up):
        params[f"up{i}"] = layers.conv_transpose_init(keys[i + 1], chans[i], chans[i + 1],
                                                      (4, 4), w_init=_dcgan_w)
        if i < n_up - 1:  # no batch norm on the generator's output layer
            params[f"bn_up{i}"], state[f"bn_up{i}"] = layers.batch_norm_init(chans[i + 1])
    return params, state


def _dcgan_discriminator_init(key, cfg):
    n_down = _n_upsamplings(cfg)
    chans = [cfg.data_shape[2]] + [cfg.base_channels // 2**i for i in reversed(range(n_down))]
    keys = jax.random.split(key, n_down + 1)
    params, state = {}, {}
    for i in range(n_down):
        params[f"down{i}"] = layers.conv_init(keys[i], chans[i], chans[i + 1], (4, 4),
                                              w_init=_dcgan_w)
        if i > 0:  # no batch norm on the discriminator's input layer
            params[f"bn_down{i}"], state[f"bn_down{i}"] = layers.batch_norm_init(chans[i + 1])
    params["out"] = layers.dense_init(keys[-1], _SEED * _SEED * chans[-1], 1, w_init=_dcgan_w)
    return params, state


INPUTS = Inputs(shapes=((2,), (None, None, None)), kind="float",
                words="2-D points x [n, 2] or images x [n, height, width, channels]")


def config_for(info: DataInfo, **overrides) -> Config:
    """The preset for a dataset: an MLP GAN for points ``[d]`` (latent 2, hidden 256, depth 3),
    a DCGAN for images (latent 32, 64 base channels); ``overrides`` replace fields."""
    if len(info.input_shape) == 1:
        cfg = Config(kind="mlp", latent_dim=2, data_shape=info.input_shape, hidden=256, depth=3)
    else:
        cfg = Config(kind="dcgan", latent_dim=32, data_shape=info.input_shape,
                     base_channels=64)
    return dataclasses.replace(cfg, **overrides)


def init(key: jax.Array, cfg: Config) -> dict:
    """Initial parameters of both players: ``{'generator': ..., 'discriminator': ...}``."""
    kg, kd = jax.random.split(key)
    if cfg.kind == "mlp":
        dim = cfg.data_shape[0]
        hidden = [cfg.hidden] * cfg.depth
        return {"generator": _mlp_init(kg, [cfg.latent_dim, *hidden, dim]),
                "discriminator": _mlp_init(kd, [dim, *hidden, 1])}
    return {"generator": _dcgan_generator_init(kg, cfg)[0],
            "discriminator": _dcgan_discriminator_init(kd, cfg)[0]}


def init_state(cfg: Config) -> dict:
    """Batch-norm running statistics of both players (empty dicts for the MLP GAN)."""
    if cfg.kind == "mlp":
        return {"generator": {}, "discriminator": {}}
    key = jax.random.PRNGKey(0)  # statistics do not depend on the key
    return {"generator": _dcgan_generator_init(key, cfg)[1],
            "discriminator": _dcgan_discriminator_init(key, cfg)[1]}


# ----------------------------------------------------------------------------- the players

def _mlp_forward(params, x, hidden_act):
    n = len(params)
    for i in range(n):
        x = layers.dense(params[f"fc{i}"], x)
        if i < n - 1:
            x = hidden_act(x)
    return x


def _bn(params, state, name, x, train, new_state):
    y, new_state[name] = layers.batch_norm(params[name], state[name], x, train=train)
    return y


def generate(params: dict, state: dict, z: jax.Array, cfg: Config, *,
             train: bool = False) -> tuple[jax.Array, dict]:
    """Generator G(z).

    Args:
        params: the generator's parameters (``params['generator']`` of :func:`init`).
        state: the generator's batch-norm statistics (``{}`` for the MLP GAN).
        z: latent codes ``<f32>[batch, latent_dim]``.
        cfg: the GAN's config.
        train: use batch statistics (and return updated running statistics).

    Returns:
        ``(samples, new_state)``; samples ``<f32>[batch, *cfg.data_shape]`` (DCGAN in [-1, 1]).
    """
    _check_batch("generate", z, (cfg.latent_dim,), "latent codes z")
    if cfg.kind == "mlp":
        return _mlp_forward(params, z, activations.relu), state
    new_state = dict(state)
    h = layers.dense(params["project"], z).reshape(z.shape[0], _SEED, _SEED, -1)
    h = activations.relu(_bn(params, state, "bn_project", h, train, new_state))
    n_up = _n_upsamplings(cfg)
    for i in range(n_up):
        h = layers.conv_transpose(params[f"up{i}"], h, stride=2, padding="SAME")
        if i < n_up - 1:
            h = activations.relu(_bn(params, state, f"bn_up{i}", h, train, new_state))
    return jnp.tanh(h), new_state


def discriminate(params: dict, state: dict, x: jax.Array, cfg: Config, *,
                 train: bool = False) -> tuple[jax.Array, dict]:
    """Discriminator D(x) as a logit (the probability "real" is ``sigmoid`` of it).

    Args:
        params: the discriminator's parameters.
        state: its batch-norm statistics (``{}`` for the MLP GAN).
        x: samples ``<f32>[batch, *cfg.data_shape]``.
        cfg: the GAN's config.
        train: use batch statistics (and return updated running statistics).

    Returns:
        ``(logits <f32>[batch], new_state)``.
    """
    _check_batch("discriminate", x, cfg.data_shape, "x")
    if cfg.kind == "mlp":
        act = lambda h: activations.leaky_relu(h, negative_slope=0.2)
        return _mlp_forward(params, x, act)[:, 0], state
    new_state = dict(state)
    h = x
    for i in range(_n_upsamplings(cfg)):
        h = layers.conv(params[f"down{i}"], h, stride=2, padding="SAME")
        if i > 0:
            h = _bn(params, state, f"bn_down{i}", h, train, new_state)
        h = activations.leaky_relu(h, negative_slope=0.2)
    return layers.dense(params["out"], layers.flatten(h))[:, 0], new_state


def _check_batch(fn, x, shape, name):
    if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != tuple(shape):
        raise ValueError(
            f"gan.{fn}: expected {name} of shape [batch, {', '.join(map(str, shape))}], "
            f"got {tuple(x.shape)}"
        )


def sample(params: dict, n: int, cfg: Config, *, key: jax.Array, state: dict | None = None
           ) -> jax.Array:
    """``n`` samples from the generator in eval mode: ``<f32>[n, *cfg.data_shape]``.

    Args:
        params: from :func:`init` (``{'generator', 'discriminator'}``).
        n: number of samples.
        cfg: the GAN's :class:`Config`.
        key: PRNG key of the latent codes ``z ~ N(0, I)``.
        state: the model state (:func:`init_state`, then training's): the DCGAN's batch-norm
            statistics, which eval mode uses, so it is required for a DCGAN.
    """
    if state is None:
        if cfg.kind == "dcgan":
            raise ValueError("gan.sample: a DCGAN samples with its batch-norm statistics; "
                             "pass state= (the trained model state)")
        state = init_state(cfg)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"gan.sample: expected n an int >= 1, got {n!r}")
    z = jax.random.normal(key, (n, cfg.latent_dim))
    return generate(params["generator"], state["generator"], z, cfg, train=False)[0]


# ----------------------------------------------------------------------------- the two losses

def discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array,
                       real_label: float = 1.0) -> jax.Array:
    """-[log D(x) + log(1 - D(G(z)))] averaged over the batch (Goodfellow et al., eq. 1).

    With ``real_label < 1`` the real targets are smoothed one-sidedly (Salimans et al. 2016):
    the real term becomes the cross-entropy against ``real_label``; fake targets stay 0.
    """
    real = losses.binary_cross_entropy_with_logits(
        real_logits, jnp.full_like(real_logits, real_label))
    fake = losses.binary_cross_entropy_with_logits(fake_logits, jnp.zeros_like(fake_logits))
    return real + fake


def generator_loss(fake_logits: jax.Array, kind: str = "non_saturating") -> jax.Array:
    """The generator's loss on D's logits for its samples.

    ``'non_saturating'``: -mean log D(G(z)) (strong gradients early, when D rejects G's samples).
    ``'minimax'``: mean log(1 - D(G(z))), the original game's term, which saturates.
    """
    if kind == "non_saturating":
        return losses.binary_cross_entropy_with_logits(fake_logits, jnp.ones_like(fake_logits))
    if kind == "minimax":
        # log(1 - sigmoid(l)) = -softplus(l), computed stably.
        return -jnp.mean(activations.softplus(fake_logits))
    raise ValueError(f"gan.generator_loss: kind must be one of {LOSSES}, got {kind!r}")


def d_loss_fn(d_params, g_params, state, real, z, cfg: Config):
    """Discriminator loss as a function of its own parameters (G is held fixed).

    Real and generated samples go through D in separate passes, as in the DCGAN reference
    code, so batch norm never mixes the two (and matches the generator's all-fake pass).
    Returns ``(loss, (new_state, metrics))``.
    """
    fake, g_state = generate(g_params, state["generator"], z, cfg, train=True)
    fake = jax.lax.stop_gradient(fake)
    real_logits, d_state = discriminate(d_params, state["discriminator"], real, cfg, train=True)
    fake_logits, d_state = discriminate(d_params, d_state, fake, cfg, train=True)
    loss = discriminator_loss(real_logits, fake_logits, cfg.real_label)
    metrics = {"d_real": jnp.mean(jax.nn.sigmoid(real_logits)),
               "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits))}
    return loss, ({"generator": g_state, "discriminator": d_state}, metrics)


def g_loss_fn(g_params, d_params, state, z, cfg: Config):
    """Generator loss as a function of its own parameters (D is held fixed)."""
    fake, g_state = generate(g_params, state["generator"], z, cfg, train=True)
    logits, _ = discriminate(d_params, state["discriminator"], fake, cfg, train=True)
    return generator_loss(logits, cfg.generator_loss), g_state


# ----------------------------------------------------------------------------- one train step

class GANState(NamedTuple):
    """Everything a GAN run needs to continue: both players, both optimizers, BN statistics."""

    params: dict
    opt_state: dict
    model_state: dict
    step: jax.Array
    key: jax.Array


def init_gan_state(key: jax.Array, cfg: Config, g_opt: optax.GradientTransformation,
                   d_opt: optax.GradientTransformation) -> GANState:
    """A fresh :class:`GANState`: parameters from :func:`init`, one optimizer state per player."""
    k_init, k_run = jax.random.split(key)
    params = init(k_init, cfg)
    opt_state = {"generator": g_opt.init(params["generator"]),
                 "discriminator": d_opt.init(params["discriminator"])}
    return GANState(params, opt_state, init_state(cfg), jnp.zeros((), jnp.int32), k_run)


def make_gan_step(cfg: Config, g_opt: optax.GradientTransformation,
                  d_opt: optax.GradientTransformation):
    """A pure ``gan_step(state, real) -> (state, metrics)`` that updates both players.

    ``real`` is a batch ``<f32>[batch, *cfg.data_shape]``. The discriminator takes
    ``cfg.d_steps`` steps (fresh latents each), then the generator one, each with its own
    optimizer; per-step keys come from ``fold_in(state.key, state.step)``. The function is not
    jitted, so a driver can ``jax.jit(..., donate_argnums=0)`` it.
    """

    def gan_step(state: GANState, real: jax.Array):
        params, opt_state, model_state = state.params, dict(state.opt_state), state.model_state
        keys = jax.random.split(jax.random.fold_in(state.key, state.step), cfg.d_steps + 1)
        batch = real.shape[0]
        d_params, g_params = params["discriminator"], params["generator"]
        for i in range(cfg.d_steps):
            z = jax.random.normal(keys[i], (batch, cfg.latent_dim))
            (d_loss, (model_state, d_metrics)), d_grads = jax.value_and_grad(
                d_loss_fn, has_aux=True)(
                d_params, g_params, model_state, real, z, cfg)
            updates, opt_state["discriminator"] = d_opt.update(
                d_grads, opt_state["discriminator"], d_params)
            d_params = optax.apply_updates(d_params, updates)
        z = jax.random.normal(keys[-1], (batch, cfg.latent_dim))
        (g_loss, g_state), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(
            g_params, d_params, model_state, z, cfg)
        updates, opt_state["generator"] = g_opt.update(g_grads, opt_state["generator"], g_params)
        g_params = optax.apply_updates(g_params, updates)
        model_state = {"generator": g_state, "discriminator": model_state["discriminator"]}
        new = GANState({"generator": g_params, "discriminator": d_params}, opt_state,
                       model_state, state.step + 1, state.key)
        return new, {"d_loss": d_loss, "g_loss": g_loss, **d_metrics}

    return gan_step


def default_optimizers(cfg: Config, *, total_steps: int | None = None,
                       lr: float | None = None) -> tuple[Any, Any]:
    """Adam with beta1 = 0.5 for both players (Radford et al.), one instance each.

    The learning rate defaults to 2e-4 for the DCGAN (Radford et al.) and 5e-4 for the MLP GAN;
    with ``total_steps`` it decays to 0 along a cosine over the run, which settles the
    oscillation of the two players late in training (measured on the ring of 8 Gaussians:
    high-quality samples 0.48-0.82 from one epoch to the next at a constant rate, 0.93-0.95
    with the decay, over 3 seeds; benchmarks/bench_gan.py).
    """
    if lr is None:
        lr = 2e-4 if cfg.kind == "dcgan" else 5e-4
    rate = lr if total_steps is None else schedules.cosine_decay(lr, max(int(total_steps), 1))
    return optim.adam(rate, b1=0.5), optim.adam(rate, b1=0.5)


# ----------------------------------------------------------------------------- measuring quality

def mode_coverage(samples: jax.Array, centers: jax.Array, std: float, *,
                  n_sigma: float = 3.0, min_fraction: float = 0.01) -> dict:
    """How well samples of a 2-D mixture cover its modes (the metric of Srivastava et al. 2017,
    "VEEGAN", used for the ring of 8 Gaussians).

    A sample is *high quality* when it lies within ``n_sigma`` standard deviations of some mode;
    a mode is *covered* when at least ``min_fraction`` of all samples are high-quality samples
    assigned to it.

    Args:
        samples: ``<f32>[n, 2]`` generated points.
        centers: ``<f32>[modes, 2]`` the mixture's means.
        std: the mixture components' standard deviation.

    Returns:
        ``{'modes_covered': int, 'n_modes': int, 'high_quality': float}``.
    """
    samples, centers = jnp.asarray(samples), jnp.asarray(centers)
    if samples.ndim != 2 or centers.ndim != 2 or samples.shape[1] != centers.shape[1]:
        raise ValueError(
            "gan.mode_coverage: expected samples [n, d] and centers [modes, d], "
            f"got {tuple(samples.shape)} and {tuple(centers.shape)}"
        )
    dist = jnp.linalg.norm(samples[:, None, :] - centers[None, :, :], axis=-1)
    nearest = jnp.argmin(dist, axis=1)
    good = jnp.min(dist, axis=1) <= n_sigma * std
    counts = jnp.bincount(jnp.where(good, nearest, centers.shape[0]),
                          length=centers.shape[0] + 1)[:-1]
    covered = counts >= min_fraction * samples.shape[0]
    return {"modes_covered": int(covered.sum()), "n_modes": int(centers.shape[0]),
            "high_quality": float(good.mean())}


# Channels of the fixed random convolutions of :func:`random_features` (stride-2 average pools
# between them), and the key their weights come from: the same for every run and dataset.
FEATURE_CHANNELS = (32, 32, 16)
FEATURE_KEY = 20240601


def random_features(x: jax.Array, *, batch: int = 500) -> np.ndarray:
    """Fixed random-convolution features of images, for :func:`frechet_distance`.

    Three 3x3 'SAME' convolutions (:data:`FEATURE_CHANNELS` filters, He-normal weights from
    ``PRNGKey(FEATURE_KEY)``, never trained), each followed by ReLU, the first two by a 2x2
    average pool; the last map is averaged over its four spatial quadrants, so the features
    keep where in the image a pattern is (``4 * FEATURE_CHANNELS[-1]`` = 64 numbers). Random
    convolutions respond to local colour, edges and texture; unlike a trained network's
    features (Inception in the FID of Heusel et al. 2017) they encode nothing learned about
    what objects look like.

    Args:
        x: images ``<f32>[n, height, width, channels]`` (height and width >= 8), on the scale
            the generator outputs ([-1, 1]).
        batch: images per forward pass.

    Returns:
        ``<f64>[n, 64]`` features.
    """
    x = jnp.asarray(x, jnp.float32)
    if x.ndim != 4 or min(x.shape[1:3]) < 8:
        raise ValueError("gan.random_features: expected images [n, height, width, channels] "
                         f"with height and width >= 8, got {tuple(x.shape)}")
    params = _feature_params(int(x.shape[-1]))
    out = [np.asarray(_features(params, x[i:i + batch]), np.float64)
           for i in range(0, x.shape[0], batch)]
    return np.concatenate(out) if out else np.zeros((0, 4 * FEATURE_CHANNELS[-1]))


def _feature_params(in_channels: int) -> list:
    keys = jax.random.split(jax.random.PRNGKey(FEATURE_KEY), len(FEATURE_CHANNELS))
    chans = (in_channels, *FEATURE_CHANNELS)
    return [layers.conv_init(k, a, b, (3, 3), w_init=initializers.he_normal)
            for k, a, b in zip(keys, chans[:-1], chans[1:], strict=True)]


@jax.jit
def _features(params, x):
    h = x
    for i, p in enumerate(params):
        h = activations.relu(layers.conv(p, h, padding="SAME"))
        if i < len(params) - 1:
            h = layers.avg_pool(h, 2)
    hh, ww = h.shape[1] // 2, h.shape[2] // 2
    quads = [h[:, :hh, :ww], h[:, :hh, ww:], h[:, hh:, :ww], h[:, hh:, ww:]]
    return jnp.concatenate([q.mean(axis=(1, 2)) for q in quads], axis=-1)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two sets of feature vectors.

    ``|mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a^1/2 S_b S_a^1/2)^1/2)`` (Dowson &
    Landau 1982; the FID of Heusel et al. 2017 on other features), computed in float64 with
    symmetric eigendecompositions, so it is exact for positive semi-definite covariances.
    Like the FID it is biased upwards for small sets: compare distances measured with the
    same number of vectors.

    Args:
        a, b: ``<f>[n_a, d]`` and ``<f>[n_b, d]`` feature vectors, ``n >= 2``.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError("gan.frechet_distance: expected two sets [n, d] of the same d with "
                         f"n >= 2, got {a.shape} and {b.shape}")
    mu = a.mean(0) - b.mean(0)
    s_a, s_b = (np.atleast_2d(np.cov(f, rowvar=False)) for f in (a, b))
    w, v = np.linalg.eigh(s_a)
    root_a = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    cross = np.linalg.eigvalsh(root_a @ s_b @ root_a)
    trace_root = np.sqrt(np.clip(cross, 0.0, None)).sum()
    value = mu @ mu + np.trace(s_a) + np.trace(s_b) - 2.0 * trace_root
    return float(max(value, 0.0))
