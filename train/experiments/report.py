"""Tables and figures of experiments: CSV results, overlaid loss curves, search scatters.

Matplotlib draws on bare ``Figure`` objects (Agg, no pyplot), so this works without a display
and leaves a notebook's inline backend alone.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence

import numpy as np

from train.plots import figure


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (np.floating, np.integer)):
        return repr(value.item())
    if callable(value):
        return getattr(value, "__name__", repr(value))
    return str(value)


def table(trials: Sequence, metrics: Sequence[str] | None = None) -> list[dict]:
    """Trials as flat rows: config keys, ``seed``, ``round``, ``score``, ``epochs`` run, the
    final value of each metric, and ``params_hash``.

    Args:
        trials: the trials (``train.experiments.Trial`` records).
        metrics: which metrics' final values to include (default: every key seen in the last
            epoch of any trial, except ``'epoch'``).
    """
    if metrics is None:
        seen = {}
        for t in trials:
            if t.history:
                seen.update(dict.fromkeys(k for k in t.history[-1] if k != "epoch"))
        metrics = list(seen)
    config_keys = list(dict.fromkeys(k for t in trials for k in t.config))
    rows = []
    for t in trials:
        row = {k: t.config.get(k) for k in config_keys}
        row.update(seed=t.seed, round=t.round, score=t.score, epochs=len(t.history))
        row.update({m: t.final(m) for m in metrics})
        row["params_hash"] = t.params_hash
        rows.append(row)
    return rows


def write_csv(trials: Sequence, path: str | os.PathLike,
              metrics: Sequence[str] | None = None) -> list[dict]:
    """Write :func:`table` of the trials to a CSV file (directories created); returns the rows.

    Floats are written with ``repr`` so that reading the file back gives the same numbers.
    """
    rows = table(trials, metrics)
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    fields = list(dict.fromkeys(k for row in rows for k in row))
    tmp = os.fspath(path) + ".tmp"
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(v) for k, v in row.items()})
    os.replace(tmp, path)
    return rows


def _label(config: Mapping, keys: Sequence[str] | None) -> str:
    keys = list(config) if keys is None else keys
    parts = []
    for k in keys:
        v = config.get(k)
        v = f"{v:.3g}" if isinstance(v, float) else _cell(v)
        parts.append(f"{k}={v}")
    return ", ".join(parts)


def curves(trials: Sequence, metric: str = "loss", *, label_by=None):
    """Group trials by configuration and stack their curves of ``metric`` over seeds.

    Returns:
        A list of ``(label, epochs <i>[T], values <f64>[seeds, T])`` in first-seen order;
        runs of different lengths (early stopping) are cut to the shortest.
    """
    groups: dict[str, list] = {}
    for t in trials:
        ys = [row[metric] for row in t.history if metric in row]
        if ys:
            groups.setdefault(_label(t.config, label_by), []).append(ys)
    out = []
    for label, runs in groups.items():
        length = min(len(r) for r in runs)
        values = np.asarray([r[:length] for r in runs], dtype=np.float64)
        out.append((label, np.arange(1, length + 1), values))
    return out


def plot_curves(
    trials: Sequence,
    path: str | os.PathLike,
    *,
    metric: str = "loss",
    label_by: Sequence[str] | None = None,
    title: str | None = None,
    logy: bool = True,
):
    """Overlaid curves of one metric per configuration: the mean over seeds as a line, the
    range over seeds shaded (the notes' optimizer and learning-rate comparisons).

    Args:
        trials: the trials (several seeds of a configuration are grouped).
        path: image file to write (format from the suffix, e.g. ``.png``, ``.svg``).
        metric: history key to plot against the epoch.
        label_by: config keys used in the legend (default: all of them).
        title: figure title.
        logy: log-scale y axis (losses over many epochs).

    Returns:
        The curves drawn, as :func:`curves` returns them.
    """
    drawn = curves(trials, metric, label_by=label_by)
    if not drawn:
        raise ValueError(f"plot_curves: no trial recorded the metric {metric!r}")
    fig = figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    for label, epochs, values in drawn:
        (line,) = ax.plot(epochs, values.mean(0), label=label)
        if len(values) > 1:
            ax.fill_between(epochs, values.min(0), values.max(0), color=line.get_color(),
                            alpha=0.2, linewidth=0)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    if logy and all(np.all(v > 0) for _, _, v in drawn):
        ax.set_yscale("log")
    _finish(fig, ax, path, title)
    return drawn


def plot_search(result, path: str | os.PathLike, *, param: str = "lr",
                logx: bool = True, title: str | None = None):
    """Score against one hyperparameter, one colour per round (the coarse-to-fine picture).

    Returns:
        ``{round: (values, scores)}`` as plotted.
    """
    points: dict[int, tuple[list, list]] = {}
    for t in result.trials:
        xs, ys = points.setdefault(t.round, ([], []))
        xs.append(t.config[param])
        ys.append(t.score)
    fig = figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    for rnd, (xs, ys) in sorted(points.items()):
        ax.scatter(xs, ys, s=16, label="coarse" if rnd == 0 else f"fine {rnd}")
    ax.axvline(result.best_config[param], color="k", linewidth=0.8, linestyle="--")
    ax.set_xlabel(param)
    ax.set_ylabel("score")
    if logx:
        from matplotlib.ticker import NullFormatter

        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())   # decades only: no crowded labels
    _finish(fig, ax, path, title)
    return points


def _finish(fig, ax, path, title) -> None:
    """Title, legend, layout, and the file (its directories created)."""
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    fig.savefig(path)
