"""Figures for the recurrent zoo: vanishing / exploding gradients made visible.

``functional.bptt.gradient_norms_by_lag`` computes; this module only draws.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def plot_gradient_norms_by_lag(curves: Mapping[str, tuple], *, ax=None, title: str | None = None,
                               path: str | None = None):
    """Semilog plot of ||dL_t / d carry_{t-lag}|| against the lag, one line per model.

    A straight falling line on this log scale is the geometric decay of a tanh RNN's gradient
    (vanishing gradients, seed 004); an LSTM's stays high over long lags (the constant error
    carousel of Hochreiter & Schmidhuber 1997).

    Args:
      curves: ``{label: (lags, norms)}`` as returned by
        ``functional.bptt.gradient_norms_by_lag``, e.g. ``{'vanilla RNN': ..., 'LSTM': ...}``.
      ax: a matplotlib Axes to draw into; a new figure is made when ``None``.
      title: optional axes title.
      path: if given, the figure is saved there.

    Returns:
      The matplotlib ``Figure``.
    """
    if not curves:
        raise ValueError('plot_gradient_norms_by_lag: expected at least one curve, got none')
    import matplotlib
    if ax is None:
        matplotlib.use('Agg', force=False)
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6, 4))
    else:
        fig = ax.figure
    for label, (lags, norms) in curves.items():
        lags, norms = np.asarray(lags), np.asarray(norms)
        if lags.shape != norms.shape or lags.ndim != 1:
            raise ValueError(f'plot_gradient_norms_by_lag: curve {label!r}: expected 1-D lags '
                             f'and norms of equal length, got {lags.shape} and {norms.shape}')
        ax.semilogy(lags, norms, label=label)
    ax.set_xlabel('lag (steps the error travelled back)')
    ax.set_ylabel(r'$\|\partial L_t / \partial\, \mathrm{carry}_{t-\mathrm{lag}}\|$')
    ax.set_title(title or 'Gradient reaching earlier steps')
    ax.grid(True, which='both', alpha=0.3)
    ax.legend()
    if path is not None:
        fig.savefig(path, bbox_inches='tight')
    return fig
