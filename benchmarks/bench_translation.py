"""Dates translation (human dates -> ISO 8601): exact match with and without attention.

    python benchmarks/bench_translation.py [--epochs 8] [--variants none,bahdanau,luong]

Trains each variant of ``zoo.seq2seq`` on the embedded dates corpus (10,000 training pairs)
with ``train.loop.fit`` (Adam 3e-3, batch 128, one jitted ``lax.scan`` per epoch), then
decodes the 1,000 held-out pairs greedily and with beam search (width 4, alpha 0.6) and
prints a table: exact-match accuracy, BLEU-4 on characters, training time. "unseen" is the
exact match restricted to test sources that never occur verbatim in the training set.
Not run by CI; timings on a shared machine are noisy (compare within one run).
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
import optax

from train import datasets
from train.loop import fit
from train.translation import decode_metrics
from zoo import seq2seq as s2s

VARIANTS = {
    "none": dict(cell="gru", attention=None),
    "bahdanau": dict(cell="gru", attention="bahdanau"),
    "luong": dict(cell="lstm", attention="luong"),
}


def run(name: str, ds, epochs: int, seed: int, hidden: int) -> dict:
    src, tgt = ds.meta["source_vocab"], ds.meta["target_vocab"]
    cfg = s2s.Config(src_vocab_size=len(src), tgt_vocab_size=len(tgt), embed_dim=32,
                     hidden=hidden, attention_dim=hidden, **VARIANTS[name])
    params = s2s.init(jax.random.PRNGKey(seed), cfg)
    t0 = time.perf_counter()
    result = fit(lambda p, ms, b, k: s2s.loss(p, ms, b, k, cfg), params, optax.adam(3e-3),
                 {"x": ds.x_train, "y": ds.y_train}, key=seed + 1, epochs=epochs,
                 batch_size=128, progress=False, fast_path="scan")
    jax.block_until_ready(result.state.params)
    seconds = time.perf_counter() - t0
    p = result.state.params
    greedy = decode_metrics(p, cfg, ds.x_test, ds.y_test)
    beam = decode_metrics(p, cfg, ds.x_test, ds.y_test, beam_size=4, alpha=0.6)
    seen = set(ds.meta["source_text_train"])
    unseen = np.array([t not in seen for t in ds.meta["source_text_test"]])
    fn = jax.jit(lambda q, xs: s2s.greedy_decode(q, xs, cfg).tokens)
    match = np.asarray(s2s.exact_match(fn(p, ds.x_test[unseen]), ds.y_test[unseen], cfg))
    return {"variant": name, "params": sum(a.size for a in jax.tree.leaves(p)),
            "train_s": seconds, "train_loss": result.history[-1]["loss"],
            "greedy_em": greedy["exact_match"], "beam_em": beam["exact_match"],
            "bleu": greedy["bleu"], "unseen_em": float(match.mean()),
            "n_unseen": int(unseen.sum())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--variants", default="none,bahdanau,luong")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    ds = datasets.load("dates")
    rows = [run(v, ds, args.epochs, args.seed, args.hidden) for v in args.variants.split(",")]
    print(f"\ndates: {len(ds.x_train)} train / {len(ds.x_test)} test pairs, {args.epochs} "
          f"epochs, hidden {args.hidden}, jax {jax.__version__} on {jax.devices()[0].platform}")
    head = ["variant", "params", "train s", "final loss", "exact (greedy)", "exact (beam 4)",
            "exact unseen", "BLEU-4"]
    print(" | ".join(head))
    print(" | ".join("-" * len(h) for h in head))
    for r in rows:
        print(f"{r['variant']} | {r['params']} | {r['train_s']:.0f} | {r['train_loss']:.4f} | "
              f"{100 * r['greedy_em']:.1f}% | {100 * r['beam_em']:.1f}% | "
              f"{100 * r['unseen_em']:.1f}% (n={r['n_unseen']}) | {100 * r['bleu']:.1f}")


if __name__ == "__main__":
    main()
