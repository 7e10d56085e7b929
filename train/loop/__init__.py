"""The train loop: a pure train step, jitted epochs, and ``fit``.

Layout follows the Flax examples (``train_step(state, batch) -> (state, metrics)``, a train
state pytree, metrics as sums plus a count normalized once per epoch) without their
decorators: every function here is plain JAX, and ``fit`` does the jitting. The data's way
through a run, one module each:

- :mod:`train.loop.step`: ``TrainState``, ``make_train_step``, ``make_eval_step``, norms and
  the NaN guard;
- :mod:`train.loop.plan`: the epoch's order of examples (``epoch_plan``) and the batch gather;
- :mod:`train.loop.metrics`: the one accumulator (sums plus counts), also used by the
  seed-vmapped trainer;
- :mod:`train.loop.runner`: an epoch as one ``lax.scan`` or a loop, and the measured choice;
- :mod:`train.loop.evaluate`: exact evaluation passes;
- :mod:`train.loop.settings`: what to monitor and how to checkpoint, checked up front;
- :mod:`train.loop.fit`: ``fit``, a composition of those.

``from train.loop import fit, TrainState, ...`` imports every public name from here.
"""

from train.loop.evaluate import evaluate
from train.loop.fit import FitResult, NonFiniteError, ResumeMismatchError, fit
from train.loop.plan import epoch_plan, epoch_rng, steps_per_epoch
from train.loop.runner import NORMS
from train.loop.settings import FAST_PATHS
from train.loop.step import (
    NAN_POLICIES,
    NORM_KEYS,
    TrainState,
    find_learning_rate,
    global_norm,
    init_train_state,
    make_eval_step,
    make_train_step,
    nonfinite_leaf_names,
    sum_squares,
)

__all__ = ["FAST_PATHS", "NAN_POLICIES", "NORMS", "NORM_KEYS", "FitResult", "NonFiniteError",
           "ResumeMismatchError", "TrainState", "epoch_plan", "epoch_rng", "evaluate",
           "find_learning_rate", "fit", "global_norm", "init_train_state", "make_eval_step",
           "make_train_step", "nonfinite_leaf_names", "steps_per_epoch",
           "sum_squares"]
