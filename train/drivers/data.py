"""A run's data: loading it by name, describing it to a model, and refusing a misfit early.

Before anything is built, :func:`check_data` makes sure the dataset fits the model: its kind
(class labels for classifiers, real-valued targets for regressors, per-step targets, token
streams, parallel corpora, images) fits the entry's task, and one example's input shape is one
the model reads (the model module's ``INPUTS``, a ``zoo.data_info.Inputs``; e.g. the perceptron
takes feature vectors, the autoencoder images); :func:`check_trace` then traces the entry's
loss on two examples. A misfit is one :class:`train.errors.UsageError`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from train.errors import UsageError, unknown

__all__ = ["load_data", "data_info", "check_data", "check_trace", "split", "TASK_NEEDS",
           "choose_dataset", "real_files_present"]


def load_data(name: str, options: Mapping[str, Any] | None = None):
    """``train.datasets.load(name, **options)``, with unknown names and bad options (unknown
    ones included) or files as :class:`UsageError`."""
    from train import datasets

    if name not in datasets.names():
        raise unknown("dataset", name, datasets.names())
    try:
        return datasets.load(name, **dict(options or {}))
    except (ValueError, TypeError, FileNotFoundError) as e:
        raise UsageError(f"dataset {name!r}: {e}") from e


def real_files_present(name: str) -> bool:
    """Whether the cache folder of real dataset ``name`` (``train.datasets.download.
    dataset_dir``) holds any file other than hidden ones (``.DS_Store``): the test ``zoo
    train`` uses to pick a stand-in. A folder with some of the files is not a stand-in's
    case: loading it names the missing ones."""
    from train.datasets import download

    folder = download.dataset_dir(name)
    return folder.is_dir() and any(p.is_file() and not p.name.startswith(".")
                                   for p in folder.rglob("*"))


def choose_dataset(spec, options: Mapping[str, Any]) -> tuple[str, dict, str | None]:
    """``(dataset, options, note)`` of a ``zoo train NAME`` run without ``--dataset``.

    The entry's own dataset, unless the entry names a stand-in (``spec.standin``), no
    ``path`` option points at files and :func:`real_files_present` finds nothing in the real
    dataset's cache folder: then the stand-in, with the same options (a stand-in takes the
    real loader's spelling of the options it shares), and a note saying so and where the
    real files go.
    """
    options = dict(options)
    if spec.standin is None or "path" in options or real_files_present(spec.dataset):
        return spec.dataset, options, None
    from train.datasets import download

    note = (f"no {spec.dataset} files in {download.dataset_dir(spec.dataset)}: training on "
            f"the generated stand-in {spec.standin!r} (put the real files there, or pass "
            f"--data-option path=..., to train on them)")
    return spec.standin, options, note


def data_info(ds):
    """``zoo.data_info.DataInfo`` of a ``train.datasets.Dataset``."""
    from zoo.data_info import DataInfo

    y = np.asarray(ds.y_train) if ds.y_train is not None else None
    n_classes = ds.meta.get("n_classes")
    if n_classes is None and y is not None and np.issubdtype(y.dtype, np.integer):
        n_classes = int(y.max()) + 1
    n_targets = None
    if n_classes is None and y is not None:
        n_targets = 1 if y.ndim == 1 else int(np.prod(y.shape[1:]))
    return DataInfo(input_shape=tuple(np.shape(ds.x_train)[1:]), n_classes=n_classes,
                    n_targets=n_targets, name=str(ds.meta.get("name", "")))


def split(ds, which: str) -> dict | None:
    """``{'x', 'y'}`` (or ``{'x'}``) of split ``which`` ('train', 'val', 'test'), or None."""
    x, y = getattr(ds, f"x_{which}"), getattr(ds, f"y_{which}")
    if x is None:
        return None
    return {"x": x} if y is None else {"x": x, "y": y}


def _is_int(a) -> bool:
    return np.issubdtype(np.asarray(a).dtype, np.integer)


def _is_float(a) -> bool:
    return np.issubdtype(np.asarray(a).dtype, np.floating)


# What each task (``zoo.registry.TASKS``) needs of a dataset: (test, the words for it).
TASK_NEEDS: dict[str, tuple[Callable, str]] = {
    "classification": (lambda x, y, meta: y is not None and _is_int(y) and y.ndim == 1,
                       "one integer class label per example (y <int>[n])"),
    "regression": (lambda x, y, meta: y is not None and _is_float(y),
                   "real-valued targets (y <float>[n] or [n, targets])"),
    "sequence": (lambda x, y, meta: y is not None and x.ndim >= 2 and y.ndim >= 2
                 and y.shape[:2] == x.shape[:2],
                 "per-step targets (x [n, time, ...] and y [n, time, ...])"),
    "reconstruction": (lambda x, y, meta: _is_float(x) and x.ndim >= 2,
                       "real-valued examples (x <float>[n, ...])"),
    "generation": (lambda x, y, meta: (_is_float(x) and x.ndim >= 2)
                   or (_is_int(x) and x.ndim == 1 and "vocab" in meta),
                   "real-valued examples (x <float>[n, ...]) or a token stream "
                   "(x <int>[n_tokens] with meta['vocab'])"),
    "translation": (lambda x, y, meta: y is not None and "source_vocab" in meta
                    and "target_vocab" in meta,
                    "a parallel corpus (source ids x, target ids y, meta['source_vocab'] and "
                    "meta['target_vocab']; e.g. dates or parallel)"),
    "embedding": (lambda x, y, meta: _is_int(x) and x.ndim == 1 and "vocab" in meta,
                  "a stream of word ids (x <int>[n_words] with meta['vocab']; e.g. "
                  "word_corpus or text8)"),
}


def _array_text(a) -> str:
    a = np.asarray(a)
    return f"<{a.dtype}>{list(a.shape)}"


def _data_text(ds) -> str:
    """``task 'translation': x <int32>[10000, 32], y <int32>[10000, 12]``."""
    y = "none" if ds.y_train is None else _array_text(ds.y_train)
    return f"task {ds.meta.get('task')!r}: x {_array_text(ds.x_train)}, y {y}"


def check_data(spec, dataset: str, ds) -> None:
    """Refuse a dataset the model cannot use, before anything is built or trained.

    Two tests: the dataset's kind fits the entry's task (:data:`TASK_NEEDS`: class labels for
    'classification', real-valued targets for 'regression', ...), and one example's input is
    a shape and kind the model's module reads (its ``INPUTS``, when it declares them).

    Raises:
        UsageError: ``model 'X' cannot use dataset 'Y': <what it needs>; <what Y has>``.
    """
    x = np.asarray(ds.x_train)
    y = None if ds.y_train is None else np.asarray(ds.y_train)
    need = TASK_NEEDS.get(spec.task)
    problem = None
    if need is not None and not need[0](x, y, ds.meta):
        article = "an" if spec.task[0] in "aeiou" else "a"
        problem = f"{article} {spec.task} model needs {need[1]}"
    inputs = getattr(spec.module, "INPUTS", None)
    if problem is None and inputs is not None and not inputs.accepts(x):
        problem = f"{spec.name} reads {inputs.words}"
    if problem is not None:
        raise UsageError(f"model {spec.name!r} cannot use dataset {dataset!r}: {problem}; "
                         f"the dataset has {_data_text(ds)}")


def check_trace(spec, dataset: str, ds, cfg, params, model_state) -> None:
    """Trace the entry's training loss (and, for classifiers, its output) on two examples
    without computing anything: shape errors surface here as one :class:`UsageError`
    instead of a traceback from inside the first compiled step."""
    import jax

    n = min(2, len(ds.x_train))
    if n == 0:
        return
    batch = {"x": np.asarray(ds.x_train[:n])}
    if ds.y_train is not None:
        batch["y"] = np.asarray(ds.y_train[:n])
    module = spec.module
    fail = f"model {spec.name!r} cannot use dataset {dataset!r}"
    try:
        jax.eval_shape(lambda p, s, b: module.loss(p, s, b, jax.random.PRNGKey(0), cfg,
                                                   train=True), params, model_state, batch)
        if spec.task != "classification":
            return
        out = jax.eval_shape(lambda p, s, x: module.apply(p, x, cfg, state=s), params,
                             model_state, batch["x"])
    except (ValueError, TypeError, IndexError) as e:
        raise UsageError(f"{fail}: {str(e).splitlines()[0] if str(e) else type(e).__name__}; "
                         f"the dataset has {_data_text(ds)}") from e
    out = jax.tree.leaves(out)[0]
    n_classes = data_info(ds).n_classes or 0
    k = 1 if len(out.shape) == 1 else out.shape[-1]
    if (k == 1 and n_classes > 2) or (k > 1 and k < n_classes):
        what = "one binary decision" if k == 1 else f"{k} class scores"
        raise UsageError(f"{fail}: the model outputs {what} per example but the dataset has "
                         f"{n_classes} classes")


def model_config(spec, dataset: str, ds):
    """The entry's config sized for ``ds`` (``spec.make_config(data_info(ds))``), a config
    the data cannot fit being a :class:`UsageError`."""
    try:
        return spec.make_config(data_info(ds))
    except ValueError as e:
        raise UsageError(f"model {spec.name!r} cannot use dataset {dataset!r}: {e}") from e
