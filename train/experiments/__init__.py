"""Experiments: grids over configurations and seeds, sweeps in one jit, random search, tables.

The notes' experiments are comparisons (seed 004: batch sizes, learning rates, optimizers,
initializers, activations, hidden units) and searches (sections 9.3-9.4: random, on the right
scale, coarse to fine). One module each:

- :mod:`train.experiments.grid`: ``grid``, ``Trial``, ``run_grid``, ``fit_experiment``,
  ``make_optimizer`` (optax's, by name), ``seed_keys``, ``regime``;
- :mod:`train.experiments.vmapped`: ``train_trials`` (many trials in one vmapped program),
  ``train_seeds_vmapped``, ``SeedRuns``;
- :mod:`train.experiments.sweep`: ``run_grid_vmapped`` and ``sweep_experiment`` (groups of
  shape-sharing configurations, hyperparameters as arrays, memory-sized chunks);
- :mod:`train.experiments.search`: search spaces (``LogUniform``, ``OneMinusLogUniform``,
  ``Uniform``, ``Choice``), ``sample``, ``zoom``, ``random_search``;
- :mod:`train.experiments.report`: ``table``, ``write_csv``, ``curves``, ``plot_curves``,
  ``plot_search``.

``from train import experiments as ex`` then ``ex.grid(...)`` etc. reaches every public name.
"""

from train.experiments.grid import (
    Experiment,
    Trial,
    fit_experiment,
    grid,
    make_optimizer,
    regime,
    run_grid,
    save_trial,
    seed_keys,
)
from train.experiments.report import curves, plot_curves, plot_search, table, write_csv
from train.experiments.search import (
    Choice,
    Dimension,
    LogUniform,
    OneMinusLogUniform,
    SearchResult,
    Uniform,
    random_search,
    sample,
    zoom,
)
from train.experiments.sweep import (
    BatchedExperiment,
    auto_chunk_size,
    run_grid_vmapped,
    sweep_experiment,
    train_configs,
    train_pairs,
)
from train.experiments.vmapped import (
    SeedRuns,
    group_bounds,
    traced_keys,
    train_seeds_vmapped,
    train_trials,
)

__all__ = ["BatchedExperiment", "Choice", "Dimension", "Experiment", "LogUniform",
           "OneMinusLogUniform", "SearchResult", "SeedRuns", "Trial", "Uniform",
           "auto_chunk_size", "curves", "fit_experiment", "grid", "group_bounds",
           "make_optimizer", "plot_curves", "plot_search", "random_search", "regime",
           "run_grid", "run_grid_vmapped", "sample", "save_trial", "seed_keys",
           "sweep_experiment", "table", "traced_keys", "train_configs", "train_pairs",
           "train_seeds_vmapped",
           "train_trials", "write_csv", "zoom"]
