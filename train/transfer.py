"""The transfer-learning experiment, for existing imports: it lives in
:mod:`train.drivers.transfer` (the transfer driver of the ``zoo`` command)."""

from train.drivers.transfer import few_shot, run_experiment  # noqa: F401

__all__ = ["few_shot", "run_experiment"]
