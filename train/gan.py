"""Driver for GAN training: epochs of jitted two-player steps, sample grids, history.

The pure pieces (players, losses, ``make_gan_step``) are in :mod:`zoo.gan`; this module adds
what needs the host: shuffling, the loop, progress, PNG sample grids from a fixed latent batch
(so successive grids show the same codes improving) and a JSONL history.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from zoo import gan


@dataclass
class GANResult:
    """What :func:`fit_gan` returns: the final state and one dict of means per epoch."""

    state: gan.GANState
    history: list


def fit_gan(cfg: gan.Config, x, *, key: jax.Array, epochs: int = 10, batch_size: int = 64,
            g_opt=None, d_opt=None, out_dir: str | None = None, sample_every: int = 1,
            n_grid: int = 64, progress: bool = True, state: gan.GANState | None = None,
            fast_path: str = "auto") -> GANResult:
    """Train both players of a GAN on samples ``x <f32>[n, *cfg.data_shape]``.

    Each epoch shuffles ``x`` with a key derived from the run's key and the epoch, and takes
    one :func:`zoo.gan.make_gan_step` step per full batch (a last partial batch is dropped: the
    discriminator's batch norm wants equal-sized batches). With ``out_dir`` the history goes to
    ``metrics.jsonl`` and every ``sample_every`` epochs a grid of ``n_grid`` samples from one
    fixed latent batch goes to ``samples_epoch{E}.png``.

    Args:
        cfg: the GAN's config.
        x: training samples, ``<f32>[n, *cfg.data_shape]`` (DCGAN images scaled to [-1, 1]).
        key: the run's key (parameters, shuffling and latents all derive from it).
        epochs: passes over ``x``.
        batch_size: samples per step for each player.
        g_opt, d_opt: the players' optax-compatible optimizers (default
            :func:`zoo.gan.default_optimizers`).
        out_dir: where to write history and sample grids (nothing written when None).
        sample_every: epochs between sample grids.
        n_grid: samples per grid.
        progress: print one line per epoch.
        state: continue from this state instead of a fresh one.
        fast_path: ``'scan'`` runs each epoch as one jitted ``lax.scan`` over batches,
            ``'loop'`` calls a jitted step per batch, ``'auto'`` scans the MLP GAN and loops the
            DCGAN (convolutions inside XLA CPU loops were measured slow; see perf-notes).

    Returns:
        A :class:`GANResult`.
    """
    x = np.asarray(x, np.float32)
    if x.ndim != len(cfg.data_shape) + 1 or tuple(x.shape[1:]) != tuple(cfg.data_shape):
        raise ValueError(
            f"fit_gan: expected x of shape [n, {', '.join(map(str, cfg.data_shape))}], "
            f"got {x.shape}"
        )
    if not 1 <= batch_size <= len(x):
        raise ValueError(f"fit_gan: batch_size must be in [1, {len(x)}], got {batch_size}")
    if g_opt is None or d_opt is None:
        default_g, default_d = gan.default_optimizers(cfg)
        g_opt, d_opt = g_opt or default_g, d_opt or default_d
    if state is None:
        state = gan.init_gan_state(key, cfg, g_opt, d_opt)
    gan_step = gan.make_gan_step(cfg, g_opt, d_opt)
    step = jax.jit(gan_step, donate_argnums=0)
    epoch_fn = jax.jit(_scanned_epoch(gan_step, batch_size), donate_argnums=0)
    scan = cfg.kind == "mlp" if fast_path == "auto" else fast_path == "scan"
    fixed_z_key = jax.random.fold_in(key, 2**30)
    shuffle_key = jax.random.fold_in(key, 2**30 + 1)
    n_batches = len(x) // batch_size
    x_device = jnp.asarray(x)
    history = []
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    for epoch in range(epochs):
        order = jax.random.permutation(jax.random.fold_in(shuffle_key, epoch), len(x))
        order = order[: n_batches * batch_size].reshape(n_batches, batch_size)
        if scan:
            state, sums = epoch_fn(state, x_device, order)
        else:
            sums = None
            for b in range(n_batches):
                state, metrics = step(state, x_device[order[b]])
                sums = metrics if sums is None else jax.tree.map(jnp.add, sums, metrics)
        logs = {"epoch": epoch + 1, **{k: float(v) / n_batches for k, v in sums.items()}}
        history.append(logs)
        if progress:
            print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in logs.items()), flush=True)
        if out_dir:
            with open(os.path.join(out_dir, "metrics.jsonl"), "a") as f:
                f.write(json.dumps(logs) + "\n")
            if (epoch + 1) % sample_every == 0 or epoch + 1 == epochs:
                samples = gan.sample(state.params, state.model_state, fixed_z_key, n_grid, cfg)
                save_samples(np.asarray(samples), os.path.join(out_dir,
                                                              f"samples_epoch{epoch + 1}.png"))
    return GANResult(state, history)


def _scanned_epoch(gan_step, batch_size):
    """One epoch as a ``lax.scan`` over rows of a batch-index matrix; returns metric sums."""

    def epoch(state, x, order):
        def body(state, idx):
            return gan_step(state, x[idx])

        state, metrics = jax.lax.scan(body, state, order)
        return state, jax.tree.map(lambda m: m.sum(0), metrics)

    return epoch


def save_samples(samples: np.ndarray, path: str, *, reference: np.ndarray | None = None) -> str:
    """Write samples as a PNG: a scatter plot for 2-D points, a square grid for images.

    Args:
        samples: ``<f32>[n, 2]`` points, or ``<f32>[n, h, w, c]`` images in [-1, 1].
        path: the PNG's path.
        reference: optional ``<f32>[m, 2]`` points (e.g. the real data) drawn underneath.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = np.asarray(samples)
    if samples.ndim == 2 and samples.shape[1] == 2:
        fig, ax = plt.subplots(figsize=(4, 4))
        if reference is not None:
            ax.scatter(reference[:, 0], reference[:, 1], s=2, c="lightgray", label="data")
        ax.scatter(samples[:, 0], samples[:, 1], s=2, c="tab:blue", label="generated")
        ax.set_aspect("equal")
        ax.legend(loc="upper right", fontsize=7)
    elif samples.ndim == 4:
        n = samples.shape[0]
        side = int(np.ceil(np.sqrt(n)))
        h, w, c = samples.shape[1:]
        grid = np.ones((side * (h + 1), side * (w + 1), c), np.float32)
        for i in range(n):
            r, col = divmod(i, side)
            grid[r * (h + 1):r * (h + 1) + h, col * (w + 1):col * (w + 1) + w] = (
                (samples[i] + 1.0) / 2.0)
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.imshow(np.clip(grid.squeeze(-1) if c == 1 else grid, 0, 1), cmap="gray")
        ax.axis("off")
    else:
        raise ValueError(
            f"save_samples: expected [n, 2] points or [n, h, w, c] images, got {samples.shape}"
        )
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
