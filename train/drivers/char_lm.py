"""The char-lm driver: ``zoo train / eval / sample`` for the character-level language model.

The standard driver shuffles mini-batches; a language model trained with stateful truncated
BPTT needs batch c+1 to continue batch c, so the registry's char-lm entries name this driver
(``zoo.char_lm`` holds the model):

- :func:`train`: the text (``train.datasets.load('tv_script')`` by default, or
  ``--dataset text`` with a file) is cut into ``--batch-size`` contiguous streams of
  ``Config.chunk`` steps (``zoo.char_lm.stream_batches``) and trained with
  ``train.loop.fit(..., shuffle=False)``, the carry passing from batch to batch in the model
  state. Gradients are clipped to a global norm (``spec.extra['clip_norm']``, char-rnn's 5).
  The summary reports exact bits per character on the train and test text
  (``zoo.char_lm.bits_per_char``) next to the corpus's entropy floor when it is known.
- :func:`evaluate`: the same bits per character from the latest checkpoint.
- :func:`sample`: ``zoo sample NAME --checkpoint DIR --prime TEXT --length N
  [--temperature T] [--top-k K] [--seed S]`` prints the prime followed by the generated text.

Word-level data (``level='word'`` of ``tv_script`` and ``text``: the TV-script project's
tokens, ``train.datasets.vocab.word_tokens``) trains the same model over word ids; the summary
then reports bits per *word* (and the perplexity ``2 ** bits``), a prime is split into words
(``--prime jerry`` may name the speaker token ``jerry:``, as the course's ``generate`` does)
and ``--length`` counts words.
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import optax

from train import optimizers, runs
from train.datasets.vocab import join_words, word_tokens
from train.drivers.data import check_data, load_data, model_config
from train.errors import UsageError
from train.runs import RunOptions
from zoo import char_lm

__all__ = ["make_config", "make_optimizer", "train", "evaluate", "sample", "load_trained",
           "sample_text", "sample_script", "prime_words"]


def make_config(spec, opts: RunOptions, ds) -> char_lm.Config:
    """The spec's config for this dataset's vocabulary, with ``streams = opts.batch_size``."""
    cfg = model_config(spec, opts.dataset, ds)
    if "vocab" not in ds.meta or ds.x_train is None or getattr(ds.x_train, "ndim", 0) != 1:
        raise UsageError(f"model {spec.name!r} needs a character or word stream (a dataset "
                         f"with 1-D ids and meta['vocab'], e.g. tv_script or text), got "
                         f"{opts.dataset!r}")
    streams = opts.batch_size or cfg.streams or 32
    return dataclasses.replace(cfg, vocab_size=len(ds.meta["vocab"]), streams=int(streams))


def make_optimizer(spec, opts: RunOptions):
    """Global-norm clipping (``spec.extra['clip_norm']``, default 5) then the named optimizer."""
    clip = float(spec.extra.get("clip_norm", 5.0))
    return optax.chain(optax.clip_by_global_norm(clip),
                       optimizers.make_optimizer(opts.optimizer, opts.lr))


def _is_words(ds) -> bool:
    return getattr(ds.meta.get("vocab"), "level", "char") == "word"


def _bpc_summary(params, cfg, ds) -> dict:
    """Exact train / test bits per token (``char`` or ``word``), next to the corpus's entropy
    floor when it is known; word-level runs add the test perplexity ``2 ** bits``."""
    unit, short = ("word", "bpw") if _is_words(ds) else ("char", "bpc")
    out = {f"train_bits_per_{unit}": char_lm.bits_per_char(params, cfg, ds.x_train,
                                                           streams=16),
           f"test_bits_per_{unit}": char_lm.bits_per_char(params, cfg, ds.x_test)}
    if unit == "word":
        out["test_perplexity"] = 2.0 ** out["test_bits_per_word"]
    floor = ds.meta.get(f"entropy_bits_per_{unit}")
    if floor:
        out[f"entropy_bits_per_{unit}"] = float(floor)
        out[f"test_{short}_over_floor"] = out[f"test_bits_per_{unit}"] / float(floor)
    return out


def _load(spec, opts: RunOptions):
    ds = load_data(opts.dataset, opts.dataset_options)
    check_data(spec, opts.dataset, ds)
    return ds


def train(spec, opts: RunOptions) -> dict:
    """``zoo train char-lm``: stateful truncated BPTT with ``train.loop.fit``; writes the run
    directory like the standard command (run.json, metrics.jsonl, checkpoints/, summary.json,
    loss.png, manifest.json) and returns the summary."""
    from train.loop import fit

    ds = _load(spec, opts)
    cfg = make_config(spec, opts, ds)
    try:
        data = char_lm.stream_batches(ds.x_train, cfg.streams, cfg.chunk)
    except ValueError as e:
        raise UsageError(f"{spec.name}: training text too short: {e}") from e
    # per-epoch validation on chunks of the test text (from zero carries), when it is long
    # enough; the summary's test bits per character run over the whole text with the carry
    n_val = min(8, cfg.streams, (len(ds.x_test) - 1) // (cfg.chunk + 1))
    val = char_lm.stream_batches(ds.x_test, n_val, cfg.chunk) if n_val >= 1 else None
    k_init, k_fit = jax.random.split(jax.random.PRNGKey(opts.seed))
    params = char_lm.init(k_init, cfg)
    out = opts.out
    ckpt_dir = runs.prepare_run_dir(opts, data=ds)
    t0 = time.perf_counter()
    result = fit(lambda p, s, b, k: char_lm.loss(p, s, b, k, cfg, train=True), params,
                 make_optimizer(spec, opts), data, key=k_fit, epochs=opts.epochs,
                 batch_size=cfg.streams, shuffle=False, model_state=char_lm.init_state(cfg),
                 eval_data=val,
                 eval_loss_fn=lambda p, s, b, k: char_lm.loss(p, s, b, k, cfg, train=False),
                 progress=not opts.quiet, fast_path=spec.extra.get("fast_path", "scan"),
                 history_path=os.path.join(out, runs.HISTORY_FILE), checkpoint_dir=ckpt_dir,
                 resume=opts.resume)
    state = result.state
    seconds = time.perf_counter() - t0
    text = sample_script(state.params, cfg, ds, _default_prime(ds), 200,
                         key=jax.random.PRNGKey(opts.seed), temperature=0.8)
    summary = runs.summary(spec, opts, epochs=len(result.history),
                           steps=int(jax.device_get(state.step)), seconds=seconds,
                           params=state.params, **_bpc_summary(state.params, cfg, ds),
                           sample=text)
    runs.write_run_files(out, opts=opts, summary=summary, history=result.history, cfg=cfg,
                         params=state.params, title=f"zoo train {spec.name} ({opts.dataset})")
    return summary


def load_trained(spec, opts: RunOptions):
    """``(params, cfg, dataset)`` restored from the latest checkpoint of ``opts.checkpoint``."""
    from train.loop import init_train_state

    ds = _load(spec, opts)
    cfg = make_config(spec, opts, ds)
    _, ckpt_dir = runs.find_run(opts.checkpoint)
    params = char_lm.init(jax.random.PRNGKey(0), cfg)
    target = init_train_state(params, make_optimizer(spec, opts), key=jax.random.PRNGKey(0),
                              model_state=char_lm.init_state(cfg))
    state, _ = runs.restore_latest(ckpt_dir, target)
    return state.params, cfg, ds


def evaluate(spec, opts: RunOptions) -> dict:
    """``zoo eval char-lm --checkpoint DIR``: exact train / test bits per character."""
    params, cfg, ds = load_trained(spec, opts)
    return _bpc_summary(params, cfg, ds)


def sample_text(params, cfg: char_lm.Config, vocab, prime: str, length: int, *, key,
                temperature: float = 1.0, top_k: int | None = None) -> str:
    """Text generated after ``prime`` (the prime itself not included).

    Args:
        params, cfg: a trained ``zoo.char_lm`` model.
        vocab: the dataset's ``Vocabulary`` (``meta['vocab']``).
        prime: non-empty priming text; every character must be in ``vocab``.
        length: characters to generate.
        key, temperature, top_k: as in ``zoo.char_lm.sample``.
    """
    if not isinstance(prime, str) or not prime:
        raise ValueError(f"sample_text: expected a non-empty prime string, got {prime!r}")
    unknown = sorted({c for c in prime if c not in vocab})
    if unknown:
        raise ValueError(f"sample_text: prime characters {unknown} are not in the model's "
                         f"vocabulary ({len(vocab)} characters: {''.join(vocab.tokens)!r})")
    ids = char_lm.sample(params, vocab.encode(prime), cfg, length=length, key=key,
                         temperature=temperature, top_k=top_k)
    return vocab.decode(jax.device_get(ids))


def _default_prime(ds) -> str:
    """The first character (or word) of the test text, else the vocabulary's first token."""
    text = ds.meta.get("text_test") or ""
    if _is_words(ds):
        words = word_tokens(text)
        return words[0] if words else ds.meta["vocab"].tokens[0]
    return text[:1] or ds.meta["vocab"].tokens[0]


def prime_words(vocab, prime: str) -> list[str]:
    """The word tokens of ``prime`` (``word_tokens``). A prime of one word whose form with a
    colon is in ``vocab`` is that speaker's token ("jerry" -> "jerry:"), as the course's
    ``generate`` primes with ``prime_word + ':'``; in a longer prime, only a word missing
    from ``vocab`` is replaced so.

    Raises:
        ValueError: an empty prime, or words in neither form in the vocabulary.
    """
    words = word_tokens(prime) if isinstance(prime, str) else []
    if not words:
        raise ValueError(f"prime: expected at least one word, got {prime!r}")
    speaker = lambda w: w + ":" in vocab and (len(words) == 1 or w not in vocab)
    words = [w + ":" if speaker(w) else w for w in words]
    unknown = [w for w in words if w not in vocab]
    if unknown:
        common = [t for t in vocab.tokens if t.endswith(":")][:8] or vocab.tokens[:8]
        raise ValueError(f"prime words {unknown} are not in the model's vocabulary of "
                         f"{len(vocab)} words (e.g. {', '.join(map(repr, common))})")
    return words


def sample_script(params, cfg: char_lm.Config, ds, prime: str, length: int, *, key,
                  temperature: float = 1.0, top_k: int | None = None) -> str:
    """The prime followed by ``length`` generated tokens, as text: characters for a
    character-level dataset (:func:`sample_text`), words joined back into text
    (``join_words``) for a word-level one."""
    vocab = ds.meta["vocab"]
    if not _is_words(ds):
        return prime + sample_text(params, cfg, vocab, prime, length, key=key,
                                   temperature=temperature, top_k=top_k)
    words = prime_words(vocab, prime)
    ids = char_lm.sample(params, vocab.encode(words), cfg, length=length, key=key,
                         temperature=temperature, top_k=top_k)
    return join_words(words + [vocab.tokens[i] for i in jax.device_get(ids).tolist()])


def sample(spec, opts: RunOptions) -> None:
    """``zoo sample``: prints the prime and ``length`` generated characters (or words)."""
    params, cfg, ds = load_trained(spec, opts)
    extra = opts.extra
    prime = extra.get("prime")
    if prime is None:
        prime = _default_prime(ds)
    top_k = extra.get("top_k")
    if top_k is not None and top_k > cfg.vocab_size:
        raise UsageError(f"--top-k {top_k} exceeds the vocabulary size {cfg.vocab_size}")
    try:
        text = sample_script(params, cfg, ds, prime, int(extra.get("length", 200)),
                             key=jax.random.PRNGKey(int(extra.get("seed", 0))),
                             temperature=float(extra.get("temperature", 1.0)), top_k=top_k)
    except ValueError as e:
        raise UsageError(str(e)) from e
    print(text)
