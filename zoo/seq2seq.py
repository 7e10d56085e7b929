"""Encoder-decoder translation with recurrent networks, with and without attention.

Encoder: an embedding and a GRU or LSTM (bidirectional by default) over the source ids,
padding ``pad_id`` masked out, so the outputs at real steps and the summary (the state after
the last real step of each direction) do not depend on how much padding follows.

Decoder, one step from the previous target token ``y_{t-1}`` (teacher forcing in training:
the true previous token; its own choice when decoding):

- ``attention=None``: Cho et al. (2014). The decoder starts from ``tanh(W_b summary)`` and
  sees the fixed summary ``c`` at every step: ``s_t = cell(s_{t-1}, [e(y_{t-1}); c])``,
  ``logits = W_o [s_t; c; e(y_{t-1})]``.
- ``'bahdanau'``: additive attention (Bahdanau et al. 2015). The query is the previous state:
  ``score_j = v^T tanh(W_q s_{t-1} + W_k h_j)``, ``a = softmax(score)`` over real source
  steps, ``c_t = sum_j a_j h_j``; ``s_t = cell(s_{t-1}, [e(y_{t-1}); c_t])``,
  ``logits = W_o [s_t; c_t; e(y_{t-1})]`` (the paper's maxout deep output replaced by one
  affine layer).
- ``'luong'``: multiplicative "general" attention with input feeding (Luong et al. 2015). The
  query is the new state: ``s_t = cell(s_{t-1}, [e(y_{t-1}); ~h_{t-1}])``,
  ``score_j = s_t^T W_a h_j``, ``~h_t = tanh(W_c [c_t; s_t])``, ``logits = W_o ~h_t``.

Training minimizes the cross-entropy of each real target token (``y[:, 1:] != pad_id``, the
``<eos>`` included), averaged per sentence, then weighted over the batch. Decoding is greedy
or beam search; a hypothesis ends at ``<eos>`` (after which it emits ``pad_id`` at no cost)
and ``pad_id`` is never emitted before that. Beam hypotheses are ranked by
``log P(y | x) / lp(|y|)`` with the GNMT length penalty ``lp(n) = ((5 + n) / 6)^alpha``
(Wu et al. 2016), ``|y|`` counting the ``<eos>``; ``alpha = 0`` ranks by log-probability.

Ids: sources are ``<int32>[batch, src_len]`` right-padded with ``pad_id``; targets are
``<bos> ... <eos>`` right-padded (the layout of ``train.datasets.load('dates')`` and
``load('parallel')``: pad 0, bos 1, eos 2).

References:
    Sutskever, Vinyals and Le, "Sequence to sequence learning with neural networks", NIPS 2014.
    Cho et al., "Learning phrase representations using RNN encoder-decoder", EMNLP 2014.
    Bahdanau, Cho and Bengio, "Neural machine translation by jointly learning to align and
    translate", ICLR 2015. Luong, Pham and Manning, "Effective approaches to attention-based
    neural machine translation", EMNLP 2015. Wu et al., "Google's neural machine translation
    system", 2016 (length penalty). Seed 001 (the notes' translation project).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from functional import layers, recurrent
from zoo.data_info import Inputs

__all__ = ["Config", "Hypotheses", "init", "encode", "init_decoder_carry", "decode_step",
           "apply", "loss", "sequence_log_prob", "length_penalty", "greedy_decode",
           "beam_search", "exact_match", "INPUTS"]

# cell name -> (cell function, init function): the encoder-decoders of the papers use gated cells
CELLS = {name: recurrent.CELLS[name] for name in ("gru", "lstm")}
ATTENTION = (None, "bahdanau", "luong")
_MASKED = -1e9      # score of padded source steps: exp underflows to exactly 0


@dataclasses.dataclass(frozen=True)
class Config:
    """Sizes and variant of the encoder-decoder.

    Attributes:
        src_vocab_size, tgt_vocab_size: vocabulary sizes (defaults: the dates corpus).
        embed_dim: size of both embeddings.
        hidden: encoder hidden units per direction and decoder hidden units.
        cell: 'gru' or 'lstm' (PyTorch layout, ``functional.recurrent``).
        attention: None, 'bahdanau' (additive) or 'luong' (multiplicative, input feeding).
        attention_dim: width of the additive attention's hidden layer (Bahdanau only).
        bidirectional: bidirectional encoder.
        pad_id, bos_id, eos_id: special target ids (pad_id also pads sources).
        max_decode_length: default number of decoding steps (dates: 10 characters + eos).
    """

    src_vocab_size: int = 69
    tgt_vocab_size: int = 14
    embed_dim: int = 32
    hidden: int = 64
    cell: str = "gru"
    attention: str | None = None
    attention_dim: int = 64
    bidirectional: bool = True
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    max_decode_length: int = 11

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ValueError(f"seq2seq.Config: cell must be one of {tuple(CELLS)}, got "
                             f"{self.cell!r}")
        if self.attention not in ATTENTION:
            raise ValueError(f"seq2seq.Config: attention must be one of {ATTENTION}, got "
                             f"{self.attention!r}")
        sizes = {k: getattr(self, k) for k in ("src_vocab_size", "tgt_vocab_size", "embed_dim",
                                               "hidden", "attention_dim", "max_decode_length")}
        if any(not isinstance(v, int) or v < 1 for v in sizes.values()):
            raise ValueError(f"seq2seq.Config: sizes must be ints >= 1, got {sizes}")
        ids = (self.pad_id, self.bos_id, self.eos_id)
        if len(set(ids)) != 3 or not all(0 <= i < self.tgt_vocab_size for i in ids):
            raise ValueError(f"seq2seq.Config: pad, bos, eos ids must be distinct and below "
                             f"tgt_vocab_size={self.tgt_vocab_size}, got {ids}")

    @property
    def enc_dim(self) -> int:
        """Size of an encoder output h_j (2 * hidden when bidirectional)."""
        return self.hidden * (2 if self.bidirectional else 1)


class Hypotheses(NamedTuple):
    """Decoded outputs (greedy: ``[batch, ...]``; beam search: ``[batch, beam, ...]``).

    Attributes:
        tokens: ``<int32>[..., max_length]`` ids without ``<bos>``; ``<eos>`` then ``pad_id``.
        lengths: ``<int32>[...]`` tokens up to and including ``<eos>``.
        log_probs: ``<f32>[...]`` log P(tokens | source) under the model.
        scores: ``<f32>[...]`` ``log_probs / length_penalty(lengths, alpha)`` (greedy: alpha 0).
    """

    tokens: jax.Array
    lengths: jax.Array
    log_probs: jax.Array
    scores: jax.Array


# --------------------------------------------------------------------------------------------
# Parameters


INPUTS = Inputs(shapes=((None,),), kind="ids", words="source token ids x <int>[n, length]")


def init(key, cfg: Config):
    """Parameters.

    Returns:
        ``{'src_embed', 'tgt_embed': {'table'}, 'encoder': cell params (``{'fwd', 'bwd'}`` if
        bidirectional), 'bridge': dense [enc_dim, hidden], 'decoder': cell params,
        'out': dense, and 'attention' ({'query', 'key': dense, 'v': <f32>[A]} for Bahdanau;
        {'w': <f32>[hidden, enc_dim]} and 'combine': dense for Luong)}``.
    """
    _, cell_init = CELLS[cfg.cell]
    ks = jax.random.split(key, 9)
    e, h, d, a = cfg.embed_dim, cfg.hidden, cfg.enc_dim, cfg.attention_dim
    embed_init = lambda k, shape, dtype=jnp.float32: 0.1 * jax.random.normal(k, shape, dtype)
    params = {
        "src_embed": layers.embedding_init(ks[0], cfg.src_vocab_size, e, w_init=embed_init),
        "tgt_embed": layers.embedding_init(ks[1], cfg.tgt_vocab_size, e, w_init=embed_init),
        "encoder": (recurrent.bidirectional_init(cell_init, ks[2], e, h) if cfg.bidirectional
                    else cell_init(ks[2], e, h)),
        "bridge": layers.dense_init(ks[3], d, h),
    }
    if cfg.attention == "luong":
        params["decoder"] = cell_init(ks[4], e + h, h)
        params["attention"] = {"w": jax.random.normal(ks[5], (h, d)) / np.sqrt(h)}
        params["combine"] = layers.dense_init(ks[6], d + h, h)
        params["out"] = layers.dense_init(ks[7], h, cfg.tgt_vocab_size)
    else:
        params["decoder"] = cell_init(ks[4], e + d, h)
        params["out"] = layers.dense_init(ks[7], h + d + e, cfg.tgt_vocab_size)
        if cfg.attention == "bahdanau":
            kq, kk, kv = jax.random.split(ks[5], 3)
            params["attention"] = {"query": layers.dense_init(kq, h, a),
                                   "key": layers.dense_init(kk, d, a),
                                   "v": jax.random.normal(kv, (a,)) / np.sqrt(a)}
    return params


# --------------------------------------------------------------------------------------------
# Encoder


def _check_ids(fn: str, name: str, ids, vocab_size: int):
    ids = jnp.asarray(ids)
    if ids.ndim != 2:
        raise ValueError(f"seq2seq.{fn}: expected {name} ids <int>[batch, time], got shape "
                         f"{ids.shape}")
    if not jnp.issubdtype(ids.dtype, jnp.integer):
        raise TypeError(f"seq2seq.{fn}: expected integer {name} ids, got {ids.dtype}")
    if not isinstance(ids, jax.core.Tracer) and ids.size and (
            int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
        raise ValueError(f"seq2seq.{fn}: {name} ids must lie in [0, {vocab_size}), got "
                         f"[{int(ids.min())}, {int(ids.max())}]")
    return ids


def _h(carry):
    """The hidden state of a GRU carry h or an LSTM carry (h, c)."""
    return carry[0] if isinstance(carry, tuple) else carry


def encode(params, src, cfg: Config) -> dict:
    """Runs the encoder.

    Args:
        params: from :func:`init`.
        src: ``<int32>[batch, src_len]`` source ids right-padded with ``cfg.pad_id``.
        cfg: the model's :class:`Config`.

    Returns:
        ``{'values': <f32>[batch, src_len, enc_dim]`` outputs h_j (0 at padding),
        ``'mask': <bool>[batch, src_len]``, ``'summary': <f32>[batch, enc_dim]`` (final states
        of both directions), ``'keys': <f32>[batch, src_len, A]`` (``W_k h_j``, Bahdanau
        only)}.
    """
    src = _check_ids("encode", "source", src, cfg.src_vocab_size)
    cell, _ = CELLS[cfg.cell]
    mask = src != cfg.pad_id
    x = layers.embedding(params["src_embed"], src)
    if cfg.bidirectional:
        (c_f, c_b), values = recurrent.bidirectional(cell, params["encoder"], x, mask=mask)
        summary = jnp.concatenate([_h(c_f), _h(c_b)], axis=-1)
    else:
        c, values = recurrent.run(cell, params["encoder"], x, mask=mask)
        summary = _h(c)
    enc = {"values": values, "mask": mask, "summary": summary}
    if cfg.attention == "bahdanau":
        # W_k h_j does not depend on the decoder step: computed once, not per step.
        enc["keys"] = layers.dense(params["attention"]["key"], values)
    return enc


# --------------------------------------------------------------------------------------------
# Decoder


def init_decoder_carry(params, enc: dict, cfg: Config) -> dict:
    """Decoder state before the first step: ``{'rnn': tanh(W_b summary + b_b)}`` (an LSTM's
    cell starts at 0) and, for Luong, ``'feed': 0`` (the attentional vector fed back)."""
    h0 = jnp.tanh(layers.dense(params["bridge"], enc["summary"]))
    carry = {"rnn": (h0, jnp.zeros_like(h0)) if cfg.cell == "lstm" else h0}
    if cfg.attention == "luong":
        carry["feed"] = jnp.zeros_like(h0)
    return carry


def _attend(params, cfg: Config, query, enc):
    if cfg.attention == "bahdanau":
        q = layers.dense(params["query"], query)                       # [B, A]
        scores = jnp.tanh(enc["keys"] + q[:, None, :]) @ params["v"]   # [B, S]
    else:
        scores = jnp.einsum("bsd,bd->bs", enc["values"], query @ params["w"])
    scores = jnp.where(enc["mask"], scores, _MASKED)
    weights = jax.nn.softmax(scores, axis=-1)
    return jnp.einsum("bs,bsd->bd", weights, enc["values"]), weights


def decode_step(params, cfg: Config, enc: dict, carry: dict, prev_ids):
    """One decoder step (see the module docstring for the three variants).

    Args:
        params: from :func:`init`.
        cfg: the model's :class:`Config`.
        enc: from :func:`encode`.
        carry: from :func:`init_decoder_carry` or the previous step.
        prev_ids: ``<int32>[batch]`` previous target tokens (``<bos>`` first).

    Returns:
        ``(carry, logits <f32>[batch, tgt_vocab], attention <f32>[batch, src_len])``; the
        attention weights are 0 without attention.
    """
    cell, _ = CELLS[cfg.cell]
    emb = layers.embedding(params["tgt_embed"], prev_ids)
    if cfg.attention == "luong":
        rnn, s = cell(params["decoder"], carry["rnn"], jnp.concatenate([emb, carry["feed"]], -1))
        ctx, weights = _attend(params["attention"], cfg, s, enc)
        h_tilde = jnp.tanh(layers.dense(params["combine"], jnp.concatenate([ctx, s], -1)))
        return {"rnn": rnn, "feed": h_tilde}, layers.dense(params["out"], h_tilde), weights
    if cfg.attention == "bahdanau":
        ctx, weights = _attend(params["attention"], cfg, _h(carry["rnn"]), enc)
    else:
        ctx, weights = enc["summary"], jnp.zeros(enc["mask"].shape, enc["summary"].dtype)
    rnn, s = cell(params["decoder"], carry["rnn"], jnp.concatenate([emb, ctx], -1))
    logits = layers.dense(params["out"], jnp.concatenate([s, ctx, emb], -1))
    return {"rnn": rnn}, logits, weights


def apply(params, x, cfg: Config, *, key=None, train=False, state=None, y_in=None,
          return_attention=False):
    """Teacher-forced forward pass.

    Args:
        params: from :func:`init`.
        x: ``<int32>[batch, src_len]`` source ids.
        cfg: the model's :class:`Config`.
        key, train, state: unused (no dropout, no state); accepted for the zoo's common
            signature.
        y_in: ``<int32>[batch, tgt_len]`` decoder inputs (``<bos>`` and the target without its
            last position, i.e. ``y[:, :-1]``); required (to translate without targets, use
            :func:`greedy_decode` or :func:`beam_search`).
        return_attention: also return the attention weights.

    Returns:
        ``<f32>[batch, tgt_len, tgt_vocab]`` next-token logits (with ``return_attention``, a
        pair with ``<f32>[batch, tgt_len, src_len]``).
    """
    del key, train, state
    if y_in is None:
        raise ValueError("seq2seq.apply: teacher forcing needs the decoder inputs y_in "
                         "(<bos> + target[:-1]); to translate, use greedy_decode or beam_search")
    y_in = _check_ids("apply", "target", y_in, cfg.tgt_vocab_size)
    enc = encode(params, x, cfg)
    if y_in.shape[0] != enc["mask"].shape[0]:
        raise ValueError(f"seq2seq.apply: source and target batch sizes differ: "
                         f"{enc['mask'].shape[0]} and {y_in.shape[0]}")

    def step(carry, prev):
        carry, logits, weights = decode_step(params, cfg, enc, carry, prev)
        return carry, (logits, weights)

    _, (logits, weights) = lax.scan(step, init_decoder_carry(params, enc, cfg), y_in.T)
    logits, weights = jnp.swapaxes(logits, 0, 1), jnp.swapaxes(weights, 0, 1)
    return (logits, weights) if return_attention else logits


def _token_log_probs(params, src, y, cfg):
    y = _check_ids("loss", "target", y, cfg.tgt_vocab_size)
    if y.shape[1] < 2:
        raise ValueError(f"seq2seq: targets need <bos> and at least one token, got shape "
                         f"{y.shape}")
    y_in, y_out = y[:, :-1], y[:, 1:]
    logits = apply(params, src, cfg, y_in=y_in)
    logp = jax.nn.log_softmax(logits, axis=-1)
    picked = jnp.take_along_axis(logp, y_out[..., None], axis=-1)[..., 0]
    return picked, logits, y_out, (y_out != cfg.pad_id)


def sequence_log_prob(params, src, y, cfg: Config):
    """``log P(y_1 .. y_n | x)``: the sum of the real target tokens' log-probabilities.

    Args:
        params, cfg: the model's.
        src: ``<int32>[batch, src_len]``.
        y: ``<int32>[batch, tgt_len]`` ``<bos>`` + tokens, right-padded with ``pad_id``.

    Returns:
        ``<f32>[batch]``.
    """
    picked, _, _, mask = _token_log_probs(params, src, y, cfg)
    return jnp.sum(jnp.where(mask, picked, 0.0), axis=1)


def loss(params, model_state, batch, key, cfg: Config, *, train=True):
    """Teacher-forced token cross-entropy, averaged per sentence, weighted mean over the batch.

    Args:
        params: from :func:`init`.
        model_state: ``{}`` (returned unchanged).
        batch: ``{'x': <int32>[batch, src_len], 'y': <int32>[batch, tgt_len]}`` and optionally
            ``'weight': <f32>[batch]``.
        key, train: unused (no dropout).
        cfg: the model's :class:`Config`.

    Returns:
        ``(loss, (model_state, metrics))`` with metrics ``{'loss', 'token_accuracy',
        'sequence_accuracy'}`` (accuracies of the teacher-forced argmax).
    """
    del key, train
    picked, logits, y_out, mask = _token_log_probs(params, batch["x"], batch["y"], cfg)
    m = mask.astype(picked.dtype)
    n_tokens = jnp.maximum(jnp.sum(m, axis=1), 1.0)
    nll = -jnp.sum(picked * m, axis=1) / n_tokens
    correct = (jnp.argmax(logits, axis=-1) == y_out) | ~mask
    token_acc = jnp.sum(correct * m, axis=1) / n_tokens
    seq_acc = jnp.all(correct, axis=1).astype(picked.dtype)
    w = batch.get("weight")
    w = jnp.ones_like(nll) if w is None else jnp.asarray(w, nll.dtype)
    norm = jnp.maximum(jnp.sum(w), jnp.finfo(nll.dtype).tiny)
    mean = lambda v: jnp.sum(w * v) / norm
    value = mean(nll)
    return value, (model_state, {"loss": value, "token_accuracy": mean(token_acc),
                                 "sequence_accuracy": mean(seq_acc)})


# --------------------------------------------------------------------------------------------
# Decoding


def length_penalty(lengths, alpha: float):
    """GNMT length penalty ``((5 + n) / 6) ** alpha`` (Wu et al. 2016, eq. 14)."""
    return ((5.0 + jnp.asarray(lengths, jnp.float32)) / 6.0) ** alpha


def _allowed(logp, done, cfg):
    """Finished hypotheses continue with pad at no cost; unfinished ones never emit pad."""
    vocab = jnp.arange(logp.shape[-1])
    after_eos = jnp.where(vocab == cfg.pad_id, 0.0, -jnp.inf).astype(logp.dtype)
    logp = jnp.where(vocab == cfg.pad_id, -jnp.inf, logp)
    return jnp.where(done[..., None], after_eos, logp)


def greedy_decode(params, src, cfg: Config, *, max_length: int | None = None) -> Hypotheses:
    """Greedy decoding: the most probable next token at every step.

    Args:
        params, cfg: the model's.
        src: ``<int32>[batch, src_len]``.
        max_length: decoding steps (default ``cfg.max_decode_length``).

    Returns:
        :class:`Hypotheses` with ``[batch, ...]`` fields (``scores == log_probs``).
    """
    steps = cfg.max_decode_length if max_length is None else int(max_length)
    enc = encode(params, src, cfg)
    batch = enc["mask"].shape[0]

    def step(state, _):
        carry, prev, done, total, length = state
        carry, logits, _ = decode_step(params, cfg, enc, carry, prev)
        logp = _allowed(jax.nn.log_softmax(logits, axis=-1), done, cfg)
        tok = jnp.argmax(logp, axis=-1).astype(jnp.int32)
        total = total + jnp.take_along_axis(logp, tok[:, None], axis=-1)[:, 0]
        length = length + (~done).astype(jnp.int32)
        done = done | (tok == cfg.eos_id)
        return (carry, tok, done, total, length), tok

    state0 = (init_decoder_carry(params, enc, cfg), jnp.full((batch,), cfg.bos_id, jnp.int32),
              jnp.zeros((batch,), bool), jnp.zeros((batch,), enc["summary"].dtype),
              jnp.zeros((batch,), jnp.int32))
    (_, _, _, total, length), tokens = lax.scan(step, state0, None, length=steps)
    return Hypotheses(tokens.T, length, total, total)


def beam_search(params, src, cfg: Config, *, beam_size: int = 4, alpha: float = 0.6,
                max_length: int | None = None) -> Hypotheses:
    """Beam search with the GNMT length penalty.

    Every step extends each of the ``beam_size`` hypotheses by every token and keeps the
    ``beam_size`` best candidates by ``log P / lp(length)``; finished hypotheses stay in the
    beam with a fixed score, so after the last step the beam holds the best hypotheses found,
    sorted. With ``beam_size=1`` this is exactly :func:`greedy_decode` (all candidates of one
    hypothesis share a length, so the penalty does not change their order).

    Args:
        params, cfg: the model's.
        src: ``<int32>[batch, src_len]``.
        beam_size: K.
        alpha: length-penalty exponent (0: plain log-probability).
        max_length: decoding steps (default ``cfg.max_decode_length``).

    Returns:
        :class:`Hypotheses` with ``[batch, K, ...]`` fields, best first.
    """
    if not isinstance(beam_size, int) or beam_size < 1:
        raise ValueError(f"seq2seq.beam_search: beam_size must be an int >= 1, got "
                         f"{beam_size!r}")
    steps = cfg.max_decode_length if max_length is None else int(max_length)
    k = beam_size
    enc = encode(params, src, cfg)
    batch = enc["mask"].shape[0]
    # Each source is repeated K times: the flat batch b * K + i holds beam i of source b.
    enc = jax.tree.map(lambda a: jnp.repeat(a, k, axis=0), enc)
    dtype = enc["summary"].dtype
    rows = jnp.arange(batch)[:, None]

    def step(state, t):
        carry, tokens, done, total, length = state
        prev = jnp.where(t == 0, cfg.bos_id, tokens[:, :, jnp.maximum(t - 1, 0)]).reshape(-1)
        carry, logits, _ = decode_step(params, cfg, enc, carry, prev)
        logp = jax.nn.log_softmax(logits, axis=-1).reshape(batch, k, -1)
        logp = _allowed(logp, done, cfg)
        vocab = logp.shape[-1]
        cand = total[..., None] + logp                                  # [B, K, V]
        cand_len = jnp.broadcast_to((length + (~done))[..., None], cand.shape)
        score = cand / length_penalty(cand_len, alpha).astype(dtype)
        _, idx = lax.top_k(score.reshape(batch, k * vocab), k)         # sorted, best first
        beam, tok = idx // vocab, (idx % vocab).astype(jnp.int32)
        total = jnp.take_along_axis(cand.reshape(batch, -1), idx, axis=1)
        length = jnp.take_along_axis(cand_len.reshape(batch, -1), idx, axis=1)
        done = done[rows, beam] | (tok == cfg.eos_id)
        tokens = tokens[rows, beam].at[:, :, t].set(tok)
        carry = jax.tree.map(lambda a: a.reshape(batch, k, *a.shape[1:])[rows, beam]
                             .reshape(batch * k, *a.shape[1:]), carry)
        return (carry, tokens, done, total, length), None

    # Only beam 0 is live at the start; the others would duplicate it.
    total0 = jnp.where(jnp.arange(k) == 0, 0.0, -jnp.inf).astype(dtype)
    state0 = (init_decoder_carry(params, enc, cfg), jnp.zeros((batch, k, steps), jnp.int32),
              jnp.zeros((batch, k), bool), jnp.broadcast_to(total0, (batch, k)),
              jnp.zeros((batch, k), jnp.int32))
    (_, tokens, _, total, length), _ = lax.scan(step, state0, jnp.arange(steps))
    return Hypotheses(tokens, length, total, total / length_penalty(length, alpha).astype(dtype))


def exact_match(tokens, y, cfg: Config):
    """Whether each decoded sequence equals its reference up to and including ``<eos>``.

    Args:
        tokens: ``<int32>[batch, L]`` decoded ids (no ``<bos>``; pad after ``<eos>``).
        y: ``<int32>[batch, T]`` references ``<bos> ... <eos>`` padded.
        cfg: the model's :class:`Config` (pad id).

    Returns:
        ``<bool>[batch]``.
    """
    ref = jnp.asarray(y)[:, 1:]
    tokens = jnp.asarray(tokens)
    n = max(ref.shape[1], tokens.shape[1])
    pad = lambda a: jnp.pad(a, ((0, 0), (0, n - a.shape[1])), constant_values=cfg.pad_id)
    return jnp.all(pad(tokens) == pad(ref), axis=1)
