"""Feature scaling, one-hot encoding and train/validation splits.

Scalers are fitted on the training split only and then applied to every split, so nothing
about the test set leaks into training (seed 004, section 4.1.1.1, feature scaling: bring
features to comparable ranges so gradient descent converges faster).
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class Scaler:
    """An affine per-feature map `x -> (x - shift) / scale` fitted on training data.

    Attributes:
        kind: 'standardize' or 'min_max'.
        shift: <f32>[*feature_shape] mean (standardize) or minimum (min_max).
        scale: <f32>[*feature_shape] standard deviation or (max - min); zeros replaced by 1 so
            constant features map to 0 instead of NaN.
    """

    kind: str
    shift: np.ndarray
    scale: np.ndarray

    def transform(self, x):
        """Scale `x` (<f32>[n, *feature_shape]) with the fitted statistics."""
        x = np.asarray(x, dtype=np.float32)
        if x.shape[1:] != self.shift.shape:
            raise ValueError(f'Scaler.transform: expected features of shape {self.shift.shape}, '
                             f'got array of shape {x.shape}')
        return ((x - self.shift) / self.scale).astype(np.float32)

    def inverse_transform(self, z):
        """Undo `transform`: `z * scale + shift`."""
        z = np.asarray(z, dtype=np.float32)
        if z.shape[1:] != self.shift.shape:
            raise ValueError(f'Scaler.inverse_transform: expected features of shape '
                             f'{self.shift.shape}, got array of shape {z.shape}')
        return (z * self.scale + self.shift).astype(np.float32)


def _as_train(x, fn):
    x = np.asarray(x)
    if x.ndim < 1 or x.shape[0] < 1:
        raise ValueError(f'{fn}: expected training data <f32>[n, ...] with n >= 1, got shape '
                         f'{x.shape}')
    if not np.issubdtype(x.dtype, np.number):
        raise TypeError(f'{fn}: expected numeric data, got dtype {x.dtype}')
    return x.astype(np.float64)


def standardize(x_train) -> Scaler:
    """Fit a zero-mean, unit-variance scaler per feature on the training split.

    Args:
        x_train: <f32>[n, *features] training inputs (or <f32>[n] targets).

    Returns:
        A `Scaler` with shift = mean and scale = population standard deviation (ddof=0).
    """
    x = _as_train(x_train, 'standardize')
    std = x.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return Scaler('standardize', x.mean(axis=0).astype(np.float32), std.astype(np.float32))


def min_max(x_train) -> Scaler:
    """Fit a scaler mapping each feature's training range onto [0, 1].

    Args:
        x_train: <f32>[n, *features] training inputs.

    Returns:
        A `Scaler` with shift = min and scale = max - min.
    """
    x = _as_train(x_train, 'min_max')
    lo, hi = x.min(axis=0), x.max(axis=0)
    rng = np.where(hi > lo, hi - lo, 1.0)
    return Scaler('min_max', lo.astype(np.float32), rng.astype(np.float32))


def one_hot(labels, n_classes: int, dtype=np.float32):
    """One-hot encode integer labels.

    Args:
        labels: <int>[*shape] class ids in [0, n_classes).
        n_classes: number of classes.

    Returns:
        <f32>[*shape, n_classes].
    """
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f'one_hot: expected integer labels, got dtype {labels.dtype}')
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f'one_hot: labels must lie in [0, {n_classes}), got range '
                         f'[{labels.min()}, {labels.max()}]')
    return (labels[..., None] == np.arange(n_classes)).astype(dtype)


def train_val_split(x, y=None, *, validation=0.1, seed: int = 0, stratify: bool = False):
    """Split arrays into a training and a validation part by a seeded permutation.

    Args:
        x: <any>[n, ...] inputs.
        y: optional <any>[n, ...] targets with the same first axis.
        validation: fraction in (0, 1) or int count held out.
        seed: permutation seed.
        stratify: keep each class's share (y must be integer labels).

    Returns:
        (x_train, y_train, x_val, y_val), y parts None when y is None. Row order within each
        part follows the original order.
    """
    from .core import _n_holdout
    x = np.asarray(x)
    n = len(x)
    if y is not None and len(y) != n:
        raise ValueError(f'train_val_split: x has {n} rows but y has {len(y)}')
    k = _n_holdout(validation, n, 'train_val_split')
    rng = np.random.default_rng(seed)
    if stratify:
        if y is None:
            raise ValueError('train_val_split: stratify=True needs labels y')
        y_arr = np.asarray(y)
        val = []
        for c in np.unique(y_arr):
            idx = np.flatnonzero(y_arr == c)
            kc = int(round(k * len(idx) / n))
            val.append(rng.permutation(idx)[:kc])
        val_idx = np.sort(np.concatenate(val))
    else:
        val_idx = np.sort(rng.permutation(n)[:k])
    mask = np.ones(n, bool)
    mask[val_idx] = False
    tr_idx = np.flatnonzero(mask)
    if y is None:
        return x[tr_idx], None, x[val_idx], None
    y = np.asarray(y)
    return x[tr_idx], y[tr_idx], x[val_idx], y[val_idx]
