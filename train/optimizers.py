"""The one table of optimizer and learning-rate schedule names, and their factories.

The ``zoo`` CLI, the registry's defaults, the drivers and the experiments all name optimizers
and schedules by the strings here. An optimizer name builds either jaxzoo's own hand-written
optimizer (``functional.optim``, verified step by step against optax; what ``zoo train`` uses)
or optax's alias of the same name (``library='optax'``; what the experiment helpers have
always used, so that their results compare with the optax literature one to one).

A schedule name stretches over a run's total number of steps (:func:`make_schedule`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from train.errors import UsageError, unknown
from train.loop.plan import steps_per_epoch

__all__ = ["OPTIMIZERS", "SCHEDULES", "make_schedule", "make_optimizer", "takes_weight_decay",
           "steps_per_epoch", "optimizer_for"]

# name -> what the notes call it. Every name is a ``functional.optim`` alias; the optax
# spelling of the same optimizer is in _OPTAX.
OPTIMIZERS = {
    "sgd": "gradient descent",
    "momentum": "SGD with momentum 0.9",
    "nesterov": "SGD with Nesterov momentum 0.9",
    "adagrad": "Adagrad",
    "rmsprop": "RMSprop",
    "adadelta": "Adadelta",
    "adam": "Adam",
    "nadam": "Nadam (Adam with Nesterov momentum)",
    "adamw": "AdamW (decoupled weight decay)",
    "adamax": "Adamax",
    "lamb": "LAMB (layer-wise trust ratio)",
}

# Learning-rate schedules by name (make_schedule); each is a function of the step count.
SCHEDULES = ("constant", "cosine", "step")


def _optax_factory(name: str) -> Callable:
    import optax

    if name == "momentum":
        return lambda lr, **o: optax.sgd(lr, **{"momentum": 0.9, **o})
    if name == "nesterov":
        return lambda lr, **o: optax.sgd(lr, **{"momentum": 0.9, "nesterov": True, **o})
    return getattr(optax, name)


def make_schedule(name: str, lr, total_steps: int | None = None):
    """A learning rate by name: ``lr`` itself or a ``functional.schedules`` schedule.

    Args:
        name: one of :data:`SCHEDULES`: ``'constant'`` (``lr`` throughout); ``'cosine'``
            (cosine decay from ``lr`` to 0 over ``total_steps``; Loshchilov & Hutter 2017);
            ``'step'`` (``lr``, then ``lr / 10`` for the last fifth of ``total_steps``: the
            classic step decay, e.g. He et al. 2016's drops by 10 late in training).
        lr: the peak (initial) learning rate (a float, or a 0-d array in a sweep).
        total_steps: the run's number of optimizer steps (needed by every schedule but
            'constant'; :func:`steps_per_epoch` times the epochs).

    Returns:
        A float (constant) or a schedule ``count <i32>[] -> <f32>[]``.

    Raises:
        UsageError (a ValueError): an unknown name, or a schedule without its steps.
    """
    from functional import schedules

    if name not in SCHEDULES:
        raise unknown("schedule", name, SCHEDULES)
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
    from functional import optim

    return "weight_decay" in inspect.signature(getattr(optim, name)).parameters


def make_optimizer(name: str | Callable, lr, *, schedule: str = "constant",
                   total_steps: int | None = None, weight_decay=None,
                   library: str = "functional", **options):
    """An optimizer by name with (peak) learning rate ``lr``.

    Args:
        name: one of :data:`OPTIMIZERS`, or a callable ``f(learning_rate, **options)``
            returning a ``GradientTransformation``.
        lr: (peak) learning rate.
        schedule: learning-rate schedule name (:func:`make_schedule`).
        total_steps: steps of the run, for schedules other than 'constant'.
        weight_decay: the optimizer's ``weight_decay`` (adamw, lamb, adadelta); None keeps
            its default.
        library: ``'functional'`` (jaxzoo's ``functional.optim``) or ``'optax'`` (optax's
            alias of the same name).
        **options: more keywords for the optimizer (e.g. ``momentum=0.95``, ``b1=0.8``).

    Returns:
        An optax-compatible ``GradientTransformation``.

    Raises:
        UsageError (a ValueError): an unknown optimizer or schedule, or a weight decay for an
            optimizer without one.
    """
    if library not in ("functional", "optax"):
        raise UsageError(f"make_optimizer: library must be 'functional' or 'optax', "
                         f"got {library!r}")
    rate = make_schedule(schedule, lr, total_steps)
    if weight_decay is not None:
        options["weight_decay"] = weight_decay
    if callable(name):
        return name(rate, **options)
    if name not in OPTIMIZERS:
        raise unknown("optimizer", name, OPTIMIZERS, where="make_optimizer")
    if weight_decay is not None and not takes_weight_decay(name):
        raise UsageError(f"optimizer {name!r} has no weight decay; use one of "
                         f"{', '.join(n for n in OPTIMIZERS if takes_weight_decay(n))}")
    if library == "optax":
        return _optax_factory(name)(rate, **options)
    from functional import optim

    return getattr(optim, name)(rate, **options)


def optimizer_for(name: str, lr, *, n_train: int, batch_size: int | None, epochs: int,
                  schedule: str = "constant", weight_decay=None):
    """The optimizer of a run of ``epochs`` epochs over ``n_train`` examples: the schedule
    stretches over all of its steps (``steps_per_epoch(n_train, batch_size) * epochs``)."""
    return make_optimizer(name, lr, schedule=schedule,
                          total_steps=epochs * steps_per_epoch(n_train, batch_size),
                          weight_decay=weight_decay)
