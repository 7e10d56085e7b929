"""The registry's entries: names, defaults, and a short training run of each that beats chance."""

import re

import jax
import pytest

from train import datasets, drivers, optimizers
from train.drivers.data import choose_dataset, data_info
from train.drivers.standard import entry_optimizer
from train.loop import evaluate, fit
from zoo import registry


def test_names_and_close_matches():
    names = registry.names()
    assert len(names) == len(set(names))
    assert {"perceptron", "linear", "logistic", "mlp", "cnn", "autoencoder",
            "denoising-autoencoder", "transfer"} <= set(names)
    with pytest.raises(ValueError, match="Did you mean 'cnn'"):
        registry.get("cnnn")
    with pytest.raises(ValueError, match="unknown model 'zzz'"):
        registry.get("zzz")
    with pytest.raises(ValueError, match="already registered"):
        registry.register(registry.get("mlp"))


def test_every_default_dataset_exists_and_sizes_its_model():
    known = set(datasets.names())
    for spec in registry.specs():
        assert spec.dataset in known, spec.name
        assert spec.standin is None or spec.standin in known, spec.name
        assert spec.optimizer in optimizers.OPTIMIZERS, spec.name
        assert spec.schedule in optimizers.SCHEDULES, spec.name
        if spec.weight_decay is not None:   # a default decay needs an optimizer that takes one
            assert optimizers.takes_weight_decay(spec.optimizer), spec.name
        assert spec.expected, spec.name
        if spec.driver != "standard":      # custom entries name a driver with entry points
            driver = drivers.get(spec.driver)
            assert callable(driver.train) and callable(driver.evaluate), spec.name
            continue
        # an entry for real data sizes its model on the stand-in (the test cache has no files)
        name, options, _ = choose_dataset(spec, spec.dataset_options)
        ds = datasets.load(name, **options)
        cfg = spec.make_config(data_info(ds))
        # Shapes only (eval_shape traces without compiling); the short runs below execute.
        module = spec.module
        params = jax.eval_shape(lambda k, m=module, c=cfg: m.init(k, c), jax.random.PRNGKey(0))
        batch = {"x": ds.x_train[:2], "y": ds.y_train[:2]}
        loss, (_, metrics) = jax.eval_shape(
            lambda p, b, m=module, c=cfg: m.loss(p, {}, b, jax.random.PRNGKey(1), c),
            params, batch)
        assert loss.shape == () and "loss" in metrics, spec.name


def test_every_expected_result_is_a_measurement_on_a_named_dataset():
    """Issue 19: each claim is written as benchmarks/measure_expected.py prints its
    measurement, a number +- a number over seeds 0-2 (the test checks that form; the numbers
    themselves come from that script's runs), keyed by the dataset it was measured on, which
    the entry can train on (its own, its stand-in or another dataset it accepts); any other
    dataset gets no claim."""
    known = set(datasets.names())
    for spec in registry.specs():
        for dataset, text in spec.expected.items():
            assert dataset in known, (spec.name, dataset)
            assert re.search(r"\d(\.\d+)?%? \+- \d+(\.\d+)?", text) and "seeds 0-2" in text, \
                (spec.name, text)
        assert spec.expected_for(spec.standin or spec.dataset) != registry.NO_RESULT, spec.name
    assert registry.get("mlp").expected_for("digits") == registry.NO_RESULT
    assert registry.get("perceptron").expected_for("xor").startswith("50 +- 0%")


def test_config_factory_follows_the_dataset():
    spec = registry.get("mlp")
    cfg = spec.make_config(registry.DataInfo(input_shape=(8, 8, 1), n_classes=10))
    assert cfg.n_in == 64 and cfg.n_out == 10
    cnn_cfg = registry.get("cnn").make_config(registry.DataInfo((8, 8, 1), n_classes=10))
    assert cnn_cfg.input_shape == (8, 8, 1)          # 2-D LeNet for images
    with pytest.raises(ValueError, match="no classes"):
        spec.make_config(registry.DataInfo(input_shape=(10,), n_targets=1))


def _mean_image_mse(ds):
    mean = ds.x_train.mean(0, keepdims=True)
    return float(((ds.x_test - mean) ** 2).mean())


# name -> (epochs, check(summary, dataset)); chance is 10% for ten classes, 50% for two.
SHORT_RUNS = {
    "logistic-binary": (30, lambda s, ds: s["test_accuracy"] > 0.9),
    "logistic": (3, lambda s, ds: s["test_accuracy"] > 0.2),
    "mlp": (3, lambda s, ds: s["test_accuracy"] > 0.3),
    "mlp-digits": (3, lambda s, ds: s["test_accuracy"] > 0.6),
    "mlp-regression": (10, lambda s, ds: s["test_mse"] < 0.8 * float(ds.y_test.var())),
    "cnn": (3, lambda s, ds: s["test_accuracy"] > 0.3),
    "cnn-digits": (3, lambda s, ds: s["test_accuracy"] > 0.5),
    # Reconstructions against the best constant guess (the mean training image); the
    # denoiser must also beat its own noisy input. The plain autoencoder (the same module with
    # noise_std=0) runs only under -m slow to keep the default run short.
    "autoencoder": (8, lambda s, ds: s["test_mse"] < 0.7 * _mean_image_mse(ds)),
    "denoising-autoencoder": (12, lambda s, ds: s["test_mse"] < min(
        0.7 * _mean_image_mse(ds), 0.95 * s["test_noisy_mse"])),
}


SLOW = {"autoencoder"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n
                                  for n in SHORT_RUNS])
def test_short_run_beats_chance(name):
    spec = registry.get(name)
    epochs, check = SHORT_RUNS[name]
    ds = datasets.load(spec.dataset, **spec.dataset_options)
    cfg = spec.make_config(data_info(ds))
    params = spec.module.init(jax.random.PRNGKey(0), cfg)
    loss = lambda p, s, b, k: spec.module.loss(p, s, b, k, cfg, train=True)
    eval_loss = lambda p, s, b, k: spec.module.loss(p, s, b, k, cfg, train=False)
    train = {"x": ds.x_train, "y": ds.y_train}
    # The entry's optimizer as `zoo train` builds it (schedule stretched over these epochs).
    optimizer = entry_optimizer(spec, len(ds.x_train), epochs)
    res = fit(loss, params, optimizer, train, key=0, epochs=epochs, batch_size=spec.batch_size,
              fast_path="loop", shuffle=spec.extra.get("sampling", True), progress=False)
    summary = evaluate(eval_loss, res.state, {"x": ds.x_test, "y": ds.y_test}, prefix="test_")
    assert check(summary, ds), (name, summary)
