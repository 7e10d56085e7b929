"""zoo.seq2seq: padding masks, decoding (greedy, beam search against exhaustive search),
teacher-forced loss and attention against NumPy, float64 gradients, and the CLI glue.

The comparisons run with float32 products (``jax.default_matmul_precision('highest')``, the
precision policy of docs/architecture.md): each compares two spellings of one computation
(beam search against teacher forcing, padded against unpadded) or a NumPy transcription, whose
products differ in shape, and at a GPU's default precision the larger ones are rounded to TF32
(a beam's log-probability of -7 moves by ~1e-3; tf32 emulation found it).
"""

import dataclasses
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from functional.gradcheck import check_grads
from zoo import seq2seq as s2s

# every test but the command-line one compares with an independent reference: .ci/run also
# runs them under --emulate-precision

SRC_V, TGT_V = 9, 6
VARIANTS = {
    "gru-none": s2s.Config(SRC_V, TGT_V, embed_dim=5, hidden=6, attention_dim=4, cell="gru",
                           attention=None, max_decode_length=5),
    "lstm-bahdanau": s2s.Config(SRC_V, TGT_V, embed_dim=5, hidden=6, attention_dim=4,
                                cell="lstm", attention="bahdanau", max_decode_length=5),
    "gru-luong-uni": s2s.Config(SRC_V, TGT_V, embed_dim=5, hidden=6, cell="gru",
                                attention="luong", bidirectional=False, max_decode_length=5),
}


def _batch(seed=0, batch=4, src_len=6, tgt_len=6):
    """Random right-padded sources (ids 3..8) and <bos> tokens <eos> targets (tokens 3..5)."""
    rng = np.random.default_rng(seed)
    x = np.zeros((batch, src_len), np.int32)
    y = np.zeros((batch, tgt_len), np.int32)
    for i in range(batch):
        n = rng.integers(1, src_len + 1)
        x[i, :n] = rng.integers(3, SRC_V, n)
        m = rng.integers(1, tgt_len - 1)
        y[i, 0], y[i, 1:m + 1], y[i, m + 1] = 1, rng.integers(3, TGT_V, m), 2
    x[0, :] = rng.integers(3, SRC_V, src_len)          # one full-length source
    return x, y


def _pad(a, extra):
    return np.pad(a, ((0, 0), (0, extra)))


@functools.cache
def _params(name, scale=1.0):
    p = s2s.init(jax.random.PRNGKey(1), VARIANTS[name])
    # A larger scale makes outputs depend strongly on inputs (random-init models are flat).
    return jax.tree.map(lambda a: a * scale, p)


BEAM, ALPHA = 4, 0.8


@functools.cache
def _everything(name, padded=False):
    """One compiled call per variant and shape (compilations dominate this file's time): the
    encoder, the loss, greedy decoding, beam search of width 1 and BEAM, the teacher-forced
    log-probability of every beam hypothesis, and the first decoder step."""
    cfg = VARIANTS[name]
    x, y = _batch()
    if padded:
        x, y = _pad(x, 3), _pad(y, 2)
    w = np.array([1.0, 0.5, 0.0, 2.0], np.float32)

    @jax.jit
    def run(params, x, y, w):
        enc = s2s.encode(params, x, cfg)
        value, (_, metrics) = s2s.loss(params, {}, {"x": x, "y": y, "weight": w}, None, cfg)
        beam = s2s.beam_search(params, x, cfg, beam_size=BEAM, alpha=ALPHA)
        out = {"enc": enc, "loss": value, "metrics": metrics, "beam": beam,
               "greedy": s2s.greedy_decode(params, x, cfg)}
        if padded and name != "lstm-bahdanau":     # the padding test needs only the above
            return out
        out["logits"], out["attention"] = s2s.apply(params, x, cfg, y_in=y[:, :-1],
                                                    return_attention=True)
        if padded:
            return out
        n = x.shape[0] * BEAM
        hyp_y = jnp.concatenate([jnp.full((n, 1), cfg.bos_id, jnp.int32),
                                 beam.tokens.reshape(n, -1)], axis=1)
        carry = s2s.init_decoder_carry(params, enc, cfg)
        out.update(beam1=s2s.beam_search(params, x, cfg, beam_size=1, alpha=ALPHA),
                   beam_logp=s2s.sequence_log_prob(params, jnp.repeat(x, BEAM, 0), hyp_y, cfg),
                   carry0=carry, step=s2s.decode_step(params, cfg, enc, carry, jnp.full(
                       (x.shape[0],), cfg.bos_id, jnp.int32)))
        return out

    with jax.default_matmul_precision("highest"):
        out = run(_params(name, 3.0), x, y, w)
    return jax.tree.map(np.asarray, out), (x, y, w)


@pytest.mark.reference
@pytest.mark.parametrize("name", list(VARIANTS))
def test_extra_padding_changes_nothing(name):
    (a, (x, _, _)), (b, _) = _everything(name), _everything(name, padded=True)
    real = x != 0
    np.testing.assert_allclose(b["enc"]["values"][:, :x.shape[1]][real], a["enc"]["values"][real],
                               atol=1e-6)
    assert np.all(b["enc"]["values"][:, x.shape[1]:] == 0)
    np.testing.assert_allclose(b["enc"]["summary"], a["enc"]["summary"], atol=1e-6)
    np.testing.assert_allclose(b["loss"], a["loss"], rtol=1e-6)
    np.testing.assert_allclose(b["metrics"]["token_accuracy"], a["metrics"]["token_accuracy"],
                               rtol=1e-6)
    np.testing.assert_array_equal(b["greedy"].tokens, a["greedy"].tokens)
    np.testing.assert_allclose(b["greedy"].log_probs, a["greedy"].log_probs, rtol=1e-5)
    np.testing.assert_array_equal(b["beam"].tokens, a["beam"].tokens)
    np.testing.assert_allclose(b["beam"].scores, a["beam"].scores, rtol=1e-5)


@pytest.mark.reference
def test_padded_source_steps_get_zero_attention():
    out, (x, _, _) = _everything("lstm-bahdanau", padded=True)
    att = out["attention"]                               # [batch, tgt, src]
    mask = np.broadcast_to((x != 0)[:, None, :], att.shape)
    assert np.all(att[~mask] == 0) and np.all(att[mask] > 0)
    np.testing.assert_allclose(att.sum(-1), 1.0, rtol=1e-6)


@pytest.mark.reference
@pytest.mark.parametrize("name", list(VARIANTS))
def test_beam_width_one_is_greedy(name):
    out, _ = _everything(name)
    g = out["greedy"]
    b = out["beam1"]                                     # with a length penalty (alpha 0.8)
    np.testing.assert_array_equal(b.tokens[:, 0], g.tokens)
    np.testing.assert_array_equal(b.lengths[:, 0], g.lengths)
    np.testing.assert_allclose(b.log_probs[:, 0], g.log_probs, rtol=1e-6)


@pytest.mark.reference
@pytest.mark.parametrize("name", list(VARIANTS))
def test_beam_scores_sorted_and_equal_model_log_probability(name):
    cfg = VARIANTS[name]
    out, _ = _everything(name)
    b = out["beam"]
    assert np.all(np.diff(b.scores, axis=1) <= 0)
    logp = out["beam_logp"].reshape(b.scores.shape)      # teacher-forced log P(hypothesis)
    np.testing.assert_allclose(b.log_probs, logp, rtol=1e-5, atol=1e-5)
    expected_len = [[list(row).index(cfg.eos_id) + 1 if cfg.eos_id in row else len(row)
                     for row in beams] for beams in b.tokens]
    np.testing.assert_array_equal(b.lengths, expected_len)
    np.testing.assert_allclose(b.scores, logp / ((5 + b.lengths) / 6) ** ALPHA, rtol=1e-5)
    for beams in b.tokens:
        assert len({tuple(r) for r in beams}) == BEAM      # distinct hypotheses


def _all_outputs(cfg, steps):
    """Every decodable output of at most `steps` tokens: tokens other than pad, ending at the
    first <eos> or after `steps` tokens; padded with pad."""
    tokens = [t for t in range(cfg.tgt_vocab_size) if t != cfg.pad_id]
    outs = set()
    for seq in itertools.product(tokens, repeat=steps):
        seq = list(seq)
        if cfg.eos_id in seq:
            seq = seq[:seq.index(cfg.eos_id) + 1]
        outs.add(tuple(seq + [cfg.pad_id] * (steps - len(seq))))
    return np.asarray(sorted(outs), np.int32)


@pytest.mark.reference
@pytest.mark.highest
def test_wide_beam_finds_the_exhaustive_optimum():
    name = "lstm-bahdanau"
    cfg, params = VARIANTS[name], _params(name, 3.0)
    steps = 3
    short = dataclasses.replace(cfg, max_decode_length=steps)
    outs = _all_outputs(short, steps)                    # 1 + 4 + 4*4 + 4*4*4 would be 85
    x, _ = _batch(seed=7, batch=2)
    y = np.concatenate([np.full((len(outs), 1), cfg.bos_id, np.int32), outs], 1)

    @jax.jit
    def run(params, x, alpha):
        beam = s2s.beam_search(params, x, short, beam_size=len(outs), alpha=alpha)
        logp = jax.vmap(lambda xi: s2s.sequence_log_prob(
            params, jnp.broadcast_to(xi, (len(outs), xi.shape[0])), y, cfg))(x)
        return beam, logp

    lengths = np.array([list(o).index(cfg.eos_id) + 1 if cfg.eos_id in o else steps
                        for o in outs])
    for alpha in (0.0, 1.0):
        beam, logp = jax.tree.map(np.asarray, run(params, x, alpha))
        for i in range(len(x)):
            score = logp[i] / ((5 + lengths) / 6) ** alpha
            np.testing.assert_array_equal(beam.tokens[i, 0], outs[np.argmax(score)])
            # the beam holds every hypothesis, best first
            np.testing.assert_allclose(beam.scores[i], np.sort(score)[::-1], rtol=1e-5)


@pytest.mark.reference
@pytest.mark.parametrize("name", ["gru-none", "lstm-bahdanau"])
def test_loss_matches_numpy_per_sentence_token_mean(name):
    out, (x, y, w) = _everything(name)
    logits = out["logits"].astype(np.float64)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    per = []
    for i in range(len(x)):
        toks = [(t, y[i, t + 1]) for t in range(y.shape[1] - 1) if y[i, t + 1] != 0]
        per.append(-np.mean([logp[i, t, c] for t, c in toks]))
    np.testing.assert_allclose(out["loss"], np.sum(w * np.array(per)) / w.sum(), rtol=1e-5)
    assert set(out["metrics"]) == {"loss", "token_accuracy", "sequence_accuracy"}


@pytest.mark.reference
@pytest.mark.parametrize("name", ["lstm-bahdanau", "gru-luong-uni"])
def test_attention_weights_match_numpy(name):
    cfg, params = VARIANTS[name], _params(name, 3.0)
    out, (x, _, _) = _everything(name)
    h = out["enc"]["values"].astype(np.float64)
    a = jax.tree.map(lambda t: np.asarray(t, np.float64), params["attention"])
    new_carry, _, weights = out["step"]
    if cfg.attention == "bahdanau":
        s_prev = out["carry0"]["rnn"][0].astype(np.float64)   # LSTM carry (h, c): query is h
        e = np.tanh(h @ a["key"]["w"] + a["key"]["b"]
                    + (s_prev @ a["query"]["w"] + a["query"]["b"])[:, None]) @ a["v"]
    else:
        s_new = new_carry["rnn"].astype(np.float64)           # Luong: query is the new state
        e = np.einsum("bsd,hd,bh->bs", h, a["w"], s_new)
    e = np.where(x != 0, e, -np.inf)
    expected = np.exp(e - e.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(weights, expected, atol=1e-6)


@pytest.mark.reference
@pytest.mark.parametrize("name", ["lstm-bahdanau"])
def test_gradients_float64(name):
    cfg = VARIANTS[name]
    x, y = _batch(seed=6, batch=3, src_len=4, tgt_len=5)
    batch = {"x": x, "y": y, "weight": np.array([1.0, 0.5, 2.0])}
    f = lambda p, b: s2s.loss(p, {}, b, None, cfg)[0]
    # rtol 1e-5: at init the attention gradients are ~1e-6 (nearly uniform weights), where
    # float64 central differences keep ~1e-5 relative noise; a wrong gradient is off by >1e-2.
    report = check_grads(f, _params(name, 2.0), batch, rtol=1e-5, max_entries=8)
    assert report.worst_error < 1e-5


@pytest.mark.reference
def test_bad_input_is_named():
    cfg, params = VARIANTS["gru-none"], _params("gru-none")
    with pytest.raises(ValueError, match="attention"):
        s2s.Config(attention="dot-product")
    with pytest.raises(ValueError, match="cell"):
        s2s.Config(cell="rnn")
    with pytest.raises(ValueError, match="distinct"):
        s2s.Config(bos_id=0)
    with pytest.raises(ValueError, match=r"seq2seq.encode: source ids must lie in \[0, 9\)"):
        s2s.encode(params, np.array([[1, 9]]), cfg)
    with pytest.raises(ValueError, match="batch, time"):
        s2s.encode(params, np.array([1, 2]), cfg)
    with pytest.raises(TypeError, match="integer"):
        s2s.encode(params, np.ones((1, 2), np.float32), cfg)
    with pytest.raises(ValueError, match="beam_size"):
        s2s.beam_search(params, np.array([[3, 4]]), cfg, beam_size=0)


def test_cli_train_and_translate(tmp_path, capsys, monkeypatch):
    """zoo train / translate on a small dates corpus (1 epoch: plumbing, not accuracy)."""
    from train import cli
    from zoo import registry

    base = registry.get("seq2seq-attention")
    spec = dataclasses.replace(base, dataset_options={"n_train": 64, "n_test": 32},
                               config=dataclasses.replace(base.config, hidden=8, embed_dim=4,
                                                          attention_dim=4))
    monkeypatch.setitem(registry._REGISTRY, spec.name, spec)   # small model for this test
    assert cli.main(["train", spec.name, "--epochs", "1", "--batch-size", "64", "--lr", "1e-2",
                     "--out", str(tmp_path), "--quiet"]) == 0
    summary = __import__("json").loads((tmp_path / "summary.json").read_text())
    for key in ("test_loss", "test_exact_match", "test_bleu", "train_token_accuracy"):
        assert np.isfinite(summary[key])
    capsys.readouterr()
    assert cli.main(["translate", "--checkpoint", str(tmp_path), "--beam", "2", "--all",
                     "March 3, 1999"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "March 3, 1999" and len(out) == 3     # the input, then two beams
    scores = [float(line.split()[0]) for line in out[1:]]
    assert scores[0] >= scores[1]


@pytest.mark.reference
def test_parallel_corpus_plumbing(tmp_path):
    """A tab-separated corpus: vocabulary sizes and ids reach the Config, raw input is
    normalized and ends with <eos> as the training sources do, and the loss runs."""
    from train import datasets, translation
    from zoo import registry

    lines = ["Go.\tVa !", "Run!\tCours !", "I see.\tJe vois.", "Hi.\tSalut.", "Stop!\tArrête !",
             "Wait!\tAttends !", "I try.\tJ'essaye.", "I won!\tJ'ai gagné !"] * 3
    path = tmp_path / "eng-fra.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    ds = datasets.load("parallel", path=str(path))
    cfg = translation.model_config(registry.get("seq2seq"), ds)
    src, tgt = ds.meta["source_vocab"], ds.meta["target_vocab"]
    assert (cfg.src_vocab_size, cfg.tgt_vocab_size) == (len(src), len(tgt))
    assert (cfg.pad_id, cfg.bos_id, cfg.eos_id) == (tgt.pad_id, tgt.bos_id, tgt.eos_id)
    assert cfg.max_decode_length == ds.y_train.shape[1] - 1
    x = translation.encode_sources(ds, ["I SEE!"])
    np.testing.assert_array_equal(x[0, :4], [src.index["i"], src.index["see"], src.index["!"],
                                             src.eos_id])
    small = dataclasses.replace(cfg, embed_dim=4, hidden=4)
    value, _ = s2s.loss(s2s.init(jax.random.PRNGKey(0), small), {},
                        {"x": ds.x_train, "y": ds.y_train}, None, small)
    assert np.isfinite(value) and abs(float(value) - np.log(len(tgt))) < 1.0
