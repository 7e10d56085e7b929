"""Train-loop speed: fused (scanned) epochs vs a Flax-examples per-step loop; vmapped seeds.

Issue 4's benchmark, in one run and side by side (the machines are shared and noisy: compare
the ratios, not the absolute numbers):

1. The MNIST-1D paper's MLP (40 -> 100 -> 100 -> 10, ReLU, 15,210 parameters) on
   MNIST-1D-sized random data (4000 x 40, 10 classes), batch 100, Adam 1e-3:
   - ``flax loop``: ``flax.linen`` model, ``flax.training.train_state.TrainState``, a jitted
     step called from Python with NumPy batches (the Flax examples' layout);
   - ``fit loop`` / ``fit scan``: ``train.loop.fit`` with ``fast_path='loop'`` / ``'scan'``
     (the same model written with ``jax.numpy``), whole ``fit`` epochs timed after the first;
   - ``fit auto``: what ``fit``'s measurement picks;
   - ``bare lax.scan``: the same 40 Adam steps in one jitted ``lax.scan`` with no metrics, no
     NaN guard and no per-epoch bookkeeping: the ceiling for any fused epoch.
2. Logistic regression (40 -> 10, 410 parameters), the smallest model of the zoo, where the
   per-step Python dispatch is most of a step's time; same data, optimizer and rows.
3. The MNIST-1D paper's 5,210-parameter CNN (three stride-2 convolutions with 25 channels,
   kernels 5, 3, 3, then a linear layer), same data and optimizer, same four rows: on this
   CPU a conv net written with ``lax.conv_general_dilated`` was measured 4x slower inside
   ``lax.scan`` (``/work/shared/perf-notes.md``: XLA canonicalizes convolution layouts only
   outside loops); ours goes through ``functional.layers.conv``, whose hand-written gradient
   uses canonical layouts, and ``auto`` picks whichever path measures faster.
4. ``train.experiments.train_seeds_vmapped``: 8 seeds in one vmapped jit vs 1 seed (target:
   8 seeds cost <= 3x one seed), with the default seed groups (two groups advancing side by
   side on a multi-core CPU) and with one group, and vs 8 seeds one after another; each
   epoch as one scan and as a per-step loop of the vmapped step.

5. What bounds the MLP's fused epoch on this machine, measured in the same run: the step's
   FLOPs (XLA's cost analysis), the matmul rate at the step's own size (100 x 100 x 100
   products chained in a ``lax.scan``, one chain and two independent chains) and at a large
   size (1024^3 on all cores), the shortest step each rate allows and so the largest speedup
   over the Flax loop any fusion could reach; and, for 8 seeds, the batched-product rate and
   the shortest 8-seed epoch it allows relative to one seed's.

Every rate is the best epoch of several (each epoch is 40 steps, whole ``fit`` epochs
including its per-epoch bookkeeping): on a shared machine the best epoch is the one least
disturbed by other work, which makes the ratios far steadier than means or medians. The
logistic model, whose epoch takes under a millisecond, is timed over ten times as many epochs.

Run: ``python benchmarks/bench_loop.py [--epochs 15] [--quick] [--seeds-only]``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from functional import layers  # noqa: E402
from train import experiments, loop  # noqa: E402

N, L, C, BATCH, LR = 4000, 40, 10, 100, 1e-3


def make_data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, L)).astype(np.float32)
    y = rng.integers(0, C, N).astype(np.int32)
    return x, y


# --- the models, in jax.numpy (for fit) ---------------------------------------------------------


def mlp_init(key):
    sizes = [L, 100, 100, C]
    keys = jax.random.split(key, len(sizes) - 1)
    return {f"fc{i}": {"w": jax.random.normal(k, (a, b)) * jnp.sqrt(2.0 / a),
                       "b": jnp.zeros(b)}
            for i, (k, a, b) in enumerate(zip(keys, sizes[:-1], sizes[1:], strict=True))}


def logistic_init(key):
    return {"w": jax.random.normal(key, (L, C)) * jnp.sqrt(1.0 / L), "b": jnp.zeros(C)}


def logistic_apply(p, x):
    return x @ p["w"] + p["b"]


def mlp_apply(p, x):
    h = jax.nn.relu(x @ p["fc0"]["w"] + p["fc0"]["b"])
    h = jax.nn.relu(h @ p["fc1"]["w"] + p["fc1"]["b"])
    return h @ p["fc2"]["w"] + p["fc2"]["b"]


CNN_LAYERS = [(5, 1), (3, 25), (3, 25)]  # (kernel, in_channels); 25 out, stride 2, pad 1


def cnn_init(key):
    keys = jax.random.split(key, 4)
    p = {}
    for i, (k, (kw, cin)) in enumerate(zip(keys, CNN_LAYERS, strict=False)):
        p[f"conv{i}"] = {"w": jax.random.normal(k, (kw, cin, 25)) * jnp.sqrt(2.0 / (kw * cin)),
                         "b": jnp.zeros(25)}
    p["out"] = {"w": jax.random.normal(keys[3], (125, C)) * jnp.sqrt(1.0 / 125),
                "b": jnp.zeros(C)}
    return p


def cnn_apply(p, x):
    """Through ``functional.layers.conv``, whose canonical-layout gradient keeps convolutions
    fast inside ``lax.scan`` on XLA CPU."""
    h = x[..., None]  # <f32>[batch, 40, 1], channels last
    for i in range(3):
        h = jax.nn.relu(layers.conv(p[f"conv{i}"], h, stride=2, padding=1))
    return h.reshape(h.shape[0], -1) @ p["out"]["w"] + p["out"]["b"]  # 5 * 25 = 125


def make_loss(apply):
    def loss_fn(params, model_state, batch, key):
        logits = apply(params, batch["x"])
        per = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"])
        w = batch.get("weight", jnp.ones_like(per))
        return jnp.sum(per * w) / jnp.sum(w), (model_state, {})
    return loss_fn


# --- the Flax-examples loop ---------------------------------------------------------------------


def flax_models():
    import flax.linen as nn

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.relu(nn.Dense(100)(x))
            x = nn.relu(nn.Dense(100)(x))
            return nn.Dense(C)(x)

    class CNN(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = x[..., None]
            x = nn.relu(nn.Conv(25, (5,), strides=2, padding=[(1, 1)])(x))
            x = nn.relu(nn.Conv(25, (3,), strides=2, padding=[(1, 1)])(x))
            x = nn.relu(nn.Conv(25, (3,), strides=2, padding=[(1, 1)])(x))
            return nn.Dense(C)(x.reshape(x.shape[0], -1))

    class Logistic(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(C)(x)

    return {"mlp": MLP(), "cnn": CNN(), "logistic": Logistic()}


@jax.jit
def flax_train_step(state, batch):
    """The Flax examples' ``train_step``: softmax cross-entropy, gradient, ``apply_gradients``
    of a ``flax.training.train_state.TrainState``; returns ``(state, loss)``."""
    def loss_fn(params):
        logits = state.apply_fn({"params": params}, batch["x"])
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()
    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    return state.apply_gradients(grads=grads), loss


def flax_loop(model, x, y, epochs):
    """Steps/s of the Flax examples' loop: jitted step, NumPy batches sliced in Python."""
    from flax.training import train_state

    state = train_state.TrainState.create(
        apply_fn=model.apply, params=model.init(jax.random.PRNGKey(0), x[:1])["params"],
        tx=optax.adam(LR))
    train_step = flax_train_step

    rng = np.random.default_rng(0)
    steps_per_epoch = N // BATCH
    times = []
    for epoch in range(epochs + 1):
        perm = rng.permutation(N)
        t0 = time.perf_counter()
        for b in range(steps_per_epoch):
            idx = perm[b * BATCH:(b + 1) * BATCH]
            state, loss = train_step(state, {"x": x[idx], "y": y[idx]})
        jax.block_until_ready(loss)
        if epoch:  # epoch 0 compiles
            times.append(time.perf_counter() - t0)
    return steps_per_epoch / min(times)


def adam_step(apply, opt, carry, xb, yb):
    """The bare step (softmax cross-entropy, gradient, optimizer update):
    ``(params, opt_state) -> (params, opt_state, loss)``."""
    params, opt_state = carry
    loss_fn = lambda p: optax.softmax_cross_entropy_with_integer_labels(  # noqa: E731
        apply(p, xb), yb).mean()
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


def bare_scan_rate(init, apply, x, y, epochs):
    """Steps/s of the bare step (loss, grad, Adam) scanned over one epoch's batches."""
    opt = optax.adam(LR)
    xd, yd = jnp.asarray(x), jnp.asarray(y)

    def step(carry, idx):
        params, opt_state, loss = adam_step(apply, opt, carry, xd[idx], yd[idx])
        return (params, opt_state), loss

    epoch = jax.jit(lambda carry, idx: jax.lax.scan(step, carry, idx), donate_argnums=0)
    params = init(jax.random.PRNGKey(0))
    carry, rng, times = (params, opt.init(params)), np.random.default_rng(0), []
    for e in range(epochs + 1):
        idx = jnp.asarray(rng.permutation(N)[: (N // BATCH) * BATCH].reshape(-1, BATCH))
        t0 = time.perf_counter()
        carry, losses = epoch(carry, idx)
        jax.block_until_ready(losses)
        if e:
            times.append(time.perf_counter() - t0)
    return (N // BATCH) / min(times)


def _best_seconds(fn, reps):
    """Best wall time of ``fn()`` (which blocks) over ``reps`` calls after one warm-up."""
    fn()
    best = math.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def step_flops(init, apply, opt) -> float:
    """FLOPs of one bare step of the model with ``opt`` on a batch of the data (XLA's cost
    analysis)."""
    x, y = make_data()
    xb, yb = jnp.asarray(x[:BATCH]), jnp.asarray(y[:BATCH])
    params = init(jax.random.PRNGKey(0))
    step = lambda carry: adam_step(apply, opt, carry, xb, yb)  # noqa: E731
    cost = jax.jit(step).lower((params, opt.init(params))).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"])


def batched_product_rates(n: int, reps: int, length: int = 50) -> tuple[float, float]:
    """FLOP/s of 100 x 100 x 100 products batched over ``n`` (a step's products vmapped over
    ``n`` seeds or configurations), chained in a ``lax.scan``: as one batch of ``n``, and as
    two batches of ``n / 2`` side by side (``train_trials``' groups on a multi-core CPU;
    ``nan`` for ``n < 2``)."""
    # entries of standard deviation 0.1: a product of two has the same scale (no overflow, no
    # subnormals however long the chain)
    a = jnp.asarray(np.random.default_rng(1).normal(size=(n, 100, 100)) * 0.1, jnp.float32)
    bmm = lambda c, m: jnp.einsum("sij,sjk->sik", c, m)  # noqa: E731
    one = jax.jit(lambda m: jax.lax.scan(lambda c, _: (bmm(c, m), None), m, None,
                                         length=length)[0])
    flops = length * n * 2 * 100 ** 3
    rate = flops / _best_seconds(lambda: one(a).block_until_ready(), reps)
    if n < 2:
        return rate, math.nan
    h = n // 2
    halves = jax.jit(lambda m: jax.lax.scan(
        lambda c, _: ((bmm(c[0], m[:h]), bmm(c[1], m[h:])), None), (m[:h], m[h:]), None,
        length=length)[0])
    return rate, flops / _best_seconds(lambda: jax.block_until_ready(halves(a)), reps)


def large_product_rate(reps: int) -> float:
    """FLOP/s of one 1024^3 product (all cores): what the machine does at a large size."""
    b = jnp.asarray(np.random.default_rng(2).normal(size=(1024, 1024)), jnp.float32)
    big_mm = jax.jit(lambda m: m @ m)
    return 2 * 1024 ** 3 / _best_seconds(lambda: big_mm(b).block_until_ready(), reps)


def ceiling(flax_rate, x, y, reps):
    """What bounds the MLP's fused-epoch speedup on this machine, measured in this run.

    A fused epoch removes the per-step dispatch, nothing else: the same step must still run
    its kernels. So the most any fusion can gain over the Flax loop is (loop seconds/step) /
    (kernel seconds/step). This measures the step's FLOPs (XLA's own cost analysis of the bare
    step), the matmul rates this CPU reaches now at the step's size (100 x 100 x 100 products
    chained in a ``lax.scan``, one chain or two independent ones) and at a large size
    (1024^3, all cores), and prints the lower bounds on a step's time and the ratios they
    allow.
    """
    flops = step_flops(mlp_init, mlp_apply, optax.adam(LR))
    a = jnp.asarray(np.random.default_rng(1).normal(size=(100, 100)), jnp.float32)
    chain = jax.jit(lambda m: jax.lax.scan(lambda c, _: (c @ m * 0.01, None), m, None,
                                           length=200)[0])
    small = 200 * 2 * 100 ** 3 / _best_seconds(lambda: chain(a).block_until_ready(), reps)
    # two independent chains per scan step: XLA may run them on two cores at once
    pair = jax.jit(lambda m: jax.lax.scan(
        lambda c, _: ((c[0] @ m * 0.01, c[1] @ m.T * 0.01), None), (m, m), None,
        length=200)[0])
    small2 = 2 * 200 * 2 * 100 ** 3 / _best_seconds(
        lambda: jax.block_until_ready(pair(a)), reps)
    big = large_product_rate(reps)
    # the 8-seed step's kernels: the same products batched over 8 seeds (vmap), as one group
    # and as two groups of 4 side by side (train_seeds_vmapped's default here)
    batched, batched2 = batched_product_rates(8, reps)

    loop_step = 1.0 / flax_rate
    print()
    print("what bounds the MLP's fused epoch here (measured in this run)")
    print(f"  one Adam step: {flops / 1e6:.2f} MFLOP (XLA cost analysis); Flax loop "
          f"{loop_step * 1e6:.0f} us/step")
    for label, rate in (("100x100x100 matmuls chained in a scan (the step's size)", small),
                        ("two such chains side by side", small2),
                        ("1024^3 matmul on all cores", big)):
        floor = flops / rate
        print(f"  at the rate of {label}: {rate / 1e9:6.1f} GFLOP/s -> a step takes "
              f">= {floor * 1e6:5.1f} us -> at most {loop_step / floor:4.2f}x the Flax loop")
    print(f"  8 seeds: products batched over 8 seeds run at {batched / 1e9:.1f} GFLOP/s in one "
          f"group, {batched2 / 1e9:.1f} in two groups side by side")
    return flops, max(batched, batched2)


def fit_rate(init, apply, x, y, epochs, fast_path, **options):
    """Steps/s of ``fit`` (best epoch after the first two), and its path choice."""
    res = loop.fit(make_loss(apply), init(jax.random.PRNGKey(0)), optax.adam(LR),
                   {"x": x, "y": y}, key=0, epochs=epochs + 2, batch_size=BATCH,
                   fast_path=fast_path, progress=False, **options)   # defaults: NaN guard on
    epochs_t = [t for t in res.timings if "epoch" in t]
    chosen = [t["chosen"] for t in res.timings if "chosen" in t]
    seconds = min(t["seconds"] for t in epochs_t[2:])
    return (N // BATCH) / seconds, (chosen[0] if chosen else fast_path), epochs_t[-1]["path"]


def cli_epochs(model: str, epochs: int | None = None) -> tuple[float, float, float]:
    """A ``zoo train <model>`` run (its embedded data, its default epochs unless ``epochs``,
    evaluation on the test set every epoch, the history file, checkpoints every
    ``epochs // 5`` epochs written in the background), timed from one epoch's end to the
    next's (``Run.end_epoch`` wrapped).

    Returns:
        (epochs run, mean whole-epoch seconds after the third epoch, the fastest fused epoch
        alone as ``fit`` timed it, the slowest whole epoch).
    """
    import json
    import tempfile

    from train import cli
    from train.loop import run as run_module

    ends, end_epoch = [], run_module.Run.end_epoch

    def timed_end(self, *args, **kwargs):
        out = end_epoch(self, *args, **kwargs)
        ends.append(time.perf_counter())
        return out

    run_module.Run.end_epoch = timed_end
    try:
        with tempfile.TemporaryDirectory() as out:
            argv = ["train", model, "--out", out, "--quiet"]
            assert cli.main(argv + ([] if epochs is None else ["--epochs", str(epochs)])) == 0
            manifest = json.load(open(os.path.join(out, "checkpoints", "manifest.json")))
    finally:
        run_module.Run.end_epoch = end_epoch
    whole = np.diff(ends)[2:]
    fused = min(t["seconds"] for t in manifest["extra"]["timings"][2:] if "seconds" in t)
    return len(ends), float(whole.mean()), fused, float(whole.max())


def seeds_seconds(init, apply, x, y, epochs, seeds, vmap, fast_path, seed_groups=None):
    """Best seconds per epoch (all seeds together) after the first (compiling) epoch."""
    runs = experiments.train_seeds_vmapped(
        make_loss(apply), init, optax.adam(LR), {"x": x, "y": y}, list(range(seeds)),
        epochs=epochs + 1, batch_size=BATCH, vmap=vmap, fast_path=fast_path,
        seed_groups=seed_groups)
    return min(runs.epoch_seconds[1:])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=15, help="timed epochs (40 steps each)")
    ap.add_argument("--quick", action="store_true", help="3 timed epochs (smoke test)")
    ap.add_argument("--seeds-only", action="store_true", help="only the seeds table")
    ap.add_argument("--no-seeds", action="store_true", help="skip the seeds table")
    args = ap.parse_args(argv)
    epochs = 3 if args.quick else args.epochs
    x, y = make_data()
    print(f"jax {jax.__version__}, backend {jax.default_backend()}, "
          f"{jax.devices()[0].device_kind}, {os.cpu_count()} CPUs; data {N}x{L}, batch {BATCH}, "
          f"{N // BATCH} steps/epoch, {epochs} timed epochs")
    fl = flax_models()
    rows = []
    # (name, init, apply, timed epochs): the logistic model's epoch takes well under a
    # millisecond, so the best of 15 was mostly the machine's noise (its fit/bare ratio ranged
    # 0.60-0.93 over repeated runs, against 0.86-0.88 with 150 epochs)
    models = (("MLP", mlp_init, mlp_apply, epochs),
              ("logistic", logistic_init, logistic_apply, 10 * epochs),
              ("CNN", cnn_init, cnn_apply, epochs))
    if not args.seeds_only:
        print("timed epochs: " + ", ".join(f"{m[0]} {m[3]}" for m in models))
    for name, init, apply, timed in () if args.seeds_only else models:
        n_params = sum(a.size for a in jax.tree.leaves(init(jax.random.PRNGKey(0))))
        base = flax_loop(fl[name.lower()], x, y, timed)
        bare = bare_scan_rate(init, apply, x, y, timed)
        rows.append((name, n_params, "flax loop (per-step, NumPy batches)", base, "", base,
                     bare))
        variants = [("loop", {}), ("scan", {}), ("auto", {}),
                    ("scan", {"norms": "every"}), ("scan", {"nan_policy": "skip"}),
                    ("scan", {"nan_policy": None, "norms": None})]
        for path, options in variants:
            rate, chosen, _ = fit_rate(init, apply, x, y, timed, path, **options)
            note = f"auto chose {chosen}" if path == "auto" else ""
            label = f"fit fast_path={path}" + "".join(f", {k}={v!r}" for k, v in options.items())
            rows.append((name, n_params, label, rate, note, base, bare))
        rows.append((name, n_params, "bare lax.scan (no metrics, no guard)", bare, "", base,
                     bare))
    print()
    print("fit's defaults: nan_policy='stop' (each epoch checked at its end, replayed on "
          "failure), norms='last'")
    print(f"{'model':8} {'params':>7}  {'variant':50} {'steps/s':>9} {'vs flax':>8} "
          f"{'vs bare':>8}  note")
    for name, n_params, variant, rate, note, base, bare in rows:
        print(f"{name:8} {n_params:7d}  {variant:50} {rate:9.0f} {rate / base:7.2f}x "
              f"{rate / bare:7.2f}x  {note}")

    bound = None
    if rows:
        bound = ceiling(rows[0][3], x, y, reps=20 if args.quick else 100)

    if not args.seeds_only:
        print()
        print("a whole 'zoo train' epoch (its default epochs; evaluation, history, "
              "checkpoints every epochs // 5 written in the background) against its fused "
              "epoch alone, milliseconds")
        print(f"{'model':5} {'epochs':>6} {'whole (mean)':>13} {'fused alone':>12} "
              f"{'whole/fused':>12} {'slowest whole':>14}")
        for model in ("mlp", "cnn"):
            cli_n, whole, fused, worst = cli_epochs(model, 10 if args.quick else None)
            print(f"{model:5} {cli_n:6d} {whole * 1e3:13.1f} {fused * 1e3:12.1f} "
                  f"{whole / fused:11.2f}x {worst * 1e3:14.1f}")

    if args.no_seeds:
        return
    print()
    groups = experiments.group_bounds(8, None, True, "bench")
    print("seeds trained together (train_seeds_vmapped), milliseconds per epoch of 40 steps; "
          f"'8 vmapped' uses the default seed_groups ({len(groups)} here), '1 group' "
          "seed_groups=1")
    print(f"{'model':5} {'path':5} {'1 seed':>8} {'8 vmapped':>10} {'1 group':>8} "
          f"{'8 in turn':>10} {'vmapped/1':>10} {'1 group/1':>10} {'in turn/vmapped':>16}")
    for name, init, apply in (("MLP", mlp_init, mlp_apply), ("CNN", cnn_init, cnn_apply)):
        for path in ("scan", "loop"):
            one = seeds_seconds(init, apply, x, y, epochs, 1, True, path)
            eight = seeds_seconds(init, apply, x, y, epochs, 8, True, path)
            single = seeds_seconds(init, apply, x, y, epochs, 8, True, path, seed_groups=1)
            turn = seeds_seconds(init, apply, x, y, epochs, 8, False, path)
            print(f"{name:5} {path:5} {one * 1e3:8.1f} {eight * 1e3:10.1f} {single * 1e3:8.1f} "
                  f"{turn * 1e3:10.1f} {eight / one:9.2f}x {single / one:9.2f}x "
                  f"{turn / eight:15.2f}x")
            if name == "MLP" and path == "scan" and bound is not None:
                floor = 8 * bound[0] * (N // BATCH) / bound[1]
                mlp_floor = (f"MLP: at the better batched rate, 8 seeds' epoch takes >= "
                             f"{floor * 1e3:.1f} ms, i.e. >= {floor / one:.2f}x one seed's "
                             f"scanned epoch ({one * 1e3:.1f} ms)")
    if bound is not None:
        print(mlp_floor)


if __name__ == "__main__":
    main()
