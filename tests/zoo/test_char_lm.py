"""zoo.char_lm vs a NumPy transcription, finite differences, exact sampling laws, a brief
training run on the TV-script corpus, and ``zoo sample`` end to end."""

import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from functional import optim
from functional.gradcheck import check_grads
from zoo import char_lm

# every test but the command-line one compares with an independent reference: .ci/run also
# runs them under --emulate-precision

V = 7
# Jitted once per config and shape: eager scans would dominate the test time.
_loss = jax.jit(char_lm.loss, static_argnums=4, static_argnames=("train",))
_apply = jax.jit(char_lm.apply, static_argnums=2)
SMALL = {c: char_lm.Config(vocab_size=V, cell=c, embed_dim=3, hidden=4, n_layers=2, chunk=5)
         for c in ("rnn", "gru", "lstm")}


def _params(cfg, seed=0):
    return char_lm.init(jax.random.PRNGKey(seed), cfg)


def _batch(seed=1, b=2, t=6):
    ids = np.random.default_rng(seed).integers(0, V, size=(b, t + 1)).astype(np.int32)
    return {"x": ids[:, :-1], "y": ids[:, 1:]}


# ---------------------------------------------------------------- NumPy transcription

def _sig(z):
    return 1.0 / (1.0 + np.exp(-z))


def _np_loss(params, cfg, x, y):
    """Embedding -> stacked cells (PyTorch equations, written out) -> dense -> mean NLL."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    seq = p["embed"]["table"][x]                               # [b, t, E]
    for i in range(cfg.n_layers):
        lp = p["rnn"][f"layer_{i}"]
        b = seq.shape[0]
        h, c = np.zeros((b, cfg.hidden)), np.zeros((b, cfg.hidden))
        out = []
        for t in range(seq.shape[1]):
            gi = seq[:, t] @ lp["w_ih"].T + lp["b_ih"]
            gh = h @ lp["w_hh"].T + lp["b_hh"]
            H = cfg.hidden
            if cfg.cell == "rnn":
                h = np.tanh(gi + gh)
            elif cfg.cell == "gru":
                r = _sig(gi[:, :H] + gh[:, :H])
                z = _sig(gi[:, H:2 * H] + gh[:, H:2 * H])
                n = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
                h = (1 - z) * n + z * h
            else:
                g = gi + gh
                i_, f_, g_, o_ = (_sig(g[:, :H]), _sig(g[:, H:2 * H]), np.tanh(g[:, 2 * H:3 * H]),
                                  _sig(g[:, 3 * H:]))
                c = f_ * c + i_ * g_
                h = o_ * np.tanh(c)
            out.append(h)
        seq = np.stack(out, 1)
    logits = seq @ p["out"]["w"] + p["out"]["b"]
    logits = logits - logits.max(-1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return -np.take_along_axis(logp, y[..., None], -1).mean()


@pytest.mark.reference
@pytest.mark.highest
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_loss_matches_numpy_transcription(cell):
    cfg, batch = SMALL[cell], _batch()
    params = _params(cfg)
    value, (state, metrics) = _loss(params, {}, batch, None, cfg)
    ref = _np_loss(params, cfg, batch["x"], batch["y"])
    np.testing.assert_allclose(float(value), ref, rtol=1e-5)
    np.testing.assert_allclose(float(metrics["bits_per_char"]), ref / math.log(2), rtol=1e-5)
    assert state == {}
    # the checker is sharp: a perturbed readout bias moves the reference beyond the tolerance
    bad = jax.tree.map(lambda a: a, params)
    bad["out"]["b"] = bad["out"]["b"].at[0].add(1e-3)
    assert abs(_np_loss(bad, cfg, batch["x"], batch["y"]) - float(value)) > 1e-5 * ref


@pytest.mark.reference
@pytest.mark.parametrize("cell", ["gru", "lstm"])   # the tanh RNN: tests/zoo/test_seq_models
def test_check_grads_float64(cell):
    cfg, batch = SMALL[cell], _batch(b=2, t=4)
    batch["weight"] = np.array([1.0, 0.5], np.float32)
    f = lambda p: char_lm.loss(p, {}, batch, None, cfg)[0]
    report = check_grads(f, _params(cfg), rtol=1e-6)
    assert report.ok


@pytest.mark.reference
@pytest.mark.highest
def test_weighted_mean_and_mask():
    """Batches of one against a batch of three: float32 products, summed in a different order
    by differently shaped kernels (the H200 found 1.1e-6 relative), hence rtol 5e-6."""
    cfg = SMALL["gru"]
    params = _params(cfg)
    b = _batch(b=3, t=5)
    per = [float(_loss(params, {}, {k: v[i:i + 1] for k, v in b.items()}, None, cfg)[0])
           for i in range(3)]
    w = np.array([1.0, 0.0, 3.0], np.float32)
    got = float(_loss(params, {}, {**b, "weight": w}, None, cfg)[0])
    np.testing.assert_allclose(got, (per[0] + 3 * per[2]) / 4, rtol=5e-6)
    assert abs(got - (per[0] + per[2]) / 2) > 1e-3 * got   # the weights matter at that tolerance
    mask = np.ones((3, 5), np.float32)
    mask[:, 3:] = 0   # masking the tail equals scoring the first 3 positions only
    got = float(_loss(params, {}, {**b, "mask": mask}, None, cfg)[0])
    short = {k: v[:, :3] for k, v in b.items()}
    np.testing.assert_allclose(got, float(_loss(params, {}, short, None, cfg)[0]),
                               rtol=5e-6)


@pytest.mark.reference
def test_stateful_chunks_equal_one_long_run():
    """Carry in model_state: chunk-by-chunk values equal the unchunked sequence's."""
    cfg = char_lm.Config(vocab_size=V, cell="lstm", embed_dim=3, hidden=4, streams=2, chunk=4)
    params = _params(cfg)
    ids = np.random.default_rng(3).integers(0, V, size=(2, 13)).astype(np.int32)
    full = _loss(params, {}, {"x": ids[:, :-1], "y": ids[:, 1:]}, None, cfg)[0]
    state, total = char_lm.init_state(cfg), 0.0
    for c in range(3):
        sl = slice(4 * c, 4 * c + 4)
        v, (state, _) = _loss(params, state, {"x": ids[:, sl],
                                                     "y": ids[:, 4 * c + 1:4 * c + 5]},
                                     None, cfg)
        total += float(v) / 3
    np.testing.assert_allclose(total, float(full), rtol=1e-5)
    # evaluation ignores (and keeps) the stored carry
    v_eval, (st2, _) = _loss(params, state, {"x": ids[:, 4:8], "y": ids[:, 5:9]}, None,
                                    cfg, train=False)
    v_zero = _loss(params, {}, {"x": ids[:, 4:8], "y": ids[:, 5:9]}, None, cfg)[0]
    assert float(v_eval) == float(v_zero)
    assert jax.tree.all(jax.tree.map(np.array_equal, st2, state))


@pytest.mark.reference
def test_stream_batches_layout():
    ids = np.arange(103)
    d = char_lm.stream_batches(ids, streams=4, chunk=5)
    seg = 103 // 4
    n_chunks = (seg - 1) // 5
    assert d["x"].shape == (4 * n_chunks, 5)
    for c in range(n_chunks):
        for b in range(4):
            start = b * seg + c * 5
            np.testing.assert_array_equal(d["x"][c * 4 + b], ids[start:start + 5])
            np.testing.assert_array_equal(d["y"][c * 4 + b], ids[start + 1:start + 6])


@pytest.mark.reference
def test_bits_per_char_uniform_model_is_log2_vocab():
    cfg = SMALL["lstm"]
    params = _params(cfg)
    params["out"] = {"w": jnp.zeros_like(params["out"]["w"]),
                     "b": jnp.zeros_like(params["out"]["b"])}
    ids = np.random.default_rng(0).integers(0, V, size=50)
    np.testing.assert_allclose(char_lm.bits_per_char(params, cfg, ids), math.log2(V),
                               rtol=1e-6)
    # and with a real model: equal to the loss on the whole text as one sequence
    params = _params(cfg)
    ref = float(_loss(params, {}, {"x": ids[None, :-1], "y": ids[None, 1:]}, None,
                             cfg)[1][1]["bits_per_char"])
    np.testing.assert_allclose(char_lm.bits_per_char(params, cfg, ids), ref, rtol=1e-5)


# ---------------------------------------------------------------- sampling

def _next_logits(params, cfg, seq):
    """Reference: logits after the whole prefix, recomputed from scratch (no carried state).

    The prefix is right-padded to a fixed length (one compilation); the model is causal, so
    padding after position len - 1 cannot change its logits."""
    padded = np.zeros((1, 16), np.int32)
    padded[0, :len(seq)] = seq
    return np.asarray(_apply(params, padded, cfg)[0, len(seq) - 1])


@pytest.fixture(scope="module")
def lstm():
    cfg = SMALL["lstm"]
    params = _params(cfg, seed=5)
    # sharpen the readout so sampled and greedy sequences differ visibly
    params["out"]["w"] = params["out"]["w"] * 8
    return params, cfg


@pytest.mark.reference
def test_greedy_and_small_temperature_equal_argmax(lstm):
    params, cfg = lstm
    prime = np.array([1, 2, 3], np.int32)
    greedy = np.asarray(char_lm.sample(params, prime, cfg, length=8, key=jax.random.PRNGKey(0),
                                       temperature=0.0))
    seq = list(prime)
    for _ in range(8):
        seq.append(int(np.argmax(_next_logits(params, cfg, seq))))
    np.testing.assert_array_equal(greedy, seq[3:])
    cold = char_lm.sample(params, prime, cfg, length=8, key=jax.random.PRNGKey(7), temperature=1e-4)
    np.testing.assert_array_equal(np.asarray(cold), greedy)
    k1 = char_lm.sample(params, prime, cfg, length=8, key=jax.random.PRNGKey(7), top_k=1)
    np.testing.assert_array_equal(np.asarray(k1), greedy)


@pytest.mark.reference
def test_sampling_reproducible_and_key_dependent(lstm):
    params, cfg = lstm
    prime = np.array([0, 4], np.int32)
    a = char_lm.sample(params, prime, cfg, length=30, key=jax.random.PRNGKey(3), temperature=1.5)
    b = char_lm.sample(params, prime, cfg, length=30, key=jax.random.PRNGKey(3), temperature=1.5)
    c = char_lm.sample(params, prime, cfg, length=30, key=jax.random.PRNGKey(4), temperature=1.5)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(c))


@pytest.mark.reference
def test_top_k_stays_in_top_k_along_the_path(lstm):
    params, cfg = lstm
    prime = np.array([2], np.int32)
    for seed in range(3):
        out = np.asarray(char_lm.sample(params, prime, cfg, length=12, key=jax.random.PRNGKey(seed),
                                        temperature=3.0, top_k=2))
        seq = [2]
        for tok in out:
            top2 = np.argsort(_next_logits(params, cfg, seq))[-2:]
            assert tok in top2
            seq.append(int(tok))


@pytest.mark.reference
def test_first_step_distribution_is_tempered_softmax(lstm):
    """4000 draws of the first character follow softmax(logits / T) (restricted to top k)."""
    params, cfg = lstm
    prime = np.tile(np.array([[1, 5]], np.int32), (4000, 1))
    logits = _next_logits(params, cfg, [1, 5]).astype(np.float64)
    for temperature, top_k in [(1.0, None), (2.0, 3)]:
        ids = np.asarray(char_lm.sample(params, prime, cfg, length=1, key=jax.random.PRNGKey(11),
                                        temperature=temperature, top_k=top_k))[:, 0]
        z = logits / temperature
        if top_k is not None:
            z = np.where(z >= np.sort(z)[-top_k], z, -np.inf)
        p = np.exp(z - z.max())
        p /= p.sum()
        freq = np.bincount(ids, minlength=V) / ids.size
        # 4 standard errors of a binomial proportion
        np.testing.assert_array_less(np.abs(freq - p), 4 * np.sqrt(p * (1 - p) / ids.size) + 1e-9)


@pytest.mark.reference
def test_sample_rejects_bad_arguments(lstm):
    params, cfg = lstm
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="char_lm.sample: expected prime"):
        char_lm.sample(params, np.zeros((0,), np.int32), cfg, length=3, key=key)
    with pytest.raises(ValueError, match="prime ids must lie"):
        char_lm.sample(params, np.array([V]), cfg, length=3, key=key)
    with pytest.raises(ValueError, match="temperature"):
        char_lm.sample(params, np.array([1]), cfg, length=3, key=key, temperature=-1.0)
    with pytest.raises(ValueError, match="top_k"):
        char_lm.sample(params, np.array([1]), cfg, length=3, key=key, top_k=V + 1)
    with pytest.raises(ValueError, match="char_lm.Config: cell"):
        char_lm.Config(cell="transformer")


# ---------------------------------------------------------------- training and the CLI

@pytest.mark.reference
def test_brief_training_beats_unigram_baseline():
    """~40 stateful TBPTT steps on the TV script: far below the unigram entropy."""
    from train import datasets
    from train.loop import fit

    ds = datasets.load("tv_script")
    counts = np.bincount(ds.x_train, minlength=len(ds.meta["vocab"]))
    p = counts[counts > 0] / counts.sum()
    unigram_bits = float(-(p * np.log2(p)).sum())           # the best constant predictor
    cfg = char_lm.Config(vocab_size=len(ds.meta["vocab"]), cell="gru", embed_dim=16,
                         hidden=32, streams=16, chunk=32)
    data = char_lm.stream_batches(ds.x_train[:20_000], cfg.streams, cfg.chunk)
    r = fit(lambda p, s, b, k: char_lm.loss(p, s, b, k, cfg), _params(cfg),
            optax.chain(optax.clip_by_global_norm(5.0), optim.adam(1e-2)), data, key=0,
            epochs=1, batch_size=cfg.streams, shuffle=False, model_state=char_lm.init_state(cfg),
            progress=False, fast_path="scan")
    bpc = char_lm.bits_per_char(r.state.params, cfg, ds.x_test[:3000])
    assert bpc < 0.6 * unigram_bits, (bpc, unigram_bits)   # measured: 2.23 vs 4.91


def test_zoo_sample_end_to_end(tmp_path, capsys):
    """A tiny run of the registry's char-lm, then ``zoo sample`` in a subprocess reproduces
    the run's own sample from the checkpoint; ``zoo eval`` its bits per character."""
    from train.cli import RunOptions
    from train.drivers import char_lm as cli_char_lm
    from zoo import registry

    spec = registry.get("char-lm")
    out = str(tmp_path / "run")
    opts = RunOptions(name="char-lm", dataset="tv_script", dataset_options={"n_lines": 80},
                      optimizer="adam", lr=3e-3, batch_size=4, epochs=1, out=out, quiet=True)
    summary = cli_char_lm.train(spec, opts)
    assert summary["steps"] >= 1 and math.isfinite(summary["test_bits_per_char"])
    for name in ("run.json", "summary.json", "metrics.jsonl", "manifest.json"):
        assert os.path.isfile(os.path.join(out, name))

    # the summary's sample (prime = the test text's first character, temperature 0.8, key
    # PRNGKey(seed)) was drawn from the trained parameters in this process; zoo sample must
    # restore them from the checkpoint and draw the same text
    expected = summary["sample"]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.run(
        [sys.executable, "-m", "train.cli", "sample", "char-lm", "--checkpoint", out,
         "--prime", expected[0], "--length", "200", "--temperature", "0.8", "--seed", "0"],
        cwd=root, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(
            [root] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout[:-1] == expected and len(expected) == 201

    # a character outside the vocabulary is a usage error (exit 2), in-process
    import json

    from train.cli import main
    assert main(["sample", "char-lm", "--checkpoint", out, "--prime", "~", "--length",
                 "3"]) == 2
    # zoo eval restores the same parameters: the same exact test bits per character
    capsys.readouterr()
    assert main(["eval", "char-lm", "--checkpoint", out]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["test_bits_per_char"] == pytest.approx(summary["test_bits_per_char"],
                                                          rel=1e-6)
