"""The character-level language model's helpers, for existing imports: they live in
:mod:`train.drivers.char_lm` (the char-lm driver of the ``zoo`` command)."""

from train.drivers.char_lm import load_trained, make_config, make_optimizer, sample_text  # noqa: F401

__all__ = ["load_trained", "make_config", "make_optimizer", "sample_text"]
