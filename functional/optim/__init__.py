"""Optimizers written out by hand, with optax's contract and optax's numbers.

An optimizer is a pair of pure functions (a ``GradientTransformation``)::

    state = opt.init(params)
    updates, state = opt.update(grads, state, params)   # params needed by weight decay only
    params = apply_updates(params, updates)             # params + updates, leaf by leaf

Each rule is a building block (``scale_by_adam``, ``trace``, ...) and an optimizer is a
``chain`` of them ending in ``scale_by_learning_rate``, the way optax's ``alias.py`` builds
them. The arithmetic of every block follows optax 0.2.x expression by expression, so our
updates and states agree with optax's to rounding (tested to rtol 1e-6 in float32 and 1e-12 in
float64 over 100+ steps), and the two libraries can be mixed: ``optax.chain(ours, ...)`` and
``chain(optax_transform, ...)`` both work, because both only need ``.init`` and ``.update``.
State fields carry optax's names (``count``, ``mu``, ``nu``, ``trace``, ``sum_of_squares``,
``e_g``, ``e_x``), so states compare field by field.

The learning rate lives in the state. ``scale_by_learning_rate`` keeps a
``ScaleByLearningRateState(count, learning_rate)`` where ``learning_rate`` is the rate the
*next* update applies; a schedule (a function of the step count, see ``functional.schedules``)
refreshes it after every step inside the compiled function, so a decaying rate never
recompiles. Read it with ``current_learning_rate(state)``; overwrite it (say, on a plateau)
with ``set_learning_rate(state, value)``, again without recompiling. This is the one place
where our states have a field that optax's lack (optax keeps a bare ``count`` or nothing).

Conventions on which frameworks disagree are explicit keywords:

- momentum form (``momentum``, ``nesterov``): ``form='optax'`` accumulates raw gradients and
  scales afterwards (v = mu*v + g; w -= lr*v; optax and PyTorch), ``form='notes'`` keeps a
  velocity in parameter units (v = mu*v - lr*g; w += v; seed 004 section 4.5, cs231n). They
  coincide for a constant learning rate and differ when it changes.
- epsilon inside or outside the square root (``adagrad``, ``rmsprop``: ``eps_in_sqrt``).
- Adagrad's initial accumulator (``initial_accumulator_value``: optax/TF 0.1, PyTorch 0).
- Adam's bias correction (``bias_correction``: the paper and optax True; the notes' Adam in
  seed 004 section 4.7 has none).

Layout (optax's): ``base`` holds the contract (``GradientTransformation``, the states, ``chain``,
``apply_updates``, the learning-rate helpers), ``transform`` the building blocks, ``alias`` the
optimizers; every public name is re-exported here, so ``optim.adam`` and
``optim.ScaleByAdamState`` are all a user needs. Arguments are checked once, by the block that
owns them, and errors name the function the user called (``functional._validate``).

References: seed 004 sections 4.5-4.8 (momentum, RMSprop, Adam, decay); Polyak 1964 (heavy
ball); Sutskever et al. 2013 (Nesterov momentum in deep learning); Duchi et al. 2011 (Adagrad);
Tieleman & Hinton 2012 (RMSprop), Graves 2013 (centered RMSprop); Zeiler 2012 (Adadelta);
Kingma & Ba 2015 (Adam, Adamax); Loshchilov & Hutter 2019 (AdamW); Dozat 2016 (Nadam);
You et al. 2020 (LAMB); optax ``transform.py`` and ``alias.py`` (the layout followed here).
"""

from functional.optim.alias import (
    adadelta,
    adagrad,
    adam,
    adamax,
    adamw,
    lamb,
    momentum,
    nadam,
    nesterov,
    rmsprop,
    sgd,
)
from functional.optim.base import (
    EmptyState,
    GradientTransformation,
    ScalarOrSchedule,
    ScaleByAdaDeltaState,
    ScaleByAdamState,
    ScaleByLearningRateState,
    ScaleByRmsState,
    ScaleByRmsWithCountState,
    ScaleByRssState,
    ScaleByRStdDevState,
    ScaleByRStdDevWithCountState,
    ScaleByScheduleState,
    Schedule,
    TraceState,
    WeightDecaySchedule,
    apply_updates,
    chain,
    current_learning_rate,
    identity,
    set_learning_rate,
)
from functional.optim.transform import (
    add_decayed_weights,
    clip_by_global_norm,
    clip_by_value,
    scale,
    scale_by_adadelta,
    scale_by_adam,
    scale_by_adamax,
    scale_by_learning_rate,
    scale_by_rms,
    scale_by_rss,
    scale_by_schedule,
    scale_by_stddev,
    scale_by_trust_ratio,
    trace,
)

__all__ = [
    # base
    "EmptyState",
    "GradientTransformation",
    "ScalarOrSchedule",
    "Schedule",
    "ScaleByAdaDeltaState",
    "ScaleByAdamState",
    "ScaleByLearningRateState",
    "ScaleByRmsState",
    "ScaleByRmsWithCountState",
    "ScaleByRssState",
    "ScaleByRStdDevState",
    "ScaleByRStdDevWithCountState",
    "ScaleByScheduleState",
    "TraceState",
    "WeightDecaySchedule",
    "apply_updates",
    "chain",
    "current_learning_rate",
    "identity",
    "set_learning_rate",
    # transform
    "add_decayed_weights",
    "clip_by_global_norm",
    "clip_by_value",
    "scale",
    "scale_by_adadelta",
    "scale_by_adam",
    "scale_by_adamax",
    "scale_by_learning_rate",
    "scale_by_rms",
    "scale_by_rss",
    "scale_by_schedule",
    "scale_by_stddev",
    "scale_by_trust_ratio",
    "trace",
    # alias
    "adadelta",
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "lamb",
    "momentum",
    "nadam",
    "nesterov",
    "rmsprop",
    "sgd",
]
