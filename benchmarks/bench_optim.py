"""Update-plus-apply time of functional.optim against optax on a ~10M-parameter pytree.

    python benchmarks/bench_optim.py [--rounds 7] [--iters 10]

Each step is one jitted function ``(params, state, grads) -> (params, state)`` with params and
state donated. Ours and optax's are timed in alternating rounds within one run (the machines
are shared and noisy), and the table reports the best round of each as ms per step and the
ratio ours / optax (target <= 1.05), plus the ratios of XLA's cost model (flops and bytes
accessed of the compiled step), which do not depend on the machine's load.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from functional import optim as O


def make_params(key) -> dict:
    """About 10M float32 parameters in many leaves of mixed sizes (a transformer-ish stack
    plus convolutions, embeddings and scalars)."""
    shapes = {"embed": (8192, 128)}
    for i in range(16):
        shapes[f"block{i}"] = {
            "attn": {"w": (256, 768), "b": (768,)},
            "proj": {"w": (256, 256), "b": (256,)},
            "mlp_in": {"w": (256, 512), "b": (512,)},
            "mlp_out": {"w": (512, 256), "b": (256,)},
            "ln": {"scale": (256,), "bias": (256,)},
            "gate": (),
        }
    for i in range(6):
        shapes[f"conv{i}"] = {"w": (3, 3, 64, 64), "b": (64,)}
    shapes["head"] = {"w": (256, 1000), "b": (1000,)}
    leaves, treedef = jax.tree.flatten(shapes, is_leaf=lambda x: isinstance(x, tuple))
    keys = jax.random.split(key, len(leaves))
    arrays = [0.02 * jax.random.normal(k, s, jnp.float32)
              for k, s in zip(keys, leaves, strict=True)]
    return jax.tree.unflatten(treedef, arrays)


def make_step(opt):
    def step(params, state, grads):
        updates, state = opt.update(grads, state, params)
        return O.apply_updates(params, updates), state

    return jax.jit(step, donate_argnums=(0, 1))


def time_round(step, params, state, grads, iters):
    t0 = time.perf_counter()
    for _ in range(iters):
        params, state = step(params, state, grads)
    jax.block_until_ready((params, state))
    return (time.perf_counter() - t0) / iters, params, state


def xla_cost(step, params, state, grads):
    """(flops, bytes accessed) of the compiled step by XLA's cost model: a noise-free check
    that the two programs do the same work."""
    cost = step.lower(params, state, grads).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return cost.get("flops", float("nan")), cost.get("bytes accessed", float("nan"))


def bench(name, ours, ref, params0, grads, rounds, iters):
    runs, costs = {}, {}
    for label, opt in (("ours", ours), ("optax", ref)):
        step = make_step(opt)
        costs[label] = xla_cost(step, params0, jax.eval_shape(opt.init, params0), grads)
        params = jax.tree.map(jnp.copy, params0)
        state = jax.jit(opt.init)(params)
        params, state = step(params, state, grads)  # compile
        jax.block_until_ready(params)
        runs[label] = [step, params, state, []]
    for _ in range(rounds):
        for label in ("ours", "optax"):
            step, params, state, times = runs[label]
            t, params, state = time_round(step, params, state, grads, iters)
            runs[label][1:3] = [params, state]
            times.append(t)
    best = {label: min(r[3]) for label, r in runs.items()}
    med = {label: float(np.median(r[3])) for label, r in runs.items()}
    flops = costs["ours"][0] / costs["optax"][0]
    nbytes = costs["ours"][1] / costs["optax"][1]
    print(f"| {name:20s} | {1e3 * best['ours']:9.3f} | {1e3 * best['optax']:10.3f} "
          f"| {best['ours'] / best['optax']:6.3f} | {med['ours'] / med['optax']:6.3f} "
          f"| {flops:8.5f} | {nbytes:8.5f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iters", type=int, default=10)
    args = parser.parse_args()

    params = make_params(jax.random.PRNGKey(0))
    grads = jax.tree.map(lambda p: 1e-3 * jnp.sign(p) + 0.1 * p, params)
    n = sum(x.size for x in jax.tree.leaves(params))
    print(f"jax {jax.__version__}, optax {optax.__version__}, backend "
          f"{jax.default_backend()} ({jax.devices()[0].device_kind}); "
          f"{n / 1e6:.2f}M params in {len(jax.tree.leaves(params))} leaves; "
          f"best of {args.rounds} alternating rounds of {args.iters} steps\n")
    print("ratio: best round ours / best round optax; median: ratio of median rounds; "
          "flops, bytes: XLA cost-model ratios ours / optax\n")
    print("| optimizer            | ours (ms) | optax (ms) | ratio  | median "
          "| flops    | bytes    |")
    print("| -------------------- | --------- | ---------- | ------ | ------ "
          "| -------- | -------- |")
    cases = [
        ("adam", O.adam(1e-3), optax.adam(1e-3)),
        ("sgd", O.sgd(1e-2), optax.sgd(1e-2)),
        ("sgd momentum 0.9", O.sgd(1e-2, 0.9), optax.sgd(1e-2, 0.9)),
        ("rmsprop", O.rmsprop(1e-3), optax.rmsprop(1e-3)),
        ("adamw", O.adamw(1e-3), optax.adamw(1e-3)),
    ]
    for name, ours, ref in cases:
        bench(name, ours, ref, params, grads, args.rounds, args.iters)


if __name__ == "__main__":
    main()
