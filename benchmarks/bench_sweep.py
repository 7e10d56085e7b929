"""Hyperparameter sweeps in one jit vs one configuration at a time (issue 18's benchmark).

For N = 1, 8, 64 and 256 configurations of the MNIST-1D paper's MLP and CNN (MNIST-1D-sized
random data, 4000 x 40, batch 100, Adam with its learning rate and weight decay swept
log-uniformly, seed 0 each), in one run, side by side:

- ``sweep``: ``train.experiments.run_grid_vmapped``: all N trained together, vmapped, the swept
  hyperparameters held as arrays (one compilation for the lot; chunked by memory);
- ``fit one by one``: ``run_grid(fit_experiment(...))``, each configuration its own ``fit``
  (each compiles, as every configuration builds its own optimizer);
- ``flax loop one by one``: the Flax examples' loop (``flax.training.train_state``, a jitted
  step called per batch), the rates in ``optax.inject_hyperparams`` so it compiles once.

Each row is wall time for all N configurations, compilation included (what a user waits
for), as configurations per second and relative to one configuration. One-by-one rows time
at most 8 configurations and scale (their cost is linear in N by construction: the rate is
measured, the total extrapolated, and marked so). On CPU it also prints the FLOP bound of one
epoch: the step's FLOPs (XLA's cost analysis) times N times the steps, over the rate this CPU
reaches on the same products batched over N (``einsum`` chained in a scan, as one batch or
two side by side), against the sweep's epochs after the first (``train_trials``'
``epoch_seconds``) and against its whole run, compilation included; and, for scale, the
bound at the all-core rate of a 1024^3 product.

Targets (issue 18): on a GPU, 64 MLP configurations in <= 2x the wall time of one, and 8 CNN
seeds in <= 2x one seed; on CPU, sweeps within 80% of the FLOP bound printed.

Run: ``python benchmarks/bench_sweep.py [--epochs 3] [--sizes 1,8,64,256] [--quick]``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from bench_loop import (  # noqa: E402
    BATCH,
    C,
    N,
    batched_product_rates,
    cnn_apply,
    cnn_init,
    flax_models,
    flax_train_step,
    large_product_rate,
    make_data,
    make_loss,
    mlp_apply,
    mlp_init,
    step_flops,
)

from train import experiments as ex  # noqa: E402

ONE_BY_ONE = {"max": 8}   # one-by-one rows time at most this many configurations


def configs(n: int, seed: int = 0) -> list[dict]:
    """``n`` configurations: Adam's rate in [1e-4, 1e-2] and weight decay in [1e-5, 1e-2],
    both log-uniform (the notes' scale)."""
    rng = np.random.default_rng(seed)
    return ex.sample({"lr": ex.LogUniform(1e-4, 1e-2), "weight_decay": ex.LogUniform(1e-5, 1e-2)},
                     n, rng)


def builder(init, apply):
    loss_fn = make_loss(apply)

    def build(config):
        return init, loss_fn, optax.adamw(config["lr"], weight_decay=config["weight_decay"])
    return build


def sweep_seconds(build, cfgs, data, epochs, **options) -> float:
    t0 = time.perf_counter()
    trials = ex.run_grid_vmapped(build, cfgs, [0], data, epochs=epochs, batch_size=BATCH,
                                 **options)
    for t in trials:
        assert math.isfinite(t.history[-1]["loss"]), t.config
    return time.perf_counter() - t0


def fit_seconds(build, cfgs, data, epochs) -> float:
    experiment = ex.fit_experiment(build, data, epochs=epochs, batch_size=BATCH)
    t0 = time.perf_counter()
    ex.run_grid(experiment, cfgs[:ONE_BY_ONE['max']], [0])
    return (time.perf_counter() - t0) * len(cfgs) / min(len(cfgs), ONE_BY_ONE['max'])


def flax_seconds(model, x, y, cfgs, epochs) -> float:
    """The Flax examples' loop per configuration, rates injected (one compilation)."""
    from flax.training import train_state

    make_tx = optax.inject_hyperparams(optax.adamw)
    train_step = flax_train_step

    params = model.init(jax.random.PRNGKey(0), x[:1])["params"]
    steps = N // BATCH
    t0 = time.perf_counter()
    for config in cfgs[:ONE_BY_ONE['max']]:
        state = train_state.TrainState.create(
            apply_fn=model.apply, params=params,
            tx=make_tx(learning_rate=config["lr"], weight_decay=config["weight_decay"]))
        rng = np.random.default_rng(0)
        for _ in range(epochs):
            perm = rng.permutation(N)
            for b in range(steps):
                idx = perm[b * BATCH:(b + 1) * BATCH]
                state, loss = train_step(state, {"x": x[idx], "y": y[idx]})
        jax.block_until_ready(loss)
    return (time.perf_counter() - t0) * len(cfgs) / min(len(cfgs), ONE_BY_ONE['max'])


def batched_rate(n: int, reps: int = 5) -> float:
    """FLOP/s of 100 x 100 x 100 products batched over ``n`` (the MLP's products vmapped),
    chained in a scan: the better of one batch of ``n`` and two batches of ``n / 2`` side by
    side (as the sweep runs its trials on a multi-core CPU, ``train_trials(groups=)``)."""
    return max(r for r in batched_product_rates(n, reps, length=20) if not math.isnan(r))


def flop_bound_line(build, init, apply, cfgs, data, epochs) -> str:
    """The sweep against the FLOP bound, on CPU: the epochs after the first (compiled,
    steady state) and the whole run (compilation included), both against the time the
    step's FLOPs take at the batched-product rate; and, for scale, at the all-core rate of a
    large product, which XLA does not reach on 100-wide products."""
    n = len(cfgs)
    runs = ex.train_trials(build, cfgs, [0] * n, data, epochs=max(epochs, 3), batch_size=BATCH)
    steady = min(runs.epoch_seconds[1:])
    whole = sum(runs.epoch_seconds)
    flops = step_flops(init, apply, optax.adamw(1e-3)) * n * (N // BATCH)   # one epoch
    rate, big = batched_rate(n), large_product_rate(reps=5)
    bound = flops / rate
    return (f"{'':5} {'':4}  FLOP bound on this CPU, one epoch of the {n}: {flops / 1e9:.2f} "
            f"GFLOP (XLA cost analysis) at the batched-product rate {rate / 1e9:.0f} GFLOP/s "
            f"takes >= {bound:.3f} s.\n{'':12}The sweep's epochs after the first take "
            f"{steady:.3f} s: {bound / steady:.0%} of the bound; its {len(runs.epoch_seconds)} "
            f"epochs with the first (compilation) {whole:.2f} s: "
            f"{bound * len(runs.epoch_seconds) / whole:.0%}. At the all-core rate of a 1024^3 "
            f"product ({big / 1e9:.0f} GFLOP/s) the bound would be {flops / big:.3f} s "
            f"({flops / big / steady:.0%}).")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3, help="epochs per configuration")
    ap.add_argument("--sizes", default="1,8,64,256", help="numbers of configurations")
    ap.add_argument("--models", default="MLP,CNN")
    ap.add_argument("--quick", action="store_true", help="1 epoch, sizes 1,8")
    ap.add_argument("--one-by-one", type=int, default=8,
                    help="one-by-one rows time at most this many configurations and scale")
    args = ap.parse_args(argv)
    ONE_BY_ONE["max"] = max(1, args.one_by_one)
    epochs = 1 if args.quick else args.epochs
    sizes = [1, 8] if args.quick else [int(s) for s in args.sizes.split(",")]
    x, y = make_data()
    data = {"x": x, "y": y}
    fl = flax_models()
    print(f"jax {jax.__version__}, backend {jax.default_backend()}, "
          f"{jax.devices()[0].device_kind}, {os.cpu_count()} CPUs; data {N}x40, {C} classes, "
          f"batch {BATCH}, {N // BATCH} steps/epoch, {epochs} epochs per configuration")
    print("wall seconds for N configurations, compilation included; configs/s; and the time "
          "relative to one configuration by the same method")
    print(f"{'model':5} {'N':>4}  {'method':24} {'seconds':>9} {'configs/s':>10} "
          f"{'vs N=1':>8}  note")
    cpu = jax.default_backend() == "cpu"
    for name, init, apply in (("MLP", mlp_init, mlp_apply), ("CNN", cnn_init, cnn_apply)):
        if name not in args.models.split(","):
            continue
        build = builder(init, apply)
        one = {}
        for n in sizes:
            cfgs = configs(n)
            rows = [("sweep (vmapped, one jit)", sweep_seconds(build, cfgs, data, epochs), ""),
                    ("fit one by one", fit_seconds(build, cfgs, data, epochs),
                     "" if n <= ONE_BY_ONE["max"] else f"timed {ONE_BY_ONE['max']}, scaled"),
                    ("flax loop one by one", flax_seconds(fl[name.lower()], x, y, cfgs, epochs),
                     "" if n <= ONE_BY_ONE['max'] else f"timed {ONE_BY_ONE['max']}, scaled")]
            for method, seconds, note in rows:
                one.setdefault(method, seconds)
                print(f"{name:5} {n:4d}  {method:24} {seconds:9.2f} {n / seconds:10.2f} "
                      f"{seconds / one[method]:7.2f}x  {note}", flush=True)
            if cpu and name == "MLP" and n > 1:
                print(flop_bound_line(build, init, apply, cfgs, data, epochs), flush=True)


if __name__ == "__main__":
    main()
