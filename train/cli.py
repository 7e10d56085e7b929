"""The ``zoo`` command: list the zoo, train a model on its embedded default data, evaluate it.

    zoo list
    zoo train NAME [--dataset D] [--optimizer O] [--lr X] [--schedule S] [--weight-decay W]
                   [--batch-size B] [--epochs E] [--seed S] [--out DIR] [--resume] [--quiet]
    zoo eval NAME --checkpoint DIR
    zoo sample NAME --checkpoint DIR [--prime TEXT] [--length N] [--temperature T]
                    [--top-k K] [--seed S]
    zoo gradients [--out DIR]
    zoo translate --checkpoint DIR [--beam K] [--alpha A] [--all] "some input" ...

``zoo train`` writes into ``--out`` (default ``runs/NAME``): ``summary.json`` (final train and
test metrics: ``train_loss`` and ``test_loss`` always, ``train_accuracy`` and
``test_accuracy`` for classifiers), ``metrics.jsonl`` (one line per epoch: the epoch's
training means, and ``val_*`` metrics on the validation split -- on the *test* split when
the dataset has no validation split, as mnist1d and digits have none), ``loss.png`` (the
loss curve), ``checkpoints/`` (``train.checkpoint``, with the data settings a resume must
keep; one every ``max(1, epochs // 5)`` epochs and after the last epoch, fresh or resumed:
:func:`checkpoint_cadence`; the last three are kept), ``run.json`` (the options, read back
by ``zoo eval`` and ``--resume``) and ``manifest.json`` (versions, config, parameter hash;
``train.manifest``). Entries with their own training function write these files too, with
their own checkpoint cadence (``zoo train transfer``: the pretraining on the source classes
is the logged, checkpointed and resumable part; see ``train.transfer``).

Before anything is built, :func:`check_data` makes sure the dataset fits the model: its kind
(class labels for classifiers, real-valued targets for regressors, per-step targets, token
streams, parallel corpora, images) fits the entry's task, and one example's input shape is
one the model reads (e.g. the perceptron takes feature vectors, the autoencoder images);
standard entries then trace their loss on two examples. A misfit is a usage error.

Bad input (an unknown model, dataset, dataset option or optimizer, a negative learning rate,
a dataset the model cannot use, an ``--out`` that is a file or cannot be created, a damaged
checkpoint, ...) prints one line ``zoo: error: ...`` (with the closest names for a misspelling)
and exits with status 2.

Extending: a registry entry may name its own ``train`` / ``evaluate`` / ``sample`` functions
(``zoo.registry.ModelSpec``), called as ``function(spec, options)`` with the
:class:`RunOptions` below; new subcommands are one ``(add_arguments, run)`` pair in
:data:`COMMANDS`. The helpers :func:`load_data`, :func:`check_data`, :func:`make_optimizer`,
:func:`evaluate`, :func:`train_model` and :func:`write_run_files` are public so custom
functions can reuse them. A model module new to the zoo can declare the inputs it reads in
:data:`MODEL_INPUTS`.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import importlib
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["RunOptions", "OPTIMIZERS", "SCHEDULES", "COMMANDS", "main", "build_parser",
           "load_data", "data_info", "check_data", "MODEL_INPUTS", "make_schedule",
           "make_optimizer", "takes_weight_decay",
           "steps_per_epoch", "entry_optimizer", "run_optimizer", "evaluate", "train_model",
           "evaluate_model", "write_run_files", "resolve_function", "prepare_run_dir",
           "restore_latest", "checkpoint_cadence"]

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adadelta", "adam", "nadam",
              "adamw", "adamax", "lamb")
# Learning-rate schedules by name (make_schedule); each is a function of the step count.
SCHEDULES = ("constant", "cosine", "step")
RUN_FILE = "run.json"
SUMMARY_FILE = "summary.json"
HISTORY_FILE = "metrics.jsonl"
CURVE_FILE = "loss.png"
CHECKPOINT_DIR = "checkpoints"


class UsageError(ValueError):
    """A bad command-line value; ``main`` prints it and exits with status 2."""


@dataclasses.dataclass
class RunOptions:
    """Resolved options of one ``zoo`` invocation (command-line values over registry defaults).

    Attributes:
        name: model name in ``zoo.registry``.
        dataset: dataset name; ``dataset_options`` apply to it.
        dataset_options: loader options (the registry's, when the dataset is the default).
        optimizer, lr, batch_size, epochs, seed: training settings (batch_size None = full
            batch).
        schedule: learning-rate schedule name (:data:`SCHEDULES`, see :func:`make_schedule`),
            stretched over ``epochs``.
        weight_decay: decoupled weight decay of optimizers that take one (adamw, lamb,
            adadelta); None keeps the optimizer's default.
        out: output directory.
        resume: continue from the latest checkpoint in ``out``.
        quiet: no progress bar and no summary table.
        checkpoint: run directory (or its ``checkpoints/``) for ``zoo eval`` / ``zoo sample``.
        extra: further subcommand-specific values (e.g. for ``zoo sample``).
    """

    name: str
    dataset: str
    dataset_options: Mapping[str, Any]
    optimizer: str
    lr: float
    batch_size: int | None
    epochs: int
    seed: int = 0
    schedule: str = "constant"
    weight_decay: float | None = None
    out: str | None = None
    resume: bool = False
    quiet: bool = False
    checkpoint: str | None = None
    extra: dict = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["dataset_options"] = dict(self.dataset_options)
        return d


# --------------------------------------------------------------------------------------------
# Building blocks (public: custom train / evaluate functions reuse them)


def resolve_function(path: str) -> Callable:
    """Import ``'package.module:function'``."""
    module, _, attr = path.partition(":")
    if not module or not attr:
        raise ValueError(f"resolve_function: expected 'package.module:function', got {path!r}")
    return getattr(importlib.import_module(module), attr)


def _unknown(kind: str, name: str, known) -> UsageError:
    """The error for a name not in ``known``, with the close matches as a hint."""
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    return UsageError(f"unknown {kind} {name!r}.{hint} Known: {', '.join(known)}")


# Datasets loaded during one ``main`` call, by (name, options): the command checks the data
# before handing over to an entry's own train function, which loads it again (None outside
# ``main``, so library callers always read the files afresh).
_DATA_CACHE: dict | None = None


def load_data(name: str, options: Mapping[str, Any] | None = None):
    """``train.datasets.load(name, **options)``, with unknown names and bad options (unknown
    ones included) or files as :class:`UsageError`."""
    from train import datasets

    if name not in datasets.names():
        raise _unknown("dataset", name, datasets.names())
    options = dict(options or {})
    key = (name, json.dumps(options, sort_keys=True, default=repr))
    if _DATA_CACHE is not None and key in _DATA_CACHE:
        return _DATA_CACHE[key]
    try:
        ds = datasets.load(name, **options)
    except (ValueError, TypeError, FileNotFoundError) as e:
        raise UsageError(f"dataset {name!r}: {e}") from e
    if _DATA_CACHE is not None:
        _DATA_CACHE.clear()          # one dataset at a time is enough
        _DATA_CACHE[key] = ds
    return ds


def data_info(ds):
    """``zoo.registry.DataInfo`` of a ``train.datasets.Dataset``."""
    import numpy as np

    from zoo.registry import DataInfo

    y = np.asarray(ds.y_train) if ds.y_train is not None else None
    n_classes = ds.meta.get("n_classes")
    if n_classes is None and y is not None and np.issubdtype(y.dtype, np.integer):
        n_classes = int(y.max()) + 1
    n_targets = None
    if n_classes is None and y is not None:
        n_targets = 1 if y.ndim == 1 else int(np.prod(y.shape[1:]))
    return DataInfo(input_shape=tuple(np.shape(ds.x_train)[1:]), n_classes=n_classes,
                    n_targets=n_targets, name=str(ds.meta.get("name", "")))


# One example's input as each model module reads it: the shapes it accepts (of ``x`` without
# the example axis; None matches any size, ``"any"`` any shape, flattened) and whether ``x``
# holds real values ("float") or integer token ids ("ids"), with the words for an error
# message. Modules not listed here are checked by tracing their loss only.
MODEL_INPUTS: dict[str, tuple[Any, str, str]] = {
    "zoo.perceptron": (((None,),), "float", "feature vectors x [n, features]"),
    "zoo.linear": ("any", "float", "real-valued inputs x [n, ...] (flattened)"),
    "zoo.logistic": ("any", "float", "real-valued inputs x [n, ...] (flattened)"),
    "zoo.mlp": ("any", "float", "real-valued inputs x [n, ...] (flattened)"),
    "zoo.cnn": (((None,), (None, 1), (None, None, None)), "float",
                "signals x [n, length] or [n, length, 1], or images x [n, height, width, "
                "channels]"),
    "zoo.autoencoder": (((None, None, None),), "float",
                        "images x [n, height, width, channels]"),
    "zoo.transfer": (((None, None, None),), "float", "images x [n, height, width, channels]"),
    "zoo.seq_classifier": (((None,), (None, 1)), "float",
                           "scalar sequences x [n, time] or [n, time, 1]"),
    "zoo.adding": (((None, 2),), "float", "(value, marker) sequences x [n, time, 2]"),
    "zoo.reber": (((None,),), "ids", "symbol ids x <int>[n, time]"),
    "zoo.seq2seq": (((None,),), "ids", "source token ids x <int>[n, length]"),
    "zoo.word2vec": (((),), "ids", "one stream of word ids x <int>[n_words]"),
    "zoo.char_lm": (((),), "ids", "one stream of character ids x <int>[n_chars]"),
    "zoo.gan": (((2,), (None, None, None)), "float",
                "2-D points x [n, 2] or images x [n, height, width, channels]"),
}

# What each task (``zoo.registry.TASKS``) needs of a dataset: (test, the words for it).
_TASK_NEEDS: dict[str, tuple[Callable, str]] = {
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


def _is_int(a) -> bool:
    import numpy as np

    return np.issubdtype(np.asarray(a).dtype, np.integer)


def _is_float(a) -> bool:
    import numpy as np

    return np.issubdtype(np.asarray(a).dtype, np.floating)


def _array_text(a) -> str:
    import numpy as np

    a = np.asarray(a)
    return f"<{a.dtype}>{list(a.shape)}"


def _data_text(ds) -> str:
    """``task 'translation': x <int32>[10000, 32], y <int32>[10000, 12]``."""
    y = "none" if ds.y_train is None else _array_text(ds.y_train)
    return f"task {ds.meta.get('task')!r}: x {_array_text(ds.x_train)}, y {y}"


def check_data(spec, dataset: str, ds) -> None:
    """Refuse a dataset the model cannot use, before anything is built or trained.

    Two tests: the dataset's kind fits the entry's task (:data:`_TASK_NEEDS`: class labels for
    'classification', real-valued targets for 'regression', ...), and one example's input is
    a shape and kind the model's module reads (:data:`MODEL_INPUTS`).

    Raises:
        UsageError: ``model 'X' cannot use dataset 'Y': <what it needs>; <what Y has>``.
    """
    import numpy as np

    x = np.asarray(ds.x_train)
    y = None if ds.y_train is None else np.asarray(ds.y_train)
    need = _TASK_NEEDS.get(spec.task)
    problem = None
    if need is not None and not need[0](x, y, ds.meta):
        article = "an" if spec.task[0] in "aeiou" else "a"
        problem = f"{article} {spec.task} model needs {need[1]}"
    inputs = MODEL_INPUTS.get(getattr(spec.module, "__name__", ""))
    if problem is None and inputs is not None:
        shapes, kind, words = inputs
        example = x.shape[1:]
        fits = shapes == "any" or any(
            len(example) == len(s)
            and all(a is None or a == b for a, b in zip(s, example, strict=True))
            for s in shapes)
        values = _is_float(x) if kind == "float" else _is_int(x)
        if not (fits and values):
            problem = f"{spec.name} reads {words}"
    if problem is not None:
        raise UsageError(f"model {spec.name!r} cannot use dataset {dataset!r}: {problem}; "
                         f"the dataset has {_data_text(ds)}")


def _check_trace(spec, dataset: str, ds, cfg, params, model_state) -> None:
    """Trace the entry's training loss (and, for classifiers, its output) on two examples
    without computing anything: shape errors surface here as one :class:`UsageError`
    instead of a traceback from inside the first compiled step."""
    import jax
    import numpy as np

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


def make_schedule(name: str, lr: float, total_steps: int | None = None):
    """A learning rate by name: ``lr`` itself or a ``functional.schedules`` schedule.

    Args:
        name: one of :data:`SCHEDULES`: ``'constant'`` (``lr`` throughout); ``'cosine'``
            (cosine decay from ``lr`` to 0 over ``total_steps``; Loshchilov & Hutter 2017);
            ``'step'`` (``lr``, then ``lr / 10`` for the last fifth of ``total_steps``: the
            classic step decay, e.g. He et al. 2016's drops by 10 late in training).
        lr: the peak (initial) learning rate.
        total_steps: the run's number of optimizer steps (needed by every schedule but
            'constant'; :func:`steps_per_epoch` times the epochs).

    Returns:
        A float (constant) or a schedule ``count <i32>[] -> <f32>[]``.
    """
    from functional import schedules

    if name not in SCHEDULES:
        raise _unknown("schedule", name, SCHEDULES)
    if name == "constant":
        return lr
    if total_steps is None or total_steps < 1:
        raise UsageError(f"schedule {name!r} needs the run's total number of steps (>= 1), "
                         f"got {total_steps!r}")
    if name == "cosine":
        return schedules.cosine_decay(lr, total_steps)
    return schedules.piecewise_constant(lr, {round(0.8 * total_steps): 0.1})


def takes_weight_decay(name: str) -> bool:
    """Whether the ``functional.optim`` optimizer ``name`` has a ``weight_decay`` argument."""
    import inspect

    from functional import optim

    return "weight_decay" in inspect.signature(getattr(optim, name)).parameters


def make_optimizer(name: str, lr: float, *, schedule: str = "constant",
                   total_steps: int | None = None, weight_decay: float | None = None):
    """A ``functional.optim`` optimizer by name with learning rate ``lr``.

    Args:
        name: one of :data:`OPTIMIZERS`.
        lr: (peak) learning rate.
        schedule: learning-rate schedule name (:func:`make_schedule`).
        total_steps: steps of the run, for schedules other than 'constant'.
        weight_decay: the optimizer's ``weight_decay`` (adamw, lamb, adadelta); None keeps
            its default.
    """
    from functional import optim

    if name not in OPTIMIZERS:
        raise _unknown("optimizer", name, OPTIMIZERS)
    options = {}
    if weight_decay is not None:
        if not takes_weight_decay(name):
            raise UsageError(f"optimizer {name!r} has no weight decay; use one of "
                             f"{', '.join(n for n in OPTIMIZERS if takes_weight_decay(n))}")
        options["weight_decay"] = weight_decay
    return getattr(optim, name)(make_schedule(schedule, lr, total_steps), **options)


def steps_per_epoch(n: int, batch_size: int | None) -> int:
    """Optimizer steps in one ``train.loop.fit`` epoch over ``n`` examples (last batch padded,
    as fit does by default; also the number of batches drawn with replacement)."""
    return 1 if batch_size is None else -(-int(n) // int(batch_size))


def entry_optimizer(spec, n_train: int, epochs: int | None = None):
    """A registry entry's default optimizer (its optimizer, rate, schedule and weight decay) as
    ``zoo train`` builds it, the schedule stretched over ``epochs`` (default: the entry's)
    epochs of ``n_train`` examples."""
    epochs = spec.epochs if epochs is None else epochs
    return make_optimizer(spec.optimizer, spec.lr, schedule=spec.schedule,
                          total_steps=epochs * steps_per_epoch(n_train, spec.batch_size),
                          weight_decay=spec.weight_decay)


def run_optimizer(opts: RunOptions, n_train: int):
    """The optimizer of a run: ``opts``' optimizer, rate, schedule (over ``opts.epochs`` epochs
    of ``n_train`` examples) and weight decay."""
    return make_optimizer(opts.optimizer, opts.lr, schedule=opts.schedule,
                          total_steps=opts.epochs * steps_per_epoch(n_train, opts.batch_size),
                          weight_decay=opts.weight_decay)


def _split(ds, which: str):
    x, y = getattr(ds, f"x_{which}"), getattr(ds, f"y_{which}")
    if x is None:
        return None
    return {"x": x} if y is None else {"x": x, "y": y}


def evaluate(loss_fn: Callable, params, model_state, data: Mapping, *, key=None,
             batch_size: int = 1024) -> dict:
    """Exact weighted means of ``loss_fn``'s metrics over ``data`` (batches padded with weight 0).

    Args:
        loss_fn: ``loss_fn(params, model_state, batch, key) -> (loss, (state, metrics))``.
        params, model_state: the model's.
        data: ``{'x': [n, ...], 'y': [n, ...]}``.
        key: PRNG key passed to ``loss_fn`` (default ``PRNGKey(0)``).
        batch_size: evaluation batch size.

    Returns:
        ``{'loss': ..., <metrics>}`` as Python floats.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np

    from train.loop import make_eval_step

    n = int(np.shape(data["x"])[0])
    bs = min(batch_size, n)
    step = jax.jit(make_eval_step(loss_fn))
    from train.loop import TrainState

    state = TrainState(params, (), model_state, jnp.zeros((), jnp.int32),
                       jax.random.PRNGKey(0) if key is None else key)
    sums, count = {}, 0.0
    for start in range(0, n, bs):
        idx = np.arange(start, start + bs)
        weight = (idx < n).astype(np.float32)
        idx = np.minimum(idx, n - 1)
        batch = {k: jnp.asarray(np.asarray(v)[idx]) for k, v in data.items()}
        batch["weight"] = jnp.asarray(weight)
        m = jax.device_get(step(state, batch))
        c = float(m.pop("count"))
        for k, v in m.items():
            sums[k] = sums.get(k, 0.0) + float(v) * c
        count += c
    return {k: v / count for k, v in sums.items()}


def _model_fns(spec, cfg):
    module = spec.module

    def loss_fn(params, model_state, batch, key):
        return module.loss(params, model_state, batch, key, cfg, train=True)

    def eval_loss_fn(params, model_state, batch, key):
        return module.loss(params, model_state, batch, key, cfg, train=False)

    return loss_fn, eval_loss_fn


def _prepare(spec, opts: RunOptions):
    import jax

    ds = load_data(opts.dataset, opts.dataset_options)
    check_data(spec, opts.dataset, ds)
    try:
        cfg = spec.make_config(data_info(ds))
    except ValueError as e:
        raise UsageError(f"model {spec.name!r} cannot use dataset {opts.dataset!r}: {e}") from e
    k_init, k_fit = jax.random.split(jax.random.PRNGKey(opts.seed))
    params = spec.module.init(k_init, cfg)
    init_state = getattr(spec.module, "init_state", None)
    model_state = init_state(cfg) if init_state is not None else {}
    _check_trace(spec, opts.dataset, ds, cfg, params, model_state)
    return ds, cfg, params, model_state, k_fit


def _write_run_json(out: str, opts: RunOptions) -> None:
    with open(os.path.join(out, RUN_FILE), "w") as f:
        json.dump(opts.to_json(), f, indent=2, sort_keys=True)
        f.write("\n")


def prepare_run_dir(opts: RunOptions) -> str:
    """Create ``opts.out``, write its ``run.json`` and return its checkpoint directory.

    A fresh run (not ``--resume``) deletes old checkpoints first, so it never continues from
    an earlier run's steps. A resumed run keeps the ``run.json`` it continues (written anew by
    :func:`write_run_files` once it succeeds), so a resume that fails, e.g. with other data
    options, leaves the run as it was. An ``out`` that is a file or cannot be written is a
    :class:`UsageError`.
    """
    out = opts.out
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"--out {out!r} is an existing file, not a directory")
    ckpt_dir = os.path.join(out, CHECKPOINT_DIR)
    try:
        os.makedirs(out, exist_ok=True)
        if not opts.resume and os.path.isdir(ckpt_dir):
            shutil.rmtree(ckpt_dir)
        if not (opts.resume and os.path.isfile(os.path.join(out, RUN_FILE))):
            _write_run_json(out, opts)
    except OSError as e:
        raise UsageError(f"cannot write the run directory --out {out!r}: "
                         f"{e.strerror or e}") from e
    return ckpt_dir


def write_run_files(out: str, *, opts: RunOptions, summary: dict, history, cfg, params,
                    title: str = "") -> None:
    """Write ``summary.json``, ``loss.png``, ``manifest.json`` and ``run.json`` of a finished
    run."""
    from train import plots
    from train.manifest import finite_or_none, write_manifest

    _write_run_json(out, opts)
    with open(os.path.join(out, SUMMARY_FILE), "w") as f:
        json.dump(finite_or_none(summary), f, indent=2, sort_keys=True, allow_nan=False)
        f.write("\n")
    if history:
        plots.plot_history(history, os.path.join(out, CURVE_FILE), title=title)
    write_manifest(out, config=cfg, seed=opts.seed, params=params,
                   extra={"options": opts.to_json(), "summary": summary})


def checkpoint_cadence(epochs: int) -> int:
    """Epochs between the checkpoints of a ``zoo train`` run: ``max(1, epochs // 5)`` (plus
    one after the last epoch), so that saving (0.1-0.3 s per checkpoint with orbax here)
    stays a small part of a long run."""
    return max(1, int(epochs) // 5)


def _prefixed(prefix: str, metrics: Mapping) -> dict:
    return {f"{prefix}_{k}": float(v) for k, v in metrics.items()}


def train_model(spec, opts: RunOptions) -> dict:
    """The standard ``zoo train``: ``train.loop.fit`` of ``spec.module.loss``, then run files.

    Returns:
        The summary dict (also written to ``summary.json``).
    """
    import jax

    from train.loop import fit
    from train.manifest import param_count

    ds, cfg, params, model_state, k_fit = _prepare(spec, opts)
    optimizer = run_optimizer(opts, len(ds.x_train))
    loss_fn, eval_loss_fn = _model_fns(spec, cfg)
    out = opts.out
    ckpt_dir = prepare_run_dir(opts)
    train, test = _split(ds, "train"), _split(ds, "test")
    val = _split(ds, "val") or test
    t0 = time.perf_counter()
    result = fit(loss_fn, params, optimizer, train, key=k_fit, epochs=opts.epochs,
                 batch_size=opts.batch_size, model_state=model_state, eval_data=val,
                 eval_loss_fn=eval_loss_fn, progress=not opts.quiet,
                 fast_path=spec.extra.get("fast_path", "auto"),
                 shuffle=spec.extra.get("sampling", True),
                 history_path=os.path.join(out, HISTORY_FILE), checkpoint_dir=ckpt_dir,
                 checkpoint_every_epochs=checkpoint_cadence(opts.epochs), resume=opts.resume)
    seconds = time.perf_counter() - t0
    state = result.state
    eval_key = jax.random.PRNGKey(opts.seed + 1)
    summary = {"model": spec.name, "dataset": opts.dataset, "task": spec.task,
               "epochs": len(result.history), "steps": int(jax.device_get(state.step)),
               "param_count": param_count(state.params), "seconds": seconds,
               "expected": spec.expected}
    epoch_times = [t["seconds"] for t in result.timings if "epoch" in t]
    if epoch_times:
        summary["seconds_per_epoch"] = sum(epoch_times) / len(epoch_times)
        summary["epoch_path"] = result.timings[-1].get("path")
    summary.update(_prefixed("train", evaluate(eval_loss_fn, state.params, state.model_state,
                                               train, key=eval_key)))
    summary.update(_prefixed("test", evaluate(eval_loss_fn, state.params, state.model_state,
                                              test, key=eval_key)))
    write_run_files(out, opts=opts, summary=summary, history=result.history, cfg=cfg,
                    params=state.params, title=f"zoo train {spec.name} ({opts.dataset})")
    return summary


def _find_run(checkpoint: str) -> tuple[str, str]:
    """(run dir, checkpoints dir) from a run directory or its checkpoints directory."""
    path = os.path.abspath(checkpoint)
    if os.path.isfile(os.path.join(path, RUN_FILE)):
        return path, os.path.join(path, CHECKPOINT_DIR)
    parent = os.path.dirname(path)
    if os.path.isfile(os.path.join(parent, RUN_FILE)):
        return parent, path
    raise UsageError(f"no {RUN_FILE} found in {checkpoint!r} or its parent; pass the --out "
                     "directory of a 'zoo train' run")


def _checkpoint_message(e: BaseException) -> str | None:
    """One line for a checkpoint that cannot be restored (``train.checkpoint``'s errors), or
    None for any other error."""
    from train.checkpoint import CheckpointMismatchError

    text = str(e)
    if isinstance(e, CheckpointMismatchError):
        return f"the checkpoint does not fit this model and data: {text.splitlines()[0]}"
    if isinstance(e, FileNotFoundError) and text.startswith("CheckpointManager.restore:"):
        head = text.splitlines()[0].split(" See full TensorStore details")[0]
        directory = head.split(" no readable checkpoint in ", 1)[-1].split(": ", 1)
        detail = f" ({directory[1][:200]})" if len(directory) > 1 else ""
        return (f"no readable checkpoint in {directory[0]!r}: its files are damaged or "
                f"incomplete{detail}")
    return None


def restore_latest(manager, target):
    """``manager.restore(target)`` (the newest readable checkpoint) with a damaged or
    mismatching checkpoint as one :class:`UsageError` naming the directory; the warnings about
    skipped damaged checkpoints are shown only when an older one could be restored."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            restored = manager.restore(target)
        except (FileNotFoundError, ValueError) as e:
            message = _checkpoint_message(e)
            if message is None:
                raise
            raise UsageError(message) from e
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return restored


def evaluate_model(spec, opts: RunOptions) -> dict:
    """The standard ``zoo eval``: restore the latest checkpoint, evaluate train and test sets.

    Returns:
        ``{'train_loss', 'train_<metric>', ..., 'test_loss', 'test_<metric>', 'step'}``.
    """
    import jax

    from train.checkpoint import CheckpointManager
    from train.loop import init_train_state

    ds, cfg, params, model_state, k_fit = _prepare(spec, opts)
    optimizer = run_optimizer(opts, len(ds.x_train))
    _, ckpt_dir = _find_run(opts.checkpoint)
    if not os.path.isdir(ckpt_dir):
        raise UsageError(f"no checkpoints in {ckpt_dir!r}")
    manager = CheckpointManager(ckpt_dir)
    if manager.latest_step() is None:
        raise UsageError(f"no complete checkpoint in {ckpt_dir!r}")
    target = init_train_state(params, optimizer, key=jax.random.split(k_fit)[0],
                              model_state=model_state)
    state, _ = restore_latest(manager, target)
    _, eval_loss_fn = _model_fns(spec, cfg)
    eval_key = jax.random.PRNGKey(opts.seed + 1)
    metrics = {"step": int(jax.device_get(state.step))}
    for which in ("train", "test"):
        data = _split(ds, which)
        metrics.update(_prefixed(which, evaluate(eval_loss_fn, state.params, state.model_state,
                                                 data, key=eval_key)))
    return metrics


# --------------------------------------------------------------------------------------------
# Argument parsing


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got "
                                             f"{text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value
    return parse


def _batch_size(text: str):
    if text.lower() in ("full", "all", "none"):
        return "full"
    return _int_at_least(1)(text)


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="model name (see 'zoo list')")
    p.add_argument("--dataset", help="dataset name (default: the model's)")
    p.add_argument("--optimizer", help=f"one of {', '.join(OPTIMIZERS)}")
    p.add_argument("--lr", type=_positive_float, help="learning rate (the peak of a schedule)")
    p.add_argument("--schedule", choices=SCHEDULES,
                   help="learning-rate schedule over the run: constant, cosine (to 0), or step "
                        "(lr / 10 for the last fifth of the steps)")
    p.add_argument("--weight-decay", type=_nonnegative_float, dest="weight_decay",
                   help="decoupled weight decay (optimizers with one: adamw, lamb, adadelta)")
    p.add_argument("--batch-size", type=_batch_size, help="examples per step, or 'full'")
    p.add_argument("--epochs", type=_int_at_least(0), help="number of epochs")
    p.add_argument("--seed", type=_int_at_least(0), default=0, help="random seed (default 0)")
    p.add_argument("--data-option", action="append", type=_data_option, default=[],
                   dest="data_options", metavar="KEY=VALUE",
                   help="option for the dataset's loader, repeatable (e.g. path=input.txt, "
                        "n_train=2000); values are read as JSON when they parse, else text")


def _data_option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _resolve(args: argparse.Namespace, *, saved: Mapping | None = None) -> tuple[Any, RunOptions]:
    """Registry defaults, then a saved run's options, then the command line."""
    from zoo import registry

    try:
        spec = registry.get(args.name)
    except ValueError as e:
        raise UsageError(str(e)) from None
    base = {"dataset": spec.dataset, "optimizer": spec.optimizer, "lr": spec.lr,
            "schedule": spec.schedule, "weight_decay": spec.weight_decay,
            "batch_size": spec.batch_size, "epochs": spec.epochs, "seed": 0}
    if saved:
        base.update({k: saved[k] for k in base if k in saved})
    given = {k: getattr(args, k, None) for k in base}
    values = {**base, **{k: v for k, v in given.items() if v is not None}}
    if values["batch_size"] == "full":
        values["batch_size"] = None
    if saved and values["dataset"] == saved.get("dataset"):
        options = dict(saved.get("dataset_options", {}))
    else:
        options = dict(spec.dataset_options) if values["dataset"] == spec.dataset else {}
    options.update(dict(getattr(args, "data_options", None) or []))
    if values["optimizer"] not in OPTIMIZERS:
        make_optimizer(values["optimizer"], 1.0)      # raises with close matches
    make_schedule(values["schedule"], 1.0, 1)         # likewise (a registry or run.json typo)
    if values["weight_decay"] is not None and not takes_weight_decay(values["optimizer"]):
        if given["weight_decay"] is not None:
            make_optimizer(values["optimizer"], 1.0, weight_decay=values["weight_decay"])
        # A default decay belongs to the default optimizer: --optimizer adam on an adamw
        # entry trains without one.
        values["weight_decay"] = None
    if spec.train and (given["schedule"] is not None or given["weight_decay"] is not None):
        raise UsageError(f"model {spec.name!r} trains with its own function ({spec.train}); "
                         "--schedule and --weight-decay apply to the standard trainer only")
    out = getattr(args, "out", None) or os.path.join("runs", spec.name)
    opts = RunOptions(name=spec.name, dataset=values["dataset"], dataset_options=options,
                      optimizer=values["optimizer"], lr=float(values["lr"]),
                      batch_size=values["batch_size"], epochs=int(values["epochs"]),
                      seed=int(values["seed"]), schedule=values["schedule"],
                      weight_decay=(None if values["weight_decay"] is None
                                    else float(values["weight_decay"])), out=out,
                      resume=bool(getattr(args, "resume", False)),
                      quiet=bool(getattr(args, "quiet", False)),
                      checkpoint=getattr(args, "checkpoint", None))
    return spec, opts


def _print_table(rows: list[list[str]], header: list[str], file=None) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
    print(line(header), file=file)
    print("  ".join("-" * w for w in widths), file=file)
    for r in rows:
        print(line(r), file=file)


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


# --- zoo list


def _list_arguments(p: argparse.ArgumentParser) -> None:
    del p


def _list_run(args: argparse.Namespace) -> int:
    from zoo import registry

    rows = [[s.name, s.dataset, s.task, s.expected] for s in registry.specs()]
    _print_table(rows, ["name", "dataset", "task", "expected result"])
    return 0


# --- zoo train


def _train_arguments(p: argparse.ArgumentParser) -> None:
    _add_run_arguments(p)
    p.epilog = ("metrics.jsonl logs val_* metrics on the validation split, or on the test "
                "split when the dataset has none (mnist1d, digits, ...).")
    p.add_argument("--out", help="output directory (default runs/NAME)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the latest checkpoint in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary table")


def _train_run(args: argparse.Namespace) -> int:
    saved = None
    if args.resume:
        from zoo import registry
        try:
            name = registry.get(args.name).name
        except ValueError as e:
            raise UsageError(str(e)) from None
        run_file = os.path.join(args.out or os.path.join("runs", name), RUN_FILE)
        if os.path.isfile(run_file):
            with open(run_file) as f:
                saved = json.load(f)
    spec, opts = _resolve(args, saved=saved)
    if spec.train:
        # An entry's own train function loads the data itself (from _DATA_CACHE); check it
        # here first, as _prepare does for the standard trainer.
        check_data(spec, opts.dataset, load_data(opts.dataset, opts.dataset_options))
    summary = (resolve_function(spec.train)(spec, opts) if spec.train
               else train_model(spec, opts))
    if not opts.quiet:
        print(f"\nzoo train {spec.name} on {opts.dataset}: expected {spec.expected}")
        _print_table([[k, _format(v)] for k, v in summary.items()
                      if k not in ("model", "dataset", "expected")], ["summary", "value"])
        print(f"files in {opts.out}")
    return 0


# --- zoo eval


def _eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="model name (see 'zoo list')")
    p.add_argument("--checkpoint", required=True,
                   help="the --out directory of a 'zoo train' run (or its checkpoints/)")


def _resolve_saved_run(args: argparse.Namespace) -> tuple[Any, RunOptions]:
    """Spec and options of the run in ``--checkpoint`` (its saved options under the command
    line's); the run must belong to the model named on the command line."""
    run_dir, _ = _find_run(args.checkpoint)
    with open(os.path.join(run_dir, RUN_FILE)) as f:
        saved = json.load(f)
    spec, opts = _resolve(args, saved=saved)
    if saved.get("name") not in (None, spec.name):
        raise UsageError(f"{args.checkpoint!r} holds a {saved['name']!r} run, not {spec.name!r}")
    return spec, opts


def _eval_run(args: argparse.Namespace) -> int:
    spec, opts = _resolve_saved_run(args)
    metrics = (resolve_function(spec.evaluate)(spec, opts) if spec.evaluate
               else evaluate_model(spec, opts))
    print(json.dumps(metrics, indent=2, sort_keys=True))
    return 0


# --- zoo sample


def _nonnegative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _sample_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="model name (see 'zoo list'; models with a sampler)")
    p.add_argument("--checkpoint", required=True,
                   help="the --out directory of a 'zoo train' run (or its checkpoints/)")
    p.add_argument("--prime", help="priming text (default: the model's choice)")
    p.add_argument("--length", type=_int_at_least(1), default=200,
                   help="tokens to generate (default 200)")
    p.add_argument("--temperature", type=_nonnegative_float, default=1.0,
                   help="softmax temperature; 0 is greedy (default 1)")
    p.add_argument("--top-k", type=_int_at_least(1), dest="top_k",
                   help="sample among the K most likely tokens")
    p.add_argument("--seed", type=_int_at_least(0), default=0, dest="sample_seed",
                   help="sampling seed (default 0)")
    p.add_argument("-n", "--num-samples", type=_int_at_least(1), default=64, dest="n",
                   help="samples to draw, for generators of images or points (default 64)")
    p.add_argument("--output", help="file for the samples (generators write a PNG; default "
                                    "samples.png in the run directory)")


def _sample_run(args: argparse.Namespace) -> int:
    spec, opts = _resolve_saved_run(args)
    if not spec.sample:
        with_sampler = [s.name for s in _registry_specs() if s.sample]
        raise UsageError(f"model {spec.name!r} has no sampler; models with one: "
                         f"{', '.join(with_sampler) or 'none'}")
    opts.extra = {"prime": args.prime, "length": args.length, "temperature": args.temperature,
                  "top_k": args.top_k, "seed": args.sample_seed, "n": args.n,
                  "output": args.output}
    resolve_function(spec.sample)(spec, opts)
    return 0


def _registry_specs():
    from zoo import registry

    return registry.specs()


# --- zoo gradients


def _gradients_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=os.path.join("runs", "gradients"),
                   help="output directory (default runs/gradients)")
    p.add_argument("--depth", type=_int_at_least(2), default=10, help="dense layers")
    p.add_argument("--seed", type=_int_at_least(0), default=0)


def _gradients_run(args: argparse.Namespace) -> int:
    import jax
    import numpy as np

    from train import plots
    from zoo import gradients

    study = gradients.gradient_norm_study(jax.random.PRNGKey(args.seed), depth=args.depth)
    os.makedirs(args.out, exist_ok=True)
    path = plots.plot_gradient_norms(study, os.path.join(args.out, "gradient_norms.png"))
    table = {f"{a}/{i}": [float(v) for v in np.asarray(r["grad_norm"])]
             for (a, i), r in study.items()}
    with open(os.path.join(args.out, "gradient_norms.json"), "w") as f:
        json.dump(table, f, indent=2)
    rows = [[k, f"{v[0]:.3g}", f"{v[-1]:.3g}", f"{v[0] / v[-1]:.3g}"] for k, v in table.items()]
    _print_table(rows, ["activation/init", "layer 1", f"layer {args.depth}", "ratio"])
    print(f"figure: {path}")
    return 0


# --- zoo translate


def _translate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("text", nargs="+", help="source sentence(s) to translate")
    p.add_argument("--checkpoint", required=True,
                   help="the --out directory of a 'zoo train' run of a translation model")
    p.add_argument("--beam", type=_int_at_least(1), default=4,
                   help="beam width; 1 decodes greedily (default 4)")
    p.add_argument("--alpha", type=float, default=0.6,
                   help="length-penalty exponent of beam search (default 0.6)")
    p.add_argument("--max-length", type=_int_at_least(1), help="decoding steps")
    p.add_argument("--all", action="store_true", help="print every beam with its score")


def _translate_run(args: argparse.Namespace) -> int:
    from train import translation

    _, _, ds, cfg, params = translation.restore_run(args.checkpoint)
    try:
        results = translation.translate(params, cfg, ds, args.text, beam_size=args.beam,
                                        alpha=args.alpha, max_length=args.max_length)
    except ValueError as e:
        raise UsageError(str(e)) from None
    for text, beams in zip(args.text, results, strict=True):
        if args.all:
            print(text)
            for out, score in beams:
                print(f"  {score:9.4f}  {out}")
        else:
            print(beams[0][0])
    return 0


# name -> (help, add_arguments(parser), run(args) -> exit status)
COMMANDS: dict[str, tuple[str, Callable, Callable]] = {
    "list": ("list the zoo's models", _list_arguments, _list_run),
    "train": ("train a model on its embedded default data", _train_arguments, _train_run),
    "eval": ("evaluate a trained model's checkpoint", _eval_arguments, _eval_run),
    "sample": ("generate text, points or images from a trained model's checkpoint",
               _sample_arguments,
               _sample_run),
    "gradients": ("per-layer gradient norms at init (vanishing / exploding gradients)",
                  _gradients_arguments, _gradients_run),
    "translate": ("translate text with a trained seq2seq model", _translate_arguments,
                  _translate_run),
}


def build_parser() -> argparse.ArgumentParser:
    """The ``zoo`` argument parser with one subparser per entry of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(prog="zoo", description="Train and evaluate jaxzoo models.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_arguments, run) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(p)
        p.set_defaults(_run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``zoo`` console script; returns the exit status."""
    global _DATA_CACHE
    parser = build_parser()
    args = parser.parse_args(argv)      # argparse exits with status 2 on bad syntax
    _DATA_CACHE = {}
    try:
        return int(args._run(args) or 0)
    except UsageError as e:
        print(f"zoo: error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as e:
        # a damaged checkpoint met by an entry's own eval / sample / --resume code, or a
        # --resume with other data options than the run it continues
        loop = sys.modules.get("train.loop")
        if loop is not None and isinstance(e, loop.ResumeMismatchError):
            message = str(e)
        else:
            message = _checkpoint_message(e) if "train.checkpoint" in sys.modules else None
        if message is None:
            raise
        print(f"zoo: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("zoo: interrupted", file=sys.stderr)
        return 130
    finally:
        _DATA_CACHE = None


if __name__ == "__main__":
    sys.exit(main())
