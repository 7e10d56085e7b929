"""LSTM forward+backward speed: ours vs flax.linen.RNN(LSTMCell) vs torch.nn.LSTM, side by side.

Usage::

    python benchmarks/bench_lstm.py [--reps 20] [--torch-path DIR] [--threads N]

Problem (issue 7): hidden 256, batch 32, length 100, input 64, loss = sum(outputs * fixed
random target), gradients w.r.t. all parameters. Every contender is timed in the same run,
interleaved round by round, and the table reports the minimum and median per call and the
ratio of medians to torch (or to flax when torch is not importable). ``--torch-path`` appends
a directory holding torch (e.g. a ``pip install --target`` dir) to ``sys.path``.

Variants of ours:
  ours            functional.recurrent.run(lstm_cell): input projection hoisted out of the loop
                  (one matmul for all steps); the hand-written BPTT backward (custom_vjp),
                  whose loops write the backward factors, then the gate gradients, in place
                  over the projection's buffer, and whose weight gradients are one matmul
                  after the loop; sequences stay in the caller's [batch, time] layout (no
                  transposes); on CPU the batch rows advance as two independent chains per
                  loop step (XLA runs them on two cores at once).
  ours-autodiff   same forward, backward by jax autodiff of the scan.
  ours-plain      lax.scan of lstm_cell as is (projection inside the loop), autodiff: the
                  "plain jax.grad through lax.scan" baseline.

Also: compile time of ours (forward+backward) for T = 10 vs T = 1000.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from functional import recurrent as R  # noqa: E402

BATCH, T, N_IN, H = 32, 100, 64, 256


def _ours(**kw):
    def loss(p, xs, tgt):
        return jnp.sum(R.run(R.lstm_cell, p, xs, **kw)[1] * tgt)
    return jax.jit(jax.value_and_grad(loss))


def _compile_seconds(n_time: int) -> float:
    xs = jnp.zeros((BATCH, n_time, N_IN))
    tgt = jnp.zeros((BATCH, n_time, H))
    p = R.lstm_init(jax.random.key(0), N_IN, H)
    f = _ours()  # a fresh jit: nothing cached
    t0 = time.perf_counter()
    f.lower(p, xs, tgt).compile()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--reps', type=int, default=20)
    ap.add_argument('--torch-path', default=None)
    ap.add_argument('--threads', type=int, default=None, help='torch.set_num_threads')
    args = ap.parse_args()
    if args.torch_path:
        sys.path.append(args.torch_path)

    kx, kt = jax.random.split(jax.random.key(1))
    xs = jax.random.normal(kx, (BATCH, T, N_IN))
    tgt = jax.random.normal(kt, (BATCH, T, H))
    p = R.lstm_init(jax.random.key(0), N_IN, H)

    calls = {}
    for name, kw in (('ours', {}), ('ours-autodiff', {'manual_backward': False}),
                     ('ours-plain', {'hoist': False})):
        f = _ours(**kw)
        calls[name] = lambda f=f: jax.block_until_ready(f(p, xs, tgt))

    flax_rnn = nn.RNN(nn.LSTMCell(H))
    fp = flax_rnn.init(jax.random.key(0), xs)
    f_flax = jax.jit(jax.value_and_grad(lambda q, x, t: jnp.sum(flax_rnn.apply(q, x) * t)))
    calls['flax'] = lambda: jax.block_until_ready(f_flax(fp, xs, tgt))

    # Same numbers: ours vs autodiff (gradients), ours vs flax (loss, with mapped weights is
    # tested in tests/functional; here flax has its own init so only ours-variants compare).
    # The agreement check runs at 'highest' precision, so that on a GPU (TF32 products by
    # default) or a TPU (bfloat16 passes) it compares the two backward passes, not roundings.
    with jax.default_matmul_precision("highest"):
        ref = jax.jit(jax.value_and_grad(lambda q: jnp.sum(
            R.run(R.lstm_cell, q, xs, manual_backward=False)[1] * tgt)))(p)
        got = _ours()(p, xs, tgt)
    err = max(float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b))) for a, b in
              zip(jax.tree.leaves(got), jax.tree.leaves(ref), strict=True))

    try:
        import torch
    except ImportError:
        torch = None
    device = 'cpu'
    if torch is not None:
        if args.threads:
            torch.set_num_threads(args.threads)
        # torch on the device jax runs on: cuDNN's LSTM when jax is on an NVIDIA GPU
        if jax.default_backend() == 'gpu' and torch.cuda.is_available():
            device = 'cuda'
        lstm = torch.nn.LSTM(N_IN, H, batch_first=True).to(device)
        xt = torch.tensor(np.asarray(xs), device=device)
        tt = torch.tensor(np.asarray(tgt), device=device)

        def torch_step():
            lstm.zero_grad()
            y, _ = lstm(xt)
            (y * tt).sum().backward()
            if device == 'cuda':
                torch.cuda.synchronize()
        calls['torch'] = torch_step

    for f in calls.values():  # warm up (compile)
        f()
        f()
    times = {k: [] for k in calls}
    for _ in range(args.reps):  # interleaved so that load changes hit everyone alike
        for k, f in calls.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)

    base = 'torch' if 'torch' in calls else 'flax'
    med = {k: float(np.median(v)) for k, v in times.items()}
    print(f'LSTM forward+backward, hidden {H}, batch {BATCH}, length {T}, input {N_IN}; '
          f'jax {jax.__version__}, {jax.devices()[0].platform}, {os.cpu_count()} cpus'
          + (f', torch {torch.__version__} on {device} ({torch.get_num_threads()} threads)'
             if torch else ', torch not importable')
          + f'; jax precision: {jax.config.jax_default_matmul_precision or "default"}')
    malloc = sorted(f'{k}={v}' for k, v in os.environ.items() if k.startswith('MALLOC_'))
    print('allocator: ' + (' '.join(malloc) if malloc else 'default (no MALLOC_* settings); '
                           'see docs/recurrent-zoo.md, "LSTM speed"'))
    print(f"ours vs ours-autodiff at 'highest' precision: max relative gradient difference "
          f'{err:.2e} (agreement: < 1e-4)')
    if err > 1e-4:
        raise SystemExit(f'bench_lstm: the hand-written backward disagrees with autodiff: {err}')
    print(f'{"contender":<15}{"min ms":>9}{"median ms":>11}{"median/" + base:>15}')
    for k in calls:
        print(f'{k:<15}{min(times[k]) * 1e3:>9.1f}{med[k] * 1e3:>11.1f}'
              f'{med[k] / med[base]:>15.2f}')

    # min of 3 fresh compilations each, alternating, so one load spike does not decide it
    c10, c1000 = [], []
    for _ in range(3):
        c10.append(_compile_seconds(10))
        c1000.append(_compile_seconds(1000))
    print(f'compile ours fwd+bwd (min of 3): T=10 {min(c10):.2f} s, T=1000 {min(c1000):.2f} s, '
          f'ratio {min(c1000) / min(c10):.2f}')


if __name__ == '__main__':
    main()
