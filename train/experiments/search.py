"""Random search on the right scale, coarse to fine (seed 004, sections 9.3-9.4).

Sample at random rather than on a grid, on the right *scale* (a learning rate log-uniformly, a
momentum ``beta`` through ``1 - beta`` log-uniformly), then zoom in on the region of the best
trials and sample it more densely ("coarse to fine").
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from train.experiments.grid import Experiment, Trial, run_one


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


def _round_trials(experiment, configs, seeds, rnd, on_trial, score_of) -> list[list[Trial]]:
    """One round's trials, one list of seeds per configuration: all at once when the
    experiment trains batches (``run_batch``, e.g. :func:`train.experiments.sweep_experiment`),
    else one by one."""
    if hasattr(experiment, "run_batch"):
        results = iter(experiment.run_batch(configs, seeds))
        run = lambda config, seed: next(results)
    else:
        run = lambda config, seed: experiment(dict(config), int(seed))
    groups = []
    for config in configs:
        group = []
        for seed in seeds:
            trial, _ = run_one(run, config, seed, False, rnd)
            trial.score = float(score_of(trial.history))
            group.append(trial)
            if on_trial is not None:
                on_trial(trial)
        groups.append(group)
    return groups


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
    score (a diverged run) ranks last. An experiment made by
    :func:`train.experiments.sweep_experiment` trains each round as one batch (its
    configurations times ``seeds``, vmapped); any other runs trial by trial.

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
        configs = sample(current, per_round[rnd], rng)
        scored = []
        groups = _round_trials(experiment, configs, seeds, rnd, on_trial, score_of)
        for config, group in zip(configs, groups, strict=True):
            mean = float(np.mean([t.score for t in group]))
            trials.extend(group)
            scored.append((config, mean))
        # Rank over every round so far: the fine round refines, it does not forget.
        ranked = sorted(ranked + scored,
                        key=lambda cs: sign * cs[1] if math.isfinite(cs[1]) else math.inf)
    best_config, best_score = ranked[0]
    return SearchResult(trials=trials, spaces=spaces, best_config=best_config,
                        best_score=best_score)
