"""zoo.word2vec: negative-sampling loss against NumPy, the noise distribution, subsampling and
dynamic windows against direct transcriptions, cosine neighbours and analogies on hand-made
vectors, float64 gradients, and a short training run on the embedded word corpus."""

import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from functional.gradcheck import check_grads
from zoo import word2vec as w2v

# compares with independent references: .ci/run also runs this module under --emulate-precision
pytestmark = pytest.mark.reference

V, D, K = 12, 4, 3


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _params(seed=0, scale=0.5):
    rng = np.random.default_rng(seed)
    return {"in": {"table": jnp.asarray(scale * rng.normal(size=(V, D)), jnp.float32)},
            "out": {"table": jnp.asarray(scale * rng.normal(size=(V, D)), jnp.float32)}}


def _numpy_ns_loss(h, out, y, neg):
    """Mikolov et al. 2013b eq. 4, one example at a time."""
    losses = []
    for i in range(len(y)):
        value = -np.log(_sigmoid(out[y[i]] @ h[i]))
        for n in neg[i]:
            value -= np.log(_sigmoid(-(out[n] @ h[i])))
        losses.append(value)
    return np.array(losses)


@pytest.mark.highest
def test_skipgram_loss_matches_numpy():
    cfg = w2v.Config(vocab_size=V, dim=D, n_negative=K, mode="skipgram")
    p = _params()
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, V, 6), rng.integers(0, V, 6)
    neg = rng.integers(0, V, (6, K))
    w = np.array([1.0, 0.0, 2.0, 1.0, 0.5, 1.0])
    value, (state, metrics) = w2v.loss(p, {}, {"x": x, "y": y, "negatives": neg, "weight": w},
                                       None, cfg)
    tin, tout = (np.asarray(p[k]["table"], np.float64) for k in ("in", "out"))
    per = _numpy_ns_loss(tin[x], tout, y, neg)
    np.testing.assert_allclose(value, np.sum(w * per) / w.sum(), rtol=1e-6)
    assert state == {} and float(metrics["loss"]) == float(value)


@pytest.mark.highest
def test_cbow_loss_matches_numpy_with_masked_contexts():
    cfg = w2v.Config(vocab_size=V, dim=D, n_negative=K, mode="cbow", window=2)
    p = _params(3)
    rng = np.random.default_rng(2)
    ctx = rng.integers(0, V, (5, 4))
    mask = np.array([[1, 1, 1, 1], [0, 1, 1, 0], [1, 0, 0, 0], [0, 0, 1, 1], [1, 1, 0, 1]],
                    np.float32)
    y, neg = rng.integers(0, V, 5), rng.integers(0, V, (5, K))
    value, _ = w2v.loss(p, {}, {"x": ctx, "mask": mask, "y": y, "negatives": neg}, None, cfg)
    tin, tout = (np.asarray(p[k]["table"], np.float64) for k in ("in", "out"))
    h = np.stack([tin[c[m > 0]].mean(0) for c, m in zip(ctx, mask, strict=True)])
    np.testing.assert_allclose(value, _numpy_ns_loss(h, tout, y, neg).mean(), rtol=1e-6)


def test_noise_distribution_is_unigram_to_the_three_quarters():
    counts = np.array([0, 1, 16, 81, 256])
    p = w2v.noise_distribution(counts)
    np.testing.assert_allclose(p, np.array([0, 1, 8, 27, 64]) / 100, rtol=1e-12)


def test_loss_draws_negatives_from_the_noise_distribution():
    # All output vectors are 0 except word j's, so each negative contributes log 2 unless it
    # is j, when it contributes -log sigma(-s): the mean loss reveals the frequency of j.
    cfg = w2v.Config(vocab_size=V, dim=D, n_negative=5)
    counts = np.arange(1, V + 1) ** 2
    state = w2v.init_state(cfg, counts)
    j, n = 11, 20_000
    h = np.zeros(D, np.float32)
    h[0] = 2.0
    out = np.zeros((V, D), np.float32)
    out[j, 0] = 1.5                                         # v'_j . h = 3
    params = {"in": {"table": jnp.tile(jnp.asarray(h), (V, 1))}, "out": {"table": out}}
    y = np.zeros(n, np.int32)                               # positive word 0: score 0
    value, _ = w2v.loss(params, state, {"x": np.zeros(n, np.int32), "y": y},
                        jax.random.PRNGKey(0), cfg)
    a, b = -np.log(_sigmoid(-3.0)), np.log(2.0)
    freq = ((float(value) - np.log(2.0)) / cfg.n_negative - b) / (a - b)
    expected = w2v.noise_distribution(counts)[j]
    assert abs(freq - expected) < 4 * np.sqrt(expected * (1 - expected) / (n * 5))
    assert abs(expected - counts[j] / counts.sum()) > 0.02      # differs from plain unigram


def test_skipgram_pairs_match_a_direct_loop_with_the_same_radii():
    rng_ids = np.random.default_rng(0)
    ids = rng_ids.integers(0, V, 23)
    window, L = 3, 5
    centres, contexts = w2v.skipgram_pairs(ids, window, np.random.default_rng(4),
                                           sentence_length=L)
    radius = np.random.default_rng(4).integers(1, window + 1, size=len(ids))
    expected = []
    for i in range(len(ids)):
        for j in range(max(0, i - radius[i]), min(len(ids), i + radius[i] + 1)):
            if j != i and i // L == j // L:
                expected.append((ids[i], ids[j]))
    got = collections.Counter(zip(centres.tolist(), contexts.tolist(), strict=True))
    assert got == collections.Counter((int(a), int(b)) for a, b in expected)


def test_dynamic_window_weights_offsets_linearly():
    ids = np.arange(200_000) % V
    window = 4
    c, o = w2v.skipgram_pairs(ids, window, np.random.default_rng(0))
    offset = (o - c) % V
    share = np.array([np.mean((offset == d) | (offset == V - d)) for d in range(1, window + 1)])
    expected = np.array([window - d + 1 for d in range(1, window + 1)], float)
    np.testing.assert_allclose(share, expected / expected.sum(), atol=0.005)


def test_subsampling_keeps_sqrt_t_over_f():
    counts = np.array([100, 1000, 10_000, 100_000])
    ids = np.repeat(np.arange(4), counts)
    keep = w2v.keep_probabilities(counts, 1e-2)
    f = counts / counts.sum()
    np.testing.assert_allclose(keep, np.minimum(1, np.sqrt(1e-2 / f)), rtol=1e-12)
    kept = w2v.subsample(ids, keep, np.random.default_rng(0))
    rate = np.array([kept[ids == i].mean() for i in range(4)])
    assert np.all(np.abs(rate - keep) < 4 * np.sqrt(0.25 / counts))
    assert keep[0] == 1.0 and keep[3] == pytest.approx(np.sqrt(0.01 * 111_100 / 100_000))


def test_cbow_examples_hold_the_skipgram_pairs_of_the_same_draw():
    ids = np.random.default_rng(1).integers(0, V, 40)
    keep = np.full(V, 0.7)
    c, o = w2v.skipgram_pairs(ids, 2, np.random.default_rng(9), keep=keep, sentence_length=8)
    ctx, mask, centre = w2v.cbow_examples(ids, 2, np.random.default_rng(9), keep=keep,
                                          sentence_length=8)
    pairs = [(int(t), int(x)) for t, row, m in zip(centre, ctx, mask, strict=True)
             for x, mm in zip(row, m, strict=True) if mm]
    assert collections.Counter(pairs) == collections.Counter(zip(c.tolist(), o.tolist(),
                                                                 strict=True))


def test_neighbours_and_analogies_on_hand_made_vectors():
    # 2-D: king (1, 1), queen (1, -1), man (0.5, 1.1), woman (0.5, -0.9), apple (-1, 0)
    vectors = np.array([[1, 1], [1, -1], [0.5, 1.1], [0.5, -0.9], [-1, 0]], float)
    nn, sims = w2v.nearest_neighbours(vectors, [0], k=2)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    order = np.argsort(-(unit[1:] @ unit[0]))[:2] + 1
    np.testing.assert_array_equal(nn[0], order)
    np.testing.assert_allclose(sims[0], unit[order] @ unit[0], rtol=1e-12)
    # man : king :: woman : ?  ->  queen
    ans, _ = w2v.analogy(vectors, 2, 0, 3)
    assert ans[0, 0] == 1
    # without excluding the question words the answer would be "woman" (c itself)
    target = unit[0] - unit[2] + unit[3]
    assert np.argmax(unit @ (target / np.linalg.norm(target))) == 3
    assert w2v.analogy_accuracy(vectors, [[2, 0, 3, 1], [3, 1, 2, 4]]) == 0.5
    # nearest other word: king -> man (cos 0.94), queen -> woman, man -> king, woman -> queen
    assert w2v.neighbour_purity(vectors, {"royal": [0, 1], "common": [2, 3]}, k=1) == 0.0
    assert w2v.neighbour_purity(vectors, {"male": [0, 2], "female": [1, 3]}, k=1) == 1.0
    assert w2v.neighbour_purity(vectors, {"male": [0, 2], "female": [1, 3]}, k=2) == 0.5


@pytest.mark.parametrize("mode", ["skipgram", "cbow"])
def test_gradients_float64(mode):
    cfg = w2v.Config(vocab_size=V, dim=D, n_negative=K, mode=mode, window=2)
    rng = np.random.default_rng(5)
    x = rng.integers(0, V, 6) if mode == "skipgram" else rng.integers(0, V, (6, 4))
    batch = {"x": x, "y": rng.integers(0, V, 6), "weight": rng.uniform(0.5, 2, 6)}
    if mode == "cbow":
        batch["mask"] = (rng.uniform(size=(6, 4)) < 0.7).astype(np.float64)
    state = w2v.init_state(cfg, rng.integers(1, 50, V))
    f = lambda p, b, k: w2v.loss(p, state, b, k, cfg)[0]     # negatives drawn from the key
    report = check_grads(f, _params(7), batch, jax.random.PRNGKey(3))
    assert report.worst_error < 1e-6


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="mode"):
        w2v.Config(mode="glove")
    cfg = w2v.Config(vocab_size=V, dim=D)
    with pytest.raises(ValueError, match=r"word2vec.apply: centres ids must lie in \[0, 12\)"):
        w2v.apply(_params(), np.array([12]), cfg)
    with pytest.raises(ValueError, match="needs a key"):
        w2v.loss(_params(), w2v.init_state(cfg), {"x": np.array([1]), "y": np.array([2])},
                 None, cfg)
    with pytest.raises(ValueError, match="counts of shape"):
        w2v.init_state(cfg, np.ones(3))


def test_training_on_the_word_corpus_recovers_analogies(tmp_path):
    """A short run on a reduced corpus: the analogies of known structure come out."""
    from train import embeddings
    from train.datasets import load
    from train.loop import fit

    ds = load("word_corpus", n_sentences=6000)
    cfg = w2v.Config(vocab_size=len(ds.meta["vocab"]), dim=24, window=3, subsample=1e-2)
    counts = w2v.unigram_counts(ds.x_train, cfg.vocab_size)
    keep = w2v.keep_probabilities(counts, cfg.subsample)
    ex = embeddings.epoch_examples(ds.x_train, cfg, keep, np.random.default_rng(0),
                                   sentence_length=4)
    import optax
    result = fit(lambda p, s, b, k: w2v.loss(p, s, b, k, cfg), w2v.init(jax.random.PRNGKey(0),
                                                                         cfg),
                 optax.adam(1e-2), ex, key=0, epochs=4, batch_size=256, progress=False,
                 model_state=w2v.init_state(cfg, counts), fast_path="scan")
    vectors = w2v.embeddings(result.state.params)
    metrics = embeddings.embedding_metrics(vectors, ds.meta)
    assert metrics["analogy_questions"] == 360
    assert metrics["analogy_accuracy"] >= 0.9 and metrics["neighbour_purity"] >= 0.95
    path = tmp_path / "e.txt"
    embeddings.save_embeddings(str(path), ds.meta["vocab"].tokens, vectors)
    tokens, back = embeddings.load_embeddings(str(path))
    assert tokens == list(ds.meta["vocab"].tokens)
    np.testing.assert_allclose(back, vectors, rtol=1e-5, atol=1e-7)


def test_cli_trains_on_a_text8_file(tmp_path, monkeypatch, capsys):
    """`zoo train word2vec --dataset text8` reads text8 from $JAXZOO_DATA and exports vectors."""
    from train import cli

    words = np.random.default_rng(0).choice(["the", "cat", "dog", "sat", "on", "mat", "a"],
                                            3000)
    (tmp_path / "text8").mkdir()
    (tmp_path / "text8" / "text8").write_text(" " + " ".join(words))
    monkeypatch.setenv("JAXZOO_DATA", str(tmp_path))
    out = tmp_path / "run"
    assert cli.main(["train", "word2vec", "--dataset", "text8", "--epochs", "1", "--out",
                     str(out), "--quiet"]) == 0
    summary = __import__("json").loads((out / "summary.json").read_text())
    assert np.isfinite(summary["test_loss"]) and "analogy_accuracy" not in summary
    from train.embeddings import load_embeddings
    tokens, vectors = load_embeddings(str(out / "embeddings.txt"))
    assert {"the", "cat", "mat"} <= set(tokens) and vectors.shape == (len(tokens), 32)
