"""Hyperparameter sweeps in one jit: configurations times seeds, grouped by array shapes.

:func:`run_grid_vmapped` and the batched experiments of :func:`sweep_experiment` (which
:func:`train.experiments.random_search` runs a whole round at a time) split a list of
configurations into groups that share every array shape:

- keys whose values are real numbers in every configuration (learning rate, weight decay,
  momentum, betas, an init scale, a dropout rate, ...) may differ inside a group: they are
  traced, one value per trial (:func:`train.experiments.vmapped.train_trials`);
- any other key (batch size, hidden sizes, optimizer names, epochs) fixes a group;
- a real-valued key the builder cannot take as an array (a model that branches on it in
  Python) is found by tracing (:func:`traceable_keys`) and fixes a group too.

Each group's trials (configurations x seeds) train together in chunks that fit the device's
memory (:func:`auto_chunk_size`, or ``chunk_size=``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from train.experiments.grid import Trial, built, save_trial, seed_keys
from train.experiments.report import write_csv
from train.experiments.vmapped import train_trials
from train.manifest import params_hash


def _real(v) -> bool:
    return isinstance(v, (float, np.floating)) and not isinstance(v, bool)


def _abstract_trial(build, config, train_data, batch_size, where):
    """``((loss_fn, optimizer), state, batch)`` of one trial of ``config``: its functions,
    and its initial train state and one batch as ``jax.ShapeDtypeStruct`` s (nothing runs)."""
    import jax
    import jax.numpy as jnp

    from train.loop.plan import gather, n_rows, require_data
    from train.loop.step import init_train_state

    data = require_data(train_data, where, "train_data")
    init_fn, loss_fn, optimizer, model_state = built(build, config, where)
    init_key, run_key = seed_keys(0)
    state = jax.eval_shape(lambda k: init_train_state(init_fn(k), optimizer, key=run_key,
                                                      model_state=model_state), init_key)
    rows = min(n_rows(data), batch_size or n_rows(data))
    batch = jax.eval_shape(lambda d: gather(d, jnp.arange(rows)), data)
    return (loss_fn, optimizer), state, batch


def traceable_keys(build: Callable, config: Mapping, keys: Sequence[str], train_data, *,
                   batch_size: int | None = None) -> list[str]:
    """The ``keys`` of ``config`` that ``build`` accepts as traced 0-d arrays: its step
    traces with each of them abstract. (A model config that branches on a value in Python
    raises jax's ``ConcretizationTypeError``, a ``TypeError``, for it; a validator that
    needs a concrete number may raise a ``ValueError``.)"""
    import jax
    import jax.numpy as jnp

    from train.loop.step import make_train_step

    keys = list(keys)
    if not keys:
        return []
    _, state, batch = _abstract_trial(build, config, train_data, batch_size, "traceable_keys")

    def traces(names) -> bool:
        def step(hp, st, b):
            _, lf, opt, _ = built(build, {**config, **hp}, "traceable_keys")
            return make_train_step(lf, opt, nan_policy=None)(st, b)
        hp = {k: jax.ShapeDtypeStruct((), jnp.float32) for k in names}
        try:
            jax.eval_shape(step, hp, state, batch)
        except (TypeError, ValueError):
            return False
        return True

    if traces(keys):
        return keys
    return [k for k in keys if traces([k])]


def _budget_bytes() -> int:
    """Memory a sweep may fill: half of the device's free memory (accelerators), or half of
    the host's available memory (CPU; 4 GB when unknown)."""
    import jax

    device = jax.devices()[0]
    stats = getattr(device, "memory_stats", lambda: None)()
    if stats and "bytes_limit" in stats:
        return int(0.5 * (stats["bytes_limit"] - stats.get("bytes_in_use", 0)))
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 2
    except OSError:
        pass
    return 4 << 30


def trial_bytes(build: Callable, config: Mapping, train_data, *,
                batch_size: int | None = None, analyse: bool = True) -> int:
    """Device memory one trial needs while training: its state, the optimizer's and the
    step's temporaries (XLA's memory analysis of one compiled step; with ``analyse=False``
    a generous guess from the state and batch sizes instead, which costs no compilation),
    and the metric accumulator, times 1.5 for safety."""
    import jax

    from train.loop.step import make_train_step

    (loss_fn, optimizer), state, batch = _abstract_trial(build, config, train_data, batch_size,
                                                         "trial_bytes")
    state_bytes = sum(int(np.prod(x.shape)) * x.dtype.itemsize for x in jax.tree.leaves(state))
    guess = 8 * state_bytes + 64 * sum(int(np.prod(x.shape)) * x.dtype.itemsize
                                       for x in jax.tree.leaves(batch))
    temp = guess
    if analyse:
        step = make_train_step(loss_fn, optimizer, nan_policy=None)
        try:
            analysis = jax.jit(step).lower(state, batch).compile().memory_analysis()
            temp = int(analysis.temp_size_in_bytes) + int(analysis.output_size_in_bytes)
        except Exception:   # a backend without memory analysis: the guess
            pass
    return int(1.5 * (2 * state_bytes + temp))


def auto_chunk_size(n_trials: int, per_trial: int, *, budget: int | None = None) -> int:
    """Trials per chunk: as many as fit ``budget`` bytes (default :func:`_budget_bytes`),
    at least 1, at most ``n_trials``; chunks are then made about equal."""
    budget = _budget_bytes() if budget is None else int(budget)
    fit = max(1, budget // max(1, int(per_trial)))
    if fit >= n_trials:
        return n_trials
    chunks = -(-n_trials // fit)
    return -(-n_trials // chunks)


@dataclasses.dataclass
class _Group:
    static: dict        # the values that fix the group's shapes
    traced: list        # the keys held as arrays
    members: list       # indices into the configurations


def _group(build, configs, train_data, epochs, batch_size, where) -> list[_Group]:
    """Configurations grouped by what fixes their shapes (see the module doc)."""
    reals = [k for k in configs[0] if all(_real(c.get(k)) and k in c for c in configs)]
    groups: dict[str, _Group] = {}
    for i, c in enumerate(configs):
        fixed = {k: v for k, v in c.items() if k not in reals}
        fixed["__epochs"], fixed["__batch_size"] = _epochs(c, epochs, where), \
            _batch_size(c, batch_size)
        key = repr(sorted(fixed.items(), key=lambda kv: kv[0]))
        groups.setdefault(key, _Group(fixed, [], [])).members.append(i)
    out = []
    for g in groups.values():
        members = [configs[i] for i in g.members]
        varying = [k for k in reals if len({repr(c[k]) for c in members}) > 1]
        ok = traceable_keys(build, members[0], varying, train_data,
                            batch_size=g.static["__batch_size"])
        if len(ok) == len(varying):
            out.append(dataclasses.replace(g, traced=ok))
            continue
        # keys the builder cannot trace split the group further, by value
        sub: dict[str, _Group] = {}
        for i, c in zip(g.members, members, strict=True):
            key = repr([c[k] for k in varying if k not in ok])
            sub.setdefault(key, _Group(g.static, ok, [])).members.append(i)
        out.extend(sub.values())
    return out


def _epochs(config, epochs, where) -> int:
    n = config.get("epochs") if epochs is None else epochs
    if n is None:
        raise ValueError(f"{where}: give epochs= or an 'epochs' entry in the config")
    return int(n)


def _batch_size(config, batch_size):
    return config.get("batch_size") if batch_size == "config" else batch_size


def train_pairs(build: Callable[[dict], tuple], pairs: Sequence[tuple], train_data, *,
                epochs: int | None = None, batch_size="config", chunk_size: int | None = None,
                on_chunk=None, where: str = "train_pairs", **options) -> list[tuple[list, object]]:
    """``(history, params)`` of every ``(configuration, seed)`` pair: each group of
    shape-sharing configurations trains as vmapped chunks of trials.

    Args:
        build: ``build(config) -> (init_fn, loss_fn, optimizer[, model_state])``.
        pairs: the trials, ``(config, seed)`` each.
        train_data: dict of arrays or ``(x, y)``.
        epochs: epochs per trial (default ``config['epochs']``).
        batch_size: ``'config'`` reads ``config.get('batch_size')``, else used for all.
        chunk_size: trials per vmapped program (default :func:`auto_chunk_size`).
        on_chunk: called with ``(indices, results)`` as each chunk finishes (``indices`` into
            ``pairs``), e.g. to save them as they come.
        where: the function name in error messages.
        **options: more :func:`train_trials` keywords (``eval_data``, ``vmap``, ...).

    Returns:
        One ``(history, params)`` per pair, in order.
    """
    from train.loop.settings import check_int

    pairs = [(dict(c), int(s)) for c, s in pairs]
    if not pairs:
        raise ValueError(f"{where}: expected at least one trial, got none")
    check_int(where, "chunk_size", chunk_size, low=1, none_ok=True)
    if "seed_groups" in options:   # the name train_seeds_vmapped uses
        options["groups"] = options.pop("seed_groups")
    configs = [c for c, _ in pairs]
    results: list = [None] * len(pairs)
    for g in _group(build, configs, train_data, epochs, batch_size, where):
        bs = g.static["__batch_size"]
        members = g.members
        size = chunk_size
        if size is None and len(members) > 1:
            # the generous guess first; a compiled memory analysis only when it matters
            args = (build, configs[members[0]], train_data)
            per = trial_bytes(*args, batch_size=bs, analyse=False)
            if per * len(members) > _budget_bytes() // 10:
                per = trial_bytes(*args, batch_size=bs)
            size = auto_chunk_size(len(members), per)
        size = size or 1
        for lo in range(0, len(members), size):
            chunk = members[lo:lo + size]
            runs = train_trials(build, [configs[i] for i in chunk],
                                [pairs[i][1] for i in chunk], train_data,
                                epochs=g.static["__epochs"], batch_size=bs,
                                traced=g.traced, where=where, **options)
            for k, index in enumerate(chunk):
                results[index] = (runs.histories[k], runs.params_of(k))
            if on_chunk is not None:
                on_chunk(list(chunk), [results[i] for i in chunk])
    return results


def train_configs(build: Callable[[dict], tuple], configs: Sequence[Mapping],
                  seeds: Sequence[int], train_data, *, where: str = "train_configs",
                  **options) -> list[tuple[list, object]]:
    """:func:`train_pairs` of every configuration with every seed, configuration-major."""
    configs, seeds = [dict(c) for c in configs], [int(s) for s in seeds]
    if not configs:
        raise ValueError(f"{where}: expected at least one configuration, got none")
    if not seeds:
        raise ValueError(f"{where}: expected at least one seed, got none")
    return train_pairs(build, [(c, s) for c in configs for s in seeds], train_data,
                       where=where, **options)


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
    chunk_size: int | None = None,
    **options,
) -> list[Trial]:
    """:func:`train.experiments.run_grid` with whole groups of trials trained at once.

    Configurations that share every array shape train together, seeds included, with their
    real-valued hyperparameters as arrays (see the module doc); trial ``(config, seed)`` is
    what ``run_grid(fit_experiment(build, train_data, ...), ...)`` gives for it up to float
    rounding: the vmapped kernels may round differently (about 1e-7 relative for Adam here),
    so the ``params_hash`` columns of the two tables can differ; with ``vmap=False`` in
    ``options`` the parameters are bitwise those of ``fit``.

    Args:
        build: ``build(config) -> (init_fn, loss_fn, optimizer[, model_state])``; it must
            accept 0-d arrays for the real-valued keys that vary (a key it cannot take as an
            array is found by tracing and trained value by value instead).
        configs: the configurations.
        seeds: seeds trained for each configuration.
        train_data: dict of arrays or ``(x, y)``.
        epochs: epochs per trial (default ``config['epochs']``).
        batch_size: ``'config'`` reads ``config.get('batch_size')``, else used for all.
        keep_params, out_dir, on_trial: as in :func:`train.experiments.run_grid`.
        chunk_size: trials per vmapped program (default: as many as fit in half the device's
            free memory, :func:`auto_chunk_size`).
        **options: more :func:`train.experiments.vmapped.train_trials` keywords
            (``eval_data``, ``eval_loss_fn``, ``shuffle``, ``drop_last``, ``nan_policy``,
            ``vmap``, ``fast_path``, ``groups`` or its old name ``seed_groups``).

    Returns:
        The trials, configuration-major then seed.
    """
    configs = [dict(c) for c in configs]
    seeds = [int(s) for s in seeds]
    results = train_configs(build, configs, seeds, train_data, epochs=epochs,
                            batch_size=batch_size, chunk_size=chunk_size,
                            where="run_grid_vmapped", **options)
    trials = []
    for index, (history, params) in enumerate(results):
        config, seed = configs[index // len(seeds)], seeds[index % len(seeds)]
        trial = Trial(config=dict(config), seed=seed, history=history,
                      params=params if keep_params else None, params_hash=params_hash(params))
        trials.append(trial)
        if on_trial is not None:
            on_trial(trial)
        if out_dir is not None:
            save_trial(trial, params, out_dir, index)
    if out_dir is not None:
        write_csv(trials, os.path.join(out_dir, "results.csv"))
    return trials


class BatchedExperiment:
    """An experiment ``(config, seed) -> (history, params)`` that can also train many trials
    at once: :func:`train.experiments.random_search` calls :meth:`run_batch` with a whole
    round. Made by :func:`sweep_experiment`."""

    def __init__(self, build, train_data, *, epochs, batch_size, chunk_size, options):
        self.build, self.train_data = build, train_data
        self.epochs, self.batch_size, self.chunk_size = epochs, batch_size, chunk_size
        self.options = options

    def run_batch(self, configs: Sequence[Mapping], seeds: Sequence[int], *,
                  on_chunk=None) -> list[tuple[list, object]]:
        """``(history, params)`` for every configuration with every seed,
        configuration-major (see :func:`train_configs`)."""
        return train_configs(self.build, configs, seeds, self.train_data, epochs=self.epochs,
                             batch_size=self.batch_size, chunk_size=self.chunk_size,
                             on_chunk=on_chunk, where="sweep_experiment", **self.options)

    def __call__(self, config: dict, seed: int):
        return self.run_batch([config], [seed])[0]


def sweep_experiment(build: Callable[[dict], tuple], train_data, *, eval_data=None,
                     epochs: int | None = None, batch_size="config",
                     chunk_size: int | None = None, **options) -> BatchedExperiment:
    """The vmapped counterpart of :func:`train.experiments.fit_experiment`: an experiment
    whose searches train each round's trials together (:func:`train_configs`).

    Args:
        build: ``build(config) -> (init_fn, loss_fn, optimizer[, model_state])``.
        train_data, eval_data: the data (``eval_data`` gives the ``val_*`` metrics).
        epochs: epochs per trial (default ``config['epochs']``).
        batch_size: ``'config'`` reads ``config.get('batch_size')``, else used for all.
        chunk_size: trials per vmapped program (default :func:`auto_chunk_size`).
        **options: more :func:`train.experiments.vmapped.train_trials` keywords.
    """
    if eval_data is not None:
        options["eval_data"] = eval_data
    return BatchedExperiment(build, train_data, epochs=epochs, batch_size=batch_size,
                             chunk_size=chunk_size, options=options)
