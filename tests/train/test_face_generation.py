"""Face generation on an image folder (the course's fifth project): the crash of a folder
without a test split, the held-out split now made by default, and the quality figure of
generated images (Frechet distance of fixed random-convolution features)."""

import json
import math
import os

import jax
import numpy as np
import pytest

from tests.train.test_datasets_formats import (  # noqa: F401  (autouse: a private, empty cache)
    _no_network_and_private_cache,
)
from train import cli
from train import datasets as D
from train.drivers import gan as gan_driver
from zoo import gan


def write_images(folder, n, size=(10, 12), seed=0):
    """``n`` random RGB PNGs of ``size`` (height, width) in ``folder``."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")


def _summary(out):
    with open(os.path.join(out, "summary.json")) as f:
        return json.load(f)


def test_dcgan_on_an_image_folder_trains_scores_held_out_images_and_samples(tmp_path):
    # `zoo train dcgan --dataset image_folder` used to train and then exit 1: the folder had
    # no test split by default and the evaluation asked the generator for 0 samples. The
    # face-generation project's recipe (docs/projects.md) is that command's entry for faces.
    write_images(tmp_path / "faces", 20)
    out = str(tmp_path / "run")
    assert cli.main(["train", "dcgan-faces", "--data-option", f"path={tmp_path / 'faces'}",
                     "--data-option", "size=[8,8]", "--epochs", "1", "--batch-size", "6",
                     "--out", out, "--quiet"]) == 0
    summary = _summary(out)
    assert summary["epochs"] == 1 and summary["steps"] == 18 // 6   # 2 of 20 held out
    assert math.isfinite(summary["test_loss"])
    assert summary["frechet_reference"] == "train"     # 2 test images are too few
    assert summary["frechet_generated"] > 0
    for name in ("run.json", "metrics.jsonl", "manifest.json", "samples_epoch1.png"):
        assert os.path.isfile(os.path.join(out, name)), name
    png = tmp_path / "grid.png"                          # and the run samples
    assert cli.main(["sample", "dcgan-faces", "--checkpoint", out, "-n", "4", "--output",
                     str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_image_folder_holds_out_a_tenth_by_default(tmp_path):
    write_images(tmp_path / "f", 20)
    ds = D.load("image_folder", path=tmp_path / "f", size=4)
    assert len(ds.x_train) == 18 and len(ds.x_test) == 2
    both = np.concatenate([ds.x_train, ds.x_test])
    assert len(np.unique(both.reshape(20, -1), axis=0)) == 20     # a partition, no copies
    assert len(D.load("image_folder", path=tmp_path / "f", size=4, test_fraction=0).x_test) == 0
    write_images(tmp_path / "few", 3)      # round(0.3) = 0: everything trains
    assert len(D.load("image_folder", path=tmp_path / "few", size=4).x_train) == 3
    with pytest.raises(ValueError, match=r"test_fraction must be a number in \[0, 1\)"):
        D.load("image_folder", path=tmp_path / "f", test_fraction=1.5)


def test_gan_evaluation_copes_without_test_images(tmp_path):
    write_images(tmp_path / "f", 12)
    ds = D.load("image_folder", path=tmp_path / "f", size=8, test_fraction=0)
    cfg = gan.Config(kind="dcgan", latent_dim=4, data_shape=(8, 8, 3), base_channels=8)
    g_opt, d_opt = gan.default_optimizers(cfg)
    state = gan.init_gan_state(jax.random.PRNGKey(0), cfg, g_opt, d_opt)
    out = gan_driver.evaluate_gan(state, cfg, ds, key=jax.random.PRNGKey(1))
    assert "test_loss" not in out and "frechet_train" not in out
    assert out["frechet_reference"] == "train" and out["frechet_generated"] > 0


# --------------------------------------------------------------------------- the quality figure


def test_frechet_distance_matches_the_closed_form_and_scipy():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3)) * [1.0, 2.0, 0.5] + [1.0, 0.0, 0.0]
    b = rng.normal(size=(4000, 3)) * [1.5, 2.0, 0.5]
    # diagonal Gaussians: |mu_a - mu_b|^2 + sum (sigma_a - sigma_b)^2 = 1 + 0.25
    assert gan.frechet_distance(a, b) == pytest.approx(1.25, abs=0.1)
    # full covariances: the textbook formula with scipy's general matrix square root
    from scipy import linalg
    mix = rng.normal(size=(5, 5))
    a, b = rng.normal(size=(300, 5)) @ mix, rng.normal(size=(200, 5)) @ mix.T + 0.3
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ref = (np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(s_a + s_b)
           - 2 * np.trace(linalg.sqrtm(s_a @ s_b).real))
    assert gan.frechet_distance(a, b) == pytest.approx(ref, rel=1e-8)
    assert gan.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    with pytest.raises(ValueError, match="same d"):
        gan.frechet_distance(a, b[:, :4])


def test_random_features_are_fixed_and_tell_images_apart():
    digits = 2 * D.load("digits").x_train[:400] - 1            # [-1, 1], as a generator's
    f1 = gan.random_features(digits)
    assert f1.shape == (400, 64)
    np.testing.assert_array_equal(f1, gan.random_features(digits))
    same = gan.frechet_distance(f1[:200], f1[200:])
    noise = np.random.default_rng(0).uniform(-1, 1, digits[:200].shape)
    other = gan.frechet_distance(f1[:200], gan.random_features(noise))
    assert other > 5 * same      # digits against digits, far below digits against noise
    with pytest.raises(ValueError, match="height and width >= 8"):
        gan.random_features(np.zeros((2, 4, 4, 1)))
