"""Datasets that ship with installed packages: MNIST-1D (generated), 8x8 digits, diabetes.

Nothing here touches the network. MNIST-1D is produced by the `mnist1d` package's own
`make_dataset` (never its downloader) and cached as .npz in the cache directory under a key of
its arguments, because generating it takes a few seconds.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import random
import tempfile
import zipfile

import numpy as np

from . import limits
from .core import Dataset, cache_dir, check_bool, make_meta, positive_int, register
from .preprocessing import standardize, train_val_split

# The published MNIST-1D arguments (mnist1d.data.get_dataset_args, without the download url);
# a test checks they equal the installed package's defaults.
MNIST1D_ARGS = {
    'num_samples': 5000, 'train_split': 0.8, 'template_len': 12, 'padding': [36, 60],
    'scale_coeff': 0.4, 'max_translation': 48, 'corr_noise_scale': 0.25,
    'iid_noise_scale': 2e-2, 'shear_scale': 0.75, 'shuffle_seq': False,
    'final_seq_length': 40, 'seed': 42,
}


# the arrays `_mnist1d_generate` returns and the cache holds
_MNIST1D_KEYS = ('x', 'y', 'x_test', 'y_test', 't')


def _mnist1d_generate(args: dict) -> dict:
    """Run mnist1d's generator, leaving the global NumPy / random state as it was."""
    from mnist1d.data import make_dataset
    from mnist1d.utils import ObjectView
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        d = make_dataset(ObjectView(dict(args)))
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {'x': d['x'].astype(np.float32), 'y': d['y'].astype(np.int32),
            'x_test': d['x_test'].astype(np.float32), 'y_test': d['y_test'].astype(np.int32),
            't': np.asarray(d['t'], np.float32)}


def atomic_save_npz(path, **arrays) -> None:
    """Write an .npz through a temporary file and a rename, so readers never see half a file."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@register('mnist1d')
def load_mnist1d(*, args: dict | None = None, channel_axis: bool = False,
                 cache: bool = True) -> Dataset:
    """MNIST-1D: 10 classes of 1-D signals of length 40 (Greydanus & Steinbach, 2020/2024).

    Source: the `mnist1d` package's `make_dataset` with the published default arguments
    (`get_dataset_args`): 4000 train / 1000 test examples, identical to the published
    `mnist1d_data.pkl` (first ten training labels 2 6 4 5 6 6 6 0 3 1). License: Apache-2.0
    (github.com/greydanus/mnist1d).

    Args:
        args: overrides of `MNIST1D_ARGS` (e.g. {'num_samples': 500} for a small, different
            dataset); unknown keys raise ValueError.
        channel_axis: return x as <f32>[n, 40, 1] instead of <f32>[n, 40].
        cache: read/write the generated arrays under `cache_dir()/mnist1d/<key>.npz`, the key
            hashing the arguments and the mnist1d version.

    Returns:
        Dataset with x <f32>[n, 40], y <int32>[n]; meta 't' <f32>[40] is the signal's time axis.
    """
    fn = 'load_mnist1d'
    check_bool(channel_axis, 'channel_axis', fn)
    check_bool(cache, 'cache', fn)
    if args is not None and not isinstance(args, dict):
        raise TypeError(f'{fn}: args must be a dict of mnist1d arguments, got '
                        f'{type(args).__name__} {args!r}')
    full = dict(MNIST1D_ARGS)
    for k, v in (args or {}).items():
        if k not in full:
            raise ValueError(f'{fn}: unknown mnist1d argument {k!r}; known: {sorted(full)}')
        full[k] = v
    n = positive_int(full['num_samples'], "args['num_samples']", fn)
    length = positive_int(full['final_seq_length'], "args['final_seq_length']", fn)
    limits.check_array_bytes(fn, 'the generated signals', (n, length))
    # the package version is part of the key: a changed generator must not hit an old cache
    version = importlib.metadata.version('mnist1d')
    key = hashlib.sha256(json.dumps([full, version], sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / 'mnist1d' / f'mnist1d_{key}.npz'
    d = None
    if cache and path.exists():
        try:
            with np.load(path) as z:
                d = {k: z[k] for k in _MNIST1D_KEYS}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
            d = None  # a damaged cache (cut short, foreign, missing arrays) is regenerated
    if d is None:
        d = _mnist1d_generate(full)
        if cache:
            atomic_save_npz(path, **d)
    x, xt = d['x'], d['x_test']
    if channel_axis:
        x, xt = x[..., None], xt[..., None]
    meta = make_meta('mnist1d', 'classification',
                     'mnist1d package make_dataset (Greydanus & Steinbach, "Scaling down deep '
                     'learning with MNIST-1D", ICML 2024)', 'Apache-2.0',
                     n_classes=10, input_shape=tuple(x.shape[1:]), t=d['t'], args=full)
    return Dataset(x, d['y'], xt, d['y_test'], meta=meta)


def _sklearn_data_file(name: str) -> str:
    """Path of a data file bundled with scikit-learn, found without importing sklearn (whose
    import alone takes over a second here)."""
    spec = importlib.util.find_spec('sklearn')
    if spec is None or not spec.submodule_search_locations:
        raise ImportError('the digits and diabetes datasets need scikit-learn installed')
    return os.path.join(spec.submodule_search_locations[0], 'datasets', 'data', name)


def _read_csv_gz(name: str, delimiter) -> np.ndarray:
    with gzip.open(_sklearn_data_file(name), 'rt') as f:
        return np.loadtxt(f, delimiter=delimiter, dtype=np.float64)


DIABETES_FEATURES = ['age', 'sex', 'bmi', 'bp', 's1', 's2', 's3', 's4', 's5', 's6']


@register('digits')
def load_digits(*, test_fraction: float = 0.2, seed: int = 0, stratify: bool = True,
                flatten: bool = False) -> Dataset:
    """8x8 handwritten digits bundled with scikit-learn (1797 images, 10 classes).

    Source: UCI "Optical Recognition of Handwritten Digits" (Alpaydin & Kaynak, 1998) as
    shipped with scikit-learn (`sklearn/datasets/data/digits.csv.gz`, the same
    arrays `sklearn.datasets.load_digits` returns). License: CC BY 4.0 (UCI); scikit-learn BSD-3.

    Args:
        test_fraction: share of images held out as test (seeded, stratified by class).
        seed: split seed.
        stratify: keep class shares equal in both splits.
        flatten: return x as <f32>[n, 64] instead of <f32>[n, 8, 8, 1].

    Returns:
        Dataset with x <f32>[n, 8, 8, 1] in [0, 1] (pixel / 16), y <int32>[n].
    """
    check_bool(stratify, 'stratify', 'load_digits')
    check_bool(flatten, 'flatten', 'load_digits')
    raw = _read_csv_gz('digits.csv.gz', ',')  # 64 pixels (0..16) then the label per row
    x = (raw[:, :64].reshape(-1, 8, 8).astype(np.float32) / 16.0)[..., None]
    y = raw[:, 64].astype(np.int32)
    if flatten:
        x = x.reshape(len(x), -1)
    x_tr, y_tr, x_te, y_te = train_val_split(x, y, validation=test_fraction, seed=seed,
                                             stratify=stratify)
    meta = make_meta('digits', 'classification',
                     'sklearn.datasets.load_digits (UCI Optical Recognition of Handwritten '
                     'Digits, Alpaydin & Kaynak 1998)', 'CC BY 4.0',
                     n_classes=10, input_shape=tuple(x.shape[1:]))
    return Dataset(x_tr, y_tr, x_te, y_te, meta=meta)


@register('diabetes')
def load_diabetes(*, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """Diabetes regression (442 patients, 10 baseline features, disease progression after a
    year) bundled with scikit-learn.

    Source: Efron, Hastie, Johnstone & Tibshirani, "Least Angle Regression", Annals of
    Statistics 2004, the raw (unscaled) files shipped with scikit-learn, equal to
    `sklearn.datasets.load_diabetes(scaled=False)`. License: distributed
    with scikit-learn (BSD-3-Clause); original data published with the paper.

    Features and the target are standardized with scalers fitted on the training split only;
    `meta['scalers']` = {'x': Scaler, 'y': Scaler} undoes it
    (`meta['scalers']['y'].inverse_transform(pred[:, None])[:, 0]`).

    Returns:
        Dataset with x <f32>[n, 10], y <f32>[n] (both standardized).
    """
    x = _read_csv_gz('diabetes_data_raw.csv.gz', None).astype(np.float32)
    y = _read_csv_gz('diabetes_target.csv.gz', None).astype(np.float32)
    x_tr, y_tr, x_te, y_te = train_val_split(x, y, validation=test_fraction, seed=seed)
    sx, sy = standardize(x_tr), standardize(y_tr[:, None])
    meta = make_meta('diabetes', 'regression',
                     'sklearn.datasets.load_diabetes (Efron et al., Least Angle Regression, '
                     '2004)', 'BSD-3-Clause (scikit-learn distribution)',
                     input_shape=(10,), feature_names=list(DIABETES_FEATURES),
                     scalers={'x': sx, 'y': sy})
    return Dataset(sx.transform(x_tr), sy.transform(y_tr[:, None])[:, 0],
                   sx.transform(x_te), sy.transform(y_te[:, None])[:, 0], meta=meta)
