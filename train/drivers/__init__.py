"""Drivers: what ``zoo train``, ``zoo eval`` and ``zoo sample`` do for a registry entry.

A registry entry (``zoo.registry.ModelSpec``) names its driver by a short name. A driver is a
module with the same entry points:

- ``train(spec, opts) -> summary``: train on the data ``opts`` names, write the run folder
  (``train.runs``) and return the summary;
- ``evaluate(spec, opts) -> metrics``: the metrics of the newest checkpoint of the run in
  ``opts.checkpoint``;
- optionally ``sample(spec, opts) -> None``: print or write samples of a trained model.

``standard`` trains ``spec.module.loss`` with one optimizer through ``train.loop.fit``; the
others are the model families with loops of their own (one file each). Drivers never import
the CLI: they read ``train.runs.RunOptions``, raise ``train.errors.UsageError`` for input a
user can fix, and share ``train.drivers.data`` (loading and checking data) and ``train.runs``
(run folders).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from train.errors import unknown

__all__ = ["DRIVERS", "get", "register", "call"]

# short name -> module
DRIVERS: dict[str, str] = {
    "standard": "train.drivers.standard",
    "gan": "train.drivers.gan",
    "translation": "train.drivers.translation",
    "embeddings": "train.drivers.embeddings",
    "char_lm": "train.drivers.char_lm",
    "transfer": "train.drivers.transfer",
}


def register(name: str, module: str) -> None:
    """Add a driver (a module path with ``train`` and ``evaluate``, optionally ``sample``)."""
    DRIVERS[name] = module


def get(name: str) -> ModuleType:
    """The driver module named ``name`` (imported on first use).

    Raises:
        UsageError: an unknown name, with the known ones.
    """
    if name not in DRIVERS:
        raise unknown("driver", name, DRIVERS)
    return importlib.import_module(DRIVERS[name])


def call(spec, opts, entry: str):
    """``get(spec.driver).<entry>(spec, opts)`` with every computation traced at the run's
    precision (``opts.precision``; ``train.loop.settings.precision_scope``): how the ``zoo``
    command runs a driver's ``train``, ``evaluate`` or ``sample``.

    Raises:
        UsageError: the entry's driver has no such entry point.
    """
    from train.errors import UsageError
    from train.loop.settings import precision_scope

    fn = getattr(get(spec.driver), entry, None)
    if fn is None:
        raise UsageError(f"model {spec.name!r} (driver {spec.driver!r}) has no {entry}")
    with precision_scope(getattr(opts, "precision", None) or None, "zoo"):
        return fn(spec, opts)
