"""GAN benchmarks (not run by CI).

1. Ring of 8 Gaussians (radius 2, std 0.02): modes covered (a mode counts when at least 1% of
   10,000 samples fall within 3 standard deviations of it) and high-quality samples (within 3
   standard deviations of some mode), over several seeds; targets 8 of 8 and >= 80%.
2. DCGAN on the 8x8 digits: a CNN digits classifier from the zoo, trained here, labels 1,000
   generated samples; targets mean confidence >= 0.9 and all 10 classes present. A sample grid
   is written to the output folder.

    python benchmarks/bench_gan.py [--seeds 3] [--ring-epochs 60] [--dcgan-epochs 200]
        [--out runs/bench_gan] [--skip-ring] [--skip-dcgan]
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from train.datasets import load
from train.gan import fit_gan, save_samples
from zoo import gan
from zoo.registry import DataInfo, _gan_config


def ring(seeds: int, epochs: int, out: str) -> list[dict]:
    data = load("gaussian_ring")
    cfg = _gan_config(DataInfo(input_shape=(2,)))
    rows = []
    for seed in range(seeds):
        key = jax.random.PRNGKey(seed)
        t0 = time.perf_counter()
        g_opt, d_opt = gan.default_optimizers(cfg, total_steps=epochs * (len(data.x_train) // 256))
        res = fit_gan(cfg, data.x_train, key=key, epochs=epochs, batch_size=256,
                      g_opt=g_opt, d_opt=d_opt, progress=False)
        seconds = time.perf_counter() - t0
        samples = gan.sample(res.state.params, 10_000, cfg, key=jax.random.fold_in(key, 7),
                             state=res.state.model_state)
        q = gan.mode_coverage(samples, data.meta["centers"], float(data.meta["std"]))
        save_samples(np.asarray(samples[:2000]), os.path.join(out, f"ring_seed{seed}.png"),
                     reference=data.x_test)
        rows.append({"seed": seed, **q, "seconds": seconds,
                     "steps": int(res.state.step)})
        print(rows[-1], flush=True)
    return rows


def _digits_classifier(ds, seed=0):
    """The zoo's 2-D CNN on the digits, trained with the registry's defaults."""
    import optax

    from train.loop import fit
    from zoo import registry

    spec = registry.get("cnn-digits")
    cfg = spec.make_config(DataInfo(input_shape=ds.x_train.shape[1:], n_classes=10))
    key = jax.random.PRNGKey(seed)
    params = spec.module.init(key, cfg)
    state0 = spec.module.init_state(cfg) if hasattr(spec.module, "init_state") else {}

    def loss_fn(p, s, batch, k):
        return spec.module.loss(p, s, batch, k, cfg, train=True)

    res = fit(loss_fn, params, optax.adam(spec.lr), {"x": ds.x_train, "y": ds.y_train},
              key=key, epochs=spec.epochs, batch_size=spec.batch_size, model_state=state0,
              progress=False, fast_path="loop")
    probs = lambda x: jax.nn.softmax(spec.module.apply(res.state.params, x, cfg))
    acc = float(jnp.mean(jnp.argmax(probs(ds.x_test), -1) == ds.y_test))
    return probs, acc


def dcgan(seeds: int, epochs: int, out: str) -> list[dict]:
    ds = load("digits")
    probs, clf_acc = _digits_classifier(ds)
    print(f"digits classifier test accuracy {clf_acc:.4f}", flush=True)
    cfg = _gan_config(DataInfo(input_shape=ds.x_train.shape[1:]))
    x = 2.0 * ds.x_train - 1.0
    rows = []
    for seed in range(seeds):
        key = jax.random.PRNGKey(seed)
        t0 = time.perf_counter()
        g_opt, d_opt = gan.default_optimizers(cfg, total_steps=epochs * (len(x) // 64))
        res = fit_gan(cfg, x, key=key, epochs=epochs, batch_size=64, g_opt=g_opt,
                      d_opt=d_opt, progress=False)
        seconds = time.perf_counter() - t0
        samples = gan.sample(res.state.params, 1000, cfg, key=jax.random.fold_in(key, 7),
                             state=res.state.model_state)
        p = np.asarray(probs((samples + 1.0) / 2.0))
        labels = p.argmax(-1)
        save_samples(np.asarray(samples[:64]), os.path.join(out, f"dcgan_seed{seed}.png"))
        rows.append({"seed": seed, "mean_confidence": float(p.max(-1).mean()),
                     "classes_present": int(len(np.unique(labels))),
                     "min_class_share": float(np.bincount(labels, minlength=10).min() / 1000),
                     "seconds": seconds, "classifier_accuracy": clf_acc})
        print(rows[-1], flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--ring-epochs", type=int, default=100)
    ap.add_argument("--dcgan-epochs", type=int, default=300)
    ap.add_argument("--out", default="runs/bench_gan")
    ap.add_argument("--skip-ring", action="store_true")
    ap.add_argument("--skip-dcgan", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if not args.skip_ring:
        rows = ring(args.seeds, args.ring_epochs, args.out)
        print("\nring of 8 Gaussians       target   " + "  ".join(f"seed {r['seed']}"
                                                                  for r in rows))
        print("modes covered (of 8)      8        " + "  ".join(f"{r['modes_covered']:6d}"
                                                                  for r in rows))
        print("high-quality samples      >=0.80   " + "  ".join(f"{r['high_quality']:6.3f}"
                                                                  for r in rows))
        print("train seconds                      " + "  ".join(f"{r['seconds']:6.1f}"
                                                                  for r in rows))
    if not args.skip_dcgan:
        rows = dcgan(args.seeds, args.dcgan_epochs, args.out)
        print("\nDCGAN on digits           target   " + "  ".join(f"seed {r['seed']}"
                                                                  for r in rows))
        print("mean classifier conf.     >=0.90   " + "  ".join(f"{r['mean_confidence']:6.3f}"
                                                                  for r in rows))
        print("classes present (of 10)   10       " + "  ".join(f"{r['classes_present']:6d}"
                                                                  for r in rows))
        print("train seconds                      " + "  ".join(f"{r['seconds']:6.1f}"
                                                                  for r in rows))


if __name__ == "__main__":
    main()
