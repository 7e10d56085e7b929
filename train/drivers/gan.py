"""The GAN driver: epochs of jitted two-player steps, sample grids, history, run folders.

The pure pieces (players, losses, ``make_gan_step``) are in :mod:`zoo.gan`; this module adds
what needs the host: shuffling, the loop (:func:`fit_gan`), progress, PNG sample grids from a
fixed latent batch (so successive grids show the same codes improving), a JSONL history, and
the ``zoo train / eval / sample`` entry points (:func:`train`, :func:`evaluate`,
:func:`sample`).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from train import runs
from train.drivers.data import check_data, data_info, load_data
from train.manifest import json_line
from train.optimizers import make_optimizer
from zoo import gan

__all__ = ["GANResult", "fit_gan", "save_samples", "scale_images", "pad_images",
           "evaluate_gan", "train", "evaluate", "sample"]


@dataclass
class GANResult:
    """What :func:`fit_gan` returns: the final state and one dict of means per epoch."""

    state: gan.GANState
    history: list


def fit_gan(cfg: gan.Config, x, *, key: jax.Array, epochs: int = 10, batch_size: int = 64,
            g_opt=None, d_opt=None, out_dir: str | None = None, sample_every: int = 1,
            n_grid: int = 64, progress: bool = True, state: gan.GANState | None = None,
            fast_path: str = "auto", epoch_offset: int = 0, on_epoch_end=None) -> GANResult:
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
        epoch_offset: number of the first epoch (its shuffle derives from it), so training
            in pieces continues exactly as one long run.
        on_epoch_end: optional ``callback(state, logs)`` after each epoch (checkpoints).

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
        order = jax.random.permutation(
            jax.random.fold_in(shuffle_key, epoch_offset + epoch), len(x))
        order = order[: n_batches * batch_size].reshape(n_batches, batch_size)
        if scan:
            state, sums = epoch_fn(state, x_device, order)
        else:
            sums = None
            for b in range(n_batches):
                state, metrics = step(state, x_device[order[b]])
                sums = metrics if sums is None else jax.tree.map(jnp.add, sums, metrics)
        logs = {"epoch": epoch_offset + epoch + 1,
                **{k: float(v) / n_batches for k, v in sums.items()}}
        history.append(logs)
        if progress:
            print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in logs.items()), flush=True)
        if out_dir:
            with open(os.path.join(out_dir, "metrics.jsonl"), "a") as f:
                f.write(json_line(logs))
            if (epoch + 1) % sample_every == 0 or epoch + 1 == epochs:
                samples = gan.sample(state.params, n_grid, cfg, key=fixed_z_key,
                                     state=state.model_state)
                save_samples(np.asarray(samples), os.path.join(out_dir,
                                                              f"samples_epoch{epoch + 1}.png"))
        if on_epoch_end is not None:
            on_epoch_end(state, logs)
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
    # A bare Figure, not pyplot: no backend switch (a notebook's inline one stays).
    from matplotlib.figure import Figure

    samples = np.asarray(samples)
    if samples.ndim == 2 and samples.shape[1] == 2:
        fig = Figure(figsize=(4, 4))
        ax = fig.subplots()
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
        fig = Figure(figsize=(4, 4))
        ax = fig.subplots()
        ax.imshow(np.clip(grid.squeeze(-1) if c == 1 else grid, 0, 1), cmap="gray")
        ax.axis("off")
    else:
        raise ValueError(
            f"save_samples: expected [n, 2] points or [n, h, w, c] images, got {samples.shape}"
        )
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


# ---------------------------------------------------------------------------- the zoo commands

def _gan_data(spec, opts):
    """Training samples for a GAN entry: 2-D points as they are; images scaled to [-1, 1] and,
    when their side is not a power of two (MNIST's 28), padded with the background value -1
    to the next one (32), since the DCGAN doubles a 2x2 map at each stage."""
    ds = load_data(opts.dataset, opts.dataset_options)
    check_data(spec, opts.dataset, ds)
    x = np.asarray(ds.x_train, np.float32)
    info = data_info(ds)
    if x.ndim == 4:
        x = pad_images(scale_images(x, ds.x_train))
        info = dataclasses.replace(info, input_shape=tuple(x.shape[1:]))
    return ds, spec.make_config(info), x


def scale_images(x, reference) -> np.ndarray:
    """Map images to [-1, 1] by the (min, max) of ``reference`` (the training images)."""
    lo, hi = float(np.min(reference)), float(np.max(reference))
    return (2.0 * (np.asarray(x, np.float32) - lo) / max(hi - lo, 1e-12) - 1.0).astype(np.float32)


def pad_images(x: np.ndarray) -> np.ndarray:
    """Pad ``<f32>[n, h, w, c]`` images in [-1, 1] with -1 to a square power-of-two side >= 8."""
    side = max(8, 1 << (max(x.shape[1], x.shape[2]) - 1).bit_length())
    if (x.shape[1], x.shape[2]) == (side, side):
        return x
    top, left = (side - x.shape[1]) // 2, (side - x.shape[2]) // 2
    pads = ((0, 0), (top, side - x.shape[1] - top), (left, side - x.shape[2] - left), (0, 0))
    return np.pad(x, pads, constant_values=-1.0)


def _gan_optimizers(opts, cfg, n_train):
    """The CLI's optimizer for both players.

    ``adam`` (the default) is :func:`zoo.gan.default_optimizers` at ``--lr``: beta1 = 0.5 and
    a cosine decay to 0 over the whole run (``--epochs`` full batches of ``--batch-size``);
    other names give that ``functional.optim`` optimizer at a constant ``--lr``.
    """
    if opts.optimizer == "adam":
        steps = opts.epochs * (n_train // _batch_size(opts, n_train))
        return gan.default_optimizers(cfg, total_steps=steps, lr=opts.lr)
    return make_optimizer(opts.optimizer, opts.lr), make_optimizer(opts.optimizer, opts.lr)


def _batch_size(opts, n_train):
    return min(opts.batch_size or n_train, n_train)


def train(spec, opts) -> dict:
    """``zoo train gan|dcgan``: :func:`fit_gan` plus the run files of every zoo run.

    Writes into ``opts.out``: ``metrics.jsonl``, ``samples_epoch{E}.png`` grids from a fixed
    latent batch, ``loss.png``, ``checkpoints/`` (the whole :class:`zoo.gan.GANState`),
    ``summary.json`` (final losses, and mode coverage for 2-D mixtures) and ``manifest.json``.
    ``--resume`` continues from the latest checkpoint to ``--epochs`` in total.
    """
    import time

    from train.checkpoint import CheckpointManager

    ds, cfg, x = _gan_data(spec, opts)
    g_opt, d_opt = _gan_optimizers(opts, cfg, len(x))
    key = jax.random.PRNGKey(opts.seed)
    manager = CheckpointManager(runs.prepare_run_dir(opts, data=ds), keep=2)
    state, done, history = None, 0, []
    if opts.resume and manager.latest_step() is not None:
        target = gan.init_gan_state(key, cfg, g_opt, d_opt)
        state, meta = manager.restore(target)
        done, history = int(meta["epochs_done"]), list(meta["history"])
    elif os.path.exists(os.path.join(opts.out, "metrics.jsonl")):
        os.remove(os.path.join(opts.out, "metrics.jsonl"))  # a fresh run starts a fresh log
    batch_size = _batch_size(opts, len(x))
    t0 = time.perf_counter()
    every = max(1, opts.epochs // 5)

    def on_epoch_end(state, logs):
        # Everything a resumed run needs is saved after each epoch: the shuffle of epoch E
        # derives from (key, E), so continuing from epoch E reproduces the uninterrupted run.
        history.append(logs)
        epoch = logs["epoch"]
        with open(os.path.join(opts.out, "metrics.jsonl"), "a") as f:
            f.write(json_line(logs))
        if not opts.quiet:
            print(" ".join(f"{k}={v:.4g}" for k, v in logs.items()), flush=True)
        if epoch % every == 0 or epoch == opts.epochs:
            samples = gan.sample(state.params, 64, cfg, key=jax.random.fold_in(key, 2**30),
                                 state=state.model_state)
            save_samples(np.asarray(samples), os.path.join(opts.out, f"samples_epoch{epoch}.png"),
                         reference=x[:2000] if cfg.kind == "mlp" else None)
        manager.save(int(state.step), state, {"epochs_done": epoch, "history": history})

    if done < opts.epochs:
        state = fit_gan(cfg, x, key=key, epochs=opts.epochs - done, batch_size=batch_size,
                        g_opt=g_opt, d_opt=d_opt, progress=False, state=state,
                        epoch_offset=done, on_epoch_end=on_epoch_end).state
    summary = runs.summary(spec, opts, epochs=len(history), steps=int(state.step),
                           seconds=time.perf_counter() - t0,
                           **{f"train_{k}": v for k, v in history[-1].items() if k != "epoch"},
                           **evaluate_gan(state, cfg, ds, key=jax.random.PRNGKey(opts.seed + 1)))
    curve = [{"epoch": h["epoch"], "loss": h["d_loss"], "val_loss": h["g_loss"]}
             for h in history]
    runs.write_run_files(opts.out, opts=opts, summary=summary, history=curve, cfg=cfg,
                         params=state.params, title=f"zoo train {spec.name}: discriminator "
                                                    "(loss) and generator (val_loss)")
    return summary


def evaluate_gan(state: gan.GANState, cfg: gan.Config, ds, *, key: jax.Array,
                 n: int = 10_000, n_frechet: int = 2000) -> dict:
    """Held-out numbers for a trained GAN.

    ``test_loss`` is the discriminator loss on the test split's real samples against as many
    fresh generated ones (about 2 log 2 = 1.386 at the game's equilibrium); it is left out
    when the dataset has no test samples. For 2-D mixtures with known ``centers`` and ``std``
    in the dataset's meta, :func:`zoo.gan.mode_coverage` of ``n`` samples is added.

    For images, ``frechet_generated`` is :func:`zoo.gan.frechet_distance` between the
    :func:`zoo.gan.random_features` of ``m`` generated images and of ``m`` real ones: the test
    images (``frechet_reference`` 'test'), or the training images when there are fewer than
    ten test images ('train'); ``m`` is the number of those real images, at most
    ``n_frechet``. With the test images as reference, ``frechet_train`` is the same distance
    from ``m`` training images: the score of a generator that reproduced the training set,
    the floor that this sample size allows.
    """
    out = {}
    x_test = np.asarray(ds.x_test, np.float32) if ds.x_test is not None else None
    if x_test is not None and x_test.ndim == 4:
        x_test = pad_images(scale_images(x_test, ds.x_train))
    fits = x_test is not None and tuple(x_test.shape[1:]) == tuple(cfg.data_shape)
    if fits and len(x_test) > 0:
        fake = gan.sample(state.params, len(x_test), cfg, key=key, state=state.model_state)
        d = state.params["discriminator"], state.model_state["discriminator"]
        real_logits, _ = gan.discriminate(*d, jnp.asarray(x_test), cfg)
        fake_logits, _ = gan.discriminate(*d, fake, cfg)
        out["test_loss"] = float(gan.discriminator_loss(real_logits, fake_logits))
    if cfg.kind == "dcgan" and len(ds.x_train) >= 2:
        x_train = pad_images(scale_images(ds.x_train, ds.x_train))
        use_test = fits and len(x_test) >= 10
        reference = x_test if use_test else x_train
        m = min(len(reference), n_frechet)
        rng = np.random.default_rng(0)
        reference = reference[np.sort(rng.permutation(len(reference))[:m])]
        fake = gan.sample(state.params, m, cfg, key=jax.random.fold_in(key, 2),
                          state=state.model_state)
        ref_features = gan.random_features(reference)
        out["frechet_generated"] = gan.frechet_distance(gan.random_features(fake),
                                                        ref_features)
        out["frechet_reference"] = "test" if use_test else "train"
        if use_test:
            real = x_train[np.sort(rng.permutation(len(x_train))[:m])]
            out["frechet_train"] = gan.frechet_distance(gan.random_features(real),
                                                        ref_features)
    if "centers" in ds.meta and "std" in ds.meta:
        samples = gan.sample(state.params, n, cfg, key=jax.random.fold_in(key, 1),
                             state=state.model_state)
        out.update(gan.mode_coverage(samples, ds.meta["centers"], float(ds.meta["std"])))
    return out


def _restore_trained(spec, opts):
    """``(dataset, config, GANState, checkpoint dir)`` of the run in ``opts.checkpoint``."""
    ds, cfg, x = _gan_data(spec, opts)
    _, ckpt_dir = runs.find_run(opts.checkpoint)
    target = gan.init_gan_state(jax.random.PRNGKey(0), cfg,
                                *_gan_optimizers(opts, cfg, len(x)))
    state, _ = runs.restore_latest(ckpt_dir, target)
    return ds, cfg, state, ckpt_dir


def sample(spec, opts) -> None:
    """``zoo sample gan|dcgan --checkpoint DIR -n 64``: a PNG grid of generated samples."""
    _, cfg, state, ckpt_dir = _restore_trained(spec, opts)
    n = int(opts.extra.get("n", 64))
    seed = int(opts.extra.get("seed", opts.seed))
    samples = gan.sample(state.params, n, cfg, key=jax.random.PRNGKey(seed),
                         state=state.model_state)
    path = opts.extra.get("output") or os.path.join(os.path.dirname(ckpt_dir), "samples.png")
    save_samples(np.asarray(samples), path)
    print(f"wrote {n} samples to {path}")


def evaluate(spec, opts) -> dict:
    """``zoo eval gan|dcgan --checkpoint DIR``: :func:`evaluate_gan` of the latest checkpoint."""
    ds, cfg, state, _ = _restore_trained(spec, opts)
    return evaluate_gan(state, cfg, ds, key=jax.random.PRNGKey(opts.seed + 1))
