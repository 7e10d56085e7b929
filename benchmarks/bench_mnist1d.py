"""MNIST-1D and digits accuracy of the feed-forward zoo, beside the published table and Flax.

For each seed, trains with the registry's defaults (``zoo.registry``: optimizer, learning rate,
schedule, weight decay, batch size, epochs and batch sampling, exactly as ``zoo train NAME``)
through ``train.loop.fit``:

- MNIST-1D: logistic regression (published 32%), MLP (68%), CNN (94%);
- digits (8x8, scikit-learn): MLP (target >= 97%), LeNet-style CNN (target >= 98%);

and, side by side in the same run, the same MNIST-1D MLP and CNN written the way a Flax user
would, trained as in the MNIST-1D paper: ``flax.linen`` modules, ``optax.adam(1e-2)``, a jitted
train step called from Python once per step on NumPy batches drawn at random (batch 100, 6000
steps), as in the MNIST-1D notebooks. "train (no compile)" excludes the first (compiling) step
for Flax and the first (compiling) epoch for ours, scaled to all epochs; "train (total)" is
fit's whole wall time; ``s/epoch`` is the median epoch.

Run: ``python benchmarks/bench_mnist1d.py [--seeds 3] [--only mnist1d|digits|flax]``.
The machine is shared: compare columns within one run, not across runs.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from train import datasets
from train.drivers.data import data_info
from train.drivers.standard import entry_optimizer
from train.loop import evaluate, fit
from zoo import registry

PUBLISHED = {"logistic": "32%", "mlp": "68%", "cnn": "94%", "mlp-digits": ">=97% (target)",
             "cnn-digits": ">=98% (target)"}


def run_ours(name: str, seed: int) -> dict:
    spec = registry.get(name)
    ds = datasets.load(spec.dataset, **spec.dataset_options)
    cfg = spec.make_config(data_info(ds))
    k_init, k_fit = jax.random.split(jax.random.PRNGKey(seed))
    params = spec.module.init(k_init, cfg)
    loss = lambda p, s, b, k: spec.module.loss(p, s, b, k, cfg, train=True)
    eval_loss = lambda p, s, b, k: spec.module.loss(p, s, b, k, cfg, train=False)
    optimizer = entry_optimizer(spec, len(ds.x_train))
    t0 = time.perf_counter()
    res = fit(loss, params, optimizer, {"x": ds.x_train, "y": ds.y_train},
              key=k_fit, epochs=spec.epochs, batch_size=spec.batch_size,
              fast_path=spec.extra.get("fast_path", "auto"),
              shuffle=spec.extra.get("sampling", True), progress=False)
    jax.block_until_ready(res.state.params)
    seconds = time.perf_counter() - t0
    epochs = [t["seconds"] for t in res.timings if "epoch" in t]
    m = evaluate(eval_loss, res.state, {"x": ds.x_test, "y": ds.y_test})
    # Steady-state training time: every epoch but the first (which compiles), scaled to all.
    steady = sum(epochs[1:]) * len(epochs) / max(len(epochs) - 1, 1)
    return {"acc": m["accuracy"], "seconds": seconds, "epoch": float(np.median(epochs)),
            "steady": steady, "steps": int(res.state.step)}


def run_flax(kind: str, seed: int, steps: int = 6000, batch: int = 100) -> dict:
    import flax.linen as nn
    import optax

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.relu(nn.Dense(100)(x))
            x = nn.relu(nn.Dense(100)(x))
            return nn.Dense(10)(x)

    class CNN(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = x[..., None]
            x = nn.relu(nn.Conv(25, (5,), strides=2, padding=1)(x))
            x = nn.relu(nn.Conv(25, (3,), strides=2, padding=1)(x))
            x = nn.relu(nn.Conv(25, (3,), strides=2, padding=1)(x))
            return nn.Dense(10)(x.reshape(x.shape[0], -1))

    ds = datasets.load("mnist1d")
    model = MLP() if kind == "mlp" else CNN()
    params = model.init(jax.random.PRNGKey(seed), jnp.zeros((1, 40)))
    tx = optax.adam(1e-2)
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state, x, y):
        def loss_fn(p):
            logits = model.apply(p, x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        grads = jax.grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    rng = np.random.default_rng(seed)
    x, y = ds.x_train, ds.y_train
    idx = rng.integers(0, len(x), (steps, batch))
    params, opt_state = step(params, opt_state, x[idx[0]], y[idx[0]])   # compile
    jax.block_until_ready(params)
    t0 = time.perf_counter()
    for i in range(1, steps):
        params, opt_state = step(params, opt_state, x[idx[i]], y[idx[i]])
    jax.block_until_ready(params)
    seconds = time.perf_counter() - t0
    logits = model.apply(params, ds.x_test)
    return {"acc": float(np.mean(np.argmax(logits, -1) == ds.y_test)), "seconds": seconds}


def _fmt(rows):
    accs = np.array([r["acc"] for r in rows]) * 100
    return f"{accs.mean():5.1f} +- {accs.std():.1f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--only", choices=["mnist1d", "digits", "flax"], default=None)
    ap.add_argument("--models", nargs="*", default=None, help="subset of registry names")
    args = ap.parse_args()
    seeds = range(args.seeds)
    groups = {"mnist1d": ["logistic", "mlp", "cnn"], "digits": ["mlp-digits", "cnn-digits"]}
    table = []
    for group, names in groups.items():
        if args.only not in (None, group):
            continue
        for name in names:
            if args.models is not None and name not in args.models:
                continue
            rows = [run_ours(name, s) for s in seeds]
            table.append([name, registry.get(name).dataset, PUBLISHED[name], _fmt(rows),
                          f"{np.mean([r['epoch'] for r in rows]) * 1e3:.0f} ms",
                          f"{np.mean([r['steady'] for r in rows]):.1f} s",
                          f"{np.mean([r['seconds'] for r in rows]):.1f} s",
                          str(rows[0]["steps"])])
            print(" | ".join(table[-1]), flush=True)
    if args.only in (None, "flax", "mnist1d"):
        for kind in ("mlp", "cnn"):
            if args.models is not None and kind not in args.models:
                continue
            rows = [run_flax(kind, s) for s in seeds]
            table.append([f"flax {kind}", "mnist1d", PUBLISHED[kind], _fmt(rows), "-",
                          f"{np.mean([r['seconds'] for r in rows]):.1f} s", "-", "6000"])
            print(" | ".join(table[-1]), flush=True)
    header = ["model", "data", "published", f"test acc % ({len(seeds)} seeds)", "s/epoch",
              "train (no compile)", "train (total)", "steps"]
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header))]
    print()
    for r in [header, ["-" * w for w in widths], *table]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main()
