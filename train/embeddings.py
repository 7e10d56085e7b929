"""word2vec's training data and word-vector files, for existing imports: they live in
:mod:`train.drivers.embeddings` (the embeddings driver of the ``zoo`` command)."""

from train.drivers.embeddings import (  # noqa: F401
    batches,
    embedding_metrics,
    epoch_examples,
    load_embeddings,
    model_config,
    save_embeddings,
)

__all__ = ["batches", "embedding_metrics", "epoch_examples", "load_embeddings", "model_config",
           "save_embeddings"]
