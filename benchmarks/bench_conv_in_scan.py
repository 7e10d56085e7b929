"""Why is a small CNN slower inside one ``lax.scan`` than in a per-step loop on CPU?

Times Adam steps of the MNIST-1D paper's small CNN (three 1-D convolutions, 25 channels,
about 5k parameters, batch 100, length 40) four ways, side by side in one run:

- ``loop``: a jitted step called from Python per batch (the Flax-example style),
- ``scan``: the same step inside one jitted ``lax.scan`` over batch indices,
- ``scan_unroll4``: the scan with ``unroll=4``,
- ``scan_im2col``: the scan with each convolution written as patches @ kernel (a dot),
- ``loop_im2col``: the loop with the im2col convolution,
- ``scan_canon`` / ``loop_canon``: convolutions with a custom VJP whose backward
  convolutions are written in XLA CPU's canonical layout (see ``conv_canonical``),
- ``scan_layers`` / ``loop_layers``: ``functional.layers.conv``, which now carries that VJP
  (``fast_grad=True``, its default).

Finding: XLA CPU's ConvCanonicalization pass only visits the entry computation, so inside a
``while`` body the backward convolutions keep JAX's layouts and miss the Eigen kernel.
``functional.layers.conv`` / ``conv_transpose`` now carry the canonical VJP (``fast_grad=True``,
default); the compiled scan then holds exactly the same eight convolutions as ``scan_canon``.
Through ``train.loop.fit`` (MNIST-1D CNN, batch 100, best of 3 on a loaded 2-core machine,
2026-11-22): scan 202 -> 972 steps/s, loop 918 -> 1036 steps/s (before -> after; the loop
is unchanged within noise). Scan and loop are now level in steady state, but compiling the
scanned epoch cost about 4 s here against about 1-2 s for the step, so ``fast_path='auto'``
(which compiles both) was slower in total for 150 epochs (20 epochs: auto 11.7 s, loop 6.1 s);
the registry's CNN entries stay on ``'loop'``.

Run: ``python benchmarks/bench_conv_in_scan.py [--steps 300] [--only scan scan_layers]``.
Prints steps/s per variant.
"""

import argparse
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from functional import layers


def conv_lax(x, w, stride):
    return jax.lax.conv_general_dilated(x, w, (stride,), [(1, 1)],
                                        dimension_numbers=("NWC", "WIO", "NWC"))


def conv_im2col(x, w, stride):
    k = w.shape[0]
    x = jnp.pad(x, ((0, 0), (1, 1), (0, 0)))
    n_out = (x.shape[1] - k) // stride + 1
    cols = jnp.stack([x[:, i: i + stride * (n_out - 1) + 1: stride] for i in range(k)], axis=2)
    return jnp.einsum("blkc,kco->blo", cols, w)


def _dims(d):
    sp = "DHW"[-d:]
    return ("N" + sp + "C", sp + "IO", "N" + sp + "C")


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_canonical(x, w, strides, padding):
    """Channels-last convolution whose backward convolutions are already canonical.

    XLA's CPU backend sends a convolution to its fast Eigen kernel only in the canonical
    layout (input ``N...C``, kernel ``...IO``); its ConvCanonicalization pass inserts the
    transposes for other layouts but visits only the entry computation, so the backward
    convolutions of ``jax.grad`` (layouts ``b0f_0oi``, ``f0b_i0o``) inside a ``while`` loop
    (``lax.scan``) stay non-canonical and run as a slow generic loop nest. This VJP writes
    both backward convolutions in the canonical layout with explicit transposes.

    Args:
        x: ``<f32>[batch, *spatial, in_channels]``.
        w: ``<f32>[*kernel, in_channels, out_channels]``.
        strides: tuple of ints, one per spatial axis.
        padding: tuple of ``(low, high)`` pairs, one per spatial axis.
    """
    return jax.lax.conv_general_dilated(x, w, strides, padding,
                                        dimension_numbers=_dims(x.ndim - 2))


def _conv_fwd(x, w, strides, padding):
    return conv_canonical(x, w, strides, padding), (x, w)


def _conv_bwd(strides, padding, res, dy):
    x, w = res
    d = x.ndim - 2
    geometry = list(zip(w.shape[:d], x.shape[1:-1], dy.shape[1:-1], strides, padding,
                        strict=True))
    # dx: dy dilated by the strides, correlated with the flipped kernel (in/out swapped).
    w_t = jnp.flip(w, axis=tuple(range(d))).swapaxes(-1, -2)
    pad_x = [(k - 1 - lo, n - (o - 1) * s - 1 + lo) for k, n, o, s, (lo, _) in geometry]
    dx = jax.lax.conv_general_dilated(dy, w_t, (1,) * d, pad_x, lhs_dilation=strides,
                                      dimension_numbers=_dims(d))
    # dw: the channels as the batch, the batch as the features, dy as the kernel.
    x_t = jnp.transpose(x, (d + 1, *range(1, d + 1), 0))        # [Ci, *spatial, N]
    dy_t = jnp.transpose(dy, (*range(1, d + 1), 0, d + 1))      # [*out, N, Co]
    pad_w = [(lo, k + (o - 1) * s - n - lo) for k, n, o, s, (lo, _) in geometry]
    dw_t = jax.lax.conv_general_dilated(x_t, dy_t, (1,) * d, pad_w, rhs_dilation=strides,
                                        dimension_numbers=_dims(d))  # [Ci, *kernel, Co]
    return dx, jnp.transpose(dw_t, (*range(1, d + 1), 0, d + 1))


conv_canonical.defvjp(_conv_fwd, _conv_bwd)


def conv_canon(x, w, stride):
    return conv_canonical(x, w, (stride,), ((1, 1),))


def conv_layers(x, w, stride):
    """``functional.layers.conv`` (canonical VJP by default) without its bias."""
    return layers.conv({"w": w, "b": jnp.zeros(w.shape[-1], w.dtype)}, x, stride=stride,
                       padding=1)


def make_loss(conv):
    def loss(params, batch):
        h = batch["x"][..., None]
        for name, stride in (("c1", 2), ("c2", 2), ("c3", 2)):
            h = jax.nn.relu(conv(h, params[name]["w"], stride) + params[name]["b"])
        logits = h.reshape(h.shape[0], -1) @ params["out"]["w"] + params["out"]["b"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()
    return loss


def init(key, length=40):
    ks = jax.random.split(key, 4)
    p = {"c1": {"w": jax.random.normal(ks[0], (5, 1, 25)) * 0.3, "b": jnp.zeros(25)},
         "c2": {"w": jax.random.normal(ks[1], (3, 25, 25)) * 0.1, "b": jnp.zeros(25)},
         "c3": {"w": jax.random.normal(ks[2], (3, 25, 25)) * 0.1, "b": jnp.zeros(25)}}
    n_flat = 25 * 5
    p["out"] = {"w": jax.random.normal(ks[3], (n_flat, 10)) * 0.1, "b": jnp.zeros(10)}
    return p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--only", nargs="*", default=None, help="subset of variant names")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n, bs = 4000, 100
    data = {"x": jnp.asarray(rng.normal(size=(n, 40)), jnp.float32),
            "y": jnp.asarray(rng.integers(0, 10, n), jnp.int32)}
    idx = jnp.asarray(rng.integers(0, n, (args.steps, bs)), jnp.int32)
    params = init(jax.random.PRNGKey(0))
    opt = optax.adam(1e-3)

    def variant(conv, mode, unroll=1):
        loss = make_loss(conv)

        def step(carry, i):
            p, s = carry
            batch = {k: v[i] for k, v in data.items()}
            g = jax.grad(loss)(p, batch)
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        if mode == "scan":
            f = jax.jit(lambda c, idx: jax.lax.scan(step, c, idx, unroll=unroll)[0])
            run = lambda c: f(c, idx)  # noqa: E731
        else:
            f = jax.jit(lambda c, i: step(c, i)[0])

            def run(c):
                for t in range(args.steps):
                    c = f(c, idx[t])
                return c
        return run

    variants = {"loop": variant(conv_lax, "loop"), "scan": variant(conv_lax, "scan"),
                "scan_unroll4": variant(conv_lax, "scan", 4),
                "scan_im2col": variant(conv_im2col, "scan"),
                "loop_im2col": variant(conv_im2col, "loop"),
                "scan_canon": variant(conv_canon, "scan"),
                "loop_canon": variant(conv_canon, "loop"),
                "scan_layers": variant(conv_layers, "scan"),
                "loop_layers": variant(conv_layers, "loop")}
    # the canonical VJP gives the same gradients as jax's own, bitwise here
    x = data["x"][:8, :, None]
    g1 = jax.grad(lambda w: conv_lax(x, w, 2).sum() ** 2)(params["c1"]["w"])
    g2 = jax.grad(lambda w: conv_canon(x, w, 2).sum() ** 2)(params["c1"]["w"])
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}, steps {args.steps}, batch {bs}")
    print(f"max |grad difference| canonical vs lax: {float(jnp.abs(g1 - g2).max()):.2e}")
    print(f"{'variant':<14} {'steps/s':>10}")
    for name, run in variants.items():
        if args.only is not None and name not in args.only:
            continue
        c0 = (params, opt.init(params))
        jax.block_until_ready(run(c0))    # compile
        best = 0.0
        for _ in range(3):
            t = time.perf_counter()
            jax.block_until_ready(run(c0))
            best = max(best, args.steps / (time.perf_counter() - t))
        print(f"{name:<14} {best:>10.0f}")


if __name__ == "__main__":
    main()
