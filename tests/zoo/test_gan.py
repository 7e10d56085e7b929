"""GANs: losses against direct NumPy formulas, player separation, gradients, a short run."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from functional.gradcheck import check_grads
from train.datasets import load
from zoo import gan

MLP = gan.Config(kind="mlp", latent_dim=2, data_shape=(2,), hidden=32, depth=2)
DCGAN = gan.Config(kind="dcgan", latent_dim=8, data_shape=(8, 8, 1), base_channels=8)


def _np_bce(logits, target):
    p = 1.0 / (1.0 + np.exp(-logits))
    return -np.mean(target * np.log(p) + (1 - target) * np.log(1 - p))


@pytest.mark.parametrize("real_label", [1.0, 0.9])
def test_discriminator_loss_matches_formula(real_label):
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=16), rng.normal(size=16)
    got = gan.discriminator_loss(jnp.asarray(real), jnp.asarray(fake), real_label)
    want = _np_bce(real, real_label) + _np_bce(fake, 0.0)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_generator_losses_match_formulas():
    logits = np.random.default_rng(1).normal(size=32) * 3
    p = 1.0 / (1.0 + np.exp(-logits))
    np.testing.assert_allclose(gan.generator_loss(jnp.asarray(logits), "non_saturating"),
                               -np.mean(np.log(p)), rtol=1e-5)
    np.testing.assert_allclose(gan.generator_loss(jnp.asarray(logits), "minimax"),
                               np.mean(np.log(1 - p)), rtol=1e-5)
    # Stable where the naive formula is not: D certain the sample is real / fake.
    assert np.isfinite(float(gan.generator_loss(jnp.array([100.0, -100.0]), "minimax")))
    with pytest.raises(ValueError, match="generator_loss"):
        gan.generator_loss(jnp.zeros(3), "wasserstein")


@pytest.mark.parametrize("cfg", [MLP, DCGAN], ids=["mlp", "dcgan"])
def test_each_player_moves_only_itself(cfg):
    key = jax.random.PRNGKey(0)
    real = jax.random.normal(key, (8, *cfg.data_shape))
    adam, frozen = optax.adam(1e-2), optax.set_to_zero()

    def changed(a, b):
        pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
        return [not np.array_equal(x, y) for x, y in pairs]

    # Generator frozen: only the discriminator's parameters change, and vice versa.
    for g_opt, d_opt, moving, still in [(frozen, adam, "discriminator", "generator"),
                                        (adam, frozen, "generator", "discriminator")]:
        state = gan.init_gan_state(key, cfg, g_opt, d_opt)
        new, _ = jax.jit(gan.make_gan_step(cfg, g_opt, d_opt))(state, real)
        assert not any(changed(state.params[still], new.params[still]))
        assert all(changed(state.params[moving], new.params[moving]))

    # And the discriminator's loss has no gradient with respect to the generator.
    params, model_state = gan.init(key, cfg), gan.init_state(cfg)
    z = jax.random.normal(key, (8, cfg.latent_dim))
    g_grads = jax.grad(lambda g: gan.d_loss_fn(params["discriminator"], g, model_state, real, z,
                                               cfg)[0])(params["generator"])
    assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree.leaves(g_grads))


@pytest.mark.parametrize("cfg", [MLP, DCGAN], ids=["mlp", "dcgan"])
def test_gradients_of_both_players_by_finite_differences(cfg):
    key = jax.random.PRNGKey(1)
    params, model_state = gan.init(key, cfg), gan.init_state(cfg)
    real = jax.random.normal(key, (4, *cfg.data_shape))
    z = jax.random.normal(jax.random.PRNGKey(2), (4, cfg.latent_dim))

    # Everything the losses read is passed as an argument, so check_grads runs it in float64.
    def d_loss(d_params, g_params, model_state, real, z):
        return gan.d_loss_fn(d_params, g_params, model_state, real, z, cfg)[0]

    def g_loss(g_params, d_params, model_state, z):
        return gan.g_loss_fn(g_params, d_params, model_state, z, cfg)[0]

    check_grads(d_loss, params["discriminator"], params["generator"], model_state, real, z,
                rtol=1e-5, max_entries=40)
    check_grads(g_loss, params["generator"], params["discriminator"], model_state, z,
                rtol=1e-5, max_entries=40)


def test_bad_shapes_are_reported():
    params, state = gan.init(jax.random.PRNGKey(0), DCGAN), gan.init_state(DCGAN)
    with pytest.raises(ValueError, match=r"\[batch, 8, 8, 1\].*\(4, 8, 8, 3\)"):
        gan.discriminate(params["discriminator"], state["discriminator"],
                         jnp.zeros((4, 8, 8, 3)), DCGAN)
    with pytest.raises(ValueError, match="latent"):
        gan.generate(params["generator"], state["generator"], jnp.zeros((4, 3)), DCGAN)
    with pytest.raises(ValueError, match="power of two"):
        gan.Config(kind="dcgan", data_shape=(12, 12, 1))


def test_mode_coverage_counts_modes_and_quality():
    centers = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    pts = np.concatenate([np.zeros((50, 2)), np.full((49, 2), [10.0, 0.1]), [[5.0, 5.0]]])
    got = gan.mode_coverage(pts, centers, std=0.1)
    # Two modes get samples; the third none; one of 100 samples is far from every mode.
    assert got == {"modes_covered": 2, "n_modes": 3, "high_quality": pytest.approx(0.99)}


def test_short_run_on_the_ring_improves_mode_coverage():
    from train.gan import fit_gan

    # A wider ring than the benchmark's (std 0.1, not 0.02) so 500 steps show progress.
    data = load("gaussian_ring", n_train=5000, std=0.1)
    centers, std = data.meta["centers"], data.meta["std"]
    cfg = gan.Config(kind="mlp", latent_dim=16, data_shape=(2,), hidden=64, depth=2)
    opt = optax.adam(2e-3, b1=0.5)
    key = jax.random.PRNGKey(0)
    before = gan.init_gan_state(key, cfg, opt, opt)
    samples0 = gan.sample(before.params, 5000, cfg, key=key, state=before.model_state)
    result = fit_gan(cfg, data.x_train, key=key, epochs=10, batch_size=100, g_opt=opt,
                     d_opt=opt, progress=False)
    samples1 = gan.sample(result.state.params, 5000, cfg, key=key, state=result.state.model_state)
    q0 = gan.mode_coverage(samples0, centers, std)
    q1 = gan.mode_coverage(samples1, centers, std)
    assert q1["modes_covered"] >= q0["modes_covered"] + 2, (q0, q1)
    assert q1["high_quality"] > q0["high_quality"] + 0.03, (q0, q1)


def test_cli_train_resume_and_sample(tmp_path, monkeypatch):
    """Killed after epoch 1 and resumed, a run ends bitwise where the uninterrupted one does."""
    from train.checkpoint import CheckpointManager
    from train.cli import RunOptions
    from train.drivers.gan import _gan_optimizers
    from train.drivers.gan import sample as cli_sample
    from train.drivers.gan import train as cli_train
    from zoo import registry

    spec = registry.get("gan")
    opts = lambda out, epochs, resume=False: RunOptions(
        name="gan", dataset="gaussian_ring", dataset_options={"n_train": 256, "n_test": 256},
        optimizer="adam", lr=1e-3, batch_size=128, epochs=epochs, seed=3, out=str(out),
        resume=resume, quiet=True)
    full = cli_train(spec, opts(tmp_path / "full", 2))
    save = CheckpointManager.save

    def save_then_crash(self, *args, **kwargs):
        save(self, *args, **kwargs)
        raise KeyboardInterrupt  # the run dies right after its first checkpoint

    monkeypatch.setattr(CheckpointManager, "save", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        cli_train(spec, opts(tmp_path / "pieces", 2))
    monkeypatch.undo()
    resumed = cli_train(spec, opts(tmp_path / "pieces", 2, resume=True))
    assert resumed["steps"] == full["steps"] == 2 * (256 // 128)
    for summary in (full, resumed):
        assert {"test_loss", "modes_covered", "high_quality"} <= set(summary)
    cfg = spec.make_config(registry.DataInfo(input_shape=(2,)))
    optimizers = _gan_optimizers(opts(None, 2), cfg, 256)
    target = gan.init_gan_state(jax.random.PRNGKey(0), cfg, *optimizers)
    restore = lambda d: CheckpointManager(str(d / "checkpoints")).restore(target)[0]
    a, b = restore(tmp_path / "full"), restore(tmp_path / "pieces")
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)
    lines = (tmp_path / "pieces" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2
    for name in ("summary.json", "manifest.json", "loss.png", "samples_epoch2.png"):
        assert (tmp_path / "full" / name).exists(), name

    out_png = tmp_path / "grid.png"
    sample_opts = opts(tmp_path / "full", 2)
    sample_opts.checkpoint = str(tmp_path / "full")
    sample_opts.extra = {"n": 16, "output": str(out_png)}
    cli_sample(spec, sample_opts)
    assert out_png.stat().st_size > 0


def test_pad_images_to_a_power_of_two():
    from train.gan import pad_images

    x = np.zeros((2, 28, 28, 1), np.float32)
    y = pad_images(x)
    assert y.shape == (2, 32, 32, 1)
    # The 2-pixel border is background (-1); the original pixels sit in the middle.
    np.testing.assert_array_equal(y[:, 2:30, 2:30], x)
    assert (y[:, :2] == -1).all() and (y[:, 30:] == -1).all()
    assert pad_images(np.zeros((1, 8, 8, 3), np.float32)).shape == (1, 8, 8, 3)


@pytest.mark.slow  # about 40 s of compilation for the 32x32 DCGAN
def test_dcgan_trains_on_mnist_idx_files(tmp_path):
    """`zoo train dcgan --dataset mnist` on tiny IDX files written here (28x28 -> 32x32)."""
    import struct

    from train import cli

    rng = np.random.default_rng(0)
    for split, n in (("train", 64), ("t10k", 16)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        (tmp_path / f"{split}-images-idx3-ubyte").write_bytes(
            struct.pack(">HBB3I", 0, 8, 3, n, 28, 28) + images.tobytes())
        (tmp_path / f"{split}-labels-idx1-ubyte").write_bytes(
            struct.pack(">HBBI", 0, 8, 1, n) + labels.tobytes())
    out = tmp_path / "run"
    assert cli.main(["train", "dcgan", "--dataset", "mnist", "--data-option",
                     f"path={tmp_path}", "--epochs", "1", "--batch-size", "32", "--quiet",
                     "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 2 and np.isfinite(summary["test_loss"])
