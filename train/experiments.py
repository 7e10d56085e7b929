"""Experiments: grids over configurations and seeds, random search, tables and figures.

The notes' experiments are comparisons: batch vs stochastic vs mini-batch gradient descent and
the batch size (seed 004 section 4.4), learning rates (4.4.3), optimizers (momentum, RMSprop,
Adam), initializers, activations and the number of hidden units (section 10.1), and the
hyperparameter search of sections 9.3-9.4: sample at random rather than on a grid, on the
right *scale* (a learning rate log-uniformly, a momentum ``beta`` through ``1 - beta``
log-uniformly), then zoom in on the region of the best trials and sample it more densely
("coarse to fine").

An *experiment* here is any function ``experiment(config, seed) -> (history, params)``:
``config`` a dict of hyperparameters, ``history`` a list of per-epoch metric dicts (what
``train.loop.fit`` returns), ``params`` the final parameter pytree. :func:`fit_experiment`
builds one from a model builder and ``train.loop.fit``; :func:`train_seeds_vmapped` trains
several seeds of one configuration at once, vmapped inside one jit, and equals training them
one by one.

Results are :class:`Trial` records; :func:`write_csv` writes them as a table, and
:func:`plot_curves` / :func:`plot_search` draw the notes' overlaid loss curves and the
coarse-to-fine scatter (matplotlib, Agg backend: works without a display).
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import math
import numbers
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from train.manifest import json_line, params_hash, write_manifest

# ---------------------------------------------------------------------------------------------
# Optimizers and regimes by name
# ---------------------------------------------------------------------------------------------

_OPTIMIZERS = {
    # name -> what the notes call it (the optax alias is picked in make_optimizer)
    "sgd": "gradient descent",
    "momentum": "SGD with momentum 0.9",
    "nesterov": "SGD with Nesterov momentum 0.9",
    "rmsprop": "RMSprop",
    "adagrad": "Adagrad",
    "adam": "Adam",
    "adamw": "AdamW",
}


def make_optimizer(name: str | Callable, learning_rate, **options):
    """An optax-compatible optimizer from a name used in experiment configs.

    Args:
        name: one of ``'sgd'``, ``'momentum'``, ``'nesterov'``, ``'rmsprop'``, ``'adagrad'``,
            ``'adam'``, ``'adamw'``, or a callable ``f(learning_rate, **options)`` returning a
            ``GradientTransformation`` (e.g. one of ``functional.optim``'s aliases).
        learning_rate: a float or a schedule (function of the step count).
        **options: passed to the optax alias (e.g. ``momentum=0.95``, ``b1=0.8``).

    Returns:
        An ``optax.GradientTransformation``.
    """
    import optax

    if callable(name):
        return name(learning_rate, **options)
    if name == "sgd":
        return optax.sgd(learning_rate, **options)
    if name == "momentum":
        return optax.sgd(learning_rate, **{"momentum": 0.9, **options})
    if name == "nesterov":
        return optax.sgd(learning_rate, **{"momentum": 0.9, "nesterov": True, **options})
    if name in ("rmsprop", "adagrad", "adam", "adamw"):
        return getattr(optax, name)(learning_rate, **options)
    raise ValueError(f"make_optimizer: expected one of {sorted(_OPTIMIZERS)} or a callable, "
                     f"got {name!r}")


def regime(batch_size: int | None) -> str:
    """The notes' name for a batch size: ``None`` batch GD, ``1`` stochastic, else mini-batch."""
    if batch_size is None:
        return "batch"
    if batch_size == 1:
        return "stochastic"
    return "mini-batch"


# ---------------------------------------------------------------------------------------------
# Grids
# ---------------------------------------------------------------------------------------------


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


def _run_one(experiment: Experiment, config: dict, seed: int, keep_params: bool, rnd: int):
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
            trial, params = _run_one(experiment, config, seed, keep_params, 0)
            trials.append(trial)
            if on_trial is not None:
                on_trial(trial)
            if out_dir is not None:
                save_trial(trial, params, out_dir, len(trials) - 1)
                write_csv(trials, os.path.join(out_dir, "results.csv"))
    return trials


# ---------------------------------------------------------------------------------------------
# Model builders, fit, and several seeds at once
# ---------------------------------------------------------------------------------------------


def seed_keys(seed: int):
    """The two keys a trial with ``seed`` uses: ``(init_key, run_key) = split(PRNGKey(seed))``.

    ``init_key`` draws the initial parameters, ``run_key`` is ``fit``'s key (data order and
    per-step keys). :func:`fit_experiment` and :func:`train_seeds_vmapped` both use this, so
    a seed means the same run in both.
    """
    import jax

    init_key, run_key = jax.random.split(jax.random.PRNGKey(int(seed)))
    return init_key, run_key


def _built(build, config, where):
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
        init_fn, loss_fn, optimizer, model_state = _built(build, config, "fit_experiment")
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


@dataclasses.dataclass
class SeedRuns:
    """Result of :func:`train_seeds_vmapped`.

    Attributes:
        seeds: the seeds, in order.
        params: final parameters with a leading seed axis (``<f32>[seeds, ...]`` per leaf).
        model_state: final model states, same layout.
        histories: one history per seed (list of per-epoch dicts, as ``fit`` writes them).
        epoch_seconds: wall time of each epoch for all seeds together (the first includes
            compilation); kept out of the histories so those stay deterministic.
    """

    seeds: list
    params: Any
    model_state: Any
    histories: list
    epoch_seconds: list = dataclasses.field(default_factory=list)

    def params_of(self, i: int):
        """The parameters of the ``i``-th seed (the seed axis indexed away)."""
        import jax

        return jax.tree.map(lambda a: a[i], self.params)


def _acc_zero(metric_shapes):
    import jax.numpy as jnp

    return {k: jnp.zeros((), jnp.float32) for k in metric_shapes
            if k not in ("nonfinite_leaf",)}


_STEP_MEANS = ("grad_norm", "param_norm", "update_norm")


def _acc_step(acc, m):
    # Same reductions as fit: weighted means become sums of mean * count, norms are averaged
    # over steps, the learning rate is the last one, non-finite steps are counted and their
    # loss, norms and rows left out.
    from train import loop

    add = loop.skip_aware_add(m.get("nonfinite"))
    out = {}
    for k, v in acc.items():
        if k == "count":
            out[k] = add(v, m["count"])
        elif k == "steps":
            out[k] = add(v, 1.0)
        elif k == "nonfinite":
            out[k] = v + m[k]
        elif k in _STEP_MEANS:
            out[k] = add(v, m[k])
        elif k == "learning_rate":
            out[k] = m[k]
        else:
            out[k] = add(v, m[k] * m["count"])
    return out


def _acc_logs(acc, prefix=""):
    count, steps = float(acc["count"]), float(acc.get("steps", 0.0))
    logs = {}
    for k, v in acc.items():
        v = float(v)
        if k in ("count", "steps"):
            continue
        if k in _STEP_MEANS:
            logs[prefix + k] = v / steps if steps else math.nan
        elif k == "learning_rate":
            logs[prefix + k] = v
        elif k == "nonfinite":
            if v:
                logs[prefix + "skipped_steps"] = int(v)
        else:
            logs[prefix + k] = v / count if count else math.nan
    logs[prefix + "count"] = count
    return logs


def _data_dict(data, where, name):
    if isinstance(data, tuple) and len(data) == 2:
        data = {"x": data[0], "y": data[1]}
    if not isinstance(data, Mapping) or not data:
        raise TypeError(f"{where}: {name} must be a dict of arrays or an (x, y) pair, "
                        f"got {type(data).__name__}")
    sizes = {k: int(np.shape(v)[0]) for k, v in data.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"{where}: every array of {name} needs the same leading axis, "
                         f"got {sizes}")
    return dict(data), next(iter(sizes.values()))


def _seed_plans(n, batch_size, epoch, data_keys, shuffle, drop_last):
    """``train.loop.epoch_plan`` for several data keys: ``idx <i32>[seeds, batches, batch]`` and
    the shared ``weight <f32>[batches, batch]`` or None (the padding depends only on ``n``)."""
    from train import loop

    plans = [loop.epoch_plan(n, batch_size, epoch=epoch, data_key=k, shuffle=shuffle,
                             drop_last=drop_last) for k in np.asarray(data_keys)]
    return np.stack([idx for idx, _ in plans]), plans[0][1]


def _seed_group_bounds(n_seeds: int, seed_groups, vmap: bool, where: str) -> list:
    """[(lo, hi), ...]: contiguous seed ranges, as equal as possible (sizes differ by <= 1)."""
    import jax

    if seed_groups is None:
        cpu = jax.default_backend() == "cpu" and (os.cpu_count() or 1) >= 2
        seed_groups = 2 if vmap and cpu and n_seeds >= 2 else 1
    if (isinstance(seed_groups, bool) or not isinstance(seed_groups, (int, np.integer))
            or not 1 <= seed_groups <= n_seeds):
        raise ValueError(f"{where}: seed_groups must be None or an int from 1 to the number of "
                         f"seeds ({n_seeds}), got {seed_groups!r}")
    edges = np.linspace(0, n_seeds, int(seed_groups) + 1).round().astype(int)
    return [(int(lo), int(hi)) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]


def train_seeds_vmapped(
    loss_fn: Callable,
    init_fn: Callable,
    optimizer,
    train_data,
    seeds: Sequence[int],
    *,
    epochs: int,
    batch_size: int | None = None,
    model_state=None,
    eval_data=None,
    eval_loss_fn: Callable | None = None,
    shuffle: bool = True,
    drop_last: bool = False,
    nan_policy: str | None = None,
    vmap: bool = True,
    fast_path: str = "scan",
    seed_groups: int | None = None,
) -> SeedRuns:
    """Train one configuration from several seeds at once: ``vmap`` over seeds inside one jit.

    Seed ``s`` is the run ``fit(loss_fn, init_fn(init_key), optimizer, train_data,
    key=run_key, epochs=epochs, batch_size=batch_size)`` with ``(init_key, run_key) =
    seed_keys(s)``: same initial parameters, same per-epoch data order (``fit``'s epoch plan),
    same step keys, same padded last batch. Each epoch is one jitted ``lax.scan`` over the
    batches of ``vmap(train_step)`` across seeds, so S seeds cost one compilation and one
    dispatch per epoch, and the per-step work is done on S-times larger arrays. Parameters
    agree with ``fit`` to about 1e-7 (vmap batches the matmuls differently); with
    ``vmap=False`` they are bitwise equal on CPU. Every seed must have the same shapes, which
    is what makes this possible (a grid over hidden sizes needs one call per size).

    Args:
        loss_fn: ``loss_fn(params, model_state, batch, key) -> (loss, (model_state,
            metrics))`` (the ``fit`` contract).
        init_fn: ``init_fn(key) -> params``.
        optimizer: any optax-compatible ``GradientTransformation``.
        train_data: dict of arrays ``{'x': [n, ...], 'y': [n, ...]}`` or an ``(x, y)`` pair,
            shared by all seeds (held on the device once).
        seeds: the seeds (ints).
        epochs: number of epochs.
        batch_size: ``None`` full batch, ``1`` SGD, ``k`` mini-batch, as in ``fit``.
        model_state: initial model state shared by all seeds (``{}`` if None).
        eval_data: optional evaluation set, evaluated after each epoch as one batch
            (``val_``-prefixed metrics, as ``fit`` logs them).
        eval_loss_fn: loss for evaluation (default ``loss_fn``).
        shuffle, drop_last: as in ``fit``.
        nan_policy: ``None`` (a diverging seed turns NaN; others are unaffected) or ``'skip'``
            (non-finite updates are not applied, counted as ``skipped_steps``).
        vmap: ``False`` runs the same jitted epoch one seed after another. On XLA's CPU
            backend prefer it for convolutional nets: vmapping a convolution over seeds
            turns it into a grouped convolution, which ran about 1.1-1.15x slower than the
            seeds in turn in ``benchmarks/bench_loop.py`` (the MNIST-1D CNN, 8 seeds).
        fast_path: ``'scan'`` (each epoch one jitted ``lax.scan``) or ``'loop'`` (a jitted,
            vmapped step called per batch from Python). Same numbers. On XLA's CPU backend
            a convolution written with ``lax.conv_general_dilated`` is slow inside a loop;
            ``functional.layers.conv`` is not (see ``benchmarks/bench_loop.py``).
        seed_groups: with ``vmap``, split the seeds into this many groups that advance side
            by side, each vmapped, in one loop step. The groups are independent, so XLA's CPU
            backend runs them on different cores at once; a single vmapped group runs its
            small batched matmuls on one core. ``None`` (default): 2 on the CPU backend with
            at least 2 cores and 2 seeds, else 1. In ``benchmarks/bench_loop.py`` (MNIST-1D
            MLP, 8 seeds, scanned epochs, 2 cores), 2 groups took 4.6-5.3x one seed's time
            against 6.5-7.4x for one group; the CNN gained little (8.3x against 8.9x). Every
            seed's numbers are those of its own run, whatever the grouping (up to the last
            bits of vmap's batched matmuls).

    Returns:
        :class:`SeedRuns` with parameters stacked on a leading seed axis.
    """
    import jax
    import jax.numpy as jnp

    from train import loop

    where = "train_seeds_vmapped"
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError(f"{where}: expected at least one seed, got none")
    if not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ValueError(f"{where}: epochs must be an int >= 0, got {epochs!r}")
    if batch_size is not None and (not isinstance(batch_size, (int, np.integer))
                                   or batch_size < 1):
        raise ValueError(f"{where}: batch_size must be None or an int >= 1, got {batch_size!r}")
    if nan_policy not in (None, "skip"):
        raise ValueError(f"{where}: nan_policy must be None or 'skip', got {nan_policy!r}")
    if fast_path not in ("scan", "loop"):
        raise ValueError(f"{where}: fast_path must be 'scan' or 'loop', got {fast_path!r}")
    groups = _seed_group_bounds(len(seeds), seed_groups, vmap, where)
    data, n = _data_dict(train_data, where, "train_data")
    data = {k: jnp.asarray(v) for k, v in data.items()}
    edata = None
    if eval_data is not None:
        edata, _ = _data_dict(eval_data, where, "eval_data")
        edata = {k: jnp.asarray(v) for k, v in edata.items()}

    keys = [seed_keys(s) for s in seeds]
    data_keys, states = [], []
    for init_key, run_key in keys:
        step_key, data_key = jax.random.split(run_key)  # fit's split of its key
        data_keys.append(data_key)
        # Each seed gets its own copy of the model state: the epochs donate their input.
        # Params too: an init_fn may hand every seed (and its caller) the same arrays.
        own_state = None if model_state is None else jax.tree.map(jnp.copy, model_state)
        states.append(loop.init_train_state(jax.tree.map(jnp.copy, init_fn(init_key)),
                                            optimizer, key=step_key, model_state=own_state))
    train_step = loop.make_train_step(loss_fn, optimizer, nan_policy=nan_policy)
    eval_step = loop.make_eval_step(eval_loss_fn or loss_fn)

    def gather(idx, w):
        batch = {k: v[idx] for k, v in data.items()}
        if w is not None:
            batch["weight"] = batch["weight"] * w if "weight" in batch else w
        return batch

    idx0, w0 = _seed_plans(n, batch_size, 0, jnp.stack(data_keys[:1]), shuffle, drop_last)
    idx0 = idx0[0]
    shapes = jax.eval_shape(train_step, states[0], gather(idx0[0], None if w0 is None
                                                          else w0[0]))[1]
    acc0 = {**_acc_zero(shapes), "steps": jnp.zeros((), jnp.float32)}

    def step_one(state, acc, i, wi):
        """One batch (i <i32>[batch]) of one seed."""
        state, m = train_step(state, gather(i, wi))
        return state, _acc_step(acc, m)

    def epoch_one(state, idx, w):
        """One seed's epoch: scan over its batches (idx <i32>[batches, batch])."""
        body = lambda carry, xs: (step_one(*carry, *xs), None)
        return jax.lax.scan(body, (state, acc0), (idx, w))[0]

    def evaluate_one(state):
        m = eval_step(state, edata)
        return {k: v * m["count"] if k != "count" else v for k, v in m.items()}

    # With vmap, the state is a tuple of seed groups, each stacked on a leading seed axis, and
    # every loop step advances all groups (independent work XLA may run on separate cores).
    step_groups = jax.vmap(step_one, in_axes=(0, 0, 0, None))

    def step_all(states, accs, idx, w, b):
        """Step b of every group; idx <i32>[seeds, batches, batch], w <[batches, batch]>."""
        wb = None if w is None else w[b]
        return tuple(zip(*(step_groups(st, acc, idx[lo:hi, b], wb)
                           for st, acc, (lo, hi) in zip(states, accs, groups, strict=True)),
                         strict=True))

    def acc_start():
        return tuple(jax.tree.map(lambda a, k=hi - lo: jnp.zeros((k,), a.dtype), acc0)
                     for lo, hi in groups)

    if not vmap and fast_path == "scan":
        run_epoch = jax.jit(epoch_one, donate_argnums=(0,))
    elif not vmap:
        run_step_one = jax.jit(
            lambda st, acc, idx, w, b: step_one(st, acc, idx[b], None if w is None else w[b]),
            donate_argnums=(0, 1))

        def run_epoch(state, idx, w):
            acc = jax.tree.map(jnp.copy, acc0)
            for b in range(idx.shape[0]):
                state, acc = run_step_one(state, acc, idx, w, np.int32(b))
            return state, acc
    elif fast_path == "scan":
        def epoch_all(states, idx, w):
            def body(carry, b):
                return step_all(*carry, idx, w, b), None
            return jax.lax.scan(body, (states, acc_start()), jnp.arange(idx.shape[1]))[0]
        run_epoch = jax.jit(epoch_all, donate_argnums=(0,))
    else:
        run_step = jax.jit(step_all, donate_argnums=(0, 1))

        def run_epoch(states, idx, w):
            accs = acc_start()
            for b in range(idx.shape[1]):
                states, accs = run_step(states, accs, idx, w, np.int32(b))
            return states, accs

    run_eval = jax.jit(jax.vmap(evaluate_one) if vmap else evaluate_one)
    stack = lambda trees: jax.tree.map(lambda *xs: jnp.stack(xs), *trees)
    concat = lambda trees: jax.tree.map(lambda *xs: jnp.concatenate(xs), *trees)
    if vmap:
        batched = tuple(stack(states[lo:hi]) for lo, hi in groups)
    histories = [[] for _ in seeds]
    epoch_seconds = []
    stacked_keys = jnp.stack(data_keys)
    for epoch in range(int(epochs)):
        t0 = time.perf_counter()
        idx_all, w = _seed_plans(n, batch_size, epoch, stacked_keys, shuffle, drop_last)
        w = None if w is None else jnp.asarray(w)
        if vmap:
            batched, acc = run_epoch(batched, jnp.asarray(idx_all), w)
            acc = jax.device_get(concat(acc))
            accs = [jax.tree.map(lambda a, i=i: a[i], acc) for i in range(len(seeds))]
            evals = None
            if edata is not None:
                ev = jax.device_get(concat([run_eval(g) for g in batched]))
                evals = [jax.tree.map(lambda a, i=i: a[i], ev) for i in range(len(seeds))]
        else:
            accs, evals = [], [] if edata is not None else None
            for i in range(len(seeds)):
                states[i], acc = run_epoch(states[i], jnp.asarray(idx_all[i]), w)
                accs.append(jax.device_get(acc))
                if edata is not None:
                    evals.append(jax.device_get(run_eval(states[i])))
        epoch_seconds.append(time.perf_counter() - t0)
        steps = (epoch + 1) * int(idx_all.shape[1])
        for i, acc in enumerate(accs):
            logs = {"epoch": epoch, "step": steps, **_acc_logs(acc)}
            if evals is not None:
                logs.update(_acc_logs(evals[i], "val_"))
            histories[i].append(logs)
    final = concat(batched) if vmap else stack(states)
    return SeedRuns(seeds=seeds, params=final.params, model_state=final.model_state,
                    histories=histories, epoch_seconds=epoch_seconds)


def run_grid_vmapped(
    build: Callable[[dict], tuple],
    configs: Sequence[Mapping],
    seeds: Sequence[int],
    train_data,
    *,
    epochs: int | None = None,
    batch_size="config",
    keep_params: bool = False,
    out_dir: str | os.PathLike | None = None,
    on_trial: Callable[[Trial], None] | None = None,
    **options,
) -> list[Trial]:
    """:func:`run_grid` with all seeds of each configuration trained at once.

    Each configuration runs :func:`train_seeds_vmapped`; trial ``(config, seed)`` is what
    ``run_grid(fit_experiment(build, train_data, ...), ...)`` gives for it up to float
    rounding: the vmapped kernels may round differently (about 1e-7 relative for Adam here),
    so the ``params_hash`` columns of the two tables can differ; with ``vmap=False`` in
    ``options`` the parameters are bitwise those of ``fit``.

    Args:
        build: ``build(config) -> (init_fn, loss_fn, optimizer[, model_state])``.
        configs: the configurations.
        seeds: seeds trained together for each configuration.
        train_data: dict of arrays or ``(x, y)``.
        epochs: epochs per trial (default ``config['epochs']``).
        batch_size: ``'config'`` reads ``config.get('batch_size')``, else used for all.
        keep_params, out_dir, on_trial: as in :func:`run_grid`.
        **options: more :func:`train_seeds_vmapped` keywords (``eval_data``, ...).

    Returns:
        The trials, configuration-major then seed.
    """
    trials = []
    for config in configs:
        init_fn, loss_fn, optimizer, model_state = _built(build, config, "run_grid_vmapped")
        n_epochs = config.get("epochs") if epochs is None else epochs
        if n_epochs is None:
            raise ValueError("run_grid_vmapped: give epochs= or an 'epochs' entry in the config")
        bs = config.get("batch_size") if batch_size == "config" else batch_size
        runs = train_seeds_vmapped(loss_fn, init_fn, optimizer, train_data, seeds,
                                   epochs=int(n_epochs), batch_size=bs,
                                   model_state=model_state, **options)
        for i, seed in enumerate(runs.seeds):
            params = runs.params_of(i)
            trial = Trial(config=dict(config), seed=seed, history=runs.histories[i],
                          params=params if keep_params else None,
                          params_hash=params_hash(params))
            trials.append(trial)
            if on_trial is not None:
                on_trial(trial)
            if out_dir is not None:
                save_trial(trial, params, out_dir, len(trials) - 1)
        if out_dir is not None:
            write_csv(trials, os.path.join(out_dir, "results.csv"))
    return trials


# ---------------------------------------------------------------------------------------------
# Random search on the right scale, coarse to fine (seed 004, sections 9.3-9.4)
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LogUniform:
    """``exp(U(log low, log high))``: equal probability per decade (learning rates)."""

    low: float
    high: float
    integer: bool = False

    def __post_init__(self):
        if not 0 < self.low < self.high:
            raise ValueError(f"LogUniform: expected 0 < low < high, got {self.low}, {self.high}")

    def to_unit(self, v):
        return (math.log(v) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))

    def _raw(self, u):
        return math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))

    def from_unit(self, u):
        v = self._raw(u)
        return int(round(v)) if self.integer else v

    def narrowed(self, lo_unit, hi_unit):
        return _narrowed(self, self._raw(lo_unit), self._raw(hi_unit))


@dataclasses.dataclass(frozen=True)
class OneMinusLogUniform:
    """``1 - exp(U(log(1 - high), log(1 - low)))``: for averaging rates such as momentum's
    ``beta`` in [0.9, 0.999], where 0.9 -> 0.9005 hardly matters but 0.999 -> 0.9995 halves
    the averaging window (seed 004, section 9.4)."""

    low: float
    high: float

    def __post_init__(self):
        if not 0 <= self.low < self.high < 1:
            raise ValueError(f"OneMinusLogUniform: expected 0 <= low < high < 1, "
                             f"got {self.low}, {self.high}")

    def _inner(self):
        return LogUniform(1 - self.high, 1 - self.low)

    def to_unit(self, v):
        return 1 - self._inner().to_unit(1 - v)

    def from_unit(self, u):
        return 1 - self._inner().from_unit(1 - u)

    def narrowed(self, lo_unit, hi_unit):
        return dataclasses.replace(self, low=self.from_unit(lo_unit), high=self.from_unit(hi_unit))


@dataclasses.dataclass(frozen=True)
class Uniform:
    """``U(low, high)`` on a linear scale (``integer=True`` rounds, e.g. layer counts)."""

    low: float
    high: float
    integer: bool = False

    def __post_init__(self):
        if not self.low < self.high:
            raise ValueError(f"Uniform: expected low < high, got {self.low}, {self.high}")

    def to_unit(self, v):
        return (v - self.low) / (self.high - self.low)

    def _raw(self, u):
        return self.low + u * (self.high - self.low)

    def from_unit(self, u):
        v = self._raw(u)
        return int(round(v)) if self.integer else v

    def narrowed(self, lo_unit, hi_unit):
        return _narrowed(self, self._raw(lo_unit), self._raw(hi_unit))


def _narrowed(dim, low, high):
    """``dim`` over [low, high]; an integer dimension keeps the whole integers the interval
    touches (its bounds rounded outwards, within the old ones), and one that holds a single
    integer becomes that fixed value."""
    if not dim.integer:
        return dataclasses.replace(dim, low=low, high=high)
    low = max(math.floor(low + 1e-9), math.ceil(dim.low))
    high = min(math.ceil(high - 1e-9), math.floor(dim.high))
    if low >= high:
        return int(low)
    return dataclasses.replace(dim, low=low, high=high)


@dataclasses.dataclass(frozen=True)
class Choice:
    """One of a finite set of values, uniformly (optimizers, activations, initializers)."""

    values: tuple

    def __post_init__(self):
        if not self.values:
            raise ValueError("Choice: expected at least one value")


Dimension = LogUniform | OneMinusLogUniform | Uniform | Choice


def sample(space: Mapping[str, Any], n: int, rng: np.random.Generator) -> list[dict]:
    """Draw ``n`` configurations from a search space.

    Args:
        space: name -> dimension (:class:`LogUniform`, :class:`OneMinusLogUniform`,
            :class:`Uniform`, :class:`Choice`) or a fixed value (copied into every config).
        n: number of configurations.
        rng: a ``numpy.random.Generator`` (the search is host-side bookkeeping).

    Returns:
        ``n`` dicts with one value per name.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"sample: expected a numpy.random.Generator, got {type(rng).__name__}")
    configs = []
    for _ in range(n):
        config = {}
        for name, dim in space.items():
            if isinstance(dim, Choice):
                config[name] = dim.values[int(rng.integers(len(dim.values)))]
            elif hasattr(dim, "from_unit"):
                config[name] = dim.from_unit(float(rng.uniform()))
            else:
                config[name] = dim
        configs.append(config)
    return configs


def zoom(space: Mapping[str, Any], best: Sequence[Mapping], *, margin: float = 0.25) -> dict:
    """The finer search space around the best configurations (the notes' coarse to fine).

    For each continuous dimension, the new interval spans the best configurations' values on
    that dimension's own scale (log for :class:`LogUniform`), widened by ``margin`` times the
    old interval's width on each side and clipped to the old interval; an integer dimension
    rounds its new bounds outwards to whole numbers and becomes a fixed value when they
    meet. A :class:`Choice` keeps only the values that the best configurations used.

    Args:
        space: the coarse space.
        best: the best few configurations of the coarse round (at least one).
        margin: widening as a fraction of the coarse interval, per side.

    Returns:
        The finer space (same names).
    """
    if not best:
        raise ValueError("zoom: expected at least one configuration to zoom around, got none")
    if margin < 0:
        raise ValueError(f"zoom: expected margin >= 0, got {margin}")
    finer = {}
    for name, dim in space.items():
        if isinstance(dim, Choice):
            kept = tuple(v for v in dim.values if any(b[name] == v for b in best))
            finer[name] = Choice(kept)
        elif hasattr(dim, "narrowed"):
            units = [dim.to_unit(b[name]) for b in best]
            lo, hi = max(0.0, min(units) - margin), min(1.0, max(units) + margin)
            # an integer dimension narrows to a fixed value when the best agree on it
            keep_old = hi <= lo and not getattr(dim, "integer", False)
            finer[name] = dim if keep_old else dim.narrowed(lo, hi)
        else:
            finer[name] = dim
    return finer


def _score_fn(score):
    if callable(score):
        return score
    if isinstance(score, str):
        key = score

        def final(history):
            for row in reversed(history):
                if key in row:
                    return float(row[key])
            raise KeyError(f"random_search: metric {key!r} not in the history "
                           f"(keys: {sorted(history[-1]) if history else []})")

        return final
    raise TypeError(f"random_search: expected score as a metric name or a function of the "
                    f"history, got {type(score).__name__}")


@dataclasses.dataclass
class SearchResult:
    """What :func:`random_search` found.

    Attributes:
        trials: every trial of every round (score = mean over seeds, repeated per seed).
        spaces: the space searched in each round (coarse first).
        best_config: the configuration with the best mean score over seeds.
        best_score: that score.
    """

    trials: list
    spaces: list
    best_config: dict
    best_score: float


def random_search(
    experiment: Experiment,
    space: Mapping[str, Any],
    *,
    score: str | Callable[[list], float],
    n_trials: int | Sequence[int] = 16,
    rounds: int = 2,
    top_k: int = 3,
    margin: float = 0.1,
    seeds: Sequence[int] = (0,),
    mode: str = "min",
    search_seed: int = 0,
    on_trial: Callable[[Trial], None] | None = None,
) -> SearchResult:
    """Random search on log scales with coarse-to-fine rounds (seed 004, sections 9.3-9.4).

    Round 0 samples ``n_trials`` configurations from ``space``; each later round samples
    from :func:`zoom` of the previous round's space around its ``top_k`` configurations.
    A configuration's score is the mean over ``seeds`` of ``score(history)``; a non-finite
    score (a diverged run) ranks last.

    Args:
        experiment: ``experiment(config, seed) -> (history, params)``.
        space: the coarse space (see :func:`sample`).
        score: a metric name (its last value in the history) or ``f(history) -> float``.
        n_trials: configurations per round (an int, or one per round).
        rounds: number of rounds (1 = plain random search).
        top_k: how many best configurations define the next round's region.
        margin: widening of the zoomed region (fraction of the old interval, per side).
        seeds: seeds per configuration.
        mode: ``'min'`` or ``'max'``.
        search_seed: seeds the sampling of configurations (not the training).
        on_trial: called with each finished trial.

    Returns:
        A :class:`SearchResult`.
    """
    if mode not in ("min", "max"):
        raise ValueError(f"random_search: expected mode 'min' or 'max', got {mode!r}")
    if rounds < 1 or top_k < 1:
        raise ValueError(f"random_search: expected rounds >= 1 and top_k >= 1, "
                         f"got {rounds}, {top_k}")
    if isinstance(n_trials, numbers.Integral) and not isinstance(n_trials, bool):
        per_round = [int(n_trials)] * rounds
    elif isinstance(n_trials, Sequence) and not isinstance(n_trials, str):
        per_round = list(n_trials)
    else:
        per_round = None
    if (per_round is None or len(per_round) != rounds
            or not all(isinstance(k, numbers.Integral) and not isinstance(k, bool) and k >= 1
                       for k in per_round)):
        raise ValueError(f"random_search: expected n_trials as a positive int or {rounds} "
                         f"positive ints, got {n_trials!r}")
    score_of = _score_fn(score)
    rng = np.random.default_rng(search_seed)
    sign = 1.0 if mode == "min" else -1.0
    trials, spaces, ranked = [], [], []
    current = dict(space)
    for rnd in range(rounds):
        if rnd:
            current = zoom(current, [c for c, _ in ranked[:top_k]], margin=margin)
        spaces.append(current)
        scored = []
        for config in sample(current, per_round[rnd], rng):
            group = []
            for seed in seeds:
                trial, _ = _run_one(experiment, config, seed, False, rnd)
                trial.score = float(score_of(trial.history))
                group.append(trial)
                if on_trial is not None:
                    on_trial(trial)
            mean = float(np.mean([t.score for t in group]))
            trials.extend(group)
            scored.append((config, mean))
        # Rank over every round so far: the fine round refines, it does not forget.
        ranked = sorted(ranked + scored,
                        key=lambda cs: sign * cs[1] if math.isfinite(cs[1]) else math.inf)
    best_config, best_score = ranked[0]
    return SearchResult(trials=trials, spaces=spaces, best_config=best_config,
                        best_score=best_score)


# ---------------------------------------------------------------------------------------------
# Tables and figures
# ---------------------------------------------------------------------------------------------


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


def table(trials: Sequence[Trial], metrics: Sequence[str] | None = None) -> list[dict]:
    """Trials as flat rows: config keys, ``seed``, ``round``, ``score``, ``epochs`` run, the
    final value of each metric, and ``params_hash``.

    Args:
        trials: the trials.
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


def write_csv(trials: Sequence[Trial], path: str | os.PathLike,
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


def curves(trials: Sequence[Trial], metric: str = "loss", *, label_by=None):
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


def _figure(**kwargs):
    # A bare Figure, not pyplot: saving needs no backend, so the caller's (a notebook's
    # inline one) is left alone, and no figure stays registered with pyplot.
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def plot_curves(
    trials: Sequence[Trial],
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
    fig = _figure(figsize=(6.4, 4.2))
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
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    fig.savefig(path)
    return drawn


def plot_search(result: SearchResult, path: str | os.PathLike, *, param: str = "lr",
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
    fig = _figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    for rnd, (xs, ys) in sorted(points.items()):
        ax.scatter(xs, ys, s=16, label="coarse" if rnd == 0 else f"fine {rnd}")
    ax.axvline(result.best_config[param], color="k", linewidth=0.8, linestyle="--")
    ax.set_xlabel(param)
    ax.set_ylabel("score")
    if logx:
        ax.set_xscale("log")
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    fig.savefig(path)
    return points
