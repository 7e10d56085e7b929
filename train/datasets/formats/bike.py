"""The UCI bike-sharing ``hour.csv`` (the course's first project)."""

from __future__ import annotations

import csv
import datetime
import io
from pathlib import Path

import numpy as np

from .. import download as dl
from ..core import Dataset, check_bool, make_meta, positive_int, register
from ..preprocessing import one_hot, standardize
from .files import find, given_file, read_text

BIKE_COLUMNS = ['instant', 'dteday', 'season', 'yr', 'mnth', 'hr', 'holiday', 'weekday',
                'workingday', 'weathersit', 'temp', 'atemp', 'hum', 'windspeed', 'casual',
                'registered', 'cnt']
# one-hot columns and their category values (fixed, so the layout never depends on the data)
BIKE_DUMMIES = {'season': range(1, 5), 'weathersit': range(1, 5), 'mnth': range(1, 13),
                'hr': range(24), 'weekday': range(7)}
# columns of whole numbers (category codes and flags); a fraction there is a damaged file
BIKE_INTEGER = ('yr', 'holiday', 'workingday', *BIKE_DUMMIES)
BIKE_DROP = ('instant', 'dteday', 'atemp', 'workingday')
BIKE_STANDARDIZE = ('casual', 'registered', 'cnt', 'temp', 'hum', 'windspeed')
BIKE_TARGETS = ('cnt', 'casual', 'registered')


def read_bike_csv(path) -> dict[str, np.ndarray]:
    """Read UCI bike-sharing `hour.csv` into columns (dteday as str, the rest float64).

    The file is UTF-8 (a byte-order mark is allowed) of at most `limits.MAX_TEXT_BYTES`.

    Raises:
        ValueError: naming the file (and line) for a file too large or not UTF-8, malformed
            CSV (e.g. a field over csv's 128 KiB limit), an empty file, missing columns, a
            short row, a non-numeric, non-finite (nan, inf) or beyond float32's range or, in a
            category column (`BIKE_INTEGER`), non-integer value, a category out of range, or
            a bad date.
    """
    path = Path(path)
    reader = csv.reader(io.StringIO(read_text(path, 'utf-8', 'CSV'), newline=''))
    try:
        cols, lines = _bike_columns(path, reader)
    except csv.Error as e:
        raise ValueError(f'{path}:{reader.line_num}: malformed CSV ({e})') from None
    out = {'dteday': np.array(cols['dteday'])}
    for c in BIKE_COLUMNS:
        if c != 'dteday':
            out[c] = _bike_numbers(path, c, cols[c], lines)
    for d in np.unique(out['dteday']):
        try:
            datetime.date.fromisoformat(str(d))
        except ValueError:
            raise ValueError(f'{path}: dteday {str(d)!r} is not a YYYY-MM-DD date') from None
    for c, values in BIKE_DUMMIES.items():
        bad = np.flatnonzero(~np.isin(out[c], list(values)))
        if bad.size:
            outside = sorted({int(v) for v in out[c][bad]})   # whole and finite by now
            raise ValueError(f'{path}:{lines[bad[0]]}: column {c!r} has values {outside} '
                             f'outside {list(values)} (first at this line)')
    return out


def _bike_columns(path: Path, reader) -> tuple[dict[str, list[str]], list[int]]:
    """The BIKE_COLUMNS fields of every row as strings, and each row's file line."""
    try:
        header = next(reader)
    except StopIteration:
        raise ValueError(f'{path}: empty CSV file') from None
    header = [h.strip() for h in header]
    missing = [c for c in BIKE_COLUMNS if c not in header]
    if missing:
        raise ValueError(f'{path}: CSV is missing column(s) {missing}; expected the UCI '
                         f'hour.csv columns {BIKE_COLUMNS}')
    idx = {c: header.index(c) for c in BIKE_COLUMNS}
    cols = {c: [] for c in BIKE_COLUMNS}
    lines = []      # the file line of each row, for messages
    for row in reader:
        if not row:
            continue
        if len(row) != len(header):
            raise ValueError(f'{path}:{reader.line_num}: {len(row)} fields, header has '
                             f'{len(header)}')
        lines.append(reader.line_num)
        for c, i in idx.items():
            cols[c].append(row[i].strip())
    if not cols['cnt']:
        raise ValueError(f'{path}: CSV has a header but no rows')
    return cols, lines


_F32_MAX = float(np.finfo(np.float32).max)


def _bike_numbers(path: Path, c: str, values: list[str], lines: list[int]) -> np.ndarray:
    """Column `c` as float64 after checking every value: numeric, finite, representable in
    float32 (the arrays the loader returns) and, for category columns, whole."""
    try:
        out = np.array(values, dtype=np.float64)
    except ValueError:
        bad = next(i for i, v in enumerate(values) if not _is_float(v))
        raise ValueError(f'{path}:{lines[bad]}: column {c!r} has non-numeric value '
                         f'{values[bad]!r}') from None
    bad = np.flatnonzero(~np.isfinite(out))
    if bad.size:
        raise ValueError(f'{path}:{lines[bad[0]]}: column {c!r} has non-finite value '
                         f'{values[bad[0]]!r}')
    bad = np.flatnonzero(np.abs(out) > _F32_MAX)
    if bad.size:
        raise ValueError(f'{path}:{lines[bad[0]]}: column {c!r} has value {values[bad[0]]!r}, '
                         f'beyond the float32 range (magnitude at most {_F32_MAX:.8g})')
    if c in BIKE_INTEGER:
        bad = np.flatnonzero(out != np.round(out))
        if bad.size:
            raise ValueError(f'{path}:{lines[bad[0]]}: column {c!r} has non-integer '
                             f'value {values[bad[0]]!r} (expected a whole-number code)')
    return out


def _is_float(v):
    try:
        float(v)
        return True
    except ValueError:
        return False


def bike_split_options(targets, test_days, val_days, fn: str):
    """`(targets tuple, test_days, val_days)` checked, for the bike-sharing loaders."""
    if not isinstance(targets, (str, list, tuple)):
        raise TypeError(f'{fn}: targets must be a column name or a list of them, got '
                        f'{type(targets).__name__} {targets!r}')
    targets = (targets,) if isinstance(targets, str) else tuple(targets)
    if not targets or any(t not in BIKE_TARGETS for t in targets):
        raise ValueError(f'{fn}: targets must be among {BIKE_TARGETS}, got {targets}')
    return targets, positive_int(test_days, 'test_days', fn), positive_int(val_days,
                                                                          'val_days', fn)


@register('bike_sharing')
def load_bike_sharing(*, path=None, download: bool = False, targets=('cnt',),
                      test_days: int = 21, val_days: int = 60) -> Dataset:
    """UCI bike sharing, hourly (Fanaee-T & Gama 2013), with the preprocessing of the notes'
    first project (seed 001): one-hot season, weathersit, mnth, hr, weekday; drop instant,
    dteday, atemp, workingday; standardize casual, registered, cnt, temp, hum, windspeed;
    targets removed from the features; the last `test_days` days are the test split and the
    `val_days` days before them the validation split.

    Unlike the original project (which standardized with statistics of the whole file), the
    scalers are fitted on the training days only; `meta['scalers'][column]` undoes them, e.g.
    `meta['scalers']['cnt'].inverse_transform(pred[:, None])[:, 0]` gives rides per hour.

    Source: archive.ics.uci.edu/dataset/275/bike+sharing+dataset (hour.csv). License:
    CC BY 4.0.

    Args:
        path: hour.csv itself or a directory containing it (default: cache).
        targets: target columns (any of 'cnt', 'casual', 'registered').

    Returns:
        Dataset with x <f32>[n, 56] (yr, holiday, temp, hum, windspeed, then the one-hot
        blocks; names in meta['feature_names']) and y <f32>[n] (one target) or
        <f32>[n, len(targets)]; x_val/y_val set.
    """
    fn = 'load_bike_sharing'
    check_bool(download, 'download', fn)
    targets, test_days, val_days = bike_split_options(targets, test_days, val_days, fn)
    csv_path = given_file('bike_sharing', path, 'hour.csv or a directory holding it')
    if csv_path is None:
        directory = dl.dataset_dir('bike_sharing', path)
        csv_path = find(directory, ['hour.csv', 'Bike-Sharing-Dataset/hour.csv'],
                         'bike_sharing', download, path is not None)
    return bike_dataset(read_bike_csv(csv_path), name='bike_sharing',
                        source='UCI Bike Sharing Dataset, hour.csv (Fanaee-T & Gama 2013)',
                        license='CC BY 4.0', where=str(csv_path), targets=targets,
                        test_days=test_days, val_days=val_days)


def bike_dataset(cols: dict[str, np.ndarray], *, name: str, source: str, license: str,
                 where: str, targets=('cnt',), test_days: int = 21,
                 val_days: int = 60) -> Dataset:
    """The first project's preprocessing of hour.csv columns (`read_bike_csv`'s dict), shared
    by `load_bike_sharing` and the generated stand-in (`bike_sharing_synthetic`).

    `targets` is a tuple of `BIKE_TARGETS`; `where` names the data in messages.
    """
    fn = f'load_{name}'
    days = np.unique(cols['dteday'])  # ISO dates sort chronologically
    if len(days) <= test_days + val_days:
        raise ValueError(f'{fn}: {where} covers {len(days)} days; need more '
                         f'than test_days + val_days = {test_days + val_days}')
    test_set, val_set = set(days[-test_days:]), set(days[-test_days - val_days:-test_days])
    split = np.array([2 if d in test_set else 1 if d in val_set else 0
                      for d in cols['dteday']])
    train = split == 0
    scalers = {c: standardize(cols[c][train][:, None]) for c in BIKE_STANDARDIZE}
    scaled = {c: scalers[c].transform(cols[c][:, None])[:, 0] if c in scalers else cols[c]
              for c in BIKE_COLUMNS if c != 'dteday'}
    names, blocks = [], []
    for c in ('yr', 'holiday', 'temp', 'hum', 'windspeed'):
        names.append(c)
        blocks.append(scaled[c][:, None])
    for c, values in BIKE_DUMMIES.items():
        values = list(values)
        codes = np.searchsorted(values, cols[c].astype(int))
        blocks.append(one_hot(codes, len(values)))
        names += [f'{c}_{v}' for v in values]
    x = np.concatenate(blocks, axis=1).astype(np.float32)
    y = np.stack([scaled[t] for t in targets], axis=1).astype(np.float32)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError(f'{fn}: {where} has values too far apart to standardize in '
                         f'float32 (the scaled features or targets overflow)')
    if len(targets) == 1:
        y = y[:, 0]
    pick = lambda a, k: a[split == k]
    meta = make_meta(name, 'regression', source, license,
                     input_shape=(x.shape[1],), feature_names=names, targets=targets,
                     scalers={c: scalers[c] for c in BIKE_STANDARDIZE},
                     dteday_train=pick(cols['dteday'], 0), dteday_val=pick(cols['dteday'], 1),
                     dteday_test=pick(cols['dteday'], 2))
    return Dataset(pick(x, 0), pick(y, 0), pick(x, 2), pick(y, 2), pick(x, 1), pick(y, 1),
                   meta=meta)
