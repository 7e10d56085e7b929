"""Many trials in one program: ``vmap`` over seeds and hyperparameters inside one jit.

A *trial* is one training run of one configuration from one seed. Trials whose configurations
differ only in real-valued hyperparameters (learning rate, weight decay, momentum, betas, an
initialization scale, a dropout rate, ...) share every array shape, so they can train
together: :func:`train_trials` builds the step once with those hyperparameters as traced
arrays (one value per trial, vmapped), stacks the trials' states on a leading axis, and runs
each epoch as one jitted ``lax.scan`` over batches of ``vmap(train_step)``. T trials then cost
one compilation and one dispatch per epoch, and the per-step work is done on T-times larger
arrays: on an accelerator, where a small model leaves the device idle, many trials cost about
as much as one (the way PureJaxRL trains thousands of agents on one GPU).

Trial ``t`` is the run ``fit(loss_fn, init_fn(init_key), optimizer, train_data, key=run_key,
epochs=..., batch_size=...)`` with ``build(configs[t]) -> (init_fn, loss_fn, optimizer)`` and
``(init_key, run_key) = seed_keys(seeds[t])``: same initial parameters (drawn exactly as
``fit``'s caller would, one trial at a time), same data order, same step keys, same padded
last batch. With ``vmap=False`` each trial runs alone through the same step as ``fit`` and is
bitwise equal to it on CPU; vmapped, the batched kernels may round differently (about 1e-7
relative per step for Adam on the MNIST-1D MLP; tests bound the final parameters at 1e-5).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from train.experiments.grid import built, seed_keys


@dataclasses.dataclass
class SeedRuns:
    """Result of :func:`train_seeds_vmapped` and :func:`train_trials`.

    Attributes:
        seeds: the trials' seeds, in order.
        params: final parameters with a leading trial axis (``<f32>[trials, ...]`` per leaf).
        model_state: final model states, same layout.
        histories: one history per trial (list of per-epoch dicts, as ``fit`` writes them).
        epoch_seconds: wall time of each epoch for all trials together (the first includes
            compilation); kept out of the histories so those stay deterministic.
        configs: the trials' configurations (empty for :func:`train_seeds_vmapped`).
    """

    seeds: list
    params: Any
    model_state: Any
    histories: list
    epoch_seconds: list = dataclasses.field(default_factory=list)
    configs: list = dataclasses.field(default_factory=list)

    def params_of(self, i: int):
        """The parameters of the ``i``-th trial (the trial axis indexed away)."""
        import jax

        return jax.tree.map(lambda a: a[i], self.params)


def group_bounds(n: int, groups, vmap: bool, where: str, name: str = "seed_groups") -> list:
    """[(lo, hi), ...]: ``groups`` contiguous trial ranges, as equal as possible (sizes differ
    by <= 1). ``None``: 2 on the CPU backend with at least 2 cores and 2 trials, else 1."""
    import jax

    if groups is None:
        cpu = jax.default_backend() == "cpu" and (os.cpu_count() or 1) >= 2
        groups = 2 if vmap and cpu and n >= 2 else 1
    if (isinstance(groups, bool) or not isinstance(groups, (int, np.integer))
            or not 1 <= groups <= n):
        raise ValueError(f"{where}: {name} must be None or an int from 1 to the number of "
                         f"trials ({n}), got {groups!r}")
    edges = np.linspace(0, n, int(groups) + 1).round().astype(int)
    return [(int(lo), int(hi)) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]


def traced_keys(configs: Sequence[Mapping]) -> list[str]:
    """The keys whose values differ between ``configs`` and are all real numbers (floats,
    not bools or ints): the hyperparameters a sweep can hold as arrays."""
    keys = []
    for k in configs[0]:
        values = [c.get(k) for c in configs]
        if len({repr(v) for v in values}) > 1 and all(
                isinstance(v, (float, np.floating)) for v in values):
            keys.append(k)
    return keys


def _check(where, *, epochs, batch_size, nan_policy, fast_path, norms):
    from train.loop.runner import NORMS
    from train.loop.settings import check_choice, check_int

    check_choice(where, "norms", norms, NORMS)
    check_int(where, "epochs", epochs, low=0)
    check_int(where, "batch_size", batch_size, low=1, none_ok=True)
    check_choice(where, "nan_policy", nan_policy, (None, "skip"))
    check_choice(where, "fast_path", fast_path, ("scan", "loop"))


def trial_plans(n, batch_size, epoch, data_keys, shuffle, drop_last):
    """``train.loop.epoch_plan`` for several data keys: ``idx <i32>[trials, batches, batch]``
    and the shared ``weight <f32>[batches, batch]`` or None (the padding depends only on n)."""
    from train.loop.plan import epoch_plan

    plans = [epoch_plan(n, batch_size, epoch=epoch, data_key=k, shuffle=shuffle,
                        drop_last=drop_last) for k in np.asarray(data_keys)]
    return np.stack([idx for idx, _ in plans]), plans[0][1]


def run_once_options() -> dict:
    """XLA compiler options for a program that runs once per call (the trials' initial states,
    regrouping them): on the CPU backend, no backend optimization. The vmapped initialization
    of the MNIST-1D MLP over 64 trials compiled in 2.2 s with it and 0.23 s without (its
    threefry and erf_inv kernels are large), and runs in milliseconds either way."""
    import jax

    return {"xla_backend_optimization_level": 0} if jax.default_backend() == "cpu" else {}


def _split_groups(tree, bounds) -> tuple:
    """``tree`` (leaves with a leading trial axis) as one tree per ``(lo, hi)`` group."""
    import jax

    return tuple(jax.tree.map(lambda a, lo=lo, hi=hi: a[lo:hi], tree) for lo, hi in bounds)


class _Trials:
    """The trials of one call: their keys, what their steps are built from, and their initial
    states, drawn one by one as ``fit``'s caller would (``alone``: ``init_fn(init_key)``,
    then ``optimizer.init``, eagerly; ``states``), or all at once in one vmapped jit over the
    traced hyperparameters, already split into the ``bounds`` groups (``groups``; the same
    draws, up to the rounding of a compiled program). ``template`` has one trial's state
    shapes."""

    def __init__(self, build, configs, seeds, where, *, alone: bool, static=None, hparams=None,
                 bounds=None):
        import jax
        import jax.numpy as jnp

        from train.loop.step import init_train_state

        self.data_keys, self.fns, init_keys, step_keys = [], [], [], []
        parts = [built(build, config, where) for config in configs]
        self.fns = [(loss_fn, optimizer) for _, loss_fn, optimizer, _ in parts]
        for seed in seeds:
            init_key, run_key = seed_keys(seed)
            step_key, data_key = jax.random.split(run_key)  # fit's split of its key
            init_keys.append(init_key)
            step_keys.append(step_key)
            self.data_keys.append(data_key)
        if alone:
            self.states = []
            for (init_fn, _, optimizer, model_state), init_key, step_key in zip(
                    parts, init_keys, step_keys, strict=True):
                # Each trial gets its own copies: the epochs donate their input, and an
                # init_fn (or a shared model state) may hand every trial the same arrays.
                own = None if model_state is None else jax.tree.map(jnp.copy, model_state)
                self.states.append(init_train_state(jax.tree.map(jnp.copy, init_fn(init_key)),
                                                    optimizer, key=step_key, model_state=own))
            self.template = self.states[0]
            return

        def init_one(hp, init_key, step_key):
            init_fn, _, optimizer, model_state = (built(build, {**static, **hp}, where)
                                                  if hp else parts[0])
            return init_train_state(init_fn(init_key), optimizer, key=step_key,
                                    model_state=model_state)

        init_groups = jax.jit(lambda hp, ik, sk: _split_groups(jax.vmap(init_one)(hp, ik, sk),
                                                               bounds),
                              compiler_options=run_once_options())
        self.groups = init_groups(hparams, jnp.stack(init_keys), jnp.stack(step_keys))
        self.template = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype),
                                     self.groups[0])


def train_trials(
    build: Callable[[dict], tuple],
    configs: Sequence[Mapping],
    seeds: Sequence[int],
    train_data,
    *,
    epochs: int,
    batch_size: int | None = None,
    eval_data=None,
    eval_loss_fn: Callable | None = None,
    shuffle: bool = True,
    drop_last: bool = False,
    nan_policy: str | None = None,
    norms: str | None = "last",
    vmap: bool = True,
    fast_path: str = "scan",
    groups: int | None = None,
    traced: Sequence[str] | None = None,
    precision: str | None = None,
    where: str = "train_trials",
) -> SeedRuns:
    """Train trial ``t`` = (``configs[t]``, ``seeds[t]``) for every t, all in one program.

    Args:
        build: ``build(config) -> (init_fn, loss_fn, optimizer[, model_state])`` (as for
            ``fit_experiment``). With ``vmap``, it is also called while tracing, with the
            ``traced`` hyperparameters as 0-d arrays, so it must accept arrays for them
            (optax and ``functional.optim`` take arrays for their hyperparameters; a model
            config that branches on a value in Python cannot, and its key is then static).
        configs: one configuration per trial; all equal except for the ``traced`` keys.
        seeds: one seed per trial.
        train_data: dict of arrays ``{'x': [n, ...], 'y': [n, ...]}`` or an ``(x, y)`` pair,
            shared by all trials (held on the device once).
        epochs: number of epochs.
        batch_size: ``None`` full batch, ``1`` SGD, ``k`` mini-batch, as in ``fit``.
        eval_data: optional evaluation set, evaluated after each epoch as one batch
            (``val_``-prefixed metrics, as ``fit`` logs them).
        eval_loss_fn: loss for evaluation (default: each trial's ``loss_fn``).
        shuffle, drop_last: as in ``fit``.
        nan_policy: ``None`` (a diverging trial turns NaN; others are unaffected) or
            ``'skip'`` (non-finite updates are not applied, counted as ``skipped_steps``).
        norms: as in ``fit``: ``'last'`` (each epoch's last step), ``'every'`` or ``None``.
        vmap: ``False`` runs each trial alone (bitwise ``fit``'s numbers on CPU).
        fast_path: ``'scan'`` (each epoch one jitted ``lax.scan``) or ``'loop'`` (a jitted
            step called per batch from Python). Same numbers.
        groups: with ``vmap``, split the trials into this many groups that advance side by
            side, each vmapped, in one loop step; XLA's CPU backend runs independent groups on
            different cores (see :func:`group_bounds` for the default).
        traced: the keys held as arrays (default :func:`traced_keys` of ``configs``).
        precision: as in ``fit`` (``None``/``'default'``, ``'high'``, ``'highest'``).
        where: the function name in error messages.

    Returns:
        :class:`SeedRuns` with parameters stacked on a leading trial axis.
    """
    import jax
    import jax.numpy as jnp

    from train.loop import metrics
    from train.loop.metrics import to_host
    from train.loop.plan import gather, n_rows, require_data
    from train.loop.runner import stepper
    from train.loop.settings import precision_scope
    from train.loop.step import make_eval_step, make_train_step

    _check(where, epochs=epochs, batch_size=batch_size, nan_policy=nan_policy,
           fast_path=fast_path, norms=norms)
    configs, seeds = [dict(c) for c in configs], [int(s) for s in seeds]
    if not seeds or len(configs) != len(seeds):
        raise ValueError(f"{where}: expected one config per seed and at least one trial, got "
                         f"{len(configs)} configs and {len(seeds)} seeds")
    bounds = group_bounds(len(seeds), groups, vmap, where, "groups")
    scope = lambda: precision_scope(precision, where)   # noqa: E731 (a fresh one each use)
    scope()   # a bad value fails here, before any work
    data = {k: jnp.asarray(v) for k, v in require_data(train_data, where, "train_data").items()}
    n = n_rows(data)
    edata = None
    if eval_data is not None:
        edata = {k: jnp.asarray(v) for k, v in require_data(eval_data, where,
                                                              "eval_data").items()}
    traced = traced_keys(configs) if traced is None else list(traced)
    static = {k: v for k, v in configs[0].items() if k not in traced}
    hparams = {k: np.asarray([c[k] for c in configs], np.float32) for k in traced}
    trials = _Trials(build, configs, seeds, where, alone=not vmap, static=static,
                     hparams=hparams, bounds=bounds)

    def step_fns(hp, fns=None):
        """The trial's (train step, eval step), as ``fit``'s runner makes them, from its own
        ``(loss_fn, optimizer)`` when ``fns`` is given, else from the traced hyperparameters
        ``hp`` (0-d arrays inside the vmap; built once when nothing is traced)."""
        if fns is None and not traced:
            fns = trials.fns[0]
        if fns is None:
            _, loss_fn, optimizer, _ = built(build, {**static, **hp}, where)
        else:
            loss_fn, optimizer = fns
        return (make_train_step(loss_fn, optimizer, nan_policy=nan_policy,
                                norms=norms == "every", name_leaf=False,
                                with_grads=norms == "last"),
                make_eval_step(eval_loss_fn or loss_fn))

    idx0, w0 = trial_plans(n, batch_size, 0, np.stack(trials.data_keys[:1]), shuffle, drop_last)
    probe = gather(data, idx0[0, 0], None if w0 is None else w0[0])
    with scope():
        layout = metrics.Layout.of(jax.eval_shape(step_fns({}, trials.fns[0])[0],
                                                  trials.template, probe)[1],
                                   norms=norms is not None)
        eval_layout = None
        if edata is not None:
            eval_layout = metrics.Layout.of(jax.eval_shape(step_fns({}, trials.fns[0])[1],
                                                           trials.template, edata))
    acc0 = metrics.init(layout)

    def make_trial(fns=None):
        """``(one, finish, start)`` of ``train.loop.runner.stepper`` for one trial, its step
        built from ``hp`` (or ``fns``), one batch given by indices ``i <i32>[batch]``."""
        parts = lambda hp: stepper(step_fns(hp, fns)[0], layout, last=norms == "last")
        return (lambda hp, st, acc, c, i, wi: parts(hp)[0](st, acc, c, gather(data, i, wi)),
                lambda hp, st, acc, c: parts(hp)[1](st, acc, c),
                lambda hp, st: parts(hp)[2](st))

    def make_evaluate_one(fns=None):
        def evaluate_one(hp, state):
            return metrics.add(metrics.init(eval_layout), step_fns(hp, fns)[1](state, edata),
                               eval_layout)
        return evaluate_one

    if vmap:
        epoch_fn = _vmapped_epoch_fn(make_trial(), acc0, fast_path, bounds)
        run_eval = jax.jit(jax.vmap(make_evaluate_one()))
    else:   # each trial alone, through its own (loss_fn, optimizer): fit's very step and
        # fit's very evaluation (train.loop.evaluate.Evaluator)
        from train.loop.evaluate import Evaluator

        alone: dict = {}   # (id(loss_fn), id(optimizer)) -> (epoch, evaluator); trials.fns
        for fns in trials.fns:   # holds the objects, so their ids stay theirs
            if (id(fns[0]), id(fns[1])) not in alone:
                alone[id(fns[0]), id(fns[1])] = (
                    _alone_epoch_fn(make_trial(fns), acc0, fast_path),
                    Evaluator(eval_loss_fn or fns[0], None))

        def fns_of(i):
            loss_fn, optimizer = trials.fns[i]
            return alone[id(loss_fn), id(optimizer)]

    # trees of host arrays: joined and indexed by NumPy (eager jax ops here would compile one
    # small program per leaf shape)
    host_concat = lambda trees: jax.tree.map(lambda *xs: np.concatenate(xs), *trees)
    take = lambda tree, i: jax.tree.map(lambda a: a[i], tree)
    if vmap:
        batched = trials.groups
        hp_groups = tuple(jax.tree.map(jnp.asarray, g) for g in _split_groups(hparams, bounds))
    else:
        states = trials.states
    histories = [[] for _ in seeds]
    epoch_seconds = []
    stacked_keys = np.stack(trials.data_keys)
    with scope():   # every epoch traced at the precision asked for
        for epoch in range(int(epochs)):
            t0 = time.perf_counter()
            idx_all, w = trial_plans(n, batch_size, epoch, stacked_keys, shuffle, drop_last)
            w = None if w is None else jnp.asarray(w)
            if vmap:
                batched, acc = epoch_fn(hp_groups, batched, jnp.asarray(idx_all), w)
                accs = host_concat(to_host(acc))
                evals = None
                if edata is not None:
                    evals = host_concat(to_host([run_eval(h, g) for h, g in zip(
                        hp_groups, batched, strict=True)]))
                per_trial = [(take(accs, i), {} if evals is None else metrics.normalize(
                    take(evals, i), eval_layout, "val_")) for i in range(len(seeds))]
            else:
                per_trial = []
                for i in range(len(seeds)):
                    epoch_fn, evaluator = fns_of(i)
                    states[i], acc = epoch_fn({}, states[i], jnp.asarray(idx_all[i]), w)
                    ev = {} if edata is None else evaluator(states[i], edata, None, "val_")
                    per_trial.append((to_host(acc), ev))
            epoch_seconds.append(time.perf_counter() - t0)
            steps = (epoch + 1) * int(idx_all.shape[1])
            for i, (acc, ev) in enumerate(per_trial):
                histories[i].append({"epoch": epoch, "step": steps,
                                     **metrics.normalize(acc, layout), **ev})
    if vmap:   # the groups joined, or the lone trials stacked, in one program
        join = lambda groups: jax.tree.map(lambda *xs: jnp.concatenate(xs), *groups)  # noqa: E731
    else:
        join = lambda states: jax.tree.map(lambda *xs: jnp.stack(xs), *states)  # noqa: E731
    final = jax.jit(join, compiler_options=run_once_options())(batched if vmap else states)
    return SeedRuns(seeds=seeds, params=final.params, model_state=final.model_state,
                    histories=histories, epoch_seconds=epoch_seconds, configs=configs)


def _alone_epoch_fn(trial, acc0, fast_path):
    """``epoch(hp, state, idx, w) -> (state, acc)`` for one trial at a time."""
    import jax
    import jax.numpy as jnp

    one, finish, start = trial
    if fast_path == "scan":
        def epoch(hp, state, idx, w):
            body = lambda carry, xs: (one(hp, *carry, *xs), None)
            state, acc, last = jax.lax.scan(body, (state, acc0, start(hp, state)), (idx, w))[0]
            return state, finish(hp, state, acc, last)
        return jax.jit(epoch, donate_argnums=(1,))
    run_step = jax.jit(lambda hp, st, acc, c, idx, w, b: one(
        hp, st, acc, c, idx[b], None if w is None else w[b]), donate_argnums=(1, 2))
    start_, finish_ = jax.jit(start), jax.jit(finish)

    def epoch(hp, state, idx, w):
        acc, carry = jax.tree.map(jnp.copy, acc0), start_(hp, state)
        for b in range(idx.shape[0]):
            state, acc, carry = run_step(hp, state, acc, carry, idx, w, np.int32(b))
        return state, finish_(hp, state, acc, carry)
    return epoch


def _vmapped_epoch_fn(trial, acc0, fast_path, bounds):
    """``epoch(hps, states, idx, w) -> (states, accs)``: the trials as ``bounds`` groups
    (tuples), each stacked on a leading trial axis; every loop step advances all groups
    (independent work XLA may run on separate cores)."""
    import jax
    import jax.numpy as jnp

    one, finish, start = trial

    def step_all(hps, states, accs, carries, idx, w, b):
        """Step b of every group; idx <i32>[trials, batches, batch], w <[batches, batch]>."""
        wb = None if w is None else w[b]
        group = jax.vmap(lambda hp, st, acc, c, i: one(hp, st, acc, c, i, wb))
        return tuple(zip(*(group(hp, st, acc, c, idx[lo:hi, b])
                           for hp, st, acc, c, (lo, hi) in zip(hps, states, accs, carries,
                                                               bounds, strict=True)),
                         strict=True))

    def per_group(fn, *trees):
        return tuple(jax.vmap(fn)(*args) for args in zip(*trees, strict=True))

    def acc_start():
        return tuple(jax.tree.map(lambda a, k=hi - lo: jnp.zeros((k, *a.shape), a.dtype), acc0)
                     for lo, hi in bounds)

    def ends(hps, states, accs, carries):
        return states, per_group(finish, hps, states, accs, carries)

    if fast_path == "scan":
        def epoch(hps, states, idx, w):
            carries = per_group(start, hps, states)
            body = lambda carry, b: (step_all(hps, *carry, idx, w, b), None)
            states, accs, carries = jax.lax.scan(body, (states, acc_start(), carries),
                                                 jnp.arange(idx.shape[1]))[0]
            return ends(hps, states, accs, carries)
        return jax.jit(epoch, donate_argnums=(1,))
    run_step = jax.jit(step_all, donate_argnums=(1, 2))
    starts = jax.jit(lambda hps, states: per_group(start, hps, states))
    ends_ = jax.jit(ends)

    def epoch(hps, states, idx, w):
        accs, carries = acc_start(), starts(hps, states)
        for b in range(idx.shape[1]):
            states, accs, carries = run_step(hps, states, accs, carries, idx, w, np.int32(b))
        return ends_(hps, states, accs, carries)
    return epoch


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
    norms: str | None = "last",
    vmap: bool = True,
    fast_path: str = "scan",
    seed_groups: int | None = None,
    precision: str | None = None,
) -> SeedRuns:
    """Train one configuration from several seeds at once: ``vmap`` over seeds inside one jit.

    Seed ``s`` is the run ``fit(loss_fn, init_fn(init_key), optimizer, train_data,
    key=run_key, epochs=epochs, batch_size=batch_size)`` with ``(init_key, run_key) =
    seed_keys(s)`` (see :func:`train_trials`, of which this is the case of one
    configuration). Parameters agree with ``fit`` to about 1e-7 (vmap batches the matmuls
    differently); with ``vmap=False`` they are bitwise equal on CPU. Every seed must have the
    same shapes, which is what makes this possible.

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
        model_state: initial model state shared by all seeds (``{}`` if None; each seed
            gets its own copy).
        eval_data: optional evaluation set, evaluated after each epoch as one batch
            (``val_``-prefixed metrics, as ``fit`` logs them).
        eval_loss_fn: loss for evaluation (default ``loss_fn``).
        shuffle, drop_last: as in ``fit``.
        nan_policy: ``None`` (a diverging seed turns NaN; others are unaffected) or ``'skip'``
            (non-finite updates are not applied, counted as ``skipped_steps``).
        norms: as in ``fit`` (``'last'``, ``'every'`` or ``None``).
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
        precision: as in ``fit``.

    Returns:
        :class:`SeedRuns` with parameters stacked on a leading seed axis.
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("train_seeds_vmapped: expected at least one seed, got none")
    group_bounds(len(seeds), seed_groups, vmap, "train_seeds_vmapped")   # named errors first
    parts = (init_fn, loss_fn, optimizer, model_state)
    runs = train_trials(lambda config: parts, [{}] * len(seeds), seeds, train_data,
                        epochs=epochs, batch_size=batch_size, eval_data=eval_data,
                        eval_loss_fn=eval_loss_fn, shuffle=shuffle, drop_last=drop_last,
                        nan_policy=nan_policy, norms=norms, vmap=vmap, fast_path=fast_path,
                        groups=seed_groups, traced=(), precision=precision,
                        where="train_seeds_vmapped")
    runs.configs = []
    return runs
