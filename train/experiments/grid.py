"""Experiments as grids: configurations times seeds, each trial one training run.

The notes' experiments are comparisons: batch vs stochastic vs mini-batch gradient descent and
the batch size (seed 004 section 4.4), learning rates (4.4.3), optimizers (momentum, RMSprop,
Adam), initializers, activations and the number of hidden units (section 10.1).

An *experiment* here is any function ``experiment(config, seed) -> (history, params)``:
``config`` a dict of hyperparameters, ``history`` a list of per-epoch metric dicts (what
``train.loop.fit`` returns), ``params`` the final parameter pytree. :func:`fit_experiment`
builds one from a model builder and ``train.loop.fit``; :func:`run_grid` runs one for every
configuration and seed and records :class:`Trial` s.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from train import optimizers
from train.experiments.report import write_csv
from train.manifest import json_line, params_hash, write_manifest


def make_optimizer(name: str | Callable, learning_rate, **options):
    """An optax optimizer from a name used in experiment configs
    (``train.optimizers.make_optimizer(..., library='optax')``).

    Args:
        name: one of ``train.optimizers.OPTIMIZERS`` (``'sgd'``, ``'momentum'``,
            ``'nesterov'``, ``'rmsprop'``, ``'adagrad'``, ``'adam'``, ``'adamw'``, ...), or a
            callable ``f(learning_rate, **options)`` returning a ``GradientTransformation``
            (e.g. one of ``functional.optim``'s aliases).
        learning_rate: a float or a schedule (function of the step count).
        **options: passed to the optax alias (e.g. ``momentum=0.95``, ``b1=0.8``).

    Returns:
        An ``optax.GradientTransformation``.
    """
    return optimizers.make_optimizer(name, learning_rate, library="optax", **options)


def regime(batch_size: int | None) -> str:
    """The notes' name for a batch size: ``None`` batch GD, ``1`` stochastic, else mini-batch."""
    if batch_size is None:
        return "batch"
    if batch_size == 1:
        return "stochastic"
    return "mini-batch"


# ---------------------------------------------------------------------------------------------
# Grids


def grid(**axes: Sequence) -> list[dict]:
    """All combinations of the given values, in row-major order (the last axis varies fastest).

    >>> grid(optimizer=['sgd', 'adam'], lr=[0.1, 0.01])
    [{'optimizer': 'sgd', 'lr': 0.1}, {'optimizer': 'sgd', 'lr': 0.01},
     {'optimizer': 'adam', 'lr': 0.1}, {'optimizer': 'adam', 'lr': 0.01}]

    Raises:
        TypeError: if an axis is not a list or tuple (a bare string would silently become
            its characters).
    """
    for name, values in axes.items():
        if not isinstance(values, (list, tuple)) or not values:
            raise TypeError(f"grid: expected a non-empty list or tuple of values for {name!r}, "
                            f"got {values!r}")
    names = list(axes)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes.values())]


@dataclasses.dataclass
class Trial:
    """One run of an experiment.

    Attributes:
        config: the hyperparameters (a dict).
        seed: the run's seed.
        history: list of per-epoch metric dicts, oldest first.
        params: the final parameters (None when not kept).
        params_hash: :func:`train.manifest.params_hash` of the final parameters.
        round: search round (0 for a grid, 0/1/... for coarse and finer rounds).
        score: the value the search ranked by (None in a plain grid).
    """

    config: dict
    seed: int
    history: list
    params: Any = None
    params_hash: str = ""
    round: int = 0
    score: float | None = None

    def final(self, key: str):
        """The last recorded value of metric ``key`` (NaN if never recorded)."""
        for row in reversed(self.history):
            if key in row:
                return row[key]
        return math.nan


Experiment = Callable[[dict, int], tuple]


def run_one(experiment: Experiment, config: dict, seed: int, keep_params: bool, rnd: int):
    """Run one trial; returns ``(Trial, final params)`` (shared by grids and searches)."""
    out = experiment(dict(config), int(seed))
    if not (isinstance(out, tuple) and len(out) == 2):
        raise TypeError(f"run_grid: an experiment must return (history, params), "
                        f"got {type(out).__name__}")
    history, params = out
    history = [dict(row) for row in history]
    trial = Trial(config=dict(config), seed=int(seed), history=history,
                  params=params if keep_params else None, params_hash=params_hash(params),
                  round=rnd)
    return trial, params


def save_trial(trial: Trial, params, out_dir: str | os.PathLike, index: int) -> str:
    """Write one trial's outputs: ``<out_dir>/trial_<index>_seed<seed>/`` with
    ``history.jsonl`` (one line per epoch) and ``manifest.json`` (:mod:`train.manifest`:
    config, seed, versions, devices, hash of the final parameters, last epoch's metrics).

    Returns:
        The trial's directory.
    """
    run_dir = os.path.join(os.fspath(out_dir), f"trial_{index:04d}_seed{trial.seed}")
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "history.jsonl"), "w") as fh:
        for row in trial.history:
            fh.write(json_line(row))
    write_manifest(run_dir, config=trial.config, seed=trial.seed, params=params,
                   extra={"round": trial.round, "score": trial.score,
                          "final": trial.history[-1] if trial.history else {}})
    return run_dir


def run_grid(
    experiment: Experiment,
    configs: Sequence[Mapping],
    seeds: Sequence[int] = (0,),
    *,
    keep_params: bool = False,
    out_dir: str | os.PathLike | None = None,
    on_trial: Callable[[Trial], None] | None = None,
) -> list[Trial]:
    """Run ``experiment`` for every configuration and every seed.

    Args:
        experiment: ``experiment(config, seed) -> (history, params)``; see the module doc.
        configs: the configurations, e.g. from :func:`grid`.
        seeds: seeds run for each configuration.
        keep_params: keep each trial's final parameters in memory (hashes are always kept).
        out_dir: if given, write each trial's :func:`save_trial` directory there, and
            ``results.csv`` (rewritten after each trial, so an
            interrupted sweep keeps what it finished).
        on_trial: called with each finished :class:`Trial` (progress printing, logging).

    Returns:
        The trials, configuration-major then seed.
    """
    if not configs:
        raise ValueError("run_grid: expected at least one configuration, got none")
    if not seeds:
        raise ValueError("run_grid: expected at least one seed, got none")
    trials = []
    for config in configs:
        for seed in seeds:
            trial, params = run_one(experiment, config, seed, keep_params, 0)
            trials.append(trial)
            if on_trial is not None:
                on_trial(trial)
            if out_dir is not None:
                save_trial(trial, params, out_dir, len(trials) - 1)
                write_csv(trials, os.path.join(out_dir, "results.csv"))
    return trials


# ---------------------------------------------------------------------------------------------
# Model builders and fit


def seed_keys(seed: int):
    """The two keys a trial with ``seed`` uses: ``(init_key, run_key) = split(PRNGKey(seed))``.

    ``init_key`` draws the initial parameters, ``run_key`` is ``fit``'s key (data order and
    per-step keys). :func:`fit_experiment` and :func:`train_seeds_vmapped` both use this, so
    a seed means the same run in both.
    """
    import jax

    init_key, run_key = jax.random.split(jax.random.PRNGKey(int(seed)))
    return init_key, run_key


def built(build, config, where):
    """``build(config)`` checked: ``(init_fn, loss_fn, optimizer, model_state or None)``."""
    out = build(dict(config))
    if not (isinstance(out, tuple) and len(out) in (3, 4)):
        raise TypeError(f"{where}: build(config) must return (init_fn, loss_fn, optimizer) or "
                        f"(init_fn, loss_fn, optimizer, model_state), got {type(out).__name__}")
    init_fn, loss_fn, optimizer = out[:3]
    model_state = out[3] if len(out) == 4 else None
    if not callable(init_fn) or not callable(loss_fn):
        raise TypeError(f"{where}: build(config) must return callables init_fn(key) and "
                        f"loss_fn(params, model_state, batch, key)")
    return init_fn, loss_fn, optimizer, model_state


def fit_experiment(build: Callable[[dict], tuple], train_data, *, eval_data=None,
                   epochs: int | None = None, batch_size="config", **fit_options) -> Experiment:
    """An experiment ``(config, seed) -> (history, params)`` that trains with ``train.loop.fit``.

    Args:
        build: ``build(config) -> (init_fn, loss_fn, optimizer[, model_state])`` with
            ``init_fn(key) -> params`` and ``loss_fn`` in the ``fit`` contract. The builder
            reads whatever it needs from the config (``lr``, ``optimizer``, ``hidden``,
            ``activation``, ``init``, ...; :func:`make_optimizer` turns names into optax).
        train_data, eval_data: passed to ``fit``.
        epochs: epochs per trial (default: ``config['epochs']``).
        batch_size: ``'config'`` reads ``config.get('batch_size')`` (``None`` = full batch),
            else the value used for every trial.
        **fit_options: more ``fit`` keywords (``fast_path``, ``nan_policy``, ``mesh``, ...).

    Returns:
        The experiment function, for :func:`run_grid` and :func:`random_search`.
    """
    from train import loop

    def experiment(config: dict, seed: int):
        init_fn, loss_fn, optimizer, model_state = built(build, config, "fit_experiment")
        n_epochs = config.get("epochs") if epochs is None else epochs
        if n_epochs is None:
            raise ValueError("fit_experiment: give epochs= or an 'epochs' entry in the config")
        bs = config.get("batch_size") if batch_size == "config" else batch_size
        init_key, run_key = seed_keys(seed)
        options = {"progress": False, **fit_options}
        res = loop.fit(loss_fn, init_fn(init_key), optimizer, train_data, key=run_key,
                       epochs=int(n_epochs), batch_size=bs, model_state=model_state,
                       eval_data=eval_data, **options)
        return res.history, res.state.params

    return experiment
