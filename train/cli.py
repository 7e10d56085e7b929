"""The ``zoo`` command.

Until the zoo registry lands this trains the smallest real model there is: softmax
regression on scikit-learn's bundled 8x8 digits, by full-batch gradient descent.
"""

from __future__ import annotations

import argparse
import sys


def _train_softmax_regression(epochs: int, lr: float, seed: int) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    x, y = (x[order] / 16.0).astype(np.float32), y[order].astype(np.int32)
    n_train = int(0.8 * len(x))
    x_tr, y_tr, x_te, y_te = x[:n_train], y[:n_train], x[n_train:], y[n_train:]

    params = {"w": jnp.zeros((64, 10)), "b": jnp.zeros(10)}

    def loss(p, xb, yb):
        logits = xb @ p["w"] + p["b"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    @jax.jit
    def step(p):
        g = jax.grad(loss)(p, x_tr, y_tr)
        return jax.tree.map(lambda a, b: a - lr * b, p, g)

    for _ in range(epochs):
        params = step(params)
    acc = float(jnp.mean(jnp.argmax(x_te @ params["w"] + params["b"], -1) == y_te))
    return {"test_loss": float(loss(params, x_te, y_te)), "test_accuracy": acc}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zoo", description="Train jaxzoo models.")
    sub = parser.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train", help="train a model on its embedded default data")
    tr.add_argument("name", choices=["softmax"])
    tr.add_argument("--epochs", type=int, default=300)
    tr.add_argument("--lr", type=float, default=0.5)
    tr.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    summary = _train_softmax_regression(args.epochs, args.lr, args.seed)
    print(f"{args.name}: test_loss={summary['test_loss']:.4f} "
          f"test_accuracy={summary['test_accuracy']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
