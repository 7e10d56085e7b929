"""Character-level language model: embedding -> RNN / GRU / LSTM stack -> softmax (char-rnn).

The notes' "Generate TV scripts" project (seed 001): the network reads a text one character at
a time and predicts the next one; the hidden state routes what it has seen back into the next
step (seed 001's "s-t-e-e-p" example, where the first 'e' alone cannot tell 'e' from 'p').
Trained by truncated backpropagation through time in one of two ways:

- **stateful batching** (``Config.streams > 0``): the text is cut into ``streams`` contiguous
  rows (:func:`stream_batches`, i.e. ``functional.bptt.contiguous_streams``) and batch ``c``
  holds chunk ``c`` of every row, so with ``train.loop.fit(..., batch_size=streams,
  shuffle=False)`` each batch continues the previous one. The carry travels between batches in
  ``model_state['carry']`` under ``stop_gradient`` (char-rnn, Karpathy 2015; PyTorch's
  word language model): values as if the whole text were one sequence, gradients truncated at
  chunk boundaries. At the end of an epoch the carry wraps to the start of each row.
- **plain sequences** (``streams == 0``): every row is independent and starts from zeros.

Loss: mean next-character cross-entropy in nats; metrics also report ``bits_per_char``
(= nats / ln 2), which :func:`bits_per_char` evaluates exactly over a whole text with the carry
passed along, for comparison with the corpus's entropy rate.

Sampling (:func:`sample`): the priming ids are run through the network, then each next id is
drawn from ``softmax(logits / temperature)`` restricted to the ``top_k`` most likely ids;
``temperature == 0`` is greedy (argmax), the limit of small temperatures. The same key gives
the same ids.

References:
    Seed note 001 (RNN/LSTM, character-level generation, TV-script project); Karpathy,
    "The Unreasonable Effectiveness of Recurrent Neural Networks" (2015) and char-rnn;
    Graves, "Generating Sequences With Recurrent Neural Networks" (2013); Williams & Peng
    (1990) truncated BPTT; Fan, Lewis & Dauphin (2018) top-k sampling.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from functional import bptt, layers, recurrent
from zoo.data_info import DataInfo, Inputs, classes

__all__ = ["Config", "CELLS", "init", "zero_carry", "init_state", "apply", "loss", "stream_batches",
           "bits_per_char", "sample", "config_for", "INPUTS"]

CELLS = recurrent.CELLS   # cell name -> (cell function, init function)


@dataclasses.dataclass(frozen=True)
class Config:
    """Model shape and batching mode.

    Attributes:
        vocab_size: number of character ids (the dataset's vocabulary).
        cell: 'rnn' (tanh Elman), 'gru' or 'lstm'.
        embed_dim: embedding width.
        hidden: hidden units per layer.
        n_layers: stacked recurrent layers.
        forget_bias: LSTM forget-gate bias at init (Gers et al. 2000); ignored otherwise.
        streams: > 0 for stateful batching with this many contiguous streams (the batch size;
            the carry lives in ``model_state``); 0 for independent sequences.
        chunk: time steps per training chunk (truncation length) for :func:`stream_batches`.
    """

    vocab_size: int = 48
    cell: str = "lstm"
    embed_dim: int = 32
    hidden: int = 128
    n_layers: int = 1
    forget_bias: float = 1.0
    streams: int = 0
    chunk: int = 64

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ValueError(f"char_lm.Config: cell must be one of {sorted(CELLS)}, "
                             f"got {self.cell!r}")
        for name in ("vocab_size", "embed_dim", "hidden", "n_layers", "chunk"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"char_lm.Config: {name} must be an int >= 1, got {v!r}")
        if not isinstance(self.streams, int) or self.streams < 0:
            raise ValueError(f"char_lm.Config: streams must be an int >= 0, got "
                             f"{self.streams!r}")


def _cell(cfg: Config):
    return CELLS[cfg.cell][0]


INPUTS = Inputs(shapes=((),), kind="ids", words="one stream of character ids x <int>[n_chars]")


def config_for(info: DataInfo, **overrides) -> Config:
    """The config for a character stream: ``vocab_size`` from its classes."""
    return Config(**{"vocab_size": classes(info), **overrides})


def init(key, cfg: Config):
    """Params ``{'embed': {'table': <f32>[V, E]}, 'rnn': {'layer_0': ..., ...},
    'out': {'w': <f32>[H, V], 'b': <f32>[V]}}``.

    Recurrent layers use PyTorch's uniform init (``functional.recurrent``), the LSTM with
    ``cfg.forget_bias``; the embedding and readout use ``functional.layers`` defaults.
    """
    k_e, k_r, k_o = jax.random.split(key, 3)
    cell_init = CELLS[cfg.cell][1]
    if cfg.cell == "lstm":
        cell_init = functools.partial(cell_init, forget_bias=cfg.forget_bias)
    return {"embed": layers.embedding_init(k_e, cfg.vocab_size, cfg.embed_dim),
            "rnn": recurrent.stacked_init(cell_init, k_r, cfg.embed_dim, cfg.hidden,
                                          cfg.n_layers),
            "out": layers.dense_init(k_o, cfg.hidden, cfg.vocab_size)}


def zero_carry(cfg: Config, batch: int, dtype=jnp.float32):
    """Zero carries of every layer: a tuple of ``<f32>[batch, H]`` (``(h, c)`` for the LSTM)."""
    z = lambda: jnp.zeros((batch, cfg.hidden), dtype)
    return tuple((z(), z()) if cfg.cell == "lstm" else z() for _ in range(cfg.n_layers))


def init_state(cfg: Config):
    """``{'carry': zero_carry(cfg, cfg.streams)}`` for stateful batching, else ``{}``."""
    return {"carry": zero_carry(cfg, cfg.streams)} if cfg.streams else {}


def _check_ids(name, x, cfg):
    x = jnp.asarray(x)
    if x.ndim != 2 or not jnp.issubdtype(x.dtype, jnp.integer):
        raise ValueError(f"char_lm.{name}: expected x <int>[batch, time] character ids, got "
                         f"shape {x.shape} dtype {x.dtype}")
    return x


def apply(params, x, cfg: Config, *, key=None, train=False, state=None, carry=None,
          return_carry=False):
    """Next-character logits for every position.

    Args:
        params: from :func:`init`.
        x: <i32>[batch, time] character ids.
        cfg: the model's :class:`Config`.
        key, train: unused (no dropout); accepted for the zoo contract.
        state: ignored (the stateful carry is passed as ``carry``; kept for the zoo
            signature).
        carry: initial carries per layer (:func:`zero_carry` layout); zeros when None.
        return_carry: also return the final carries.

    Returns:
        <f32>[batch, time, vocab_size] logits; with ``return_carry`` ``(logits, carries)``.
    """
    del key, train, state
    x = _check_ids("apply", x, cfg)
    h = layers.embedding(params["embed"], x)
    carries, ys = recurrent.stacked(_cell(cfg), params["rnn"], h, carry)
    logits = layers.dense(params["out"], ys)
    return (logits, carries) if return_carry else logits


def _token_nll(logits, y):
    """Per-position negative log-likelihood in nats: <f32>[batch, time]."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.take_along_axis(logp, y[..., None].astype(jnp.int32), axis=-1)[..., 0]


def loss(params, model_state, batch, key, cfg: Config, *, train=True):
    """Mean next-character cross-entropy (nats), weighted over the batch.

    With stateful batching (``'carry'`` in ``model_state`` whose batch size matches ``x``) and
    ``train=True``, the run starts from the stored carry and returns the new one detached
    (``functional.bptt.detach``); evaluation (``train=False``) starts from zeros and leaves the
    state unchanged.

    Args:
        params: from :func:`init`.
        model_state: ``{}`` or ``{'carry': ...}`` (see :func:`init_state`).
        batch: ``{'x': <i32>[batch, time], 'y': <i32>[batch, time]}`` (y = x shifted by one
            character), optionally ``'mask': <f32>[batch, time]`` (1 at real positions) and
            ``'weight': <f32>[batch]``.
        key: unused.
        cfg: the model's :class:`Config`.
        train: carry the stateful carry forward.

    Returns:
        ``(loss, (model_state, {'loss', 'bits_per_char', 'accuracy'}))``.
    """
    del key
    x = _check_ids("loss", batch["x"], cfg)
    y = jnp.asarray(batch["y"])
    if y.shape != x.shape:
        raise ValueError(f"char_lm.loss: expected y of shape {x.shape} like x, got {y.shape}")
    carry0 = model_state.get("carry") if isinstance(model_state, dict) else None
    stateful = (train and carry0 is not None
                and jax.tree.leaves(carry0)[0].shape[0] == x.shape[0])
    logits, carries = apply(params, x, cfg, carry=carry0 if stateful else None,
                            return_carry=True)
    nll = _token_nll(logits, y)
    correct = (jnp.argmax(logits, -1) == y).astype(nll.dtype)
    mask = jnp.asarray(batch["mask"], nll.dtype) if "mask" in batch else jnp.ones_like(nll)
    per_pos = jnp.maximum(jnp.sum(mask, 1), 1.0)
    per_ex_nll = jnp.sum(nll * mask, 1) / per_pos
    per_ex_acc = jnp.sum(correct * mask, 1) / per_pos
    w = batch.get("weight")
    w = jnp.ones(x.shape[:1], nll.dtype) if w is None else jnp.asarray(w, nll.dtype)
    total = jnp.maximum(jnp.sum(w), 1e-12)
    value = jnp.sum(per_ex_nll * w) / total
    acc = jnp.sum(per_ex_acc * w) / total
    new_state = {"carry": bptt.detach(carries)} if stateful else model_state
    return value, (new_state, {"loss": value, "bits_per_char": value / math.log(2.0),
                               "accuracy": acc})


def stream_batches(ids, streams: int, chunk: int) -> dict:
    """Training rows for stateful batching, ordered for ``fit(batch_size=streams, shuffle=False)``.

    Args:
        ids: <int>[n] the whole text as character ids.
        streams: number of contiguous streams (the batch size).
        chunk: time steps per row (truncation length).

    Returns:
        ``{'x': <i32>[n_chunks * streams, chunk], 'y': ...}`` with rows
        ``c * streams .. c * streams + streams - 1`` = chunk c of streams 0..streams-1
        (see ``functional.bptt.contiguous_streams``), y the next characters.
    """
    inputs, targets = bptt.contiguous_streams(ids, streams, chunk)
    flat = lambda a: np.ascontiguousarray(a.transpose(1, 0, 2)).reshape(-1, chunk)
    return {"x": flat(inputs), "y": flat(targets)}


@functools.partial(jax.jit, static_argnames=("cfg",))
def _stream_nll(params, x, y, cfg):
    logits = apply(params, x, cfg)
    return jnp.sum(_token_nll(logits, y))


def bits_per_char(params, cfg: Config, ids, *, streams: int = 1) -> float:
    """Exact bits per character of a text: one run over it with the carry passed along.

    The text's ``n - 1`` next-character predictions are scored (the first character has no
    context); with ``streams > 1`` the text is cut into that many contiguous pieces run in
    parallel from zero carries (faster, slightly pessimistic at each piece's start); the
    remainder characters beyond ``streams`` equal pieces are dropped.

    Args:
        params: from :func:`init`.
        cfg: the model's :class:`Config`.
        ids: <int>[n] character ids (n >= 2).
        streams: parallel pieces.

    Returns:
        mean -log2 p(next character), a Python float.
    """
    ids = np.asarray(ids)
    if ids.ndim != 1 or ids.shape[0] < 2 * streams:
        raise ValueError(f"char_lm.bits_per_char: expected <int>[n] ids with n >= "
                         f"{2 * streams}, got shape {ids.shape}")
    seg = ids.shape[0] // streams
    rows = ids[:seg * streams].reshape(streams, seg).astype(np.int32)
    nll = _stream_nll(params, jnp.asarray(rows[:, :-1]), jnp.asarray(rows[:, 1:]), cfg)
    return float(nll) / (streams * (seg - 1)) / math.log(2.0)


def _pick(key, logits, temperature, top_k):
    """One id per row from <f32>[batch, V] logits (greedy when temperature == 0)."""
    if temperature == 0:
        return jnp.argmax(logits, -1).astype(jnp.int32)
    if top_k is not None:
        vals, idx = lax.top_k(logits, top_k)
        choice = jax.random.categorical(key, vals / temperature, axis=-1)
        return jnp.take_along_axis(idx, choice[:, None], -1)[:, 0].astype(jnp.int32)
    return jax.random.categorical(key, logits / temperature, axis=-1).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("cfg", "length", "temperature", "top_k"))
def _sample(params, prime, key, cfg, length, temperature, top_k):
    logits, carry = apply(params, prime, cfg, return_carry=True)
    first = _pick(jax.random.fold_in(key, 0), logits[:, -1], temperature, top_k)

    def body(state, t):
        carry, prev = state
        lg, carry = apply(params, prev[:, None], cfg, carry=carry, return_carry=True)
        nxt = _pick(jax.random.fold_in(key, t), lg[:, 0], temperature, top_k)
        return (carry, nxt), nxt

    _, rest = lax.scan(body, (carry, first), jnp.arange(1, length))
    return jnp.concatenate([first[:, None], rest.T], axis=1)


def sample(params, prime, cfg: Config, *, key, length: int = 100, temperature: float = 1.0,
           top_k: int | None = None, state=None):
    """Generates ``length`` characters after a priming sequence.

    Step t draws from ``softmax(logits_t / temperature)`` over the ``top_k`` largest logits
    (all when None) with key ``fold_in(key, t)``, so a fixed key reproduces the ids.
    ``temperature=0`` takes the argmax (greedy decoding), the limit of small temperatures.

    Args:
        params: from :func:`init`.
        prime: <int>[p] or <int>[batch, p] priming ids (p >= 1).
        cfg: the model's :class:`Config`.
        key: PRNG key.
        length: ids to generate (>= 1).
        temperature: >= 0; below 1 sharpens, above 1 flattens the distribution.
        top_k: sample among the k most likely ids (1 <= k <= vocab_size), or None.
        state: unused (the carry starts at zero after the prime); accepted for the zoo's
            common signature.

    Returns:
        <i32>[length] (or <i32>[batch, length]) generated ids, the prime excluded.
    """
    prime = np.asarray(prime)
    single = prime.ndim == 1
    if prime.ndim not in (1, 2) or prime.shape[-1] < 1 or not np.issubdtype(prime.dtype,
                                                                            np.integer):
        raise ValueError(f"char_lm.sample: expected prime <int>[p] or <int>[batch, p] with "
                         f"p >= 1, got shape {prime.shape} dtype {prime.dtype}")
    if prime.size and (prime.min() < 0 or prime.max() >= cfg.vocab_size):
        raise ValueError(f"char_lm.sample: prime ids must lie in [0, {cfg.vocab_size}), got "
                         f"range [{prime.min()}, {prime.max()}]")
    if not isinstance(length, (int, np.integer)) or length < 1:
        raise ValueError(f"char_lm.sample: expected length >= 1, got {length!r}")
    if not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"char_lm.sample: expected temperature >= 0, got {temperature!r}")
    if top_k is not None and not (isinstance(top_k, (int, np.integer))
                                  and 1 <= top_k <= cfg.vocab_size):
        raise ValueError(f"char_lm.sample: expected top_k in [1, {cfg.vocab_size}] or None, "
                         f"got {top_k!r}")
    out = _sample(params, jnp.asarray(prime.reshape(-1, prime.shape[-1]), jnp.int32), key,
                  cfg, int(length), float(temperature), None if top_k is None else int(top_k))
    return out[0] if single else out
