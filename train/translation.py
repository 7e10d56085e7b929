"""Translation with ``zoo.seq2seq`` models, for existing imports: it lives in
:mod:`train.drivers.translation` (the translation driver of the ``zoo`` command)."""

from train.drivers.translation import (  # noqa: F401
    decode_metrics,
    decode_texts,
    encode_sources,
    model_config,
    restore_run,
    translate,
)

__all__ = ["decode_metrics", "decode_texts", "encode_sources", "model_config", "restore_run",
           "translate"]
