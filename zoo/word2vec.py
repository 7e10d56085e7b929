"""word2vec: skip-gram and CBOW with negative sampling (Mikolov et al. 2013a, 2013b).

Two tables: input vectors ``v_w`` (``params['in']``, the embeddings one keeps) and output
vectors ``v'_w`` (``params['out']``). For an input ``h`` and a target word ``w_O``:

- skip-gram: ``h = v_{w_I}`` for the centre word w_I, the target is one context word;
- CBOW: ``h = mean of v_c`` over the context words (masked), the target is the centre word.

Negative sampling (2013b, eq. 4) replaces the softmax over the vocabulary by one logistic
regression against ``k`` noise words drawn from the unigram distribution raised to 3/4::

    loss = -log sigma(v'_{w_O} . h) - sum_{i=1..k} log sigma(-v'_{w_i} . h),
    w_i ~ P_n(w) = U(w)^{3/4} / Z

The noise distribution lives in the model state (``init_state(cfg, counts)``), so the loss
can draw the negatives itself from its key; a batch may also bring its own ``'negatives'``.
As in the paper's formula (not the C tool, which skips them) a negative equal to the target
is kept.

Host-side data preparation (NumPy, pure given the ``numpy.random.Generator`` passed in, as
in the C tool, redrawn each epoch):

- subsampling of frequent words (2013b, sec. 2.3): each occurrence of w is kept with
  probability ``min(1, sqrt(t / f(w)))`` (the paper's ``1 - P(w)``);
- dynamic window (2013a; the C tool's ``b = rand() % window``): each centre word draws a
  radius uniformly in ``1..window``, so nearer words are used more often;
- windows can be kept inside sentences of a fixed length (the embedded corpus).

Evaluation: cosine nearest neighbours, analogies by 3CosAdd (``d = argmax cos(x, v_b - v_a +
v_c)`` over unit vectors, excluding a, b, c: the accuracy of the C tool's
``compute-accuracy``), and nearest-neighbour class purity.

References:
    Mikolov, Chen, Corrado and Dean, "Efficient estimation of word representations in vector
    space", 2013a. Mikolov, Sutskever, Chen, Corrado and Dean, "Distributed representations of
    words and phrases and their compositionality", NIPS 2013b. Goldberg and Levy, "word2vec
    explained", 2014. Levy and Goldberg, "Linguistic regularities in sparse and explicit word
    representations", CoNLL 2014 (3CosAdd). Seed 001 (the notes' word2vec chapter).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from functional import layers
from zoo.data_info import Inputs

__all__ = ["Config", "init", "init_state", "apply", "loss", "negative_sampling_loss",
           "unigram_counts", "noise_distribution", "keep_probabilities", "subsample",
           "skipgram_pairs", "cbow_examples", "embeddings", "unit_rows", "nearest_neighbours",
           "analogy", "analogy_accuracy", "neighbour_purity", "INPUTS"]

MODES = ("skipgram", "cbow")


@dataclasses.dataclass(frozen=True)
class Config:
    """word2vec hyperparameters.

    Attributes:
        vocab_size: number of word ids (default: the embedded word corpus).
        dim: embedding size.
        mode: 'skipgram' or 'cbow'.
        n_negative: k, noise words per positive pair (2013b: 5-20 small data, 2-5 large).
        window: largest window radius (the dynamic window draws 1..window).
        subsample: t of the subsampling formula (2013b: around 1e-5 on big corpora;
            0 disables).
        noise_power: exponent of the unigram noise distribution (3/4 in 2013b).
    """

    vocab_size: int = 148
    dim: int = 32
    mode: str = "skipgram"
    n_negative: int = 5
    window: int = 3
    subsample: float = 1e-3
    noise_power: float = 0.75

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"word2vec.Config: mode must be one of {MODES}, got {self.mode!r}")
        sizes = {"vocab_size": self.vocab_size, "dim": self.dim,
                 "n_negative": self.n_negative, "window": self.window}
        if any(not isinstance(v, int) or v < 1 for v in sizes.values()):
            raise ValueError(f"word2vec.Config: sizes must be ints >= 1, got {sizes}")
        if self.subsample < 0:
            raise ValueError(f"word2vec.Config: subsample must be >= 0, got {self.subsample}")


INPUTS = Inputs(shapes=((),), kind="ids", words="one stream of word ids x <int>[n_words]")


def init(key, cfg: Config):
    """Parameters as in the C tool: input vectors ~ U(-0.5/dim, 0.5/dim), output vectors 0.

    Returns:
        ``{'in': {'table': <f32>[vocab, dim]}, 'out': {'table': <f32>[vocab, dim]}}``.
    """
    bound = 0.5 / cfg.dim
    w_init = lambda k, shape, dtype=jnp.float32: jax.random.uniform(k, shape, dtype, -bound,
                                                                    bound)
    return {"in": layers.embedding_init(key, cfg.vocab_size, cfg.dim, w_init=w_init),
            "out": {"table": jnp.zeros((cfg.vocab_size, cfg.dim), jnp.float32)}}


def init_state(cfg: Config, counts=None):
    """Model state ``{'noise': <f32>[vocab]}``: the noise distribution P_n.

    Args:
        cfg: the model's :class:`Config`.
        counts: ``<int>[vocab]`` unigram counts of the training words (None: uniform).
    """
    if counts is None:
        return {"noise": jnp.full((cfg.vocab_size,), 1.0 / cfg.vocab_size, jnp.float32)}
    counts = np.asarray(counts)
    if counts.shape != (cfg.vocab_size,):
        raise ValueError(f"word2vec.init_state: expected counts of shape ({cfg.vocab_size},), "
                         f"got {counts.shape}")
    return {"noise": jnp.asarray(noise_distribution(counts, cfg.noise_power), jnp.float32)}


# --------------------------------------------------------------------------------------------
# Model


def _ids(fn, name, a, ndim, vocab_size):
    a = jnp.asarray(a)
    if a.ndim != ndim or not jnp.issubdtype(a.dtype, jnp.integer):
        raise ValueError(f"word2vec.{fn}: expected {name} as <int>[{ndim}-D], got "
                         f"{a.dtype}{list(a.shape)}")
    if not isinstance(a, jax.core.Tracer) and a.size and (int(a.min()) < 0
                                                          or int(a.max()) >= vocab_size):
        raise ValueError(f"word2vec.{fn}: {name} ids must lie in [0, {vocab_size}), got "
                         f"[{int(a.min())}, {int(a.max())}]")
    return a


def apply(params, x, cfg: Config, *, key=None, train=False, state=None, mask=None):
    """The hidden vector h.

    Args:
        params: from :func:`init`.
        x: skip-gram ``<int32>[batch]`` centre ids; CBOW ``<int32>[batch, 2 * window]``
            context ids.
        cfg: the model's :class:`Config`.
        key, train, state: unused; accepted for the zoo's common signature.
        mask: CBOW only, ``<f32>[batch, 2 * window]`` 1 at real context words (default all).

    Returns:
        ``<f32>[batch, dim]``.
    """
    del key, train, state
    if cfg.mode == "skipgram":
        return layers.embedding(params["in"], _ids("apply", "centres", x, 1, cfg.vocab_size))
    x = _ids("apply", "contexts", x, 2, cfg.vocab_size)
    vectors = layers.embedding(params["in"], x)                         # [B, C, dim]
    m = jnp.ones(x.shape, vectors.dtype) if mask is None else jnp.asarray(mask, vectors.dtype)
    return jnp.sum(vectors * m[..., None], 1) / jnp.maximum(jnp.sum(m, 1), 1.0)[:, None]


def negative_sampling_loss(h, out_table, targets, negatives):
    """Per-example negative-sampling loss (2013b, eq. 4).

    Args:
        h: ``<f32>[batch, dim]`` hidden vectors.
        out_table: ``<f32>[vocab, dim]`` output vectors v'.
        targets: ``<int32>[batch]`` the positive words w_O.
        negatives: ``<int32>[batch, k]`` the noise words.

    Returns:
        ``<f32>[batch]``: ``-log sigma(v'_O . h) - sum_i log sigma(-v'_i . h)``.
    """
    pos = jnp.sum(out_table[targets] * h, axis=-1)
    neg = jnp.einsum("bkd,bd->bk", out_table[negatives], h)
    return -jax.nn.log_sigmoid(pos) - jnp.sum(jax.nn.log_sigmoid(-neg), axis=-1)


def loss(params, model_state, batch, key, cfg: Config, *, train=True):
    """Weighted mean negative-sampling loss over a batch of (input, target) examples.

    Args:
        params: from :func:`init`.
        model_state: from :func:`init_state` (returned unchanged).
        batch: ``{'x': centres <int32>[batch] or contexts <int32>[batch, 2W], 'y': targets
            <int32>[batch]}``; optional ``'mask'`` (CBOW contexts), ``'negatives'``
            ``<int32>[batch, k]`` (else drawn from ``model_state['noise']`` with ``key``),
            ``'weight'``.
        key: PRNG key for the negatives.
        cfg: the model's :class:`Config`.
        train: unused.

    Returns:
        ``(loss, (model_state, {'loss'}))``.
    """
    del train
    h = apply(params, batch["x"], cfg, mask=batch.get("mask"))
    y = _ids("loss", "targets", batch["y"], 1, cfg.vocab_size)
    negatives = batch.get("negatives")
    if negatives is None:
        if key is None:
            raise ValueError("word2vec.loss: needs a key to draw negatives (or "
                             "batch['negatives'])")
        negatives = jax.random.choice(key, cfg.vocab_size, (y.shape[0], cfg.n_negative),
                                      p=model_state["noise"])
    per_example = negative_sampling_loss(h, params["out"]["table"], y, negatives)
    w = batch.get("weight")
    w = jnp.ones_like(per_example) if w is None else jnp.asarray(w, per_example.dtype)
    value = jnp.sum(w * per_example) / jnp.maximum(jnp.sum(w), jnp.finfo(w.dtype).tiny)
    return value, (model_state, {"loss": value})


# --------------------------------------------------------------------------------------------
# Data preparation (host-side NumPy)


def unigram_counts(ids, vocab_size: int) -> np.ndarray:
    """``<int64>[vocab]`` occurrences of each id in ``ids``."""
    return np.bincount(np.asarray(ids).ravel(), minlength=vocab_size)


def noise_distribution(counts, power: float = 0.75) -> np.ndarray:
    """``P_n(w) = count(w)^power / sum`` (``<f64>[vocab]``; unseen words get 0)."""
    c = np.asarray(counts, np.float64) ** power
    if c.sum() <= 0:
        raise ValueError("word2vec.noise_distribution: all counts are zero")
    return c / c.sum()


def keep_probabilities(counts, t: float) -> np.ndarray:
    """``min(1, sqrt(t / f(w)))`` with f the relative frequency (``<f64>[vocab]``; t = 0 keeps
    everything)."""
    counts = np.asarray(counts, np.float64)
    if t <= 0:
        return np.ones_like(counts)
    f = counts / counts.sum()
    with np.errstate(divide="ignore"):
        return np.minimum(1.0, np.sqrt(t / f))


def subsample(ids, keep, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of the occurrences kept, each with probability ``keep[id]``."""
    ids = np.asarray(ids)
    return rng.random(ids.shape) < np.asarray(keep)[ids]


def _positions(ids, keep, rng, sentence_length):
    """Kept positions and the sentence of each (all one sentence without sentence_length)."""
    n = len(ids)
    kept = np.arange(n) if keep is None else np.flatnonzero(subsample(ids, keep, rng))
    sentence = (kept // sentence_length if sentence_length else np.zeros(len(kept), np.int64))
    return kept, sentence


def skipgram_pairs(ids, window: int, rng: np.random.Generator, *, keep=None,
                   sentence_length: int | None = None):
    """All (centre, context) pairs of one pass with subsampling and the dynamic window.

    Subsampling happens first, so a window spans the kept words (as in the C tool).

    Args:
        ids: ``<int>[n_tokens]`` the corpus.
        window: largest radius; each centre draws its radius b uniformly in ``1..window``.
        rng: NumPy generator (subsampling and radii).
        keep: ``<f>[vocab]`` keep probabilities (:func:`keep_probabilities`); None keeps all.
        sentence_length: windows stay inside consecutive blocks of this many tokens.

    Returns:
        ``(centres <int32>[n_pairs], contexts <int32>[n_pairs])``.
    """
    ids = np.asarray(ids)
    kept, sentence = _positions(ids, keep, rng, sentence_length)
    words = ids[kept]
    radius = rng.integers(1, window + 1, size=len(kept))
    centres, contexts = [], []
    for o in range(1, window + 1):
        for a, b in ((slice(None, -o), slice(o, None)), (slice(o, None), slice(None, -o))):
            ok = (radius[a] >= o) & (sentence[a] == sentence[b])
            centres.append(words[a][ok])
            contexts.append(words[b][ok])
    return (np.concatenate(centres).astype(np.int32), np.concatenate(contexts).astype(np.int32))


def cbow_examples(ids, window: int, rng: np.random.Generator, *, keep=None,
                  sentence_length: int | None = None):
    """CBOW examples of one pass: each kept word with the kept words within its drawn radius.

    Returns:
        ``(contexts <int32>[n, 2 * window], mask <f32>[n, 2 * window], centres <int32>[n])``;
        masked context slots hold id 0. Words without any context are dropped.
    """
    ids = np.asarray(ids)
    kept, sentence = _positions(ids, keep, rng, sentence_length)
    words = ids[kept]
    n = len(words)
    radius = rng.integers(1, window + 1, size=n)
    offsets = np.concatenate([np.arange(-window, 0), np.arange(1, window + 1)])
    pos = np.arange(n)[:, None] + offsets[None, :]
    inside = (pos >= 0) & (pos < n)
    pos_c = np.clip(pos, 0, max(n - 1, 0))
    mask = inside & (np.abs(offsets)[None, :] <= radius[:, None]) & (
        sentence[pos_c] == sentence[:, None])
    contexts = np.where(mask, words[pos_c], 0)
    has = mask.any(axis=1)
    return (contexts[has].astype(np.int32), mask[has].astype(np.float32),
            words[has].astype(np.int32))


# --------------------------------------------------------------------------------------------
# Evaluation (host-side NumPy)


def embeddings(params) -> np.ndarray:
    """The word vectors to export: the input table, ``<f32>[vocab, dim]`` (row i is the word
    with id i of the training vocabulary)."""
    return np.asarray(params["in"]["table"])


def unit_rows(vectors) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    v = np.asarray(vectors, np.float64)
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(norm == 0, 1.0, norm)


def _top(sims, k, exclude_rows):
    sims = sims.copy()
    for row, ex in enumerate(exclude_rows):
        sims[row, list(ex)] = -np.inf
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(sims, order, axis=1)


def nearest_neighbours(vectors, query_ids, k: int = 5, *, candidates=None):
    """The k words most cosine-similar to each query word (the word itself excluded).

    Args:
        vectors: ``<f>[vocab, dim]``.
        query_ids: ``<int>[q]``.
        k: neighbours per query.
        candidates: optional ids to search among (default: the whole vocabulary).

    Returns:
        ``(ids <int>[q, k], similarities <f64>[q, k])``, most similar first.
    """
    u = unit_rows(vectors)
    q = np.atleast_1d(np.asarray(query_ids))
    cand = np.arange(len(u)) if candidates is None else np.asarray(candidates)
    sims = u[q] @ u[cand].T
    exclude = [np.flatnonzero(cand == i) for i in q]
    order, top = _top(sims, k, exclude)
    return cand[order], top


def analogy(vectors, a, b, c, k: int = 1, *, candidates=None):
    """3CosAdd: the words d with the largest ``cos(d, u_b - u_a + u_c)`` (u: unit vectors),
    excluding a, b and c; ``a : b :: c : d``.

    Args:
        vectors: ``<f>[vocab, dim]``.
        a, b, c: ``<int>[q]`` ids (or scalars).
        k: answers per question.
        candidates: optional ids to search among.

    Returns:
        ``(ids <int>[q, k], similarities <f64>[q, k])``.
    """
    u = unit_rows(vectors)
    a, b, c = (np.atleast_1d(np.asarray(z)) for z in (a, b, c))
    target = unit_rows(u[b] - u[a] + u[c])
    cand = np.arange(len(u)) if candidates is None else np.asarray(candidates)
    sims = target @ u[cand].T
    exclude = [np.flatnonzero(np.isin(cand, [x, y, z])) for x, y, z in zip(a, b, c,
                                                                           strict=True)]
    order, top = _top(sims, k, exclude)
    return cand[order], top


def analogy_accuracy(vectors, questions, *, candidates=None) -> float:
    """Fraction of ``(a, b, c, d)`` id quadruples whose 3CosAdd answer is d.

    Args:
        vectors: ``<f>[vocab, dim]``.
        questions: ``<int>[q, 4]``.
        candidates: optional ids to search among (default: the whole vocabulary).
    """
    qs = np.asarray(questions)
    if qs.ndim != 2 or qs.shape[1] != 4:
        raise ValueError(f"word2vec.analogy_accuracy: expected questions <int>[q, 4], got "
                         f"shape {qs.shape}")
    answer, _ = analogy(vectors, qs[:, 0], qs[:, 1], qs[:, 2], candidates=candidates)
    return float(np.mean(answer[:, 0] == qs[:, 3]))


def neighbour_purity(vectors, classes, k: int = 5) -> float:
    """Mean share of a word's k nearest neighbours (among all classified words) that belong to
    its class.

    Args:
        vectors: ``<f>[vocab, dim]``.
        classes: ``{label: [ids]}`` disjoint classes.
        k: neighbours per word.
    """
    ids = np.concatenate([np.asarray(v) for v in classes.values()])
    labels = np.concatenate([np.full(len(v), i) for i, v in enumerate(classes.values())])
    if k >= len(ids):
        raise ValueError(f"word2vec.neighbour_purity: k={k} must be below the number of "
                         f"classified words {len(ids)}")
    nn, _ = nearest_neighbours(vectors, ids, k, candidates=ids)
    label_of = dict(zip(ids.tolist(), labels.tolist(), strict=True))
    same = np.vectorize(label_of.get)(nn) == labels[:, None]
    return float(same.mean())
