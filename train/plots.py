"""Figures written by the CLI and the notebooks: loss curves and the gradient-norm study.

Matplotlib is used with the non-interactive Agg backend, so figures are written as PNG files
on machines without a display.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["figure", "plot_history", "plot_gradient_norms"]


def figure(**kwargs):
    """A bare matplotlib ``Figure`` (not pyplot)."""
    # A bare Figure, not pyplot: saving needs no backend, so the caller's (a notebook's
    # inline one) is left alone, and no figure stays registered with pyplot.
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def plot_history(history: Sequence[Mapping], path: str, *, title: str = "") -> str:
    """Loss curve (and accuracy, when logged) per epoch from a ``fit`` history.

    Args:
        history: one dict per epoch with ``'epoch'``, ``'loss'`` and optionally
            ``'val_loss'``, ``'accuracy'``, ``'val_accuracy'`` (``train.loop.fit``'s history).
        path: PNG file to write (its directory is created).
        title: figure title.

    Returns:
        ``path``.
    """
    if not history:
        raise ValueError("plot_history: history is empty; nothing to plot")
    epochs = [row.get("epoch", i) + 1 for i, row in enumerate(history)]
    has_acc = any("accuracy" in row or "val_accuracy" in row for row in history)
    fig = figure(figsize=(10 if has_acc else 5.5, 3.8))
    axes = fig.subplots(1, 2 if has_acc else 1)
    axes = np.atleast_1d(axes)
    panels = [("loss", axes[0])] + ([("accuracy", axes[1])] if has_acc else [])
    for metric, ax in panels:
        for key, label in ((metric, "train"), (f"val_{metric}", "eval")):
            values = [row.get(key, np.nan) for row in history]
            if not np.all(np.isnan(values)):
                ax.plot(epochs, values, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        if metric == "loss" and all(row.get("loss", 1.0) > 0 for row in history):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def plot_gradient_norms(study: Mapping, path: str, *, title: str = "") -> str:
    """Per-layer gradient norms at initialization, one panel per activation (seed 004 s5.3).

    Args:
        study: ``zoo.gradients.gradient_norm_study`` output,
            ``{(activation, init): {'grad_norm': [depth], ...}}``.
        path: PNG file to write.
        title: figure title (default: a description of the study).

    Returns:
        ``path``.
    """
    if not study:
        raise ValueError("plot_gradient_norms: empty study")
    acts = list(dict.fromkeys(act for act, _ in study))
    fig = figure(figsize=(4.2 * len(acts), 3.8))
    axes = fig.subplots(1, len(acts), squeeze=False)
    for ax, act in zip(axes[0], acts, strict=True):
        for (a, init_name), res in study.items():
            if a != act:
                continue
            norms = np.asarray(res["grad_norm"])
            ax.semilogy(np.arange(1, len(norms) + 1), norms, marker="o",
                        label="normal(0, 1)" if init_name == "normal" else init_name)
        ax.set_title(act)
        ax.set_xlabel("layer (1 = input side)")
        ax.set_ylabel("||dL/dW||")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    fig.suptitle(title or "Gradient norms per layer at initialization (10-layer MLP)")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
