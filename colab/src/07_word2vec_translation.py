# %% [markdown]
# # 07 Word embeddings and translation: word2vec, seq2seq with attention, beam search, BLEU
# The notes' language chapter (seed 001): words become vectors that a network can learn
# (word2vec), and an encoder-decoder network translates one sequence into another (the notes'
# fourth project). This notebook:
#
# 1. trains skip-gram word2vec with negative sampling on a corpus whose word analogies have
#    known answers (king - man + woman = queen);
# 2. trains encoder-decoder networks on dates written by humans ("15th of February 2070") ->
#    ISO 8601 ("2070-02-15"), with and without attention, and looks at the attention weights;
# 3. decodes greedily and with beam search (width 1 is greedy), and scores with BLEU.

# %%
import functools
import time

import jax
import matplotlib.pyplot as plt
import numpy as np
import optax

from train import datasets
from train.loop import fit
from zoo import bleu, seq2seq, word2vec

# %% [markdown]
# ## 1. word2vec: skip-gram with negative sampling (Mikolov et al. 2013)
# Every sentence of this corpus is a target word with context words that encode its attributes
# (gender, role, country, ...), so vector offsets can encode the attributes. Skip-gram predicts
# each context word from the centre word. Instead of a softmax over the whole vocabulary,
# negative sampling scores the true pair against k noise words drawn from the unigram
# distribution raised to 3/4:
# `loss = -log sigma(v'_o . v_c) - sum_i log sigma(-v'_i . v_c)`.
# Frequent words are subsampled (kept with probability `min(1, sqrt(t / f(w)))`) and each centre
# word draws its window radius in `1..window`, so near words count more.

# %%
ds_w = datasets.load("word_corpus", n_sentences=6_000 if SMOKE else 20_000)
wv = ds_w.meta["vocab"]
print(len(wv), "words;", " ".join(wv.decode(ds_w.x_train[:12], strip=False).split()[:12]))
cfg_w = word2vec.Config(vocab_size=len(wv), dim=32, mode="skipgram", n_negative=5, window=3)
counts = word2vec.unigram_counts(ds_w.x_train, cfg_w.vocab_size)
keep = word2vec.keep_probabilities(counts, cfg_w.subsample)
rng = np.random.default_rng(0)
centres, contexts = word2vec.skipgram_pairs(ds_w.x_train, cfg_w.window, rng, keep=keep,
                                            sentence_length=ds_w.meta["sentence_length"])
print(f"{len(centres)} (centre, context) pairs from {len(ds_w.x_train)} tokens")

analogies = np.array([[wv.index[w] for w in q] for q in ds_w.meta["analogies"]])
classes = {c: [wv.index[w] for w in ws] for c, ws in ds_w.meta["word_classes"].items()}
params_w = word2vec.init(jax.random.PRNGKey(0), cfg_w)
before = word2vec.analogy_accuracy(word2vec.embeddings(params_w), analogies)

t0 = time.perf_counter()
res_w = fit(functools.partial(word2vec.loss, cfg=cfg_w), params_w, optax.adam(1e-2),
            {"x": centres, "y": contexts}, key=0, epochs=5, batch_size=256,
            model_state=word2vec.init_state(cfg_w, counts), fast_path="scan", progress=False)
vectors = word2vec.embeddings(res_w.state.params)
acc = word2vec.analogy_accuracy(vectors, analogies)
purity = word2vec.neighbour_purity(vectors, classes, k=5)
losses_w = [round(h["loss"], 3) for h in res_w.history]
print(f"{time.perf_counter() - t0:.0f} s; loss by epoch {losses_w}")
print(f"analogy accuracy (3CosAdd) {acc:.1%} (untrained {before:.1%}) over {len(analogies)} "
      f"questions; 5-NN class purity {purity:.2f}")
assert acc >= 0.9 and before < 0.1 and purity > 0.9

# %% [markdown]
# Nearest neighbours by cosine similarity, and analogies `a : b :: c : ?` answered by the word
# closest to `b - a + c`. A 2-D projection (PCA) shows the attribute directions as parallel
# offsets.

# %%
for w in ("king", "paris", "big"):
    ids, sims = word2vec.nearest_neighbours(vectors, [wv.index[w]], k=4,
                                            candidates=np.concatenate(list(classes.values())))
    print(f"{w:6s} ->", ", ".join(f"{wv.tokens[i]} ({s:.2f})" for i, s in zip(ids[0], sims[0],
                                                                               strict=True)))
for a, b, c in [("man", "king", "woman"), ("france", "paris", "germany")]:
    d, _ = word2vec.analogy(vectors, wv.index[a], wv.index[b], wv.index[c])
    print(f"{a} : {b} :: {c} : {wv.tokens[int(d[0, 0])]}")
d, _ = word2vec.analogy(vectors, wv.index["man"], wv.index["king"], wv.index["woman"])
assert wv.tokens[int(d[0, 0])] == "queen"

words = [w for w in ("man", "woman", "king", "queen", "boy", "girl", "prince", "princess")
         if w in wv.index]
u = word2vec.unit_rows(vectors[[wv.index[w] for w in words]])
u = u - u.mean(0)
xy = u @ np.linalg.svd(u, full_matrices=False)[2][:2].T
plt.figure(figsize=(4.5, 4))
plt.scatter(xy[:, 0], xy[:, 1])
for (px, py), w in zip(xy, words, strict=True):
    plt.annotate(w, (px, py))
plt.title("word vectors, first two principal components")
plt.show()

# %% [markdown]
# ## 2. Translation with an encoder-decoder (Sutskever et al. 2014, Cho et al. 2014)
# The encoder (a bidirectional GRU) reads the source characters; the decoder writes the target
# one character at a time from the previous one. Without attention the decoder sees one fixed
# summary vector of the source. With Bahdanau attention it computes, at every step, weights
# over all source positions and reads their weighted average, so it can look at the day, the
# month and the year where they are. Training is teacher-forced: the decoder gets the true
# previous character.

# %%
ds_d = datasets.load("dates", n_train=2_000 if SMOKE else 10_000, n_test=500)
src_v, tgt_v = ds_d.meta["source_vocab"], ds_d.meta["target_vocab"]
for s, t in zip(ds_d.meta["source_text_train"][:4], ds_d.meta["target_text_train"][:4],
                strict=True):
    print(f"{s!r:32s} -> {t!r}")
EPOCHS_D = 4 if SMOKE else 8
models = {}
for attention in (None, "bahdanau"):
    cfg_d = seq2seq.Config(src_vocab_size=len(src_v), tgt_vocab_size=len(tgt_v), embed_dim=32,
                           hidden=32 if SMOKE else 64, attention=attention,
                           attention_dim=32 if SMOKE else 64, cell="gru")
    t0 = time.perf_counter()
    res_d = fit(functools.partial(seq2seq.loss, cfg=cfg_d),
                seq2seq.init(jax.random.PRNGKey(0), cfg_d), optax.adam(3e-3),
                {"x": ds_d.x_train, "y": ds_d.y_train}, key=0, epochs=EPOCHS_D, batch_size=128,
                fast_path="scan", progress=False)
    models[attention] = (cfg_d, res_d.state.params, res_d.history)
    h = res_d.history[-1]
    print(f"attention={attention}: {time.perf_counter() - t0:.0f} s, train loss "
          f"{h['loss']:.3f}, teacher-forced sequence accuracy {h['sequence_accuracy']:.1%}")

plt.figure(figsize=(6, 3.5))
for attention, (_, _, hist) in models.items():
    plt.plot([r["epoch"] for r in hist], [r["loss"] for r in hist], "o-",
             label=f"attention={attention}")
plt.yscale("log"), plt.xlabel("epoch"), plt.ylabel("train loss (nats/char)"), plt.legend()
plt.show()
for _, _, hist in models.values():
    assert hist[-1]["loss"] < 0.8 * hist[0]["loss"]

# %% [markdown]
# Where does the decoder look? Each row is one output character, each column one source
# character; for a date the weights move across the year, then the month, then the day.

# %%
cfg_a, params_a, _ = models["bahdanau"]
i = 0
x1, y1 = ds_d.x_test[i:i + 1], ds_d.y_test[i:i + 1]
_, weights = seq2seq.apply(params_a, x1, cfg_a, y_in=y1[:, :-1], return_attention=True)
n_src = int(np.sum(x1[0] != cfg_a.pad_id))
out_chars = list(tgt_v.decode(y1[0]))
plt.figure(figsize=(7, 3.5))
plt.imshow(np.asarray(weights[0, :len(out_chars), :n_src]), cmap="viridis", aspect="auto")
plt.xticks(range(n_src), list(src_v.decode(x1[0]))[:n_src])
plt.yticks(range(len(out_chars)), out_chars)
plt.title("attention weights")
plt.show()
np.testing.assert_allclose(np.asarray(weights[0]).sum(-1), 1.0, rtol=1e-5)  # softmax rows
assert np.all(np.asarray(weights[0, :, n_src:]) == 0)                       # padding ignored

# %% [markdown]
# ## 3. Decoding: greedy and beam search, scored with BLEU
# At test time the decoder feeds back its own choices. Greedy decoding takes the most likely
# character at every step; beam search keeps the K best partial outputs, ranked by
# log-probability divided by the GNMT length penalty `((5 + |y|) / 6)^alpha`. With K = 1 beam
# search *is* greedy decoding.
#
# BLEU (Papineni et al. 2002) compares n-grams of the output with the reference: clipped n-gram
# precisions for n = 1..4, geometric mean, times a brevity penalty. Papineni's own example: the
# output "the the the the the the the" against "the cat is on the mat" has a clipped unigram
# precision of 2/7, not 7/7.

# %%
r = bleu.corpus_bleu(["the the the the the the the"], ["the cat is on the mat"], max_order=1)
print(f"clipped unigram precision {r.matches[0]}/{r.totals[0]}")
assert (r.matches[0], r.totals[0]) == (2, 7)
assert bleu.corpus_bleu(["2070 - 02 - 15"], ["2070 - 02 - 15"]).bleu == 1.0


def until_eos(row, cfg):
    row = np.asarray(row).tolist()   # plain ints: a token list, not a list of references
    return row[:row.index(cfg.eos_id)] if cfg.eos_id in row else row


def decode_report(cfg, params, x, y, beam_size):
    if beam_size == 1:
        hyp = jax.jit(lambda p, xs: seq2seq.greedy_decode(p, xs, cfg))(params, x)
        tokens = hyp.tokens
    else:
        hyp = jax.jit(lambda p, xs: seq2seq.beam_search(p, xs, cfg, beam_size=beam_size,
                                                        alpha=0.6))(params, x)
        tokens = hyp.tokens[:, 0]          # best hypothesis of each beam
    exact = float(np.mean(seq2seq.exact_match(tokens, y, cfg)))
    score = bleu.corpus_bleu([until_eos(t, cfg) for t in np.asarray(tokens)],
                             [until_eos(t[1:], cfg) for t in np.asarray(y)]).bleu
    return hyp, exact, score


rows = {}
for attention, (cfg_d, params_d, _) in models.items():
    for beam_size in (1, 4):
        hyp, exact, score = decode_report(cfg_d, params_d, ds_d.x_test, ds_d.y_test, beam_size)
        rows[attention, beam_size] = (hyp, exact, score)
        print(f"attention={str(attention):8s} beam {beam_size}: exact match {exact:.1%}, "
              f"BLEU-4 {100 * score:.1f}")
for s, t in zip(ds_d.meta["source_text_test"][:5], np.asarray(rows["bahdanau", 4][0].tokens[:5, 0]),
                strict=True):
    print(f"{s!r:32s} -> {tgt_v.decode(t)!r}")

# Beam search with width 1 is exactly greedy decoding, and a beam's log-probabilities are the
# model's own. Each check compares two spellings of one computation whose products have
# different shapes: at the default precision a GPU rounds the larger ones to TF32 (a TPU all of
# them to bfloat16), which moves a log-probability of -7 by about 1e-3. With float32 products
# ('highest') they agree to float32 rounding, which is what the tolerances below state.
with jax.default_matmul_precision("highest"):
    greedy = jax.jit(lambda p, xs: seq2seq.greedy_decode(p, xs, cfg_a))(params_a, ds_d.x_test)
    beam1 = jax.jit(lambda p, xs: seq2seq.beam_search(p, xs, cfg_a, beam_size=1))(
        params_a, ds_d.x_test)
    beam4 = jax.jit(lambda p, xs: seq2seq.beam_search(p, xs, cfg_a, beam_size=4, alpha=0.6))(
        params_a, ds_d.x_test[:8])
    lp = seq2seq.sequence_log_prob(params_a, ds_d.x_test[:8], np.concatenate(
        [np.full((8, 1), cfg_a.bos_id), np.asarray(beam4.tokens[:, 0])], 1), cfg_a)
np.testing.assert_array_equal(beam1.tokens[:, 0], greedy.tokens)
np.testing.assert_allclose(beam1.log_probs[:, 0], greedy.log_probs, rtol=1e-5, atol=1e-5)
assert np.all(np.diff(np.asarray(beam4.scores), axis=1) <= 1e-6)   # sorted best first
np.testing.assert_allclose(lp, beam4.log_probs[:, 0], rtol=1e-4, atol=1e-4)
if not SMOKE:   # the few smoke-mode steps teach the models little; the full run decides
    assert rows["bahdanau", 1][1] >= 0.95 and rows["bahdanau", 1][2] > rows[None, 1][2]
    assert rows["bahdanau", 1][1] > rows[None, 1][1]
