"""Accuracy benchmarks of the recurrent zoo (not run by CI; minutes on a 2-core CPU).

    python benchmarks/bench_recurrent.py adding [--T 100] [--hidden 32] [--max-seqs 200000]
    python benchmarks/bench_recurrent.py reber [--hidden 16] [--max-seqs 100000]
    python benchmarks/bench_recurrent.py char_lm [--cell lstm] [--hidden 128] [--epochs 10]
    python benchmarks/bench_recurrent.py mnist1d [--hidden 64] [--epochs 40]
    python benchmarks/bench_recurrent.py all

- adding (Hochreiter & Schmidhuber 1997, experiment 4): LSTM and a tanh RNN of the same hidden
  size, trained online on fresh sequences (each seen once); every ``--eval-every`` sequences the
  2560 test sequences are scored. Reports the training sequences needed to reach the paper's
  criterion (absolute error < 0.04 on >= 99% of the test sequences) and the test mse next to
  the constant-prediction baseline Var(y).
- reber (experiment 1): LSTM and RNN predicting the legal next symbols of embedded Reber
  strings; criterion: every step of all 256 test strings right (threshold 0.5).
- char_lm: the char-level LM on the embedded TV-script corpus with stateful truncated BPTT;
  test bits per character against the corpus's exact entropy rate, and samples.
- mnist1d: GRU sequence classifier; test accuracy against the published 91%.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from functional import optim  # noqa: E402
from train import datasets  # noqa: E402
from train.loop import fit, init_train_state, make_eval_step, make_train_step  # noqa: E402
from zoo import adding, char_lm, reber, seq_classifier  # noqa: E402


def _table(rows, header):
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True))
    print(fmt(header))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(fmt(r))
    sys.stdout.flush()


def _online(module, cfg, train, test, *, batch, lr, max_seqs, eval_every, done, seed=0,
            clip=1.0, verbose=""):
    """Online training (fresh batches in order) with periodic full-test evaluation.

    Returns (sequences at which ``done(metrics)`` first held or None, final test metrics,
    seconds, history of (sequences, metrics)).
    """
    loss_fn = lambda p, s, b, k: module.loss(p, s, b, k, cfg, train=True)
    opt = optax.chain(optax.clip_by_global_norm(clip), optim.adam(lr))
    params = module.init(jax.random.PRNGKey(seed), cfg)
    state = init_train_state(params, opt, key=jax.random.PRNGKey(seed + 1), model_state={})
    step = jax.jit(make_train_step(loss_fn, opt, nan_policy=None))
    ev = jax.jit(make_eval_step(loss_fn))
    test = {k: jnp.asarray(v) for k, v in test.items()}
    n = len(next(iter(train.values())))
    seen, hit, history = 0, None, []
    t0 = time.perf_counter()
    while seen < max_seqs:
        start = seen % (n - n % batch)
        b = {k: jnp.asarray(v[start:start + batch]) for k, v in train.items()}
        state, _ = step(state, b)
        seen += batch
        if seen % eval_every < batch:
            m = {k: float(v) for k, v in jax.device_get(ev(state, test)).items()}
            history.append((seen, m))
            if verbose:
                print(f"    {verbose} seqs {seen:>7}  {time.perf_counter() - t0:6.0f} s  "
                      + "  ".join(f"{k} {v:.4f}" for k, v in m.items() if k != "count"),
                      flush=True)
            if done(m):
                hit = seen
                break
    return hit, history[-1][1] if history else {}, time.perf_counter() - t0, history


def bench_adding(args):
    T = args.T
    n_pool = min(args.max_seqs, 100_000)
    ds = datasets.load("adding", T=T, n_train=n_pool, n_test=2560, seed=args.seed)
    var = float(np.var(ds.y_test))
    const_solved = float(np.mean(np.abs(ds.y_test - np.mean(ds.y_train)) < adding.TOLERANCE))
    train = {"x": ds.x_train, "y": ds.y_train, "lengths": ds.meta["lengths_train"]}
    test = {"x": ds.x_test, "y": ds.y_test, "lengths": ds.meta["lengths_test"]}
    print(f"adding problem T={T} (lengths {T}..{T + T // 10}), hidden {args.hidden}, batch "
          f"{args.batch}, Adam lr {args.lr}, LSTM forget bias {args.forget_bias}, input bias "
          f"{args.input_bias}, fresh sequences from a pool of {n_pool}; test 2560 sequences; "
          f"constant baseline: mse {var:.4f}, solved {const_solved:.1%}")
    rows = []
    for cell in args.cells:
        cfg = adding.Config(hidden=args.hidden, cell=cell, forget_bias=args.forget_bias,
                            input_bias=args.input_bias)
        hit, m, sec, hist = _online(adding, cfg, train, test, batch=args.batch, lr=args.lr,
                                    max_seqs=args.max_seqs, eval_every=args.eval_every,
                                    done=lambda m: m["solved"] >= 0.99, seed=args.seed,
                                    verbose=cell)
        rows.append([cell, hit if hit else f"not within {args.max_seqs}", f"{m['mse']:.4f}",
                     f"{m['mse'] / var:.3f}", f"{m['solved']:.2%}", f"{sec:.0f}"])
    _table(rows, ["cell", "seqs to criterion", "test mse", "mse / Var(y)", "solved",
                  "seconds"])


def bench_reber(args):
    ds = datasets.load("reber", n_train=args.max_seqs if args.max_seqs < 50_000 else 50_000,
                       n_test=256, seed=args.seed)
    train, test = {"x": ds.x_train, "y": ds.y_train}, {"x": ds.x_test, "y": ds.y_test}
    print(f"embedded Reber: hidden {args.hidden}, batch {args.batch}, Adam lr {args.lr}; "
          f"test 256 strings (max length {int(np.max(ds.meta['lengths_test']))})")
    rows = []
    for cell in args.cells:
        cfg = reber.Config(hidden=args.hidden, cell=cell)
        hit, m, sec, _ = _online(reber, cfg, train, test, batch=args.batch, lr=args.lr,
                                 max_seqs=args.max_seqs, eval_every=args.eval_every,
                                 done=lambda m: m["string_accuracy"] >= 1.0, seed=args.seed,
                                 verbose=cell)
        rows.append([cell, hit if hit else f"not within {args.max_seqs}",
                     f"{m['string_accuracy']:.2%}", f"{m['step_accuracy']:.2%}",
                     f"{sec:.0f}"])
    _table(rows, ["cell", "seqs until all 256 right", "strings right", "steps right",
                  "seconds"])


def bench_char_lm(args):
    ds = datasets.load("tv_script")
    vocab, floor = ds.meta["vocab"], ds.meta["entropy_bits_per_char"]
    cfg = char_lm.Config(vocab_size=len(vocab), cell=args.cell, hidden=args.hidden,
                         streams=args.batch, chunk=args.chunk)
    data = char_lm.stream_batches(ds.x_train, cfg.streams, cfg.chunk)
    opt = optax.chain(optax.clip_by_global_norm(5.0), optim.adam(args.lr))
    loss_fn = lambda p, s, b, k: char_lm.loss(p, s, b, k, cfg, train=True)
    t0 = time.perf_counter()
    r = fit(loss_fn, char_lm.init(jax.random.PRNGKey(args.seed), cfg), opt, data,
            key=args.seed, epochs=args.epochs, batch_size=cfg.streams, shuffle=False,
            model_state=char_lm.init_state(cfg), progress=False, fast_path="scan")
    sec = time.perf_counter() - t0
    bpc = char_lm.bits_per_char(r.state.params, cfg, ds.x_test)
    print(f"char LM on tv_script ({len(ds.x_train)} train / {len(ds.x_test)} test chars, "
          f"vocab {len(vocab)}): {args.cell} hidden {args.hidden}, {cfg.streams} streams x "
          f"{cfg.chunk} steps, Adam {args.lr}, {args.epochs} epochs, {sec:.0f} s")
    print("train bpc by epoch:", [round(h["bits_per_char"], 3) for h in r.history])
    _table([[args.cell, f"{bpc:.4f}", f"{floor:.4f}", f"{bpc / floor - 1:+.1%}"]],
           ["cell", "test bits/char", "entropy floor", "above floor"])
    for i, (prime, temp) in enumerate([("ALICE:", 0.8), ("BOB: Did", 1.0), ("\n", 0.0)]):
        ids = char_lm.sample(r.state.params, vocab.encode(prime), cfg, length=160,
                             key=jax.random.PRNGKey(i), temperature=temp, top_k=None)
        print(f"--- sample (prime {prime!r}, temperature {temp}):\n{prime}{vocab.decode(ids)}")


def bench_mnist1d(args):
    ds = datasets.load("mnist1d")
    cfg = seq_classifier.Config(hidden=args.hidden, cell="gru")
    loss_fn = lambda p, s, b, k: seq_classifier.loss(p, s, b, k, cfg, train=True)
    t0 = time.perf_counter()
    r = fit(loss_fn, seq_classifier.init(jax.random.PRNGKey(args.seed), cfg),
            optim.adam(args.lr), {"x": ds.x_train, "y": ds.y_train}, key=args.seed,
            epochs=args.epochs, batch_size=100, progress=False, fast_path="scan",
            eval_data={"x": ds.x_test, "y": ds.y_test})
    sec = time.perf_counter() - t0
    accs = [h["val_accuracy"] for h in r.history]
    _table([["gru", args.hidden, args.epochs, f"{accs[-1]:.2%}", f"{max(accs):.2%}", "91%",
             f"{sec:.0f}"]],
           ["cell", "hidden", "epochs", "final test acc", "best epoch", "published",
            "seconds"])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("which", choices=["adding", "reber", "char_lm", "mnist1d", "all"])
    p.add_argument("--T", type=int, default=100)
    p.add_argument("--hidden", type=int)
    p.add_argument("--batch", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--epochs", type=int)
    p.add_argument("--chunk", type=int, default=64)
    p.add_argument("--cell", default="lstm")
    p.add_argument("--cells", default="lstm,rnn")
    p.add_argument("--max-seqs", type=int)
    p.add_argument("--eval-every", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--forget-bias", type=float, default=5.0)
    p.add_argument("--input-bias", type=float, default=-3.0)
    args = p.parse_args(argv)
    args.cells = args.cells.split(",")
    defaults = {
        "adding": dict(hidden=32, batch=32, lr=3e-3, max_seqs=200_000, eval_every=4096),
        "reber": dict(hidden=16, batch=16, lr=1e-2, max_seqs=100_000, eval_every=2048),
        "char_lm": dict(hidden=128, batch=32, lr=3e-3, epochs=10),
        "mnist1d": dict(hidden=64, lr=3e-3, epochs=40),
    }
    for which in (["adding", "reber", "char_lm", "mnist1d"] if args.which == "all"
                  else [args.which]):
        a = argparse.Namespace(**vars(args))
        for k, v in defaults[which].items():
            if getattr(a, k, None) is None:
                setattr(a, k, v)
        print(f"\n=== {which} (jax {jax.__version__}, {jax.devices()[0].platform})")
        {"adding": bench_adding, "reber": bench_reber, "char_lm": bench_char_lm,
         "mnist1d": bench_mnist1d}[which](a)


if __name__ == "__main__":
    main()
