"""The course's five projects (docs/projects.md): the stand-ins and the choice between them
and the real files, word-level scripts, and the project models against independent
references. Face generation's crash and quality figure: test_face_generation.py."""


import jax
import numpy as np
import pytest

from functional import backprop
from tests.train.test_datasets_formats import (  # the autouse fixture: a private, empty cache
    _no_network_and_private_cache,  # noqa: F401
    write_hour_csv,
)
from train import datasets as D
from train.datasets.vocab import join_words, word_tokens
from train.drivers import char_lm as char_lm_driver
from train.drivers import data
from zoo import cnn, mlp, registry
from zoo.data_info import DataInfo

# --------------------------------------------------------------------------- stand-ins


def test_an_entry_for_real_data_falls_back_to_its_stand_in_only_without_files(tmp_path):
    spec = registry.get("bike-sharing")
    assert data.choose_dataset(spec, {})[:2] == ("bike_sharing_synthetic", {})
    name, options, note = data.choose_dataset(spec, {"test_days": 7})
    assert (name, options) == ("bike_sharing_synthetic", {"test_days": 7})
    assert "bike_sharing" in note and "path=" in note
    # a path means the real files, found or not (a missing one is an error, not a stand-in)
    assert data.choose_dataset(spec, {"path": "x.csv"})[0] == "bike_sharing"
    (D.cache_dir() / "bike_sharing").mkdir(parents=True)
    write_hour_csv(D.cache_dir() / "bike_sharing" / "hour.csv")
    assert data.choose_dataset(spec, {}) == ("bike_sharing", {}, None)
    # hidden files (a Finder's .DS_Store) are not the real data
    (D.cache_dir() / "cifar10").mkdir(parents=True)
    (D.cache_dir() / "cifar10" / ".DS_Store").write_bytes(b"\0")
    assert data.choose_dataset(registry.get("cnn-cifar10"), {})[0] == "shapes"
    # the options reach the stand-in as given, in the real loader's spelling
    faces = registry.get("dcgan-faces")
    assert faces.dataset_options == {"size": [16, 16]}
    assert data.choose_dataset(faces, {"size": [32, 32]})[:2] == (
        "synthetic_faces", {"size": [32, 32]})
    assert D.load("synthetic_faces", n=20, size=[32, 32]).x_train.shape[1:] == (32, 32, 3)
    with pytest.raises(ValueError, match="square"):
        D.load("synthetic_faces", n=20, size=[32, 16])


def test_standin_datasets_have_the_real_shapes_and_are_deterministic(tmp_path):
    shapes = D.load("shapes", n_train=200, n_test=50)
    assert shapes.x_train.shape == (200, 32, 32, 3) and shapes.meta["n_classes"] == 10
    assert 0 <= shapes.x_train.min() and shapes.x_train.max() <= 1
    np.testing.assert_array_equal(shapes.x_test, D.load("shapes", n_train=200,
                                                        n_test=50).x_test)
    assert set(np.unique(shapes.y_train)) == set(range(10))
    faces = D.load("synthetic_faces", n=100)
    assert faces.x_train.shape == (90, 32, 32, 3) and faces.x_test.shape == (10, 32, 32, 3)
    # the bike stand-in goes through the real file's preprocessing: same feature layout
    write_hour_csv(tmp_path / "hour.csv")
    real = D.load("bike_sharing", path=tmp_path / "hour.csv")
    fake = D.load("bike_sharing_synthetic", days=120)
    assert fake.meta["feature_names"] == real.meta["feature_names"]
    assert len(fake.x_test) > 0.95 * 21 * 24 and len(fake.x_val) > 0.95 * 60 * 24
    # and it has the commuter peak the project's plots show: 8:00 > 3:00 on working days
    names = fake.meta["feature_names"]
    cnt = fake.meta["scalers"]["cnt"].inverse_transform(fake.y_train[:, None])[:, 0]
    weekday = fake.x_train[:, [names.index(f"weekday_{d}") for d in range(1, 6)]].sum(1) > 0
    at = lambda h: cnt[weekday & (fake.x_train[:, names.index(f"hr_{h}")] == 1)].mean()
    assert at(8) > 5 * at(3)


# --------------------------------------------------------------------------- word-level scripts


def test_word_tokens_are_the_projects_and_join_back():
    text = 'JERRY: Hi, (laughs) don\'t -- go!\nGEORGE: Yes.\n'
    words = word_tokens(text)
    assert words == ["jerry:", "hi", ",", "(", "laughs", ")", "don't", "--", "go", "!", "\n",
                     "george:", "yes", ".", "\n"]
    assert join_words(words) == text.lower()


def test_word_entropy_floor_against_hand_computed_grammars():
    from train.datasets import text as T
    two = {"speakers": ["A", "B"], "templates": [(0.5, "Hi."), (0.5, "Hi!")], "slots": {},
           "direction_prob": 0.0, "directions": []}
    # one bit a line (no choice of speaker), 4 tokens a line: 'a:' 'hi' '.' '\n'
    assert T.tv_word_entropy_rate(two)["bits_per_word"] == pytest.approx(0.25)
    same = dict(two, templates=[(0.5, "Hi."), (0.5, "hi.")])   # one line once lower-cased
    assert T.tv_word_entropy_rate(same)["bits_per_word"] == pytest.approx(0.0)
    three = dict(two, speakers=["A", "B", "C"])                 # + one bit for the speaker
    assert T.tv_word_entropy_rate(three)["bits_per_word"] == pytest.approx(0.5)
    ds = D.load("tv_script", level="word", n_lines=50)
    v = ds.meta["vocab"]
    assert v.level == "word" and "alice:" in v and "\n" in v
    assert join_words([v.tokens[i] for i in ds.x_test]) == ds.meta["text_test"].lower()


def test_prime_words_name_the_speaker_and_refuse_unknown_words():
    v = D.load("tv_script", level="word", n_lines=50).meta["vocab"]
    assert char_lm_driver.prime_words(v, "Alice") == ["alice:"]
    assert char_lm_driver.prime_words(v, "bob: where") == ["bob:", "where"]
    with pytest.raises(ValueError, match=r"prime words \['zebra'\]"):
        char_lm_driver.prime_words(v, "zebra")


# --------------------------------------------------------------------------- the models


def test_bike_sharing_network_is_the_numpy_network_of_the_first_project():
    # zoo's MLP with the entry's config against functional.backprop's hand-written NumPy
    # network (sigmoid hidden layer, linear output): d(MSE)/dW = 2/n * d(half SSE)/dW
    spec = registry.get("bike-sharing")
    cfg = spec.make_config(DataInfo(input_shape=(56,), n_targets=1))
    assert (cfg.hidden, cfg.activation, cfg.n_out) == ((16,), "sigmoid", 1)
    params = mlp.init(jax.random.PRNGKey(0), cfg)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 56)), rng.normal(size=32)
    with jax.enable_x64():
        p64 = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
        grads = jax.grad(lambda p: mlp.loss(p, {}, {"x": x, "y": y}, None, cfg)[0])(p64)
    weights = [p64["fc1"]["w"], p64["out"]["w"]]
    biases = [p64["fc1"]["b"], p64["out"]["b"]]
    acts = backprop.forward(weights, biases, x, output="linear")
    np.testing.assert_allclose(mlp.apply(p64, x, cfg)[:, 0], acts[-1][:, 0], rtol=1e-5)
    gw, gb, _ = backprop.backward(weights, biases, acts, y[:, None], output="linear")
    for name, w, b in (("fc1", gw[0], gb[0]), ("out", gw[1], gb[1])):
        np.testing.assert_allclose(grads[name]["w"], 2 / len(x) * w, rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(grads[name]["b"], 2 / len(x) * b, rtol=1e-6, atol=1e-12)


def test_cifar10_preset_is_sized_for_32x32x3():
    cfg = cnn.config_for(DataInfo(input_shape=(32, 32, 3), n_classes=10), preset="cifar10")
    assert cnn.feature_shape(cfg) == (4, 4, 64)
    n = sum(a.size for a in jax.tree.leaves(cnn.init(jax.random.PRNGKey(0), cfg)))
    # (3*9+1)*16 + (16*9+1)*32 + (32*9+1)*64 + (1024+1)*128 + (128+1)*10
    assert n == 448 + 4_640 + 18_496 + 131_200 + 1_290 == 156_074
    with pytest.raises(ValueError, match="preset must be one of"):
        cnn.config_for(DataInfo(input_shape=(32, 32, 3), n_classes=10), preset="vgg")
    # a named preset that does not fit the inputs is an error, not another preset
    signals, images = DataInfo(input_shape=(40,), n_classes=10), DataInfo(
        input_shape=(28, 28, 1), n_classes=10)
    assert cnn.config_for(signals, preset="mnist1d") == cnn.config_for(signals)
    assert cnn.config_for(images, preset="lenet") == cnn.config_for(images)
    for info, preset in ((images, "mnist1d"), (signals, "lenet"), (signals, "cifar10")):
        with pytest.raises(ValueError, match=f"the {preset} preset reads"):
            cnn.config_for(info, preset=preset)
