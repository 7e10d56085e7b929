"""The embeddings driver: training and evaluation for ``zoo.word2vec``, and word-vector files.

Each epoch draws a fresh pass of examples on the host (subsampling and dynamic windows, as
the C tool does on every pass), streamed to ``train.loop.fit`` in fixed-size batches (the
last one padded with weight-0 rows, so one compiled step serves the whole run). After
training, ``embeddings.txt`` (word2vec text format: a ``"<vocab> <dim>"`` line, then one
``"<word> <v_1> ... <v_dim>"`` line per word) is written next to the checkpoints, and the
summary reports analogy accuracy and nearest-neighbour class purity when the dataset's meta
has ``'analogies'`` / ``'word_classes'`` (the embedded word corpus).
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from train import runs
from train.drivers.data import check_data, load_data
from train.optimizers import make_optimizer
from zoo import word2vec as w2v

__all__ = ["model_config", "epoch_examples", "batches", "save_embeddings", "load_embeddings",
           "embedding_metrics", "train", "evaluate"]

EMBEDDINGS_FILE = "embeddings.txt"


def model_config(spec, ds) -> w2v.Config:
    """``spec``'s Config with the dataset's vocabulary size."""
    return dataclasses.replace(spec.make_config(), vocab_size=len(ds.meta["vocab"]))


def epoch_examples(ids, cfg: w2v.Config, keep, rng, *, sentence_length=None) -> dict:
    """One pass of training examples as a dict of NumPy arrays (``'x'``, ``'y'``, and
    ``'mask'`` for CBOW); see :func:`zoo.word2vec.skipgram_pairs` / ``cbow_examples``."""
    if cfg.mode == "skipgram":
        x, y = w2v.skipgram_pairs(ids, cfg.window, rng, keep=keep,
                                  sentence_length=sentence_length)
        return {"x": x, "y": y}
    x, mask, y = w2v.cbow_examples(ids, cfg.window, rng, keep=keep,
                                   sentence_length=sentence_length)
    return {"x": x, "mask": mask, "y": y}


def batches(examples: dict, batch_size: int, rng):
    """Shuffled fixed-size batches; the last is padded with ``weight`` 0 rows."""
    n = len(examples["y"])
    order = rng.permutation(n)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        weight = np.ones(batch_size, np.float32)
        if len(idx) < batch_size:
            weight[len(idx):] = 0.0
            idx = np.concatenate([idx, np.zeros(batch_size - len(idx), idx.dtype)])
        batch = {k: jnp.asarray(v[idx]) for k, v in examples.items()}
        batch["weight"] = jnp.asarray(weight)
        yield batch


def save_embeddings(path: str, tokens, vectors) -> None:
    """Write vectors in the word2vec text format (one word per line, tokens in id order)."""
    vectors = np.asarray(vectors)
    if len(tokens) != len(vectors):
        raise ValueError(f"save_embeddings: {len(tokens)} tokens but {len(vectors)} vectors")
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{vectors.shape[0]} {vectors.shape[1]}\n")
        for t, v in zip(tokens, vectors, strict=True):
            f.write(t + " " + " ".join(f"{x:.6g}" for x in v) + "\n")


def load_embeddings(path: str) -> tuple[list[str], np.ndarray]:
    """``(tokens, <f32>[vocab, dim])`` from a word2vec text file."""
    with open(path, encoding="utf-8") as f:
        n, dim = map(int, f.readline().split())
        tokens, rows = [], []
        for line in f:
            parts = line.rstrip("\n").split(" ")
            tokens.append(parts[0])
            rows.append(np.asarray(parts[1:], np.float32))
    vectors = np.stack(rows) if rows else np.zeros((0, dim), np.float32)
    if vectors.shape != (n, dim):
        raise ValueError(f"load_embeddings: header says {(n, dim)}, file has {vectors.shape}")
    return tokens, vectors


def embedding_metrics(vectors, meta, *, k: int = 5) -> dict:
    """Analogy accuracy (questions whose four words are in the vocabulary) and class purity of
    the k nearest neighbours, from ``meta['analogies']`` / ``meta['word_classes']``."""
    vocab = meta["vocab"]
    out = {}
    if meta.get("analogies"):
        qs = [[vocab.index[w] for w in q] for q in meta["analogies"]
              if all(w in vocab.index for w in q)]
        if qs:
            out["analogy_accuracy"] = w2v.analogy_accuracy(vectors, np.asarray(qs))
            out["analogy_questions"] = len(qs)
    if meta.get("word_classes"):
        classes = {c: [vocab.index[w] for w in ws if w in vocab.index]
                   for c, ws in meta["word_classes"].items()}
        out["neighbour_purity"] = w2v.neighbour_purity(vectors, classes, k)
    return out


def _loss_fn(cfg):
    def loss_fn(params, model_state, batch, key):
        return w2v.loss(params, model_state, batch, key, cfg, train=True)
    return loss_fn


def _load(spec, opts):
    ds = load_data(opts.dataset, opts.dataset_options)
    check_data(spec, opts.dataset, ds)
    return ds


def train(spec, opts) -> dict:
    """``zoo train`` for word2vec entries.

    Returns:
        The summary (also ``summary.json``): ``test_loss`` (held-out words, fixed draw),
        ``analogy_accuracy``, ``neighbour_purity`` (when the data has them), ``seconds``, ...
    """
    from train.loop import fit

    ds = _load(spec, opts)
    cfg = model_config(spec, ds)
    vocab = ds.meta["vocab"]
    counts = w2v.unigram_counts(ds.x_train, cfg.vocab_size)
    keep = w2v.keep_probabilities(counts, cfg.subsample)
    sentence_length = ds.meta.get("sentence_length")
    batch_size = opts.batch_size or 1024

    def train_data(epoch):
        rng = np.random.default_rng([opts.seed, epoch])
        ex = epoch_examples(ds.x_train, cfg, keep, rng, sentence_length=sentence_length)
        return batches(ex, batch_size, rng)

    k_init, k_fit = jax.random.split(jax.random.PRNGKey(opts.seed))
    params = w2v.init(k_init, cfg)
    state0 = w2v.init_state(cfg, counts)
    out = opts.out
    ckpt_dir = runs.prepare_run_dir(opts, data=ds)
    t0 = time.perf_counter()
    result = fit(_loss_fn(cfg), params, make_optimizer(opts.optimizer, opts.lr), train_data,
                 key=k_fit, epochs=opts.epochs, model_state=state0, progress=not opts.quiet,
                 history_path=os.path.join(out, runs.HISTORY_FILE), checkpoint_dir=ckpt_dir,
                 keep=1, resume=opts.resume)
    seconds = time.perf_counter() - t0
    state = result.state
    vectors = w2v.embeddings(state.params)
    save_embeddings(os.path.join(out, EMBEDDINGS_FILE), vocab.tokens, vectors)
    summary = runs.summary(spec, opts, epochs=len(result.history),
                           steps=int(jax.device_get(state.step)), seconds=seconds,
                           params=state.params,
                           **_metrics(state.params, state.model_state, cfg, ds, keep,
                                      sentence_length, batch_size))
    runs.write_run_files(out, opts=opts, summary=summary, history=result.history, cfg=cfg,
                         params=state.params, title=f"zoo train {spec.name} ({opts.dataset})")
    return summary


def _metrics(params, model_state, cfg, ds, keep, sentence_length, batch_size) -> dict:
    from train.loop import TrainState, evaluate

    rng = np.random.default_rng(12345)      # one fixed held-out draw, comparable across runs
    ex = epoch_examples(ds.x_test, cfg, keep, rng, sentence_length=sentence_length)
    out = {}
    if len(ex["y"]):
        noise = np.asarray(model_state["noise"], np.float64)
        ex["negatives"] = rng.choice(cfg.vocab_size, (len(ex["y"]), cfg.n_negative),
                                     p=noise / noise.sum())
        state = TrainState(params, (), model_state, jnp.zeros((), jnp.int32),
                           jax.random.PRNGKey(0))
        out["test_loss"] = evaluate(_loss_fn(cfg), state, ex, batch_size=batch_size)["loss"]
    out.update(embedding_metrics(w2v.embeddings(params), ds.meta))
    return out


def evaluate(spec, opts) -> dict:
    """``zoo eval`` for word2vec entries: held-out loss, analogies and purity of a checkpoint."""
    from train.loop import init_train_state

    ds = _load(spec, opts)
    cfg = model_config(spec, ds)
    counts = w2v.unigram_counts(ds.x_train, cfg.vocab_size)
    k_init, k_fit = jax.random.split(jax.random.PRNGKey(opts.seed))
    _, ckpt_dir = runs.find_run(opts.checkpoint)
    target = init_train_state(w2v.init(k_init, cfg), make_optimizer(opts.optimizer, opts.lr),
                              key=jax.random.split(k_fit)[0],
                              model_state=w2v.init_state(cfg, counts))
    state, _ = runs.restore_latest(ckpt_dir, target)
    keep = w2v.keep_probabilities(counts, cfg.subsample)
    return _metrics(state.params, state.model_state, cfg, ds, keep,
                    ds.meta.get("sentence_length"), opts.batch_size or 1024)
