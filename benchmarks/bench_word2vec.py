"""word2vec on the embedded word corpus (known analogies and classes), and optionally text8.

    python benchmarks/bench_word2vec.py [--epochs 3] [--seeds 0,1,2] [--text8 PATH]

For skip-gram and CBOW with negative sampling (k = 5, window 3, dim 32, subsampling t = 1e-3,
Adam 3e-3, batch 256; fresh subsampling and dynamic windows every epoch) prints analogy
accuracy (3CosAdd over the whole vocabulary, question words excluded, 360 questions),
nearest-neighbour class purity (k = 5 among the 36 classified words), the held-out loss and
the training time, per seed. With ``--text8`` it also trains skip-gram on the first
``--text8-tokens`` words of text8 and prints nearest neighbours of a few words.
Not run by CI.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
import optax

from train import datasets
from train.embeddings import batches, embedding_metrics, epoch_examples
from train.loop import fit
from zoo import word2vec as w2v


def train(ds, cfg, *, epochs, seed, batch_size=256, lr=3e-3, sentence_length=None):
    counts = w2v.unigram_counts(ds.x_train, cfg.vocab_size)
    keep = w2v.keep_probabilities(counts, cfg.subsample)

    def data(epoch):
        rng = np.random.default_rng([seed, epoch])
        return batches(epoch_examples(ds.x_train, cfg, keep, rng,
                                      sentence_length=sentence_length), batch_size, rng)

    t0 = time.perf_counter()
    result = fit(lambda p, s, b, k: w2v.loss(p, s, b, k, cfg), w2v.init(
        jax.random.PRNGKey(seed), cfg), optax.adam(lr), data, key=seed + 1, epochs=epochs,
        model_state=w2v.init_state(cfg, counts), progress=False)
    jax.block_until_ready(result.state.params)
    return result, time.perf_counter() - t0


def corpus_rows(epochs, seeds):
    ds = datasets.load("word_corpus")
    # control: the metrics of untrained vectors (chance level of this evaluation)
    cfg = w2v.Config(vocab_size=len(ds.meta["vocab"]), dim=32)
    m = embedding_metrics(w2v.embeddings(w2v.init(jax.random.PRNGKey(0), cfg)), ds.meta)
    rows = [("untrained", 0, m["analogy_accuracy"], m["neighbour_purity"], float("nan"), 0.0,
             0)]
    for mode in ("skipgram", "cbow"):
        for seed in seeds:
            cfg = w2v.Config(vocab_size=len(ds.meta["vocab"]), dim=32, mode=mode, window=3,
                             n_negative=5, subsample=1e-3)
            result, seconds = train(ds, cfg, epochs=epochs, seed=seed, sentence_length=4)
            m = embedding_metrics(w2v.embeddings(result.state.params), ds.meta)
            rows.append((mode, seed, m["analogy_accuracy"], m["neighbour_purity"],
                         result.history[-1]["loss"], seconds,
                         int(result.history[-1]["count"])))
    return rows


def text8_run(path, tokens, epochs):
    ds = datasets.load("text8", path=path, max_tokens=tokens, vocab_size=20_000)
    vocab = ds.meta["vocab"]
    cfg = w2v.Config(vocab_size=len(vocab), dim=100, mode="skipgram", window=5, n_negative=5,
                     subsample=1e-4)
    result, seconds = train(ds, cfg, epochs=epochs, seed=0, batch_size=1024, lr=1e-3)
    vectors = w2v.embeddings(result.state.params)
    print(f"\ntext8: first {tokens} words, vocab {len(vocab)}, {epochs} epochs, {seconds:.0f} s")
    for word in ("king", "three", "france", "computer", "water"):
        if word in vocab.index:
            ids, sims = w2v.nearest_neighbours(vectors, [vocab.index[word]], 6)
            print(f"  {word}: " + ", ".join(f"{vocab.tokens[i]} {s:.2f}"
                                            for i, s in zip(ids[0], sims[0], strict=True)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--text8", help="path to text8 or text8.zip (optional)")
    ap.add_argument("--text8-tokens", type=int, default=2_000_000)
    ap.add_argument("--text8-epochs", type=int, default=1)
    args = ap.parse_args()
    rows = corpus_rows(args.epochs, [int(s) for s in args.seeds.split(",")])
    print(f"\nword corpus (148 words, 76k tokens), {args.epochs} epochs, jax {jax.__version__} "
          f"on {jax.devices()[0].platform}")
    print("mode | seed | analogy acc | NN purity@5 | final loss | train s | examples/epoch")
    print("---- | ---- | ----------- | ----------- | ---------- | ------- | --------------")
    for mode, seed, acc, pur, loss, s, n in rows:
        print(f"{mode} | {seed} | {100 * acc:.1f}% | {pur:.3f} | {loss:.3f} | {s:.0f} | {n}")
    if args.text8:
        text8_run(args.text8, args.text8_tokens, args.text8_epochs)


if __name__ == "__main__":
    main()
