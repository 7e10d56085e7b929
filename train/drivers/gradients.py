"""``zoo gradients``: per-layer gradient norms at initialization (vanishing and exploding
gradients, seed 004), written as a figure and a JSON table."""

from __future__ import annotations

import json
import os

__all__ = ["write_study"]


def write_study(out: str, *, depth: int = 10, seed: int = 0) -> tuple[dict, str]:
    """Run ``zoo.gradients.gradient_norm_study`` and write ``gradient_norms.png`` and
    ``gradient_norms.json`` into ``out``.

    Returns:
        ``({'activation/init': [norm of layer 1, ..., layer depth]}, figure path)``.
    """
    import jax
    import numpy as np

    from train import plots
    from zoo import gradients

    os.makedirs(out, exist_ok=True)   # first: a path that cannot be made fails at once
    study = gradients.gradient_norm_study(jax.random.PRNGKey(seed), depth=depth)
    path = plots.plot_gradient_norms(study, os.path.join(out, "gradient_norms.png"))
    table = {f"{a}/{i}": [float(v) for v in np.asarray(r["grad_norm"])]
             for (a, i), r in study.items()}
    with open(os.path.join(out, "gradient_norms.json"), "w") as f:
        json.dump(table, f, indent=2)
    return table, path
