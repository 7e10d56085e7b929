"""``zoo sweep``: the notes' hyperparameter search from the command line (seed 004, 9.3-9.4).

    zoo sweep mlp --lr 1e-4:1e-1:log --weight-decay 0:0.3 --trials 64 --seeds 4 --rounds 2

Random search on the right scale, coarse to fine (``train.experiments.random_search``): each
round samples ``--trials`` configurations of the swept hyperparameters, trains every one of
them from ``--seeds`` seeds, and ranks them by the mean over seeds of the final validation
metric; the next round samples around the best ``--top-k``. Every round's trials train
together, vmapped, with the swept hyperparameters as arrays (``train.experiments.sweep``), in
chunks that fit the device's memory; trial (config, seed) is ``zoo train NAME --seed seed``
with that config, up to float rounding.

The validation metric is measured on the dataset's validation split, or, when it has none, on
the last tenth of the training examples, held out of every trial's training (never on the
test split; the best configuration's test metrics are for ``zoo train``).

Writes into ``--out`` (default ``runs/sweep-NAME``): ``results.csv`` (every trial: its
configuration, seed, round, score, final metrics and parameter hash), ``score_<name>.png``
(the score against each swept hyperparameter, log axes for log ranges), ``best/`` (the best
configuration, ``config.json``, and one ``history_seed<S>.jsonl`` per seed), ``trials.jsonl``
(each finished trial, one line, written as its chunk finishes) and ``manifest.json``.
``--resume`` reads ``trials.jsonl`` back and trains only what is missing: the search is a
pure function of its options, so it continues where it stopped; the trials trained again are
those of the killed run up to float rounding (they may be vmapped in other chunks).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Mapping

from train import runs
from train.drivers.data import check_data, check_trace, load_data, model_config, split
from train.errors import UsageError
from train.manifest import json_line

__all__ = ["SweepOptions", "parse_range", "search_space", "sweep", "TRIALS_FILE"]

TRIALS_FILE = "trials.jsonl"
RESULTS_FILE = "results.csv"
SCALES = ("lin", "log", "1-log")


@dataclasses.dataclass
class SweepOptions:
    """What ``zoo sweep`` was asked for (besides the run's usual options).

    Attributes:
        ranges: hyperparameter name -> ``(low, high, scale)``, scale ``'lin'``, ``'log'`` or
            ``'1-log'`` (``1 - x`` log-uniform: momentum, betas).
        trials: configurations per round.
        seeds: seeds per configuration (0, 1, ...).
        rounds: search rounds (1 = plain random search).
        top_k: best configurations the next round zooms around.
        metric: the validation metric ranked (default ``val_accuracy`` for classifiers,
            else ``val_loss``) and ``mode`` (``'max'`` or ``'min'``).
        search_seed: seeds the sampling of configurations.
        chunk_size: trials per vmapped program (default: as many as fit in memory).
    """

    ranges: Mapping[str, tuple]
    trials: int = 16
    seeds: int = 1
    rounds: int = 2
    top_k: int = 3
    metric: str | None = None
    mode: str | None = None
    search_seed: int = 0
    chunk_size: int | None = None

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "ranges": {k: list(v) for k, v in
                                                       self.ranges.items()}}


def parse_range(text: str) -> tuple[float, float, str]:
    """``'LOW:HIGH[:SCALE]'`` -> ``(low, high, scale)``; scale ``lin`` (default), ``log`` or
    ``1-log``.

    Raises:
        ValueError: not two finite numbers with low < high, an unknown scale, or bounds the
            scale cannot take (log needs 0 < low; 1-log needs 0 <= low < high < 1).
    """
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"expected LOW:HIGH or LOW:HIGH:SCALE, got {text!r}")
    scale = parts[2] if len(parts) == 3 else "lin"
    if scale not in SCALES:
        raise ValueError(f"expected a scale among {', '.join(SCALES)}, got {scale!r}")
    try:
        low, high = float(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError(f"expected two numbers LOW:HIGH, got {text!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"expected finite LOW < HIGH, got {text!r}")
    if scale == "log" and low <= 0:
        raise ValueError(f"a log scale needs LOW > 0, got {text!r}")
    if scale == "1-log" and not 0 <= low < high < 1:
        raise ValueError(f"a 1-log scale needs 0 <= LOW < HIGH < 1, got {text!r}")
    return low, high, scale


def search_space(ranges: Mapping[str, tuple]) -> dict:
    """``train.experiments`` dimensions for the ranges."""
    from train import experiments as ex

    kinds = {"lin": ex.Uniform, "log": ex.LogUniform, "1-log": ex.OneMinusLogUniform}
    return {name: kinds[scale](low, high) for name, (low, high, scale) in ranges.items()}


def _optimizer_keywords(name: str) -> set:
    import inspect

    from functional import optim

    return set(inspect.signature(getattr(optim, name)).parameters) - {"learning_rate"}


def _builder(spec, opts, cfg, n_train: int, model_state):
    """``build(config)`` for the experiments: the entry's model and loss, and the run's
    optimizer with the swept hyperparameters (``lr`` and the optimizer's own keywords)."""
    from train.drivers.standard import model_fns
    from train.optimizers import optimizer_for

    loss_fn, _ = model_fns(spec, cfg)
    init_fn = lambda key: spec.module.init(key, cfg)   # noqa: E731

    def build(config):
        options = {k: v for k, v in config.items() if k not in ("lr", "weight_decay")}
        optimizer = optimizer_for(opts.optimizer, config.get("lr", opts.lr), n_train=n_train,
                                  batch_size=opts.batch_size, epochs=opts.epochs,
                                  schedule=opts.schedule,
                                  weight_decay=config.get("weight_decay", opts.weight_decay))
        if options:
            from train.optimizers import make_optimizer, steps_per_epoch

            optimizer = make_optimizer(
                opts.optimizer, config.get("lr", opts.lr), schedule=opts.schedule,
                total_steps=opts.epochs * steps_per_epoch(n_train, opts.batch_size),
                weight_decay=config.get("weight_decay", opts.weight_decay), **options)
        return init_fn, loss_fn, optimizer, model_state
    return build


def _check_ranges(spec, opts, ranges) -> None:
    from train.optimizers import takes_weight_decay

    if not ranges:
        raise UsageError("zoo sweep: give at least one range to search, e.g. --lr 1e-4:1e-1:log")
    allowed = {"lr"} | _optimizer_keywords(opts.optimizer)
    for name in ranges:
        if name == "weight_decay" and not takes_weight_decay(opts.optimizer):
            raise UsageError(f"zoo sweep: optimizer {opts.optimizer!r} has no weight decay; "
                             "choose one with it (--optimizer adamw, lamb, adadelta)")
        if name not in allowed:
            raise UsageError(f"zoo sweep: {opts.optimizer!r} has no hyperparameter {name!r}; "
                             f"it takes {', '.join(sorted(allowed))}")


def _data(spec, opts):
    """``(cfg, train, val, model_state)``: the validation split, or the last tenth of the
    training examples held out."""
    import jax

    ds = load_data(opts.dataset, opts.dataset_options)
    check_data(spec, opts.dataset, ds)
    cfg = model_config(spec, opts.dataset, ds)
    init_state = getattr(spec.module, "init_state", None)
    model_state = init_state(cfg) if init_state is not None else {}
    check_trace(spec, opts.dataset, ds, cfg, spec.module.init(jax.random.PRNGKey(0), cfg),
                model_state)
    train, val = split(ds, "train"), split(ds, "val")
    if val is None:
        n = len(ds.x_train)
        cut = n - max(1, n // 10)
        val = {k: v[cut:] for k, v in train.items()}
        train = {k: v[:cut] for k, v in train.items()}
    return cfg, train, val, model_state


class _Recorded:
    """A batched experiment whose finished trials are appended to ``trials.jsonl`` as their
    chunk ends, and read back instead of trained again (``--resume``)."""

    def __init__(self, experiment, path: str, done: dict, on_done):
        self.experiment, self.path, self.done, self.on_done = experiment, path, done, on_done

    @staticmethod
    def key(config, seed) -> str:
        return json.dumps([config, int(seed)], sort_keys=True)

    def run_batch(self, configs, seeds):
        from train.manifest import params_hash

        pairs = [(dict(c), int(s)) for c in configs for s in seeds]
        todo = sorted({self.key(c, s): (c, s) for c, s in pairs
                       if self.key(c, s) not in self.done}.items())
        if todo:
            from train.experiments.sweep import train_pairs

            def on_chunk(indices, results):
                with open(self.path, "a") as f:
                    for i, (history, params) in zip(indices, results, strict=True):
                        key = self.key(*todo[i][1])
                        self.done[key] = {"history": history, "params_hash": params_hash(
                            params)}
                        f.write(json_line({"key": key, **self.done[key]}))
                self.on_done(len(indices))

            e = self.experiment
            train_pairs(e.build, [pair for _, pair in todo], e.train_data, epochs=e.epochs,
                        batch_size=e.batch_size, chunk_size=e.chunk_size, on_chunk=on_chunk,
                        where="zoo sweep", **e.options)
        return [(self.done[self.key(c, s)]["history"], None) for c, s in pairs]


def _read_done(path: str) -> dict:
    done = {}
    if not os.path.isfile(path):
        return done
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                done[row["key"]] = {"history": row["history"],
                                    "params_hash": row.get("params_hash", "")}
            except (json.JSONDecodeError, KeyError, TypeError):
                if number > 1 and not line.endswith("\n"):   # a kill mid-line: drop it
                    continue
                raise UsageError(f"{path}: line {number} is damaged; remove it to continue "
                                 "the sweep") from None
    return done


def sweep(spec, opts, sweep_opts: SweepOptions, *, out: str, resume: bool = False,
          progress: bool = True) -> dict:
    """Run the search; write the files (see the module doc); return the summary."""
    if spec.driver != "standard":
        raise UsageError(f"zoo sweep: model {spec.name!r} trains with its own driver "
                         f"({spec.driver}); sweeps train the standard entries")
    _check_ranges(spec, opts, sweep_opts.ranges)
    metric = sweep_opts.metric or ("val_accuracy" if spec.task == "classification"
                                   else "val_loss")
    mode = sweep_opts.mode or ("max" if "acc" in metric else "min")
    cfg, train, val, model_state = _data(spec, opts)
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot write the sweep folder --out {out!r}: {e.strerror or e}") from e
    with runs.writing(out):   # one writer per folder (train.lock)
        return _search(spec, opts, sweep_opts, out=out, resume=resume, progress=progress,
                       metric=metric, mode=mode, data=(cfg, train, val, model_state))


def _search(spec, opts, sweep_opts, *, out, resume, progress, metric, mode, data) -> dict:
    import time

    from tqdm.auto import tqdm

    from train import experiments as ex
    from train.manifest import write_manifest

    cfg, train, val, model_state = data
    trials_path = os.path.join(out, TRIALS_FILE)
    if not resume and os.path.exists(trials_path):
        raise UsageError(f"zoo sweep: {out!r} already holds a sweep ({TRIALS_FILE}); pass "
                         "--resume to continue it, or another --out")
    if resume and not os.path.isfile(trials_path):
        raise UsageError(f"zoo sweep: nothing to resume in {out!r} (no {TRIALS_FILE})")
    done = _read_done(trials_path) if resume else {}
    resumed = len(done)
    build = _builder(spec, opts, cfg, len(train["x"]), model_state)
    experiment = ex.sweep_experiment(build, train, eval_data=val, epochs=opts.epochs,
                                     batch_size=opts.batch_size,
                                     chunk_size=sweep_opts.chunk_size,
                                     shuffle=spec.extra.get("sampling", True))
    total = sweep_opts.trials * sweep_opts.seeds * sweep_opts.rounds
    bar = tqdm(total=total, disable=not progress, desc="zoo sweep", unit="trial")
    recorded = _Recorded(experiment, trials_path, done, bar.update)
    t0 = time.perf_counter()
    try:
        result = ex.random_search(recorded, search_space(sweep_opts.ranges), score=metric,
                                  n_trials=sweep_opts.trials, rounds=sweep_opts.rounds,
                                  top_k=sweep_opts.top_k, seeds=range(sweep_opts.seeds),
                                  mode=mode, search_seed=sweep_opts.search_seed)
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    for t in result.trials:
        t.params_hash = done.get(recorded.key(t.config, t.seed), {}).get("params_hash", "")
    ex.write_csv(result.trials, os.path.join(out, RESULTS_FILE))
    for name, (_, _, scale) in sweep_opts.ranges.items():
        ex.plot_search(result, os.path.join(out, f"score_{_slug(name)}.png"), param=name,
                       logx=scale == "log", title=f"zoo sweep {spec.name}: {metric} by {name}")
    best_dir = os.path.join(out, "best")
    os.makedirs(best_dir, exist_ok=True)
    with open(os.path.join(best_dir, "config.json"), "w") as f:
        json.dump({"config": result.best_config, "score": result.best_score,
                   "metric": metric}, f, indent=2)
    for t in result.trials:
        if t.config == result.best_config:
            with open(os.path.join(best_dir, f"history_seed{t.seed}.jsonl"), "w") as f:
                f.writelines(json_line(row) for row in t.history)
    summary = {"model": spec.name, "dataset": opts.dataset, "metric": metric, "mode": mode,
               "best_config": result.best_config, "best_score": result.best_score,
               "trials": len(result.trials), "resumed_trials": resumed, "seconds": seconds}
    write_manifest(out, config={"options": opts.to_json(), "sweep": sweep_opts.to_json()},
                   seed=None, params={}, extra={"summary": summary,
                                                "spaces": [repr(s) for s in result.spaces]})
    return summary


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)

