"""The translation driver: training, evaluation and translation for ``zoo.seq2seq``.

The model's vocabulary sizes and special ids come from the dataset (``meta['source_vocab']``,
``meta['target_vocab']``), so one registry entry serves the dates corpus and any parallel
corpus. ``zoo train seq2seq`` trains with ``train.loop.fit`` (checkpoints every epoch), then
decodes the test set greedily and reports exact-match accuracy and corpus BLEU-4 next to the
teacher-forced metrics. ``zoo translate --checkpoint DIR "text"`` restores the newest
checkpoint of such a run and prints the beam-search (or greedy) translations.
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
from train.errors import UsageError
from train.optimizers import make_optimizer
from zoo import bleu
from zoo import seq2seq as s2s

__all__ = ["model_config", "encode_sources", "decode_texts", "decode_metrics", "train",
           "evaluate", "restore_run", "translate"]


def model_config(spec, ds) -> s2s.Config:
    """``spec``'s Config with the vocabulary sizes, special ids and decoding length of ``ds``."""
    src, tgt = ds.meta["source_vocab"], ds.meta["target_vocab"]
    base = spec.make_config()
    return dataclasses.replace(base, src_vocab_size=len(src), tgt_vocab_size=len(tgt),
                               pad_id=tgt.pad_id, bos_id=tgt.bos_id, eos_id=tgt.eos_id,
                               max_decode_length=int(np.shape(ds.y_train)[1]) - 1)


def _source_has_eos(ds) -> bool:
    eos = ds.meta["source_vocab"].eos_id
    return eos is not None and bool(np.any(np.asarray(ds.x_train) == eos))


def encode_sources(ds, texts: list[str]) -> np.ndarray:
    """Source ids ``<int32>[n, L]`` of raw texts, prepared as the dataset's training sources
    (parallel corpora: normalized and ended with ``<eos>``); L is at least the training
    length so that nothing is cut."""
    from train.datasets.formats import normalize_sentence

    vocab = ds.meta["source_vocab"]
    if ds.meta.get("name") == "parallel":
        texts = [normalize_sentence(t) for t in texts]
    seqs = [vocab.encode(t, add_eos=_source_has_eos(ds)) for t in texts]
    length = max([int(np.shape(ds.x_train)[1])] + [len(s) for s in seqs])
    out = np.full((len(seqs), length), vocab.pad_id, np.int32)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = s
    return out


def decode_texts(ds, tokens) -> list[str]:
    """Target texts of decoded ids ``<int>[n, L]`` (up to ``<eos>``, specials dropped)."""
    vocab = ds.meta["target_vocab"]
    return [vocab.decode(row) for row in np.asarray(tokens)]


def _tokens_until_eos(row, cfg) -> list[int]:
    out = []
    for t in np.asarray(row).tolist():
        if t == cfg.eos_id:
            break
        if t not in (cfg.pad_id, cfg.bos_id):
            out.append(t)
    return out


def decode_metrics(params, cfg, x, y, *, batch_size: int = 500, beam_size: int = 1,
                   alpha: float = 0.6) -> dict:
    """Exact-match accuracy and corpus BLEU-4 (on target tokens) of decoded outputs.

    Args:
        params, cfg: the model's.
        x: ``<int32>[n, src_len]`` sources; y: ``<int32>[n, tgt_len]`` references.
        batch_size: sources decoded per call.
        beam_size: 1 decodes greedily, else beam search with length penalty ``alpha``.

    Returns:
        ``{'exact_match', 'bleu'}`` (BLEU in [0, 1]).
    """
    if beam_size == 1:
        fn = jax.jit(lambda p, xs: s2s.greedy_decode(p, xs, cfg).tokens)
    else:
        fn = jax.jit(lambda p, xs: s2s.beam_search(p, xs, cfg, beam_size=beam_size,
                                                   alpha=alpha).tokens[:, 0])
    x, y = np.asarray(x), np.asarray(y)
    n = len(x)
    outs = []
    for start in range(0, n, batch_size):
        xb = x[start:start + batch_size]
        pad = batch_size - len(xb)
        if pad and n > batch_size:      # keep one compiled shape
            xb = np.concatenate([xb, np.repeat(xb[-1:], pad, 0)])
        outs.append(np.asarray(fn(params, jnp.asarray(xb)))[:len(x[start:start + batch_size])])
    tokens = np.concatenate(outs)
    exact = np.asarray(s2s.exact_match(tokens, y, cfg))
    hyps = [_tokens_until_eos(t, cfg) for t in tokens]
    refs = [_tokens_until_eos(r[1:], cfg) for r in y]
    return {"exact_match": float(exact.mean()),
            "bleu": bleu.corpus_bleu(hyps, refs).bleu}


def _loss_fns(cfg):
    def loss_fn(params, model_state, batch, key):
        return s2s.loss(params, model_state, batch, key, cfg, train=True)
    return loss_fn


def train(spec, opts) -> dict:
    """``zoo train`` for seq2seq entries: fit, checkpoints, teacher-forced and decoded metrics.

    Returns:
        The summary (also written to ``summary.json``): ``test_loss``,
        ``test_token_accuracy``, ``test_exact_match``, ``test_bleu``, ``seconds``, ...
    """
    from train.loop import fit

    ds = _load(spec, opts)
    cfg = model_config(spec, ds)
    k_init, k_fit = jax.random.split(jax.random.PRNGKey(opts.seed))
    params = s2s.init(k_init, cfg)
    optimizer = make_optimizer(opts.optimizer, opts.lr)
    loss_fn = _loss_fns(cfg)
    out = opts.out
    ckpt_dir = runs.prepare_run_dir(opts, data=ds)
    train = {"x": ds.x_train, "y": ds.y_train}
    test = {"x": ds.x_test, "y": ds.y_test}
    t0 = time.perf_counter()
    result = fit(loss_fn, params, optimizer, train, key=k_fit, epochs=opts.epochs,
                 batch_size=opts.batch_size, eval_data=test, progress=not opts.quiet,
                 fast_path=spec.extra.get("fast_path", "auto"),
                 history_path=os.path.join(out, runs.HISTORY_FILE), checkpoint_dir=ckpt_dir,
                 keep=1, resume=opts.resume)
    seconds = time.perf_counter() - t0
    state = result.state
    summary = runs.summary(spec, opts, epochs=len(result.history),
                           steps=int(jax.device_get(state.step)), seconds=seconds,
                           params=state.params, **_metrics(state.params, cfg, ds, loss_fn))
    runs.write_run_files(out, opts=opts, summary=summary, history=result.history, cfg=cfg,
                         params=state.params, title=f"zoo train {spec.name} ({opts.dataset})")
    return summary


def _load(spec, opts):
    ds = load_data(opts.dataset, opts.dataset_options)
    check_data(spec, opts.dataset, ds)
    return ds


def _metrics(params, cfg, ds, loss_fn) -> dict:
    from train.loop import TrainState, evaluate

    state = TrainState(params, (), {}, jnp.zeros((), jnp.int32), jax.random.PRNGKey(0))
    out = {}
    for which in ("train", "test"):
        x, y = getattr(ds, f"x_{which}"), getattr(ds, f"y_{which}")
        m = evaluate(loss_fn, state, {"x": x, "y": y}, prefix=f"{which}_")
        m.pop(f"{which}_count")
        out.update(m)
    out.update({f"test_{k}": v for k, v in decode_metrics(params, cfg, ds.x_test,
                                                          ds.y_test).items()})
    return out


def restore_run(checkpoint: str):
    """Model of a finished ``zoo train`` run of a seq2seq entry.

    Args:
        checkpoint: the run's ``--out`` directory (or its ``checkpoints/``).

    Returns:
        ``(spec, opts, ds, cfg, params)``.

    Raises:
        UsageError: no run there, a damaged ``run.json`` or checkpoint, or a run of another
            kind of model.
    """
    from train.loop import init_train_state
    from zoo import registry

    run_dir, ckpt_dir = runs.find_run(checkpoint)
    saved = runs.read_run_json(run_dir)
    try:
        spec = registry.get(saved["name"])
    except (KeyError, ValueError, TypeError) as e:
        raise UsageError(f"{os.path.join(run_dir, runs.RUN_FILE)}: {e}") from None
    if spec.module is not s2s:
        raise UsageError(f"{checkpoint!r} holds a {spec.name!r} run, not a translation model")
    opts = runs.RunOptions.from_json(saved)
    ds = _load(spec, opts)
    cfg = model_config(spec, ds)
    k_init, k_fit = jax.random.split(jax.random.PRNGKey(opts.seed))
    params = s2s.init(k_init, cfg)
    target = init_train_state(params, make_optimizer(opts.optimizer, opts.lr),
                              key=jax.random.split(k_fit)[0])
    state, _ = runs.restore_latest(ckpt_dir, target)
    return spec, opts, ds, cfg, state.params


def evaluate(spec, opts) -> dict:
    """``zoo eval`` for seq2seq entries: teacher-forced metrics, exact match and BLEU."""
    _, _, ds, cfg, params = restore_run(opts.checkpoint)
    return _metrics(params, cfg, ds, _loss_fns(cfg))


def translate(params, cfg, ds, texts: list[str], *, beam_size: int = 4, alpha: float = 0.6,
              max_length: int | None = None) -> list[list[tuple[str, float]]]:
    """Translations of raw texts: for each, the beam's ``(text, score)`` pairs, best first
    (one pair when ``beam_size`` is 1: greedy decoding)."""
    x = jnp.asarray(encode_sources(ds, texts))
    if beam_size == 1:
        hyp = s2s.greedy_decode(params, x, cfg, max_length=max_length)
        tokens, scores = hyp.tokens[:, None], hyp.scores[:, None]
    else:
        hyp = s2s.beam_search(params, x, cfg, beam_size=beam_size, alpha=alpha,
                              max_length=max_length)
        tokens, scores = hyp.tokens, hyp.scores
    tokens, scores = np.asarray(tokens), np.asarray(scores)
    return [[(t, float(s)) for t, s in zip(decode_texts(ds, tokens[i]), scores[i],
                                           strict=True)] for i in range(len(texts))]
