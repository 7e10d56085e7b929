"""The one dataset API: a `Dataset` record, a registry of loaders, `load` and `names`.

Every loader is a function `loader(**options) -> Dataset` registered under a name with
`@register('name')`. `load` looks the name up, calls the loader, and, when asked, splits a
validation set off the training split (seeded), so every dataset gets the same option.

Per-example metadata that must follow a split lives in `meta` under keys ending in `_train`,
`_test`, `_val` (e.g. `meta['lengths_train']` for the adding problem); `load` splits those
together with `x_train` and `y_train`.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

TASKS = ('classification', 'regression', 'sequence', 'text', 'translation', 'words', 'images',
         'density')


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """Arrays of one dataset plus its metadata.

    Inputs are float32 (or int32 token ids), class labels int32, all NumPy arrays with the
    example axis first. `x_val`/`y_val` are None unless the loader makes a validation split or
    `load(..., validation=...)` asked for one. `y_*` may be None for unsupervised corpora
    (task 'text' or 'words': the ids are the data).

    Attributes:
        x_train, y_train, x_test, y_test: the splits.
        x_val, y_val: the validation split or None.
        meta: dict with at least 'name', 'task' (one of `TASKS`), 'source', 'license'; where
            relevant 'n_classes', 'input_shape', 'vocab' (a `Vocabulary`), 'scalers'.
    """

    x_train: Any
    y_train: Any
    x_test: Any
    y_test: Any
    x_val: Any = None
    y_val: Any = None
    meta: dict = dataclasses.field(default_factory=dict)

    def __repr__(self) -> str:
        def shape(a):
            return None if a is None else tuple(np.shape(a))
        parts = [f'{f}={shape(getattr(self, f))}' for f in
                 ('x_train', 'y_train', 'x_val', 'y_val', 'x_test', 'y_test')]
        return f"Dataset({self.meta.get('name')!r}, {', '.join(parts)})"


_REGISTRY: dict[str, Callable[..., Dataset]] = {}


def register(name: str):
    """Decorator adding `loader(**options) -> Dataset` to the registry under `name`."""
    def deco(fn):
        if name in _REGISTRY:
            raise ValueError(f'register: dataset name {name!r} is already registered')
        _REGISTRY[name] = fn
        return fn
    return deco


def names() -> list[str]:
    """Sorted names accepted by `load`."""
    return sorted(_REGISTRY)


def loader(name: str) -> Callable[..., Dataset]:
    """The registered loader for `name` (its docstring documents the options)."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(str(name), _REGISTRY, n=3, cutoff=0.5)
        hint = f'; did you mean {", ".join(map(repr, close))}?' if close else ''
        raise ValueError(f'load: unknown dataset {name!r}{hint} Known: {", ".join(names())}')
    return _REGISTRY[name]


def load(name: str, *, validation: float | int | None = None, validation_seed: int = 0,
         **options) -> Dataset:
    """Load a dataset by name.

    Args:
        name: one of `names()`.
        validation: a fraction in (0, 1) or a count of training examples to hold out as the
            validation split (random rows, seeded by `validation_seed`; for the contiguous
            streams of tasks 'text' and 'words' the last part of the stream). None keeps the
            loader's own validation split, if any.
        validation_seed: seed of the validation permutation.
        **options: passed to the dataset's loader (see `loader(name).__doc__`).

    Returns:
        A `Dataset`.

    Raises:
        ValueError: unknown name (with close matches), bad option values, or a validation
            request on a dataset that already has a validation split.
        TypeError: an option the loader does not have (the message lists those it has).
    """
    fn = loader(name)
    _check_options(fn, name, options)
    ds = fn(**options)
    _check(ds, name)
    if validation is None:
        return ds
    if ds.x_val is not None:
        raise ValueError(f'load: dataset {name!r} already has a validation split; '
                         f'got validation={validation!r}')
    return split_validation(ds, validation, seed=validation_seed)


def _check_options(fn: Callable, name: str, options: dict) -> None:
    """A TypeError naming the dataset and its options for an option `fn` does not take."""
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    known = [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    unknown = [k for k in options if k not in known]
    if unknown:
        close = difflib.get_close_matches(unknown[0], known, n=1, cutoff=0.6)
        hint = f' (did you mean {close[0]!r}?)' if close else ''
        listed = ', '.join(known + ['validation', 'validation_seed'])
        raise TypeError(f'load: dataset {name!r} has no option {unknown[0]!r}{hint}; its '
                        f'options: {listed}')


def _check(ds: Dataset, name: str) -> None:
    for key in ('name', 'task', 'source', 'license'):
        if key not in ds.meta:
            raise AssertionError(f'load: loader for {name!r} returned meta without {key!r}')
    if ds.meta['task'] not in TASKS:
        raise AssertionError(f"load: loader for {name!r} returned task {ds.meta['task']!r}")


def _n_holdout(validation, n: int, fn: str) -> int:
    if isinstance(validation, (bool, np.bool_)):
        raise TypeError(f'{fn}: validation must be a fraction or a count, got {validation!r}')
    if isinstance(validation, (int, np.integer)):
        k = int(validation)
    elif isinstance(validation, (float, np.floating)) and 0.0 < validation < 1.0:
        k = int(round(float(validation) * n))
    else:
        raise ValueError(f'{fn}: validation must be a fraction in (0, 1) or an int count, '
                         f'got {validation!r}')
    if not 0 < k < n:
        raise ValueError(f'{fn}: validation={validation!r} holds out {k} of {n} training '
                         f'examples; need at least one in each split')
    return k


def split_validation(ds: Dataset, validation: float | int, *, seed: int = 0) -> Dataset:
    """Hold out part of `ds`'s training split as its validation split.

    Random rows (seeded) for example-indexed data; the tail of the stream for tasks 'text'
    and 'words', whose `x_train` is one long id sequence. Metadata keys ending in '_train'
    whose first axis has the training length are split the same way into '_val' keys.
    """
    n = len(ds.x_train)
    k = _n_holdout(validation, n, 'split_validation')
    if ds.meta['task'] in ('text', 'words'):
        train_idx, val_idx = np.arange(n - k), np.arange(n - k, n)
    else:
        perm = np.random.default_rng(seed).permutation(n)
        train_idx, val_idx = np.sort(perm[k:]), np.sort(perm[:k])

    def take(a, idx):
        if a is None:
            return None
        if isinstance(a, list):
            return [a[i] for i in idx]
        return np.asarray(a)[idx]

    meta = dict(ds.meta)
    for key, value in ds.meta.items():
        if key.endswith('_train') and _first_len(value) == n:
            base = key[:-len('_train')]
            meta[key] = take(value, train_idx)
            meta[base + '_val'] = take(value, val_idx)
    if 'text_train' in meta and isinstance(meta['text_train'], str) and \
            ds.meta['task'] == 'text':
        text = ds.meta['text_train']
        meta['text_train'], meta['text_val'] = text[:n - k], text[n - k:]
    return dataclasses.replace(
        ds, x_train=take(ds.x_train, train_idx), y_train=take(ds.y_train, train_idx),
        x_val=take(ds.x_train, val_idx),
        y_val=take(ds.y_train, val_idx), meta=meta)


def _first_len(value) -> int | None:
    if isinstance(value, np.ndarray) and value.ndim >= 1:
        return value.shape[0]
    if isinstance(value, list):
        return len(value)
    return None


def cache_dir() -> Path:
    """Where real datasets and generated caches live.

    `$JAXZOO_DATA` if set, else `$XDG_CACHE_HOME/jaxzoo`, else `~/.cache/jaxzoo`.
    """
    env = os.environ.get('JAXZOO_DATA')
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get('XDG_CACHE_HOME')
    base = Path(xdg).expanduser() if xdg else Path.home() / '.cache'
    return base / 'jaxzoo'


def make_meta(name: str, task: str, source: str, license: str, **extra) -> dict:
    """The metadata dict every loader returns (checked by `load`)."""
    if task not in TASKS:
        raise ValueError(f'make_meta: task must be one of {TASKS}, got {task!r}')
    return {'name': name, 'task': task, 'source': source, 'license': license, **extra}


def rng_for(seed, fn: str) -> np.random.Generator:
    """A NumPy Generator from an int seed, with a clear error for anything else."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f'{fn}: seed must be an int, got {type(seed).__name__} {seed!r}')
    return np.random.default_rng(int(seed))


def positive_int(value, what: str, fn: str, minimum: int = 1) -> int:
    """`value` as an int >= minimum, or a ValueError naming the function and option."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f'{fn}: {what} must be an int, got {type(value).__name__} {value!r}')
    if value < minimum:
        raise ValueError(f'{fn}: {what} must be >= {minimum}, got {value}')
    return int(value)


def check_bool(value, what: str, fn: str) -> bool:
    """`value` if it is a bool; a TypeError naming the function and option otherwise (a list
    or a string would otherwise pass silently as true)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f'{fn}: {what} must be true or false, got {type(value).__name__} '
                        f'{value!r}')
    return bool(value)


def fraction(value, what: str, fn: str) -> float:
    """`value` as a float strictly between 0 and 1, or a TypeError / ValueError naming the
    function and option."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                     np.floating)):
        raise TypeError(f'{fn}: {what} must be a number in (0, 1), got '
                        f'{type(value).__name__} {value!r}')
    if not 0 < value < 1:
        raise ValueError(f'{fn}: {what} must lie in (0, 1), got {value}')
    return float(value)

